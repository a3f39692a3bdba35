"""The tutorial, analysis and app notebooks run top to bottom under nbval and reproduce the
outputs of their checked cells (``# NBVAL_CHECK_OUTPUT``); the programs are tested elsewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ["tutorials", "analyses", "apps"]
SANITIZE = ROOT / "notebooks" / "nbval_sanitize.cfg"


@pytest.fixture
def sf_notebook_env(tmp_path: Path) -> dict[str, str]:
    """An environment with every Jupyter, IPython and data directory in a fresh temp dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "SMARTFAB_"))}
    for name in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "IPYTHONDIR",
        "SMARTFAB_DATA_DIR",
        "MPLCONFIGDIR",
    ):
        path = tmp_path / name.lower()
        path.mkdir()
        env[name] = str(path)
    # the OEE analysis uses line-oee, restricted to this team: run as one of its members
    env["SMARTFAB_TEAMS"] = "voltronic"
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    return env


def test_notebooks_reproduce_checked_outputs(sf_notebook_env: dict[str, str]) -> None:
    folders = [f"notebooks/{name}" for name in FOLDERS if (ROOT / "notebooks" / name).is_dir()]
    notebooks = [nb for folder in folders for nb in (ROOT / folder).glob("*.ipynb")]
    assert notebooks, "no notebooks found"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        *folders,
        "-p",
        "no:cacheprovider",
        "-q",
        "-o",
        "addopts=",
        "--rootdir",
        str(ROOT),
        "--timeout",
        "300",
    ]
    if SANITIZE.exists():
        command += ["--nbval-sanitize-with", str(SANITIZE)]
    result = subprocess.run(
        command, cwd=ROOT, env=sf_notebook_env, capture_output=True, text=True, timeout=600
    )
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) > 0, report
