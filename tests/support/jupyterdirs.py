"""One way to point Jupyter and IPython away from the home directory, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

#: where Jupyter and IPython keep config, data, runtime files and profiles
JUPYTER_DIRS = ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")


def isolated_jupyter_dirs(base: Path) -> dict[str, str]:
    """Create one folder per Jupyter/IPython directory below ``base``; the variables naming
    them."""
    dirs = {}
    for name in JUPYTER_DIRS:
        path = base / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        dirs[name] = str(path)
    return dirs
