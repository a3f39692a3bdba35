"""The page template of the dashboards' Voila: ``smartfab``, Voila's ``lab`` page without
requests to other hosts (see ``jupyter/voila/templates/smartfab/index.html.j2``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from jupyter_core.paths import jupyter_path

TEMPLATE = "smartfab"
#: a Jupyter data folder holding ``voila/templates/smartfab``
TEMPLATE_ROOT = Path(__file__).with_name("jupyter")


def template_root_dirs() -> list[str]:
    """Jupyter data folders to search for the template and the ones it extends, ours first."""
    return [str(TEMPLATE_ROOT), *jupyter_path()]


def with_template_path(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the template's folder first on ``JUPYTER_PATH``, where Voila looks."""
    paths = [str(TEMPLATE_ROOT), *filter(None, env.get("JUPYTER_PATH", "").split(os.pathsep))]
    return {**env, "JUPYTER_PATH": os.pathsep.join(paths)}
