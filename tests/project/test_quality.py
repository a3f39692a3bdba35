"""Lint and type checks run as part of the suite."""

from __future__ import annotations

import subprocess
import sys

from tests.support.hubtools import ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint() -> None:
    done = _run("ruff", "check", "src", "tests", "bench", "hub", "scripts", "binder")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format() -> None:
    done = _run("ruff", "format", "--check", "src", "tests", "bench", "hub", "scripts", "binder")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_contracts() -> None:
    """The layers of docs/architecture.md hold: import-linter's contracts in pyproject.toml,
    checked on the sources of this checkout (not an installed copy)."""
    import os
    import shutil

    lint_imports = shutil.which("lint-imports", path=os.path.dirname(sys.executable))
    assert lint_imports, "lint-imports (import-linter, in the test extra) is not installed"
    done = subprocess.run(
        [lint_imports, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout
