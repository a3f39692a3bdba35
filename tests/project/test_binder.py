"""The repo2docker configuration in ``binder/``: the image installs exactly uv.lock without the
hub's own parts, the build scripts are sound bash, and the datasets postBuild prepares are really
built and verified.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from tests.project.test_lock import (
    PYTHON,
    LockedPackage,
    applies_here,
    file_hashes,
    locked_here,
    locked_packages,
    pyproject,
)

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
SCRIPTS = ("postBuild", "start", "prepare-datasets")


@functools.cache
def _locked_requirements_script() -> ModuleType:
    """binder/locked-requirements as a module (it has no .py suffix: it is run as a script)."""
    path = BINDER / "locked-requirements"
    loader = SourceFileLoader("binder_locked_requirements", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _hub_parts() -> set[NormalizedName]:
    return {canonicalize_name(n) for n in _locked_requirements_script().HUB_PARTS}


@functools.cache
def _exported_text() -> str:
    """What binder/postBuild installs: the output of binder/locked-requirements."""
    exported = subprocess.run(
        [sys.executable, str(BINDER / "locked-requirements")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    return exported.stdout


def _exported() -> list[tuple[Requirement, set[str]]]:
    """Each exported requirement with its ``--hash`` options, continuation lines joined."""
    entries = []
    for line in _exported_text().replace("\\\n", " ").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        first_option = next((i for i, w in enumerate(words) if w.startswith("--")), len(words))
        options = words[first_option:]
        assert all(o.startswith("--hash=sha256:") for o in options), f"unexpected option: {line}"
        requirement = Requirement(" ".join(words[:first_option]))
        entries.append((requirement, {o.removeprefix("--hash=") for o in options}))
    return entries


def _exported_here() -> dict[NormalizedName, Version]:
    """The version of each package pip installs from the export on this Python."""
    here: dict[NormalizedName, Version] = {}
    for requirement, _ in _exported():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name not in here, f"{name}: exported twice for {PYTHON}"
        (spec,) = requirement.specifier
        here[name] = Version(spec.version)
    return here


def _runtime_closure_here() -> dict[NormalizedName, Version]:
    """The packages uv.lock installs on this Python for smartfab's runtime dependencies without
    the hub's parts: followed through the lock's dependency edges and their markers."""
    (project,) = locked_packages()[canonicalize_name("smartfab")]
    todo = [e for e in project["dependencies"] if canonicalize_name(e["name"]) not in _hub_parts()]
    found: dict[NormalizedName, Version] = {}
    seen: set[tuple[NormalizedName, tuple[str, ...]]] = set()
    while todo:
        edge = todo.pop()
        name, extras = canonicalize_name(edge["name"]), tuple(edge.get("extra", ()))
        if not applies_here(edge.get("marker")) or (name, extras) in seen:
            continue
        seen.add((name, extras))
        package: LockedPackage | None
        if "version" in edge:  # the lock names the version when it holds several
            (package,) = [p for p in locked_packages()[name] if p["version"] == edge["version"]]
        else:
            package = locked_here(name)
        assert package is not None, f"{name}: needed on {PYTHON} but not locked for it"
        found[name] = Version(package["version"])
        todo += package.get("dependencies", [])
        for extra in extras:
            todo += package.get("optional-dependencies", {}).get(extra, [])
    return found


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


# -- (a) the image installs uv.lock ----------------------------------------------------------------


def test_no_second_pin_list() -> None:
    assert not (BINDER / "requirements.txt").exists(), (
        "binder/requirements.txt: the image installs from uv.lock (binder/locked-requirements)"
    )


def test_exported_requirements_are_the_locked_files() -> None:
    problems = []
    for requirement, hashes in _exported():
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{requirement}: not pinned to one version"
        locked = [
            p
            for p in locked_packages().get(canonicalize_name(requirement.name), [])
            if Version(p["version"]) == Version(spec.version)
        ]
        if not locked:
            problems.append(f"{requirement.name}: exported {spec.version}, not in uv.lock")
        elif hashes != file_hashes(locked[0]):
            problems.append(
                f"{requirement.name} {spec.version}: exported {len(hashes)} hashes, uv.lock has "
                f"{len(file_hashes(locked[0]))}; they differ"
            )
    assert not problems, "\n".join(problems)


def test_exported_requirements_are_the_lock_for_this_python() -> None:
    exported, expected = _exported_here(), _runtime_closure_here()
    problems = [
        f"{name}: exported {exported.get(name, 'nothing')}, uv.lock has "
        f"{expected.get(name, 'nothing: only the hub parts need it')} for {PYTHON}"
        for name in sorted(set(exported) | set(expected))
        if exported.get(name) != expected.get(name)
    ]
    assert not problems, "\n".join(problems)


def _readme_left_out() -> set[NormalizedName]:
    """The packages binder/README.md lists, with the reason, as the hub's parts left out."""
    text = (BINDER / "README.md").read_text()
    bullets = text.split("Left out, the hub's own parts", 1)[1].split("\n\n", 2)[1]
    return {canonicalize_name(n) for n in re.findall(r"^- `([^`]+)`:", bullets, re.MULTILINE)}


def test_readme_says_why_each_hub_part_is_left_out() -> None:
    assert _readme_left_out() == _hub_parts(), (
        f"binder/README.md explains {sorted(_readme_left_out())}, "
        f"binder/locked-requirements leaves out {sorted(_hub_parts())}"
    )


def test_hub_parts_are_left_out_and_every_other_dependency_is_in() -> None:
    exported = _exported_here()
    problems = []
    for line in pyproject()["project"]["dependencies"]:
        wanted = Requirement(line)
        name = canonicalize_name(wanted.name)
        if name in _hub_parts():
            if name in exported:
                problems.append(f"{name}: exported {exported[name]}; a hub part, to leave out")
        elif name not in exported:
            problems.append(f"{name}: not exported; pyproject asks for {wanted}")
        elif not wanted.specifier.contains(exported[name], prereleases=True):
            problems.append(f"{name}: exported {exported[name]}; pyproject asks for {wanted}")
    declared = {
        canonicalize_name(Requirement(d).name) for d in pyproject()["project"]["dependencies"]
    }
    problems += [f"{n}: a hub part but not in pyproject" for n in _hub_parts() - declared]
    assert not problems, "\n".join(problems)


def test_pip_accepts_the_export_in_hash_checking_mode(tmp_path: Path) -> None:
    # postBuild's pip command as a dry run against this environment (the lock, as test_lock.py
    # checks): pip reads the file, evaluates its markers and resolves the pins together; nothing
    # is downloaded, as all is installed (which is also why the hashes are checked above instead)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(_exported_text())
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--require-hashes"]
    checked = subprocess.run(
        [*pip, "-r", str(requirements)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Would install" not in checked.stdout, checked.stdout


def test_runtime_python_satisfies_requires_python() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-"), f"runtime.txt: {runtime!r}, want python-X.Y"
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    assert Version(runtime.removeprefix("python-")) in requires, (runtime, str(requires))


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


def test_locked_requirements_is_an_executable_python_script() -> None:
    path = BINDER / "locked-requirements"
    assert os.access(path, os.X_OK), "binder/locked-requirements is not executable"
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    compile(path.read_text(), str(path), "exec")


@pytest.mark.parametrize("name", [*SCRIPTS, "locked-requirements"])
def test_script_needs_no_root(name: str) -> None:
    text = (BINDER / name).read_text()
    for word in ("sudo ", "apt-get", "apt ", "chown ", "/etc/"):
        assert word not in text, f"binder/{name} uses {word.strip()!r}: the build has no root"


def test_post_build_installs_the_lock_then_the_project_then_prepares_datasets() -> None:
    text = (BINDER / "postBuild").read_text()
    steps = [
        'python scripts/locked-requirement uv >"$work/uv.txt"',
        'python -m pip install --no-cache-dir --require-hashes --no-deps -r "$work/uv.txt"',
        'python binder/locked-requirements >"$work/requirements.txt"',
        'python -m pip install --no-cache-dir --require-hashes -r "$work/requirements.txt"',
        'python -m pip install --no-cache-dir --no-deps "$work"/dist/smartfab-*.whl',
        'binder/prepare-datasets "$(binder/start printenv SMARTFAB_DATA_DIR)"',
    ]
    positions = [text.find(step) for step in steps]
    missing = [step for step, at in zip(steps, positions, strict=True) if at < 0]
    assert not missing, f"binder/postBuild lacks {missing}"
    assert positions == sorted(positions), "binder/postBuild runs its steps out of order"


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
        # "ok": the bytes are those recorded at the build, the content the card's fingerprint
        assert [(r["path"], r["status"]) for r in results] == [(str(build), "ok")], results
        record = build.with_name(build.name + ".fingerprint.json").read_text().splitlines()
        assert json.loads(record[0])["sha256"] == results[0]["actual"]

    shipped = {p.name for p in Path(data_dir).iterdir()}
    assert shipped == set(public), f"expected only the public synthetic datasets: {shipped}"
    assert not shipped & restricted
