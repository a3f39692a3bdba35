"""uv.lock, the one lock of the whole Python environment: it satisfies the ranges of pyproject.toml,
uv finds it up to date, and the environment running these tests is the lock.

The helpers that read the lock for the running interpreter (``locked_here``, ``applies_here``,
``file_hashes``) serve tests/project/test_binder.py as well.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution, distributions
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "uv.lock"
PYTHON = f"Python {platform.python_version()}"

#: one locked package: name, version, source, dependencies, sdist and wheels with their hashes
LockedPackage = dict[str, Any]


@functools.cache
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


@functools.cache
def locked_packages() -> dict[NormalizedName, list[LockedPackage]]:
    """Every package of uv.lock by name: one entry per locked version."""
    with LOCK.open("rb") as f:
        lock = tomllib.load(f)
    packages: dict[NormalizedName, list[LockedPackage]] = {}
    for package in lock["package"]:
        packages.setdefault(canonicalize_name(package["name"]), []).append(package)
    return packages


def applies_here(marker: str | None) -> bool:
    """Whether a marker of uv.lock holds for the running interpreter (no marker: always)."""
    return marker is None or Marker(marker).evaluate()


def locked_here(name: str) -> LockedPackage | None:
    """The version of ``name`` that uv.lock installs for the running interpreter, if any.

    A package locked at several versions (for different Pythons) carries the resolution markers
    of the forks each version belongs to; exactly one of them may hold here.
    """
    candidates = [
        package
        for package in locked_packages().get(canonicalize_name(name), [])
        if not package.get("resolution-markers")
        or any(applies_here(m) for m in package["resolution-markers"])
    ]
    assert len(candidates) <= 1, (
        f"{name}: uv.lock has {[p['version'] for p in candidates]} for {PYTHON}; expected one"
    )
    return candidates[0] if candidates else None


def file_hashes(package: LockedPackage) -> set[str]:
    """The ``sha256:...`` hashes of every file (sdist and wheels) uv.lock keeps for a package."""
    files = [package.get("sdist"), *package.get("wheels", [])]
    return {f["hash"] for f in files if f and "hash" in f}


def pyproject_requirements() -> Iterator[tuple[str, Requirement]]:
    """Every requirement of pyproject.toml with where it comes from: the runtime dependencies,
    each extra of [project.optional-dependencies] and each group of [dependency-groups]."""
    project = pyproject()["project"]
    for line in project["dependencies"]:
        yield "[project].dependencies", Requirement(line)
    for extra, lines in project.get("optional-dependencies", {}).items():
        for line in lines:
            yield f"extra {extra!r}", Requirement(line)
    for group, lines in pyproject().get("dependency-groups", {}).items():
        for line in lines:
            if isinstance(line, str):  # {include-group = ...} adds nothing of its own
                yield f"group {group!r}", Requirement(line)


# -- (a) the lock satisfies pyproject.toml ---------------------------------------------------------


def test_every_locked_version_satisfies_pyproject() -> None:
    problems = []
    for origin, requirement in pyproject_requirements():
        versions = locked_packages().get(canonicalize_name(requirement.name))
        if not versions:
            problems.append(f"{requirement.name}: not in uv.lock; {origin} asks for {requirement}")
            continue
        problems += [
            f"{requirement.name}: uv.lock has {package['version']}; {origin} asks for "
            f"{requirement.specifier or 'any version'}"
            for package in versions
            if not requirement.specifier.contains(Version(package["version"]), prereleases=True)
        ]
    assert not problems, "\n".join(problems)


def test_every_locked_file_has_a_hash() -> None:
    unhashed = []
    for versions in locked_packages().values():
        for package in versions:
            if "registry" not in package["source"]:
                continue  # smartfab itself, built from this checkout
            files = [package.get("sdist"), *package.get("wheels", [])]
            unhashed += [
                f"{package['name']} {package['version']}: no sha256 for {f.get('url', f)}"
                for f in files
                if f and not str(f.get("hash", "")).startswith("sha256:")
            ]
            if not any(files):
                unhashed.append(f"{package['name']} {package['version']}: no files locked")
    assert not unhashed, "\n".join(unhashed)


# -- (b) uv agrees that the lock is up to date -----------------------------------------------------


def test_uv_finds_the_lock_up_to_date() -> None:
    # the uv of this environment (locked itself, in the tools group); offline: the check compares
    # uv.lock with pyproject.toml and must not depend on what the index serves today
    checked = subprocess.run(
        [sys.executable, "-m", "uv", "lock", "--check", "--offline", "--python", sys.executable],
        cwd=ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, (
        "uv.lock does not match pyproject.toml; refresh it with `uv lock` (then rerun the tests):\n"
        + checked.stdout
        + checked.stderr
    )


def test_installing_from_the_lock_checks_every_file_against_its_hash(tmp_path: Path) -> None:
    """What scripts/bootstrap runs (`uv sync` from uv.lock) refuses a file whose sha256 is not
    the locked one: here the lock of a copy of the project is altered for pip's files."""
    import re
    import shutil

    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, project / name)
    text = (project / "uv.lock").read_text()
    start = text.index('\n[[package]]\nname = "pip"\n')
    end = text.index("\n[[package]]", start + 1)
    altered = re.sub(r"sha256:[0-9a-f]", "sha256:x", text[start:end]).replace(
        "sha256:x", "sha256:0"
    )
    assert altered != text[start:end]
    (project / "uv.lock").write_text(text[:start] + altered + text[end:])
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": "copy",
    }
    sync = [sys.executable, "-m", "uv", "sync", "--frozen", "--no-install-project"]
    done = subprocess.run(
        [*sync, "--only-group", "tools", "--python", sys.executable],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Hash mismatch" in done.stderr and "pip" in done.stderr, done.stderr


# -- (c) the running environment is the lock -------------------------------------------------------


def test_installed_distributions_have_the_locked_versions() -> None:
    problems = []
    for dist in distributions():
        name = dist.metadata["Name"]
        locked = locked_here(name)
        if locked is not None and Version(dist.version) != Version(locked["version"]):
            problems.append(
                f"{name}: installed {dist.version}, uv.lock has {locked['version']} for {PYTHON}"
            )
    assert not problems, "the environment is not the lock (scripts/bootstrap syncs it):\n" + (
        "\n".join(sorted(problems))
    )


def _installed_problems(requirement: Requirement, asked_by: str) -> list[str]:
    """What is wrong with the installed distribution for ``requirement`` (nothing: [])."""
    try:
        version = distribution(requirement.name).version
    except PackageNotFoundError:
        return [f"{requirement.name}: not installed; {asked_by} asks for {requirement}"]
    if not requirement.specifier.contains(version, prereleases=True):
        return [f"{requirement.name}: installed {version}; {asked_by} asks for {requirement}"]
    return []


def test_declared_dependencies_are_installed() -> None:
    problems = []
    for line in pyproject()["project"]["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        found = _installed_problems(requirement, "pyproject")
        problems += found
        if found or not requirement.extras:
            continue
        # what the requested extras add (dask[array]: numpy) must be installed as well
        for needed in map(Requirement, distribution(requirement.name).requires or []):
            marker = needed.marker
            if marker is None or marker.evaluate({"extra": ""}):
                continue  # a plain dependency of the package, not one of an extra
            if any(marker.evaluate({"extra": extra}) for extra in requirement.extras):
                problems += _installed_problems(needed, str(requirement))
    assert not problems, "\n".join(problems)
