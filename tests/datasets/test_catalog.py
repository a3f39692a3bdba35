"""The dataset catalog: cards, builds, checksums, access, API and CLI, on tiny test builders."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml
from pydantic import Field

from smartfab.datasets.access import AccessPolicy
from smartfab.datasets.cards import load_card, load_cards
from smartfab.datasets.catalog import TIME_CHUNK, Catalog, write_netcdf
from smartfab.datasets.checksums import sha256_of
from smartfab.datasets.conventions import finish, parameters_of
from smartfab.datasets.fingerprint import differences, fingerprint_of
from smartfab.datasets.manifest import build_manifest
from smartfab.datasets.registry import Generator, Loader, Params, Registry
from smartfab.errors import (
    ChecksumError,
    ConfigFileError,
    ContentMismatchError,
    DatasetAccessError,
    DatasetError,
    ParameterError,
    UnknownDatasetError,
)
from tests.support.hubtools import DEMO_ALLIANCE, SMARTFAB


class ToneParams(Params):
    frequency: float = Field(default=50.0, gt=0)
    samples: int = Field(default=200_000, ge=16)


def _tone(params: ToneParams, seed: int) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    time = np.arange(params.samples) / 10_000.0
    signal = np.sin(2 * np.pi * params.frequency * time) + 0.1 * rng.standard_normal(time.size)
    ds = xr.Dataset(
        {"signal": ("time", signal, {"units": "m s-2", "long_name": "acceleration"})},
        coords={"time": ("time", time, {"units": "s", "long_name": "time"})},
    )
    return finish(
        ds,
        title="tone",
        summary="a noisy tone",
        source="test generator tone",
        parameters={**params.model_dump(), "seed": seed},
        license="CC-BY-4.0",
    )


TONE = Generator(name="tone", params=ToneParams, build=_tone)


class TextParams(Params):
    verify: bool = True


def _read_text(path: Path, params: TextParams) -> xr.Dataset:
    values = np.loadtxt(path / "values.txt")
    ds = xr.Dataset({"value": ("row", values, {"units": "1", "long_name": "value"})})
    return finish(
        ds,
        title="text",
        summary="numbers",
        source="test upstream",
        parameters=params.model_dump(),
        license="CC0-1.0",
    )


TEXT = Loader(name="text", params=TextParams, read=_read_text, files=("values.txt",))


def card(dataset_id: str, **changes: Any) -> dict[str, Any]:
    """A valid synthetic card for the tone generator, with ``changes`` applied."""
    data: dict[str, Any] = {
        "id": dataset_id,
        "version": "1.0.0",
        "title": "Tone",
        "summary": "A noisy tone for tests.",
        "kind": "synthetic",
        "license": "CC-BY-4.0",
        "citation": "smartfab tests",
        "provenance": {"generator": "tone", "parameters": {"frequency": 50.0}, "seed": 3},
        "variables": {"signal": {"units": "m s-2", "long_name": "acceleration"}},
        "sampling": [{"variables": ["signal"], "rate_hz": 10000}],
        "ground_truth": "The tone's frequency.",
        "tasks": [{"name": "frequency estimation", "metrics": ["absolute error"]}],
        "caveats": ["Not a machine."],
        "access": "public",
    }
    data.update(changes)
    return data


@pytest.fixture
def sf_cards(tmp_path: Path) -> Callable[..., Path]:
    folder = tmp_path / "cards"
    folder.mkdir()

    def write(data: dict[str, Any], name: str | None = None) -> Path:
        path = folder / (name or f"{data['id']}.yaml")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return folder

    return write


@pytest.fixture
def sf_catalog(tmp_path: Path, sf_cards: Callable[..., Path]) -> Catalog:
    sf_cards(card("tone"))
    sf_cards(card("tone-restricted", access=["acme-machining"]))
    sf_cards(
        card(
            "text-upstream",
            kind="external",
            license="CC0-1.0",
            provenance={"loader": "text", "upstream": {"source": "a test upstream"}},
            variables={"value": {"units": "1", "long_name": "value"}},
            sampling=[],
        )
    )
    return Catalog(
        cards_dir=tmp_path / "cards",
        data_dir=tmp_path / "data",
        access=AccessPolicy(),
        registry=Registry.of([TONE], [TEXT]),
        dask_min_bytes=0,  # tiny test files behave as large ones: dask, segment checks
    )


# -- cards ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        (
            {"kind": "simulated"},
            "kind",
            "Input should be 'synthetic', 'sample', 'external' or 'imported'",
        ),
        ({"license": "CC BY 4.0"}, "license", "should match pattern"),
        ({"version": "1.0"}, "version", "should match pattern"),
        (
            {"variables": {"signal": {"units": "m/s^2", "long_name": "a"}}},
            "variables.signal.units",
            "",
        ),
        ({"variables": {"signal": {"long_name": "a"}}}, "variables.signal.units", "required field"),
        ({"tasks": []}, "tasks", "at least 1 item"),
        ({"extra_field": 1}, "extra_field", "unknown field"),
        ({"files": [{"name": "x.nc", "size": 1, "sha256": "abc"}]}, "files[0].sha256", "pattern"),
        (
            {"files": [{"name": "x.nc", "size": 1, "sha256": "0" * 64}]},
            "(card)",
            "a synthetic build is pinned by its content: smartfab datasets pin broken --write",
        ),
        ({"fingerprint": {"format": "other/1"}}, "fingerprint.format", "smartfab-fingerprint/1"),
        ({"provenance": {"generator": "tone"}}, "provenance", "needs a seed"),
        ({"kind": "external"}, "(card)", "names its loader"),
        (
            {"sampling": [{"variables": ["nope"], "rate_hz": 1}]},
            "(card)",
            "unknown variables: nope",
        ),
    ],
)
def test_bad_cards_name_file_field_and_problem(
    sf_cards: Callable[..., Path], changes: dict[str, Any], path: str, message: str
) -> None:
    folder = sf_cards(card("broken", **changes))
    with pytest.raises(ConfigFileError) as caught:
        load_card(folder / "broken.yaml")
    text = str(caught.value)
    assert str(folder / "broken.yaml") in text
    if path != "(card)":
        assert f" {path}:" in text, text
    assert message in text, text


def test_card_file_must_be_named_after_its_id(sf_cards: Callable[..., Path]) -> None:
    folder = sf_cards(card("tone"), name="other.yaml")
    with pytest.raises(ConfigFileError, match=r"must be named tone\.yaml"):
        load_card(folder / "other.yaml")


def test_all_bad_cards_are_reported_together(sf_cards: Callable[..., Path]) -> None:
    sf_cards(card("one", kind="bad"))
    folder = sf_cards(card("two", version="x"))
    with pytest.raises(ConfigFileError) as caught:
        load_cards(folder)
    text = str(caught.value)
    assert "one.yaml" in text and "two.yaml" in text and "2 problems" in text


# -- build and open -------------------------------------------------------------------------------


def test_open_builds_once_and_is_lazy_and_chunked_along_time(sf_catalog: Catalog) -> None:
    ds = sf_catalog.open("tone")
    assert ds["signal"].chunks is not None
    # 10 kHz: chunks of whole seconds, the largest multiple of 10000 within TIME_CHUNK
    assert max(ds["signal"].chunks[0]) == TIME_CHUNK // 10_000 * 10_000
    expected = TONE(seed=3, frequency=50.0)
    xr.testing.assert_allclose(ds["signal"].load(), expected["signal"])
    assert parameters_of(ds) == {"frequency": 50.0, "samples": 200_000, "seed": 3}
    path = sf_catalog.build_path(sf_catalog.card("tone"))
    mtime = path.stat().st_mtime_ns
    sf_catalog.open("tone")
    assert path.stat().st_mtime_ns == mtime  # cached, not rebuilt


def test_builds_are_byte_reproducible_on_one_machine(sf_catalog: Catalog, tmp_path: Path) -> None:
    """Deterministic for the seed: with the same libraries on the same CPU, the same bytes
    (across machines the content fingerprint is what must match, see test_fingerprint.py)."""
    first = sf_catalog.build("tone")
    digest = sha256_of(first)
    again = Catalog(
        cards_dir=sf_catalog.cards_dir,
        data_dir=tmp_path / "elsewhere",
        access=AccessPolicy(),
        registry=sf_catalog.registry,
    ).build("tone")
    assert sha256_of(again) == digest


def test_pinned_fingerprint_is_enforced_on_build(
    sf_cards: Callable[..., Path], sf_catalog: Catalog, tmp_path: Path
) -> None:
    """A default build whose content is not the card's fingerprint is refused and discarded."""
    good = fingerprint_of(TONE(seed=3, frequency=50.0)).model_dump(mode="json")
    other = fingerprint_of(TONE(seed=4, frequency=50.0)).model_dump(mode="json")
    sf_cards(card("pinned", fingerprint=good))
    sf_cards(card("wrong-pin", fingerprint=other))
    catalog = Catalog(
        cards_dir=sf_catalog.cards_dir,
        data_dir=tmp_path / "fresh",
        access=AccessPolicy(),
        registry=sf_catalog.registry,
    )
    ds = catalog.open("pinned")
    assert ds["signal"].size == 200_000
    assert ds.attrs["smartfab_fingerprint"] == catalog.card("pinned").fingerprint.digest()  # type: ignore[union-attr]
    with pytest.raises(ContentMismatchError) as caught:
        catalog.build("wrong-pin")
    assert caught.value.dataset_id == "wrong-pin"
    assert any(line.startswith("signal: mean: expected ") for line in caught.value.differences)
    path = catalog.build_path(catalog.card("wrong-pin"))
    assert not path.exists() and not path.with_name(path.name + ".sha256").exists()


def test_corrupted_file_is_caught_and_never_replaced(sf_catalog: Catalog) -> None:
    """A flipped byte in the signal: reading it fails, naming the file, the byte range and both
    hashes of that segment; the file is left as found and ``verify`` reports it."""
    path = sf_catalog.build("tone")
    middle = path.stat().st_size // 2
    segment = next(
        s for s in build_manifest(path).segments if s.offset <= middle < s.offset + s.length
    )
    assert segment.variable == "signal"
    with path.open("r+b") as handle:
        handle.seek(middle)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    corrupted = sha256_of(path)
    with path.open("rb") as handle:
        handle.seek(segment.offset)
        actual = hashlib.sha256(handle.read(segment.length)).hexdigest()
    with pytest.raises(ChecksumError) as caught:
        sf_catalog.open("tone")["signal"].load()
    message = str(caught.value)
    assert str(path) in message and segment.sha256 in message and actual in message
    assert f"bytes {segment.offset}-{segment.offset + segment.length - 1}" in message
    assert sha256_of(path) == corrupted  # left as found, for the operator to inspect
    results = sf_catalog.verify(["tone"])
    assert [r.status for r in results] == ["mismatch"]


def test_parameter_variants_are_built_and_recorded(sf_catalog: Catalog) -> None:
    ds = sf_catalog.open("tone", frequency=120.0, samples=50_000)
    assert ds["signal"].size == 50_000
    assert parameters_of(ds)["frequency"] == 120.0
    variant = sf_catalog.build_path(
        sf_catalog.card("tone"), {"frequency": 120.0, "samples": 50_000}
    )
    for suffix in (".sha256", ".manifest.json", ".fingerprint.json"):
        assert variant.with_name(variant.name + suffix).exists(), suffix
    assert (
        ds.attrs["smartfab_fingerprint"]
        == fingerprint_of(TONE(seed=3, frequency=120.0, samples=50_000)).digest()
    )
    with pytest.raises(ParameterError, match="frequency"):
        sf_catalog.open("tone", frequency=-1.0)
    with pytest.raises(ParameterError, match="color"):
        sf_catalog.open("tone", color="red")


def test_external_dataset_is_built_from_a_local_copy(sf_catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="build text-upstream --source PATH"):
        sf_catalog.open("text-upstream")
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "values.txt").write_text("1\n2\n3\n")
    sf_catalog.build("text-upstream", source=upstream)
    assert sf_catalog.open("text-upstream")["value"].values.tolist() == [1.0, 2.0, 3.0]


def test_shipped_sample_is_verified(sf_cards: Callable[..., Path], tmp_path: Path) -> None:
    samples = tmp_path / "cards" / "samples"
    samples.mkdir(parents=True)
    sample = samples / "tone-sample.nc"
    write_netcdf(TONE(seed=1, samples=1000), sample)
    entry = {"name": "tone-sample.nc", "size": sample.stat().st_size, "sha256": sha256_of(sample)}
    sf_cards(card("tone-sample", kind="sample", files=[entry]))
    catalog = Catalog(
        cards_dir=tmp_path / "cards",
        data_dir=tmp_path / "data",
        access=AccessPolicy(),
        registry=Registry.of([TONE]),
    )
    assert catalog.open("tone-sample")["signal"].size == 1000
    data = bytearray(sample.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sample.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        catalog.open("tone-sample")


def test_unknown_dataset_names_the_known_ones(sf_catalog: Catalog) -> None:
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset 'nope'; known: .*tone"):
        sf_catalog.open("nope")


def test_verify_reports_each_state(sf_catalog: Catalog) -> None:
    assert [r.status for r in sf_catalog.verify(["tone"])] == ["missing"]
    sf_catalog.build("tone")
    sf_catalog.build("tone", frequency=70.0)
    statuses = sorted(r.status for r in sf_catalog.verify(["tone"]))
    assert statuses == ["ok", "ok"]


def test_verify_reports_a_build_whose_content_is_not_the_cards(
    sf_cards: Callable[..., Path], sf_catalog: Catalog
) -> None:
    """Intact bytes, other content: a card pinned anew while an older build stays cached."""
    sf_catalog.build("tone")
    other = fingerprint_of(TONE(seed=9, frequency=50.0)).model_dump(mode="json")
    sf_cards(card("tone", fingerprint=other))
    catalog = Catalog(
        cards_dir=sf_catalog.cards_dir,
        data_dir=sf_catalog.data_dir,
        access=AccessPolicy(),
        registry=sf_catalog.registry,
    )
    [result] = catalog.verify(["tone"])
    assert result.status == "mismatch"
    assert "signal: mean: expected" in str(result.actual)
    with pytest.raises(ContentMismatchError, match="rebuild it: smartfab datasets build tone"):
        catalog.open("tone")


# -- access ---------------------------------------------------------------------------------------


def test_restricted_datasets_only_for_their_teams(sf_catalog: Catalog) -> None:
    outsider = Catalog(
        cards_dir=sf_catalog.cards_dir,
        data_dir=sf_catalog.data_dir,
        access=AccessPolicy(teams=frozenset({"voltronic"})),
        registry=sf_catalog.registry,
    )
    assert "tone-restricted" not in [c.id for c in outsider.available()]
    for action in (outsider.info, outsider.open, outsider.build):
        with pytest.raises(DatasetAccessError, match="restricted to the teams acme-machining"):
            action("tone-restricted")
    for policy in (
        AccessPolicy(teams=frozenset({"acme-machining"})),
        AccessPolicy(grants=frozenset({"tone-restricted"})),
        AccessPolicy(operator=True),
    ):
        member = Catalog(
            cards_dir=sf_catalog.cards_dir,
            data_dir=sf_catalog.data_dir,
            access=policy,
            registry=sf_catalog.registry,
        )
        assert "tone-restricted" in [c.id for c in member.available()]
        assert member.open("tone-restricted")["signal"].size == 200_000


def test_policy_from_the_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "ben")
    monkeypatch.setenv("SMARTFAB_TEAMS", "acme-machining, spindle-health")
    monkeypatch.setenv("SMARTFAB_DATASET_GRANTS", "cwru-bearing")
    policy = AccessPolicy.from_environment()
    assert policy.teams == {"acme-machining", "spindle-health"}
    assert policy.grants == {"cwru-bearing"}
    assert not policy.operator  # even when the server runs as root
    monkeypatch.delenv("JUPYTERHUB_USER")
    monkeypatch.delenv("SMARTFAB_TEAMS")
    assert AccessPolicy.from_environment().teams == frozenset()


# -- CLI ------------------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SMARTFAB, "datasets", *args], capture_output=True, text=True, env=env)


@pytest.fixture
def sf_cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import os

    return {**os.environ, "SMARTFAB_DATA_DIR": str(tmp_path / "cli-data")}


def test_cli_errors_are_clear(sf_cli_env: dict[str, str], tmp_path: Path) -> None:
    done = _cli("info", "no-such-dataset", env=sf_cli_env)
    assert done.returncode == 5 and "unknown dataset 'no-such-dataset'" in done.stderr
    empty = tmp_path / "no-cards"
    empty.mkdir()
    bad = empty / "bad.yaml"
    bad.write_text("id: bad\nkind: nope\n")
    done = _cli("list", "--cards-dir", str(empty), env=sf_cli_env)
    assert done.returncode == 2 and f"{bad}:" in done.stderr
    done = _cli("build", "x", "--param", "novalue", "--cards-dir", str(empty), env=sf_cli_env)
    assert done.returncode == 2 and "NAME=VALUE" in done.stderr


def test_cli_list_and_info_json(sf_cli_env: dict[str, str]) -> None:
    """The curated cards list as JSON (needs the generators' entry points)."""
    done = _cli("list", "--json", env=sf_cli_env)
    assert done.returncode == 0, done.stderr
    listed = {entry["id"]: entry for entry in json.loads(done.stdout)}
    assert listed, "no curated cards found"
    first = next(iter(listed))
    info = _cli("info", first, "--json", env=sf_cli_env)
    assert info.returncode == 0 and json.loads(info.stdout)["id"] == first


# -- the curated cards ----------------------------------------------------------------------------


def _curated() -> list[str]:
    from smartfab.datasets.catalog import default_cards_dir

    return sorted(load_cards(default_cards_dir()))


@pytest.mark.parametrize("dataset_id", _curated())
def test_curated_card_matches_what_it_describes(dataset_id: str, tmp_path: Path) -> None:
    """Every curated card validates; a synthetic one reproduces its pinned file, and its
    variables, units and sampling rates are those of the data."""
    from smartfab.alliance import load_alliance
    from smartfab.datasets.cards import Kind
    from smartfab.datasets.catalog import default_cards_dir

    catalog = Catalog(
        cards_dir=default_cards_dir(), data_dir=tmp_path, access=AccessPolicy(operator=True)
    )
    card = catalog.card(dataset_id)
    teams = {t.id for t in load_alliance(DEMO_ALLIANCE).teams}
    assert set(card.teams) <= teams
    if card.kind is Kind.sample:
        ds = catalog.open(dataset_id)  # the shipped file, checked against the card
        assert ds.attrs["smartfab_sha256"] == card.files[0].sha256
        assert card.fingerprint is not None, f"{dataset_id}: smartfab datasets pin {dataset_id}"
        assert ds.attrs["smartfab_fingerprint"] == card.fingerprint.digest()
        assert differences(card.fingerprint, fingerprint_of(ds, like=card.fingerprint)) == []
        assert set(card.variables) == {str(name) for name in ds.data_vars}
        return
    if card.kind is not Kind.synthetic:
        return
    assert card.fingerprint, f"{dataset_id}: pin it: smartfab datasets pin {dataset_id} --write"
    ds = catalog.open(dataset_id)  # builds, and refuses a build whose content is not the pin
    assert ds.attrs["smartfab_fingerprint"] == card.fingerprint.digest()
    assert set(card.fingerprint.variables) == {str(name) for name in ds.variables}
    described = {name: (v.units, v.long_name) for name, v in card.variables.items()}
    actual = {
        str(name): (var.attrs["units"], var.attrs["long_name"])
        for name, var in ds.data_vars.items()
    }
    assert described == actual
    for rate in card.sampling:
        for name in rate.variables:
            step = float(ds[name]["time"][1] - ds[name]["time"][0])
            assert step == pytest.approx(1 / rate.rate_hz, rel=1e-9), name


REAL_DATA = DEMO_ALLIANCE.parents[2] / "shared" / "data" / "real"


def _upstream_copy(dataset_id: str, folder: Path) -> tuple[Path, dict[str, Any]]:
    """A local copy for an external card: the real files when present, else format-exact ones."""
    from tests.datasets import test_loader_nasa_milling, test_loader_secom

    if dataset_id == "nasa-milling":
        test_loader_nasa_milling.write_mill(folder / "mill.mat")
        return folder, {}
    if dataset_id == "secom":
        test_loader_secom.write_secom(folder, test_loader_secom.feature_matrix(4))
        return folder, {"verify": False}  # our bytes are not the upstream labels file
    real = REAL_DATA / {"cwru-bearing": "cwru", "cmapss": "cmapss"}[dataset_id]
    if not real.is_dir():
        pytest.skip(f"{real} (real upstream copies beside the project) is not present")
    return real, {}


@pytest.mark.parametrize("dataset_id", ["cwru-bearing", "cmapss", "nasa-milling", "secom"])
def test_external_card_matches_its_loader(dataset_id: str, tmp_path: Path) -> None:
    """The variables of an external card are those its loader produces from upstream files."""
    from smartfab.datasets.catalog import default_cards_dir

    catalog = Catalog(
        cards_dir=default_cards_dir(), data_dir=tmp_path / "data", access=AccessPolicy()
    )
    card = catalog.card(dataset_id)
    source, parameters = _upstream_copy(dataset_id, tmp_path)
    catalog.build(dataset_id, source=source, **parameters)
    ds = catalog.open(dataset_id, **parameters)
    described = {name: (v.units, v.long_name) for name, v in card.variables.items()}
    # CF time units move to .encoding when xarray decodes them to datetime64
    actual = {
        str(name): (var.attrs.get("units", var.encoding.get("units")), var.attrs["long_name"])
        for name, var in ds.data_vars.items()
    }
    assert described == actual
    upstream = card.provenance.upstream
    known = {f.name: f.sha256 for f in upstream.files} if upstream else {}
    recorded = json.loads(ds.attrs["smartfab_parameters"]).get("files", {})
    for name, digest in recorded.items():
        if name in known and parameters.get("verify", True):
            assert digest == known[name], name


def test_every_card_unit_is_udunits() -> None:
    """Units in the curated cards are parsed by UDUNITS-2 (through cf-units), not just patterns."""
    import cf_units

    from smartfab.datasets.catalog import default_cards_dir

    cards = load_cards(default_cards_dir())
    bad = []
    for card in cards.values():
        for name, variable in card.variables.items():
            try:
                cf_units.Unit(variable.units)
            except ValueError:
                bad.append(f"{card.id}.{name}: {variable.units!r}")
    assert not bad


def test_changed_policy_rehashes_only_changed_files(
    sf_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify_policy="changed": unchanged files are not hashed again in this process, but any
    write to the file (even one keeping size and mtime) is caught on the next open."""
    import os

    from smartfab.datasets import checksums

    catalog = Catalog(
        cards_dir=sf_catalog.cards_dir,
        data_dir=sf_catalog.data_dir,
        access=AccessPolicy(),
        registry=sf_catalog.registry,
        verify_policy="changed",
    )
    path = catalog.build("tone")
    calls: list[Path] = []
    real = checksums.sha256_of

    def counting(target: Path | str) -> str:
        calls.append(Path(target))
        return real(target)

    monkeypatch.setattr(checksums, "sha256_of", counting)
    catalog.open("tone")
    catalog.open("tone")
    assert calls == [path]  # hashed once
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # hide the write's mtime
    with pytest.raises(ChecksumError):
        catalog.open("tone")  # ctime changed: hashed again, and the damage is found


def test_verify_policy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from smartfab.datasets.catalog import default_verify_policy

    assert default_verify_policy() == "always"
    monkeypatch.setenv("SMARTFAB_VERIFY", "changed")
    assert default_verify_policy() == "changed"
    monkeypatch.setenv("SMARTFAB_VERIFY", "sometimes")
    with pytest.raises(DatasetError, match="SMARTFAB_VERIFY='sometimes'"):
        default_verify_policy()


def test_public_api_names_survive_submodule_imports() -> None:
    """``import smartfab.datasets.<module>`` must not shadow the public functions."""
    import smartfab.datasets as sd
    from smartfab.datasets import access, api, cards, catalog, checksums, registry  # noqa: F401

    assert callable(sd.open) and callable(sd.list) and callable(sd.info)
    assert isinstance(sd.default_catalog(), Catalog)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(1 / 12000, 60000), (1 / 10240, 61440), (1.0, 65536), (10.0, TIME_CHUNK), (1 / 3e5, 300000)],
)
def test_time_chunks_hold_whole_seconds(step: float, expected: int) -> None:
    from smartfab.datasets.catalog import time_chunk

    time = np.arange(4) * step
    ds = xr.Dataset(coords={"time": time})
    assert time_chunk(ds) == expected


def test_verify_reports_a_damaged_segment_manifest(sf_catalog: Catalog) -> None:
    """The data file is intact but its manifest lies about one segment: verify names the
    manifest, and opening refuses to use the segment instead of returning wrong data."""
    from smartfab.datasets.manifest import manifest_path

    path = sf_catalog.build("tone", frequency=70.0)
    source = manifest_path(path)
    document = json.loads(source.read_text())
    document["segments"][1][2] = "f" * 64
    source.write_text(json.dumps(document))
    [result] = [r for r in sf_catalog.verify(["tone"]) if r.status != "missing"]
    assert result.status == "mismatch" and result.path == str(source)
    with pytest.raises(ChecksumError, match="f" * 64):
        sf_catalog.open("tone", frequency=70.0).load()


def test_pin_writes_the_fingerprint_and_keeps_the_rest_of_the_card(
    sf_cli_env: dict[str, str], tmp_path: Path
) -> None:
    """``smartfab datasets pin ID --write`` on a copy of a curated card without its fingerprint
    pins the same content, leaving the curator's text as it was."""
    from smartfab.datasets.cards import load_card
    from smartfab.datasets.pinning import replace_blocks

    curated = Path(__file__).resolve().parents[2] / "datasets" / "spindle-thermal.yaml"
    cards = tmp_path / "pin-cards"
    cards.mkdir()
    text = replace_blocks(curated.read_text(), {})
    (cards / "spindle-thermal.yaml").write_text(text)
    shown = _cli("pin", "spindle-thermal", "--cards-dir", str(cards), env=sf_cli_env)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["fingerprint"]["format"] == "smartfab-fingerprint/1"
    assert (cards / "spindle-thermal.yaml").read_text() == text  # printed, not written
    done = _cli("pin", "spindle-thermal", "--write", "--cards-dir", str(cards), env=sf_cli_env)
    assert done.returncode == 0, done.stderr
    pinned = (cards / "spindle-thermal.yaml").read_text()
    assert pinned.startswith(text)
    # the same content as the curated pin, within the fingerprint's tolerances (this machine's
    # CPU may round the last bits of a float otherwise than the one that pinned the card)
    pinned_here = load_card(cards / "spindle-thermal.yaml").fingerprint
    curated_pin = load_card(curated).fingerprint
    assert pinned_here is not None and curated_pin is not None
    assert differences(curated_pin, pinned_here) == []
    missing = _cli("pin", "no-such", "--cards-dir", str(cards), env=sf_cli_env)
    assert missing.returncode == 5 and "unknown dataset 'no-such'" in missing.stderr


def test_small_files_open_lazily_without_dask(sf_catalog: Catalog) -> None:
    """Below ``dask_min_bytes`` a dataset stays lazy through xarray's own indexing."""
    sf_catalog.dask_min_bytes = 1 << 40
    ds = sf_catalog.open("tone", frequency=80.0)
    assert ds["signal"].chunks is None
    assert not ds["signal"].variable._in_memory  # still lazy: read on first use
    expected = TONE(seed=3, frequency=80.0)
    xr.testing.assert_allclose(ds["signal"].load(), expected["signal"])
    sf_catalog.dask_min_bytes = 0
    assert sf_catalog.open("tone", frequency=80.0)["signal"].chunks is not None
