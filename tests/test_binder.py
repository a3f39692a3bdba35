"""The repo2docker configuration in ``binder/``: the environment agrees with pyproject.toml, the
build scripts are sound bash, and the datasets postBuild prepares are really built and verified.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
SCRIPTS = ("postBuild", "start", "prepare-datasets")

#: runtime dependencies of pyproject.toml a Binder session does without, and why
LEFT_OUT: dict[str, str] = {
    "jupyterhub": "the hub itself; BinderHub brings its own hub and the image's single-user "
    "server must match that hub, not ours",
    "jupyterhub-nativeauthenticator": "hub login; Binder sessions are anonymous",
    "jupyterhub-idle-culler": "a hub service; BinderHub culls idle sessions itself",
    "jupyter-collaboration": "real-time collaboration between hub users on team folders; a "
    "Binder session has one anonymous user",
}

#: packages in binder/requirements.txt that pyproject.toml does not list, and why
EXTRA_ALLOWED: dict[str, str] = {}

#: packages whose versions are written into, or decide, the bytes of a built dataset: the
#: image must use the versions with which test_prepare_datasets reproduced the pinned sha256
DATASET_BYTES = ("numpy", "scipy", "pandas", "xarray", "h5netcdf", "h5py")


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _pyproject_requirements() -> dict[NormalizedName, Requirement]:
    deps = _pyproject()["project"]["dependencies"]  # type: ignore[index]
    reqs = [Requirement(line) for line in deps]  # type: ignore[union-attr]
    return {canonicalize_name(r.name): r for r in reqs}


def _binder_requirements() -> dict[NormalizedName, Requirement]:
    """binder/requirements.txt, one requirement per line (no pip options, no duplicates)."""
    reqs: dict[NormalizedName, Requirement] = {}
    for number, raw in enumerate((BINDER / "requirements.txt").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"requirements.txt:{number}: pip option {line!r}"
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in reqs, f"requirements.txt:{number}: {req.name} listed twice"
        reqs[name] = req
    return reqs


def _pinned_version(req: Requirement) -> Version:
    """The version of an exact ``==`` pin; anything looser fails the test."""
    specs = list(req.specifier)
    assert len(specs) == 1, f"{req}: pin one exact version"
    assert specs[0].operator == "==" and "*" not in specs[0].version, f"{req}: use NAME==VERSION"
    return Version(specs[0].version)


def _synthetic_cards() -> list[dict[str, object]]:
    """The curated cards of kind synthetic, read straight from datasets/."""
    cards = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "datasets").glob("*.yaml"))]
    return [c for c in cards if c["kind"] == "synthetic"]


def _bin_env(**extra: str) -> dict[str, str]:
    """The environment of this interpreter's bin dir (smartfab, python) for the scripts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTFAB_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


# -- (a) the environment agrees with pyproject.toml -----------------------------------------------


def test_left_out_dependencies_are_pyproject_dependencies_and_absent() -> None:
    pyproject = _pyproject_requirements()
    binder = _binder_requirements()
    for name in LEFT_OUT:
        assert canonicalize_name(name) in pyproject, f"{name}: no longer in pyproject; drop it"
        assert canonicalize_name(name) not in binder, f"{name}: listed as left out"


def test_every_needed_dependency_is_pinned_compatibly() -> None:
    binder = _binder_requirements()
    left_out = {canonicalize_name(n) for n in LEFT_OUT}
    problems = []
    for name, wanted in _pyproject_requirements().items():
        if name in left_out:
            continue
        pin = binder.get(name)
        if pin is None:
            problems.append(f"{wanted}: missing from binder/requirements.txt")
            continue
        pinned = _pinned_version(pin)
        if not wanted.specifier.contains(pinned, prereleases=True):
            problems.append(f"{pin} does not satisfy pyproject's {wanted}")
        if not wanted.extras <= pin.extras:
            problems.append(f"{pin}: pyproject asks for extras {sorted(wanted.extras)}")
        if wanted.marker != pin.marker:
            problems.append(f"{pin}: markers differ from pyproject's {wanted}")
    assert not problems, "\n".join(problems)


def test_every_binder_package_is_in_pyproject_or_allowed() -> None:
    known = set(_pyproject_requirements()) | {canonicalize_name(n) for n in EXTRA_ALLOWED}
    unknown = sorted(str(r) for n, r in _binder_requirements().items() if n not in known)
    assert not unknown, f"not in pyproject.toml nor in EXTRA_ALLOWED: {unknown}"
    for req in _binder_requirements().values():
        _pinned_version(req)


def test_runtime_python_satisfies_requires_python() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-"), f"runtime.txt: {runtime!r}, want python-X.Y"
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])  # type: ignore[index]
    assert Version(runtime.removeprefix("python-")) in requires, (runtime, str(requires))


def test_dataset_packages_pinned_as_tested() -> None:
    binder = _binder_requirements()
    drift = {
        name: (str(pinned), tested)
        for name in DATASET_BYTES
        if (pinned := _pinned_version(binder[canonicalize_name(name)]))
        != Version(tested := installed_version(name))
    }
    assert not drift, f"binder pin vs tested version (the datasets' sha256 depend on them): {drift}"


# -- (b) the build scripts ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_strict_executable_bash(name: str) -> None:
    path = BINDER / name
    assert os.access(path, os.X_OK), f"binder/{name} is not executable"
    lines = path.read_text().splitlines()
    assert lines[0] in ("#!/usr/bin/env bash", "#!/bin/bash"), f"binder/{name}: {lines[0]!r}"
    statements = [line.strip() for line in lines[1:] if line.strip() and not line.startswith("#")]
    assert statements[0] == "set -euo pipefail", f"binder/{name} starts with {statements[0]!r}"
    checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_needs_no_root(name: str) -> None:
    text = (BINDER / name).read_text()
    for word in ("sudo ", "apt-get", "apt ", "chown ", "/etc/"):
        assert word not in text, f"binder/{name} uses {word.strip()!r}: the build has no root"


def test_post_build_installs_project_and_prepares_datasets() -> None:
    text = (BINDER / "postBuild").read_text()
    assert "pip install --no-cache-dir --no-deps ." in text
    assert 'binder/prepare-datasets "$(binder/start printenv SMARTFAB_DATA_DIR)"' in text


def test_start_exports_data_dir_and_runs_the_command(tmp_path: Path) -> None:
    start = str(BINDER / "start")
    env = _bin_env(NB_PYTHON_PREFIX=str(tmp_path))
    shown = subprocess.run([start, "printenv", "SMARTFAB_DATA_DIR"], env=env, capture_output=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.decode().strip() == str(tmp_path / "share" / "smartfab" / "datasets")

    env["SMARTFAB_DATA_DIR"] = str(tmp_path / "elsewhere")
    kept = subprocess.run([start, "printenv", "SMARTFAB_DATA_DIR"], env=env, capture_output=True)
    assert kept.stdout.decode().strip() == str(tmp_path / "elsewhere")

    failed = subprocess.run([start, "false"], env=env)
    assert failed.returncode == 1, "start must exec the command and keep its exit code"


def test_prepare_datasets_needs_a_data_dir() -> None:
    run = subprocess.run([str(BINDER / "prepare-datasets")], env=_bin_env(), capture_output=True)
    assert run.returncode == 2
    assert b"usage:" in run.stderr


# -- (c) the datasets postBuild prepares -----------------------------------------------------------


def test_prepare_datasets_builds_and_verifies_every_public_synthetic_dataset(
    tmp_path: Path,
) -> None:
    cards = _synthetic_cards()
    public = {c["id"]: c for c in cards if c["access"] == "public"}
    restricted = {c["id"] for c in cards if c["access"] != "public"}
    assert public, "no public synthetic dataset in datasets/"

    # as in the image: postBuild asks binder/start for the data dir, the session gets it from start
    env = _bin_env(NB_PYTHON_PREFIX=str(tmp_path / "prefix"))
    start = str(BINDER / "start")
    data_dir = subprocess.run(
        [start, "printenv", "SMARTFAB_DATA_DIR"], env=env, capture_output=True, text=True
    ).stdout.strip()
    prepared = subprocess.run(
        [str(BINDER / "prepare-datasets"), data_dir],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr

    for dataset_id, card in public.items():
        build = Path(data_dir) / dataset_id / str(card["version"]) / f"{dataset_id}.nc"
        assert build.is_file(), f"{dataset_id}: no default build at {build}"
        verified = subprocess.run(
            [start, "smartfab", "datasets", "verify", dataset_id, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        results = json.loads(verified.stdout)
        assert [(r["path"], r["status"]) for r in results] == [(str(build), "ok")], results
        pinned = card["files"][0]["sha256"]  # type: ignore[index]
        assert results[0]["actual"] == pinned

    shipped = {p.name for p in Path(data_dir).iterdir()}
    assert shipped == set(public), f"expected only the public synthetic datasets: {shipped}"
    assert not shipped & restricted
