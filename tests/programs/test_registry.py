"""The program registry: versions by content, immutable, per team; the commands; grants."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from smartfab.alliance import load_alliance
from smartfab.errors import AllianceError, ProgramError, RunSpecError
from smartfab.hub.services import grant_references
from smartfab.programs.library import curated_programs
from smartfab.programs.registry import NOTEBOOK_FILE, ProgramRegistry, program_id_of
from tests.support.hubtools import DEMO_ALLIANCE, ROOT

SMARTFAB = str(Path(sys.executable).with_name("smartfab"))
PROGRAMS = ROOT / "notebooks" / "programs"
DETECTOR = "bearing_fault_detector"


@pytest.fixture
def sf_program(tmp_path: Path) -> Path:
    """A copy of the bearing fault detector and its spec, to edit; returns the spec."""
    folder = tmp_path / "program"
    folder.mkdir()
    shutil.copy(PROGRAMS / f"{DETECTOR}.ipynb", folder)
    return Path(shutil.copy(PROGRAMS / f"{DETECTOR}.yaml", folder))


@pytest.fixture
def sf_registry(tmp_path: Path) -> ProgramRegistry:
    return ProgramRegistry(tmp_path / "state" / "programs")


def test_a_registered_program_has_one_immutable_version(
    sf_registry: ProgramRegistry, sf_program: Path
) -> None:
    done = sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    assert done.created
    program, version = done.program, done.version
    assert program.id == "bearing-fault-detector" and program.team == "acme-machining"
    assert program.title == "Bearing fault detector: envelope analysis over a run to failure"
    assert program.description.startswith("**What.** For each vibration snapshot")
    assert (version.number, version.registered_by) == (1, "ben")
    assert list(version.specs) == ["bearing-fault-detector"]
    folder = sf_registry.version_folder(program.id, version)
    notebook = folder / NOTEBOOK_FILE
    assert notebook.read_bytes() == (sf_program.parent / f"{DETECTOR}.ipynb").read_bytes()
    assert (
        folder / "specs" / "bearing-fault-detector.yaml"
    ).read_bytes() == sf_program.read_bytes()
    for path in (notebook, folder, folder / "specs"):
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), path
    assert sf_registry.get(program.id) == program
    assert sf_registry.ids() == [program.id]


def test_the_same_content_is_the_same_version(
    sf_registry: ProgramRegistry, sf_program: Path
) -> None:
    first = sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    again = sf_registry.register([sf_program], team="acme-machining", registered_by="anna")
    assert not again.created
    assert again.version == first.version  # registered_by stays ben's
    assert len(sf_registry.get(first.program.id).versions) == 1


def test_a_changed_spec_is_a_new_version_and_the_old_one_stays(
    sf_registry: ProgramRegistry, sf_program: Path
) -> None:
    first = sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    sf_program.write_text(sf_program.read_text().replace("threshold_db: 6.0", "threshold_db: 7.0"))
    second = sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    assert second.created and second.version.number == 2
    assert second.version.digest != first.version.digest
    assert second.version.notebook_sha256 == first.version.notebook_sha256
    program = sf_registry.get(first.program.id)
    assert [v.number for v in program.versions] == [1, 2]
    assert program.version("1") == first.version
    assert program.version(first.version.digest[:6]) == first.version
    assert program.version(None) == program.version("latest") == second.version
    assert program.version("99") is None
    old = sf_registry.version_folder(program.id, first.version) / "specs"
    assert "threshold_db: 6.0" in (old / "bearing-fault-detector.yaml").read_text()


def test_another_team_cannot_add_versions(sf_registry: ProgramRegistry, sf_program: Path) -> None:
    sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    sf_program.write_text(sf_program.read_text().replace("confirm: 2", "confirm: 3"))
    with pytest.raises(ProgramError, match="belongs to team 'acme-machining', not 'voltronic'"):
        sf_registry.register([sf_program], team="voltronic", registered_by="vera")
    assert len(sf_registry.get("bearing-fault-detector").versions) == 1


def test_specs_of_two_notebooks_are_refused(sf_registry: ProgramRegistry, sf_program: Path) -> None:
    other = PROGRAMS / "tool_wear_regression.yaml"
    with pytest.raises(ProgramError, match=r"tool_wear_regression.yaml: program: .*one notebook"):
        sf_registry.register([sf_program, other], team="acme-machining", registered_by="ben")
    assert sf_registry.ids() == []


def test_an_invalid_spec_is_refused_with_its_line_and_nothing_is_written(
    sf_registry: ProgramRegistry, sf_program: Path
) -> None:
    sf_program.write_text(sf_program.read_text().replace("confirm: 2", "confirm: two"))
    line = next(n for n, row in enumerate(sf_program.read_text().splitlines(), 1) if "two" in row)
    with pytest.raises(RunSpecError) as err:
        sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    assert f"{sf_program}:{line}: parameters.confirm:" in str(err.value)
    assert not sf_registry.root.exists() or sf_registry.ids() == []


@pytest.mark.parametrize("bad", ["Bad_Id", "x", "-lead", "two--hyphens"])
def test_a_bad_program_id_is_refused(
    sf_registry: ProgramRegistry, sf_program: Path, bad: str
) -> None:
    with pytest.raises(ProgramError, match=f"bad program id '{bad}'"):
        sf_registry.register(
            [sf_program], team="acme-machining", registered_by="ben", program_id=bad
        )


def test_an_unknown_program_names_the_known_ones(
    sf_registry: ProgramRegistry, sf_program: Path
) -> None:
    with pytest.raises(ProgramError, match="unknown program 'nope'; known: none is registered"):
        sf_registry.get("nope")
    sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    with pytest.raises(ProgramError, match="unknown program 'nope'; known: bearing-fault-det"):
        sf_registry.get("nope")


def test_a_version_written_but_not_recorded_is_recorded_by_the_next_registration(
    sf_registry: ProgramRegistry, sf_program: Path
) -> None:
    """A crash between writing a version's folder and recording it loses nothing, and a
    half-written temporary folder is removed."""
    done = sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    record = sf_registry.root / done.program.id / "program.json"
    record.unlink()  # as if the crash came before program.json was written
    stale = sf_registry.root / done.program.id / "versions" / f".{done.version.digest}-crashed"
    stale.mkdir()
    again = sf_registry.register([sf_program], team="acme-machining", registered_by="ben")
    assert again.created and again.version.digest == done.version.digest
    assert not stale.exists()


def test_program_ids_come_from_notebook_names() -> None:
    assert program_id_of(Path("Bearing_Fault Detector.ipynb")) == "bearing-fault-detector"
    assert curated_programs(ROOT / "notebooks") == {
        "bearing-fault-detector": [PROGRAMS / "bearing_fault_detector.yaml"],
        "tool-wear-regression": [PROGRAMS / "tool_wear_regression.yaml"],
    }


# -- grants ------------------------------------------------------------------------------------


def _alliance_granting(tmp_path: Path, program: str) -> Path:
    text = DEMO_ALLIANCE.read_text().replace(
        "programs: [bearing-fault-detector]", f"programs: [{program}]"
    )
    path = tmp_path / "alliance.yaml"
    path.write_text(text)
    return path


def test_grants_name_library_or_registered_programs(tmp_path: Path, sf_program: Path) -> None:
    assert load_alliance(DEMO_ALLIANCE, grant_references()).team("voltronic") is not None
    path = _alliance_granting(tmp_path, "envelope-detector")
    with pytest.raises(AllianceError) as err:
        load_alliance(path, grant_references())
    assert (
        "teams[1].grants.programs[0]: unknown program 'envelope-detector'; known: "
        "bearing-fault-detector, tool-wear-regression"
    ) in str(err.value)
    state = tmp_path / "state"
    ProgramRegistry(state / "programs").register(
        [sf_program],
        team="acme-machining",
        registered_by="ben",
        program_id="envelope-detector",
    )
    assert load_alliance(path, grant_references(state)).team("voltronic") is not None


# -- commands ----------------------------------------------------------------------------------


def _smartfab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMARTFAB, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_register_list_and_show_commands(tmp_path: Path, sf_program: Path) -> None:
    state = ["--state-dir", tmp_path / "state"]
    done = _smartfab(
        "programs", "register", sf_program, "--team", "acme-machining",
        "--config", DEMO_ALLIANCE, *state,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bearing-fault-detector version 1 (")
    assert done.stdout.rstrip().endswith(
        "registered for team acme-machining: bearing-fault-detector"
    )
    listed = _smartfab("programs", "list", "--json", *state)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["team"], row["versions"]) == (
        "bearing-fault-detector",
        "acme-machining",
        1,
    )
    shown = _smartfab("programs", "show", "bearing-fault-detector", *state)
    assert shown.returncode == 0, shown.stderr
    assert "team: acme-machining" in shown.stdout and "version 1 (" in shown.stdout


def test_commands_refuse_an_unknown_team_or_program(tmp_path: Path, sf_program: Path) -> None:
    state = ["--state-dir", tmp_path / "state"]
    done = _smartfab(
        "programs", "register", sf_program, "--team", "acme",
        "--config", DEMO_ALLIANCE, *state,
    )  # fmt: skip
    assert done.returncode == 9
    assert f"--team: unknown team 'acme' in {DEMO_ALLIANCE}; teams: acme-machining" in done.stderr
    assert not (tmp_path / "state").exists()
    shown = _smartfab("programs", "show", "nope", *state)
    assert shown.returncode == 9 and "unknown program 'nope'" in shown.stderr


def test_two_specs_with_one_batch_name_are_refused(
    sf_registry: ProgramRegistry, sf_program: Path
) -> None:
    twin = sf_program.with_name("twin.yaml")
    twin.write_text(sf_program.read_text().replace("confirm: 2", "confirm: 3"))
    with pytest.raises(ProgramError, match="batch name 'bearing-fault-detector' is used by more"):
        sf_registry.register([sf_program, twin], team="acme-machining", registered_by="ben")
    assert sf_registry.ids() == []
    twin.write_text(twin.read_text().replace("name: bearing-fault-detector", "name: confirm-3"))
    done = sf_registry.register([sf_program, twin], team="acme-machining", registered_by="ben")
    assert list(done.version.specs) == ["bearing-fault-detector", "confirm-3"]
