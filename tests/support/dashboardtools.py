"""A small project for dashboard tests: the demo alliance and tiny widget notebooks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.support.hubtools import DEMO_ALLIANCE, ROOT

#: text only in the fixtures' code cells: it must never reach a viewer's browser
SOURCE_MARKER = "sf_source_marker_7d41"
FAILURE_MARKER = "sf_failure_marker_93ab"

SPC_CODE = f"""
import ipywidgets as widgets
{SOURCE_MARKER} = 1
window = widgets.IntSlider(value=20, min=5, max=50, description="Window")
window.add_class("sf-spc-window")
chart = widgets.HTML()
chart.add_class("sf-spc-chart")

def draw(change=None):
    points = " ".join(f"{{i * 10}},{{(i * 7) % window.value}}" for i in range(window.value))
    chart.value = (
        f'<svg width="500" height="60"><polyline class="sf-spc-line" '
        f'data-points="{{window.value}}" points="{{points}}" fill="none" stroke="navy"/></svg>'
    )

window.observe(draw, names="value")
draw()
widgets.VBox([window, chart])
"""


def notebook(code: str) -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Fixture app"},
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": code,
            },
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_notebook(path: Path, code: str) -> Path:
    path.write_text(json.dumps(notebook(code)))
    return path


def simple_app(label: str) -> str:
    return f"import ipywidgets as widgets\n{SOURCE_MARKER} = 1\nwidgets.Label({label!r})\n"


#: who the kernel runs as, and which team folders it can list (printed, and in a widget label)
PROBE_APP = f"""
import getpass
import os
from pathlib import Path

import ipywidgets as widgets

{SOURCE_MARKER} = 1
public = Path(os.environ["SMARTFAB_SHARED_DATA"].split(os.pathsep)[0])


def probe(folder):
    try:
        os.listdir(folder)
    except OSError as err:
        return type(err).__name__
    return "readable"


teams = ["acme-machining", "voltronic"]  # the state dir's teams/ may not be listed
folders = " ".join(f"{{team}}:{{probe(public.parent / 'teams' / team)}}" for team in teams)
token = "JUPYTERHUB_API_TOKEN" in os.environ
report = (
    f"user={{getpass.getuser()}} uid={{os.getuid()}} teams={{os.environ['SMARTFAB_TEAMS']}} "
    f"hubtoken={{token}} {{folders}}"
)
print("probe:", report)
label = widgets.Label(report)
label.add_class("sf-probe")
label
"""

FAILING_APP = f"{SOURCE_MARKER} = 1\nraise RuntimeError({FAILURE_MARKER!r})\n"

REGISTRY = """dashboards:
  machine-health: {notebook: machine_health.ipynb, title: Machine health, description: Spindles}
  tool-life: {notebook: tool_life.ipynb, title: Tool life, description: Taylor}
  spc-chart: {notebook: spc.ipynb, title: SPC chart, description: Control chart}
  oee-dashboard: {notebook: oee.ipynb, title: OEE dashboard, description: Line OEE}
"""


def project_library(alliance: Path) -> Path:
    """The alliance library of fixture apps of the project made by :func:`make_project`: hand
    it to the hub (``RunningHub.library``, i.e. ``$SMARTFAB_LIBRARY_DIR``) to serve them."""
    return alliance.parents[1] / "notebooks"


def make_project(root: Path, real_apps: dict[str, Path] | None = None) -> Path:
    """``root/hub/alliance.yaml`` (the demo one) and ``root/notebooks``, an alliance library
    whose ``apps`` are fixture apps and whose ``programs`` are the real ones (see
    :func:`project_library`); return the alliance file.

    ``machine-health`` (acme) and ``oee-dashboard`` (voltronic) are probes of who their kernel
    runs as; ``real_apps`` (dashboard id -> notebook) replaces ``spc-chart`` or ``oee-dashboard``
    with a real app.
    """
    real_apps = real_apps or {}
    hub = root / "hub"
    apps = root / "notebooks" / "apps"
    hub.mkdir(parents=True)
    apps.mkdir(parents=True)
    shutil.copy(DEMO_ALLIANCE, hub / "alliance.yaml")
    # the library's programs are the real ones: the demo alliance grants one
    shutil.copytree(ROOT / "notebooks" / "programs", root / "notebooks" / "programs")
    (apps / "dashboards.yaml").write_text(REGISTRY)
    write_notebook(apps / "machine_health.ipynb", PROBE_APP)
    write_notebook(apps / "tool_life.ipynb", simple_app("tool life"))
    for name, dashboard_id in (("spc", "spc-chart"), ("oee", "oee-dashboard")):
        real = real_apps.get(dashboard_id)
        if real is not None:
            shutil.copy(real, apps / f"{name}.ipynb")
        else:
            write_notebook(apps / f"{name}.ipynb", SPC_CODE if name == "spc" else PROBE_APP)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return hub / "alliance.yaml"
