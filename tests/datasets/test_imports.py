"""Importing a firm's own recording: CSV and netCDF in, a team-restricted dataset out, opened
by the team's catalog with its bytes and content checked; every bad input refused whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.io
import xarray as xr
import yaml

from smartfab.datasets.access import AccessPolicy
from smartfab.datasets.cards import Kind, load_card
from smartfab.datasets.catalog import Catalog, default_cards_dir
from smartfab.datasets.checksums import sha256_of
from smartfab.datasets.imports import import_recording
from smartfab.errors import (
    ChecksumError,
    ConfigFileError,
    DatasetAccessError,
    DatasetError,
    UnknownDatasetError,
)
from tests.support.hubtools import DEMO_ALLIANCE, SMARTFAB

#: real upstream copies (read only, never copied into the project): <project>/../shared/data/real
REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not REAL_DIR.is_dir(), reason=f"real upstream data directory {REAL_DIR} is absent"
)
TEAM = "acme-machining"
OTHER = "voltronic"
RATE = 1000.0
SECONDS = 2


def import_card(dataset_id: str = "spindle-run-7", **changes: Any) -> dict[str, Any]:
    """An import card for the CSV recording of :func:`sf_csv`."""
    data: dict[str, Any] = {
        "id": dataset_id,
        "title": "Spindle run 7 on the DMU 50",
        "description": "Spindle vibration and motor current during a warm-up programme.",
        "recording": {
            "machine": "DMU 50 eVo, serial 1234",
            "recorded_by": "ACME test lab",
            "recorded_at": "2026-03-02T09:30:00",
            "method": "two PCB 352C33 accelerometers and a current clamp on a NI 9234, CSV",
        },
        "sampling_rate_hz": RATE,
        "variables": {
            "vibration_x": {"units": "m s-2", "long_name": "spindle vibration X", "column": "ax"},
            "vibration_y": {"units": "m s-2", "long_name": "spindle vibration Y", "column": "ay"},
            "current": {"units": "A", "long_name": "motor current", "column": "I_motor"},
        },
    }
    data.update(changes)
    return data


@pytest.fixture
def sf_write_card(tmp_path: Path) -> Callable[..., Path]:
    """Write an import card (a dict, or YAML text) and return its path."""

    def write(data: dict[str, Any] | str, name: str = "card.yaml") -> Path:
        path = tmp_path / "cards-in" / name
        path.parent.mkdir(exist_ok=True)
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def sf_signals() -> dict[str, np.ndarray]:
    """Three channels at 1 kHz for 2 s."""
    rng = np.random.default_rng(7)
    n = int(RATE * SECONDS)
    t = np.arange(n) / RATE
    return {
        "ax": np.sin(2 * np.pi * 50 * t) + 0.1 * rng.standard_normal(n),
        "ay": np.cos(2 * np.pi * 50 * t) + 0.1 * rng.standard_normal(n),
        "I_motor": 12.0 + 0.5 * rng.standard_normal(n),
    }


@pytest.fixture
def sf_csv(tmp_path: Path, sf_signals: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "recordings" / "spindle run 7.csv"
    path.parent.mkdir()
    pd.DataFrame(sf_signals).to_csv(path, index=False)
    return path


@pytest.fixture
def sf_target(tmp_path: Path) -> Path:
    """The team's dataset folder in a hub state directory."""
    folder = tmp_path / "state" / "teams" / TEAM / ".datasets"
    folder.mkdir(parents=True)
    return folder


def team_catalog(target: Path, tmp_path: Path, teams: set[str] = frozenset({TEAM})) -> Catalog:
    """The catalog of a server of a member of ``teams`` whose shared folders include
    ``target``."""
    return Catalog(
        cards_dir=default_cards_dir(),
        data_dir=tmp_path / "own-cache",
        access=AccessPolicy(teams=frozenset(teams)),
        shared_dirs=[target],
    )


def contents(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


# -- a CSV and a netCDF recording, opened by the team ----------------------------------------------


def test_csv_import_opens_for_the_team(
    sf_csv: Path,
    sf_write_card: Callable[..., Path],
    sf_target: Path,
    sf_signals: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    card = import_recording(sf_csv, sf_write_card(import_card()), TEAM, sf_target)
    assert card.kind is Kind.imported and card.access == [TEAM]
    assert card.sampling[0].rate_hz == RATE
    assert card.provenance.recording is not None
    assert card.provenance.recording.file.sha256 == sha256_of(sf_csv)
    assert card.provenance.recording.file.name == "spindle_run_7.csv"
    assert card.fingerprint is not None
    written = sf_target / "cards" / "spindle-run-7.yaml"
    assert load_card(written) == card
    data = sf_target / "spindle-run-7" / "1.0.0" / "spindle-run-7.nc"
    for suffix in ("", ".sha256", ".manifest.json", ".fingerprint.json"):
        assert Path(f"{data}{suffix}").is_file(), suffix
    assert oct(data.stat().st_mode & 0o7777) == oct(0o640)
    assert not [p for p in sf_target.iterdir() if p.name.startswith(".import-")]

    catalog = team_catalog(sf_target, tmp_path)
    assert "spindle-run-7" in [c.id for c in catalog.available()]
    assert catalog.info("spindle-run-7").title == card.title
    ds = catalog.open("spindle-run-7")
    np.testing.assert_array_equal(ds["vibration_x"].values, sf_signals["ax"])
    np.testing.assert_array_equal(ds["current"].values, sf_signals["I_motor"])
    assert ds["vibration_y"].attrs["units"] == "m s-2"
    assert ds["current"].attrs["units"] == "A"
    np.testing.assert_allclose(ds["time"].values, np.arange(int(RATE * SECONDS)) / RATE)
    assert ds["time"].attrs["units"] == "s"
    assert ds.attrs["smartfab_sha256"] == sha256_of(data)
    assert ds.attrs["smartfab_fingerprint"] == card.fingerprint.digest()
    assert json.loads(ds.attrs["smartfab_parameters"])["sampling_rate_hz"] == RATE
    assert [r.status for r in catalog.verify(["spindle-run-7"])] == ["ok"]


def test_netcdf_import_with_date_time_stamps(
    tmp_path: Path, sf_write_card: Callable[..., Path], sf_target: Path
) -> None:
    n = 500
    stamps = pd.date_range("2026-03-02T10:00:00", periods=n, freq="10ms").to_numpy()
    rng = np.random.default_rng(3)
    source = xr.Dataset(
        {
            "TEMP_SPINDLE": ("t", 20 + rng.random(n), {"units": "degC"}),
            "load": ("t", rng.integers(0, 100, n).astype(np.int32), {"units": "percent"}),
        },
        coords={"t": ("t", stamps)},
    )
    path = tmp_path / "export.nc"
    source.to_netcdf(path, engine="h5netcdf")
    spec = import_card(
        "thermal-export",
        sampling_rate_hz=100,
        time={"column": "t"},
        variables={
            "spindle_temperature": {
                "units": "degC",
                "long_name": "spindle temperature",
                "column": "TEMP_SPINDLE",
            },
            "load": {"units": "%", "long_name": "spindle load"},
        },
    )
    card = import_recording(path, sf_write_card(spec), TEAM, sf_target)
    assert card.provenance.parameters["time_column"] == "t"
    ds = team_catalog(sf_target, tmp_path).open("thermal-export")
    np.testing.assert_array_equal(ds["spindle_temperature"].values, source["TEMP_SPINDLE"].values)
    assert ds["load"].dtype == np.int32
    np.testing.assert_allclose(ds["time"].values, np.arange(n) * 0.01, atol=1e-9)
    assert ds["time"].attrs["long_name"] == "time since 2026-03-02T10:00:00"


def test_csv_with_semicolons_decimal_commas_and_a_time_column(
    tmp_path: Path, sf_write_card: Callable[..., Path], sf_target: Path
) -> None:
    path = tmp_path / "controller.txt"
    path.write_text(
        "exported by the controller\nt_ms;spindle_speed\n0;1000,5\n2;1001,5\n4;1002,5\n"
    )
    spec = import_card(
        "controller-export",
        sampling_rate_hz=500,
        time={"column": "t_ms", "units": "ms"},
        csv={"separator": ";", "decimal": ",", "skip_rows": 1},
        variables={"spindle_speed": {"units": "min-1", "long_name": "spindle speed"}},
    )
    import_recording(path, sf_write_card(spec), TEAM, sf_target)
    ds = team_catalog(sf_target, tmp_path).open("controller-export")
    np.testing.assert_array_equal(ds["spindle_speed"].values, [1000.5, 1001.5, 1002.5])
    np.testing.assert_allclose(ds["time"].values, [0.0, 0.002, 0.004])


def test_a_tampered_byte_is_detected_on_open(
    sf_csv: Path, sf_write_card: Callable[..., Path], sf_target: Path, tmp_path: Path
) -> None:
    import_recording(sf_csv, sf_write_card(import_card()), TEAM, sf_target)
    data = sf_target / "spindle-run-7" / "1.0.0" / "spindle-run-7.nc"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="sha256 mismatch") as caught:
        team_catalog(sf_target, tmp_path).open("spindle-run-7")
    assert caught.value.path == str(data)


def test_other_teams_are_refused(
    sf_csv: Path, sf_write_card: Callable[..., Path], sf_target: Path, tmp_path: Path
) -> None:
    import_recording(sf_csv, sf_write_card(import_card()), TEAM, sf_target)
    # a member of another team whose catalog could read the folder: the card says no
    other = team_catalog(sf_target, tmp_path, {OTHER})
    assert "spindle-run-7" not in [c.id for c in other.available()]
    with pytest.raises(DatasetAccessError, match="restricted to the teams acme-machining"):
        other.open("spindle-run-7")
    # inside the hub another team's folder is not among their shared folders at all
    theirs = Catalog(
        cards_dir=default_cards_dir(),
        data_dir=tmp_path / "cache",
        access=AccessPolicy(teams=frozenset({OTHER})),
        shared_dirs=[tmp_path / "state" / "teams" / OTHER / ".datasets"],
    )
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'spindle-run-7'"):
        theirs.open("spindle-run-7")


def test_replace_swaps_an_earlier_import(
    sf_csv: Path, sf_write_card: Callable[..., Path], sf_target: Path, tmp_path: Path
) -> None:
    card_path = sf_write_card(import_card())
    first = import_recording(sf_csv, card_path, TEAM, sf_target)
    frame = pd.read_csv(sf_csv)
    frame["ax"] *= 2
    frame.to_csv(sf_csv, index=False)
    with pytest.raises(DatasetError, match="already has an imported dataset 'spindle-run-7'"):
        import_recording(sf_csv, card_path, TEAM, sf_target)
    second = import_recording(sf_csv, card_path, TEAM, sf_target, replace=True)
    assert second.fingerprint != first.fingerprint
    ds = team_catalog(sf_target, tmp_path).open("spindle-run-7")
    np.testing.assert_array_equal(ds["vibration_x"].values, frame["ax"].to_numpy())
    assert not [p for p in sf_target.iterdir() if p.name.startswith(".import-")]


# -- every bad input: a clear message, nothing written ---------------------------------------------


def _ncfile(tmp_path: Path, **variables: Any) -> Path:
    path = tmp_path / "bad.nc"
    xr.Dataset(variables).to_netcdf(path, engine="h5netcdf")
    return path


BAD_CARDS: list[tuple[dict[str, Any], str]] = [
    ({"sampling_rate_hz": 0}, "sampling_rate_hz: Input should be greater than 0 (got 0)"),
    ({"sampling_rate_hz": -5}, "sampling_rate_hz: Input should be greater than 0 (got -5)"),
    ({"colour": "red"}, "colour: unknown field"),
    ({"recording": {"machine": "DMU 50"}}, "recording.recorded_by: required field is missing"),
    (
        {"variables": {"x": {"units": "furlongz", "long_name": "x"}}},
        "variables.x.units: Value error, units UDUNITS does not know (got 'furlongz')",
    ),
    ({"variables": {"x": {"units": "m/s", "long_name": "x"}}}, "variables.x.units: String"),
    (
        {"variables": {"time": {"units": "s", "long_name": "t"}}},
        "variables: Value error, 'time' is the name of the time coordinate",
    ),
    ({"id": "Spindle Run"}, "id: String should match pattern"),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_CARDS)
def test_card_errors_name_file_line_and_field(
    changes: dict[str, Any],
    expected: str,
    sf_csv: Path,
    sf_write_card: Callable[..., Path],
    sf_target: Path,
) -> None:
    card_path = sf_write_card(import_card(**changes))
    with pytest.raises(ConfigFileError) as caught:
        import_recording(sf_csv, card_path, TEAM, sf_target)
    message = str(caught.value)
    assert f"{card_path}:" in message and expected in message, message
    assert contents(sf_target) == []


def test_data_errors_name_file_field_and_value(
    tmp_path: Path, sf_csv: Path, sf_write_card: Callable[..., Path], sf_target: Path
) -> None:
    card_path = sf_write_card(import_card())
    cases: list[tuple[Path, Path, str]] = []

    cases.append((tmp_path / "absent.csv", card_path, "absent.csv: no such file"))
    excel = tmp_path / "recording.xlsx"
    excel.write_bytes(b"PK\x03\x04")
    cases.append((excel, card_path, "unknown recording format '.xlsx'; accepted: .csv"))

    no_column = tmp_path / "no-column.csv"
    pd.read_csv(sf_csv).drop(columns="ay").to_csv(no_column, index=False)
    cases.append((no_column, card_path, "no column 'ay' (named by variables.vibration_y.column in"))

    text = tmp_path / "text.csv"
    frame = pd.read_csv(sf_csv)
    frame["I_motor"] = frame["I_motor"].astype(object)
    frame.loc[41, "I_motor"] = "overload"
    frame.to_csv(text, index=False)
    cases.append((text, card_path, "text.csv:43: column 'I_motor' (variables.current.column in"))

    timed = tmp_path / "timed.csv"
    stamped = pd.read_csv(sf_csv)
    stamped.insert(0, "t", np.arange(len(stamped)) / 500.0)  # 500 Hz, the card says 1000
    stamped.to_csv(timed, index=False)
    timed_card = sf_write_card(import_card(time={"column": "t"}), "timed.yaml")
    cases.append((timed, timed_card, "sampling_rate_hz: 1000 Hz, but the time column 't' of"))

    backwards = tmp_path / "backwards.csv"
    stamped["t"] = stamped["t"][::-1].to_numpy() / 2
    stamped.to_csv(backwards, index=False)
    cases.append((backwards, timed_card, "is not strictly increasing at sample 1"))

    curated = sf_write_card(import_card("cwru-bearing"), "curated.yaml")
    cases.append((sf_csv, curated, "id: 'cwru-bearing' is a curated dataset of the alliance"))

    nc_card = sf_write_card(
        import_card(variables={"current": {"units": "A", "long_name": "motor current"}}),
        "nc.yaml",
    )
    units = _ncfile(tmp_path, current=("t", np.ones(4), {"units": "mA"}))
    cases.append((units, nc_card, "is in 'mA' in the file, but the card"))
    wide = tmp_path / "wide.nc"
    xr.Dataset({"current": (("t", "c"), np.ones((4, 2)))}).to_netcdf(wide, engine="h5netcdf")
    cases.append((wide, nc_card, "has dimensions ('t', 'c'); import one-dimensional"))
    words = tmp_path / "words.nc"
    xr.Dataset({"current": ("t", np.array(["a", "b"]))}).to_netcdf(words, engine="h5netcdf")
    cases.append((words, nc_card, "variable 'current' (variables.current in"))
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"not a netCDF file at all")
    cases.append((garbage, nc_card, "garbage.nc: not a readable netCDF file"))

    for source, card, expected in cases:
        with pytest.raises(DatasetError) as caught:
            import_recording(source, card, TEAM, sf_target)
        assert expected in str(caught.value), (source.name, str(caught.value))
        assert contents(sf_target) == [], source.name


def test_a_failure_while_writing_leaves_nothing(
    sf_csv: Path,
    sf_write_card: Callable[..., Path],
    sf_target: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import smartfab.datasets.imports as imports

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(imports, "write_sha256_record", broken)
    with pytest.raises(OSError, match="disk full"):
        import_recording(sf_csv, sf_write_card(import_card()), TEAM, sf_target)
    assert contents(sf_target) == []


# -- the command ----------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SMARTFAB, "datasets", *args], capture_output=True, text=True, env=env)


@pytest.fixture
def sf_member_env(tmp_path: Path, sf_target: Path) -> dict[str, str]:
    """The environment of a member's server: their teams, their home with its team links."""
    home = tmp_path / "home"
    (home / "teams").mkdir(parents=True)
    (home / "teams" / TEAM).symlink_to(sf_target.parent, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTFAB_")}
    return {
        **env,
        "HOME": str(home),
        "JUPYTERHUB_USER": "anna",
        "SMARTFAB_TEAMS": TEAM,
        "SMARTFAB_SHARED_DATA": str(sf_target),
        "SMARTFAB_DATA_DIR": str(tmp_path / "cache"),
    }


def test_command_in_a_members_server(
    sf_csv: Path,
    sf_write_card: Callable[..., Path],
    sf_member_env: dict[str, str],
    sf_target: Path,
    sf_signals: dict[str, np.ndarray],
) -> None:
    card = sf_write_card(import_card())
    done = _cli("import", str(sf_csv), "--team", TEAM, "--card", str(card), env=sf_member_env)
    assert done.returncode == 0, done.stderr
    assert "spindle-run-7: imported for team acme-machining" in done.stdout
    assert (sf_target / "cards" / "spindle-run-7.yaml").is_file()
    listed = _cli("list", "--json", env=sf_member_env)
    assert listed.returncode == 0, listed.stderr
    assert {"id": "spindle-run-7", "kind": "imported"}.items() <= {
        entry["id"]: entry for entry in json.loads(listed.stdout)
    }["spindle-run-7"].items()
    code = (
        "import smartfab.datasets as sd; ds = sd.open('spindle-run-7'); "
        "print(float(ds.vibration_x[10]), ds.current.attrs['units'], ds.sizes['time'])"
    )
    opened = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=sf_member_env
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.split() == [repr(float(sf_signals["ax"][10])), "A", "2000"]

    again = _cli("import", str(sf_csv), "--team", TEAM, "--card", str(card), env=sf_member_env)
    assert again.returncode == 5 and "--replace" in again.stderr
    foreign = _cli("import", str(sf_csv), "--team", OTHER, "--card", str(card), env=sf_member_env)
    assert foreign.returncode == 5
    assert "--team: 'voltronic' is not one of your teams (acme-machining" in foreign.stderr


def test_command_as_the_operator(
    tmp_path: Path, sf_csv: Path, sf_write_card: Callable[..., Path], sf_target: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTFAB_")}
    env.pop("JUPYTERHUB_USER", None)
    team_folder = sf_target.parent
    owner = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(team_folder, *owner)
    card = sf_write_card(import_card())
    state = ["--state-dir", str(tmp_path / "state"), "--config", str(DEMO_ALLIANCE)]
    done = _cli("import", str(sf_csv), "--team", TEAM, "--card", str(card), *state, env=env)
    assert done.returncode == 0, done.stderr
    for path in [sf_target / "cards", *sf_target.glob("spindle-run-7/**/*")]:
        info = path.stat()
        assert (info.st_uid, info.st_gid) == owner, path
        if path.is_dir():
            assert info.st_mode & 0o7777 == 0o2770, path

    unknown = _cli("import", str(sf_csv), "--team", "nobody", "--card", str(card), *state, env=env)
    assert unknown.returncode == 5
    assert f"--team: unknown team 'nobody' in {DEMO_ALLIANCE}; teams: acme-machining" in (
        unknown.stderr
    )
    bad = sf_write_card(import_card("second", sampling_rate_hz=0), "bad.yaml")
    refused = _cli("import", str(sf_csv), "--team", TEAM, "--card", str(bad), *state, env=env)
    assert refused.returncode == 2 and f"{bad}:" in refused.stderr
    assert "sampling_rate_hz" in refused.stderr
    assert not (sf_target / "second").exists()


# -- a real recording ------------------------------------------------------------------------------


@needs_real
def test_a_slice_of_a_real_cwru_recording(
    tmp_path: Path, sf_write_card: Callable[..., Path], sf_target: Path
) -> None:
    """Two seconds of drive-end and fan-end vibration of CWRU record 105 (12 kHz), exported to
    CSV as a data logger would, imported and read back."""
    raw = scipy.io.loadmat(REAL_DIR / "cwru" / "105.mat")
    n = 24000
    g = 9.80665
    frame = pd.DataFrame(
        {
            "DE accel": raw["X105_DE_time"].ravel()[:n] * g,
            "FE accel": raw["X105_FE_time"].ravel()[:n] * g,
        }
    )
    source = tmp_path / "cwru-105.csv"
    frame.to_csv(source, index=False)
    spec = import_card(
        "cwru-105-slice",
        sampling_rate_hz=12000,
        variables={
            "drive_end": {"units": "m s-2", "long_name": "drive-end", "column": "DE accel"},
            "fan_end": {"units": "m s-2", "long_name": "fan-end", "column": "FE accel"},
        },
    )
    card = import_recording(source, sf_write_card(spec), TEAM, sf_target)
    ds = team_catalog(sf_target, tmp_path).open(card.id)
    np.testing.assert_allclose(ds["drive_end"].values, frame["DE accel"].to_numpy(), rtol=1e-15)
    assert ds.sizes["time"] == n
    assert float(ds["time"][-1]) == pytest.approx((n - 1) / 12000)
