"""Install anywhere: the curated resources come with the package, not from the checkout.

The wheel carries the alliance library (the curated notebooks, with the registry of the curated
apps) and the dataset cards; an alliance file in any folder may grant the curated apps. The
``sf_wheel_env`` tests build the wheel, install it with the locked dependencies (hash-checked)
into a new environment outside the checkout, and use its ``smartfab`` from a folder outside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from smartfab.errors import ResourceError
from smartfab.hub.proxy import PROXY_BIN, PROXY_ENV
from smartfab.resources import CARDS_ENV, LIBRARY_ENV, cards_dir, library_dir
from tests.dashboards.test_dashboards import gallery_ids, viewer
from tests.support.hubtools import ROOT, SMARTFAB, RunningHub
from tests.support.jupyterdirs import isolated_jupyter_dirs

#: the curated apps; granting them needs nothing but an installed smartfab
CURATED_APPS = ("machine-health", "tool-life", "spc-chart", "oee-dashboard")
#: the folders of the alliance library (the checkout's ``notebooks/``)
LIBRARY_FOLDERS = ("tutorials", "analyses", "apps", "programs")
#: the package folder the wheel installs the library into
WHEEL_LIBRARY = "smartfab/library/"
#: an alliance file that grants every curated app, and nothing beside it
ALLIANCE = """\
alliance:
  name: An alliance far from any checkout
people:
  - name: ada
  - name: bo
  - name: cy
teams:
  - id: anvil-works
    kind: firm
    title: Anvil Works
    members: {ada: lead, bo: viewer}
    grants:
      dashboards: [machine-health, tool-life]
  - id: circuit-co
    kind: firm
    title: Circuit Co
    members: {cy: lead}
    grants:
      dashboards: [spc-chart, oee-dashboard]
"""


def run(
    args: list[str | Path], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``cwd``; the caller checks the outcome."""
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def write_alliance(folder: Path, text: str = ALLIANCE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "alliance.yaml"
    path.write_text(text)
    assert not path.resolve().is_relative_to(ROOT), "the alliance file must be outside"
    return path


def library_files(folder: Path) -> dict[str, str]:
    """sha256 of every notebook and YAML file of the library folders, by relative path."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for name in LIBRARY_FOLDERS
        for path in sorted((folder / name).rglob("*"))
        if path.suffix in (".ipynb", ".yaml") and ".ipynb_checkpoints" not in path.parts
    }


# --------------------------------------------------------------- the resources of this install


def test_library_and_cards_of_this_installation() -> None:
    """The alliance library holds every kind of curated notebook and the apps' registry."""
    library = library_dir()
    assert (library / "apps" / "dashboards.yaml").is_file()
    for name in LIBRARY_FOLDERS:
        assert list((library / name).glob("*.ipynb")), f"no notebook in {library / name}"
    assert list((library / "programs").glob("*.yaml")), "no batch spec beside the programs"
    assert list(cards_dir().glob("*.yaml")), f"no dataset card in {cards_dir()}"


def test_environment_names_other_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path))
    monkeypatch.setenv(CARDS_ENV, str(tmp_path))
    assert library_dir() == tmp_path
    assert cards_dir() == tmp_path
    missing = tmp_path / "absent"
    for env, find in ((LIBRARY_ENV, library_dir), (CARDS_ENV, cards_dir)):
        monkeypatch.setenv(env, str(missing))
        with pytest.raises(ResourceError, match=re.escape(f"{env}='{missing}': not a folder")):
            find()


def test_alliance_file_anywhere_grants_the_curated_apps(tmp_path: Path) -> None:
    """`hub check` and `dashboards list` of an alliance file far from the checkout."""
    alliance = write_alliance(tmp_path / "elsewhere")
    done = run([SMARTFAB, "hub", "check", alliance], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{alliance}: ok (3 people, 2 teams")
    listed = run(
        [SMARTFAB, "dashboards", "list", "--json", "--config", alliance,
         "--state-dir", tmp_path / "state"],
        cwd=tmp_path,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert sorted(rows) == sorted(CURATED_APPS)
    assert all(row["available"] and row["origin"] == "curated" for row in rows.values())
    assert rows["spc-chart"]["teams"] == ["circuit-co"]


def test_hub_serves_the_installed_apps(tmp_path: Path) -> None:
    """What `hub up` hands the dashboards service, and whose Voila it prepares, do not depend
    on where the alliance file is."""
    from smartfab.alliance import load_alliance
    from smartfab.dashboards.hubservice import dashboards_service, ensure_dashboard_accounts
    from smartfab.dashboards.registry import curated_registry
    from smartfab.host.settings import HubSettings, SpawnMode

    settings = HubSettings(
        alliance_file=write_alliance(tmp_path / "elsewhere"),
        state_dir=tmp_path / "state",
        home_root=tmp_path / "home",
        spawn_mode=SpawnMode.single,
    )
    environment = dashboards_service(settings)["environment"]
    assert environment[LIBRARY_ENV] == str(library_dir())
    assert curated_registry() == library_dir() / "apps" / "dashboards.yaml"
    alliance = load_alliance(settings.alliance_file)
    assert ensure_dashboard_accounts(settings, alliance) == ["anvil-works", "circuit-co"]


# --------------------------------------------------------------- the wheel, installed elsewhere


@dataclass(frozen=True)
class WheelEnv:
    """A new environment outside the checkout with the wheel built from it."""

    wheel: Path
    venv: Path
    #: a folder outside the checkout: the commands run there
    workdir: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def smartfab(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return run([self.venv / "bin" / "smartfab", *args], cwd=self.workdir, env=self.env)


def base_python() -> Path:
    """The interpreter this environment was made from (not the venv's link to it)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = Path(sys.base_prefix) / "bin" / version
    assert path.is_file(), f"{path}: the base interpreter of {sys.executable} is not there"
    return path


def outside_env(base: Path) -> dict[str, str]:
    """Our environment, minus whatever points into the checkout or its environment; Jupyter,
    IPython, home and data folders in ``base``."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in dropped and not name.startswith("SMARTFAB_")
    }
    env.update(isolated_jupyter_dirs(base / "jupyter"))
    (base / "home").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(base / "home"),
        PYTHONNOUSERSITE="1",
        SMARTFAB_DATA_DIR=str(base / "data"),
    )
    return env


@pytest.fixture(scope="module")
def sf_wheel_env(tmp_path_factory: pytest.TempPathFactory) -> WheelEnv:
    """Build the wheel, then install the locked dependencies (hash-checked) and the wheel into a
    new venv made from the base interpreter, in a temp folder outside the checkout."""
    base = tmp_path_factory.mktemp("wheel-install")
    assert not base.resolve().is_relative_to(ROOT)
    uv = Path(sys.executable).with_name("uv")
    uv_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    uv_env["UV_PYTHON_DOWNLOADS"] = "never"

    def uv_run(*args: str | Path, cwd: Path = base) -> None:
        done = run([uv, *args], cwd=cwd, env=uv_env)
        assert done.returncode == 0, f"uv {' '.join(map(str, args))}:\n{done.stderr}"

    python = base_python()
    uv_run("build", "--wheel", "--python", python, "--out-dir", base / "dist", ROOT)
    (wheel,) = (base / "dist").glob("smartfab-*.whl")
    requirements = base / "requirements.txt"
    uv_run("export", "--frozen", "--no-emit-project", "--format", "requirements-txt",
           "--output-file", requirements, cwd=ROOT)  # fmt: skip
    venv = base / "venv"
    uv_run("venv", "--python", python, venv)
    target = venv / "bin" / "python"
    uv_run("pip", "install", "--python", target, "--require-hashes", "-r", requirements)
    uv_run("pip", "install", "--python", target, "--no-deps", wheel)
    workdir = base / "work"
    workdir.mkdir()
    return WheelEnv(wheel=wheel, venv=venv, workdir=workdir, env=outside_env(base))


def test_wheel_carries_the_library_without_clutter(sf_wheel_env: WheelEnv) -> None:
    """Every curated notebook and spec, byte for byte; no checkpoints, caches or hidden files
    (forced inclusion ignores exclude patterns: a dirty ``notebooks/`` must fail here)."""
    with zipfile.ZipFile(sf_wheel_env.wheel) as wheel:
        names = [n for n in wheel.namelist() if n.startswith(WHEEL_LIBRARY)]
    assert f"{WHEEL_LIBRARY}apps/dashboards.yaml" in names
    clutter = [
        name
        for name in names
        if any(part.startswith(".") or part == "__pycache__" for part in name.split("/"))
    ]
    assert clutter == [], f"remove these from notebooks/ before building: {clutter}"


def test_installed_library_is_the_curated_one(sf_wheel_env: WheelEnv) -> None:
    code = "from smartfab import resources as r; print(r.library_dir()); print(r.cards_dir())"
    done = run([sf_wheel_env.python, "-c", code], cwd=sf_wheel_env.workdir, env=sf_wheel_env.env)
    assert done.returncode == 0, done.stderr
    library, cards = (Path(line) for line in done.stdout.splitlines())
    assert library.is_relative_to(sf_wheel_env.venv) and library.name == "library"
    assert cards.is_relative_to(sf_wheel_env.venv)
    installed = library_files(library)
    for name in LIBRARY_FOLDERS:
        assert any(p.startswith(f"{name}/") and p.endswith(".ipynb") for p in installed), name
    assert "apps/dashboards.yaml" in installed
    assert installed == library_files(ROOT / "notebooks")


def test_installed_check_accepts_the_curated_apps(sf_wheel_env: WheelEnv) -> None:
    alliance = write_alliance(sf_wheel_env.workdir / "anywhere")
    done = sf_wheel_env.smartfab("hub", "check", alliance)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{alliance}: ok (3 people, 2 teams")
    listed = sf_wheel_env.smartfab(
        "dashboards", "list", "--json", "--config", alliance,
        "--state-dir", sf_wheel_env.workdir / "state",
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(row["id"] for row in rows) == sorted(CURATED_APPS)
    for row in rows:
        assert row["available"], row
        assert Path(row["notebook"]).is_relative_to(sf_wheel_env.venv), row


def test_installed_check_refuses_an_unknown_app(sf_wheel_env: WheelEnv) -> None:
    text = ALLIANCE.replace("[spc-chart, oee-dashboard]", "[spc-chart, no-such-app]")
    alliance = write_alliance(sf_wheel_env.workdir / "unknown", text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "no-such-app" in row)
    done = sf_wheel_env.smartfab("hub", "check", alliance)
    assert done.returncode == 2, done.stdout + done.stderr
    known = ", ".join(sorted(CURATED_APPS))
    assert (
        f"{alliance}:{line}: teams[1].grants.dashboards[1]: unknown dashboard 'no-such-app'; "
        f"known: {known}"
    ) in done.stderr
    assert "Traceback" not in done.stderr


def test_installed_datasets_list_the_curated_cards(sf_wheel_env: WheelEnv) -> None:
    done = sf_wheel_env.smartfab("datasets", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = {row["id"] for row in json.loads(done.stdout)}
    curated = {yaml.safe_load(p.read_text())["id"] for p in (ROOT / "datasets").glob("*.yaml")}
    assert listed == curated


@pytest.mark.hub
def test_installed_hub_serves_the_curated_apps(
    sf_wheel_env: WheelEnv, sf_account_prefix: str
) -> None:
    """`smartfab hub up` of the installed wheel, run outside the checkout with an alliance file
    there: each viewer's gallery shows the curated apps granted to their team."""
    base = sf_wheel_env.workdir / "hub"
    env = {**sf_wheel_env.env, PROXY_ENV: str(ROOT / PROXY_BIN)}  # npm's, not smartfab's
    hub = RunningHub(
        alliance=write_alliance(base),
        state_dir=base / "state",
        home_root=base / "home",
        prefix=sf_account_prefix,
        spawn_mode="single",  # the new venv is in a private temp folder
        extra_args=["--dashboard-pool-size", "0"],
        program=str(sf_wheel_env.venv / "bin" / "smartfab"),
        cwd=sf_wheel_env.workdir,
        env=env,
    )
    hub.start()
    try:
        assert gallery_ids(viewer(hub, "bo"), hub) == ["machine-health", "tool-life"]
        assert gallery_ids(viewer(hub, "cy"), hub) == ["oee-dashboard", "spc-chart"]
    finally:
        assert hub.stop() == 0, hub.log()
