"""Dataset identity by content: a curated card's fingerprint accepts the same data written with
other bytes (another CPU, other chunking, other library versions) and refuses every real change,
naming the dataset, the variable, the statistic and both values."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml

from smartfab.datasets.access import AccessPolicy
from smartfab.datasets.catalog import NETCDF_ENGINE, Catalog, write_netcdf
from smartfab.datasets.checksums import sha256_of
from smartfab.datasets.content import (
    fingerprint_file,
    fingerprint_record_path,
    sha256_record_path,
)
from smartfab.datasets.fingerprint import (
    Fingerprint,
    differences,
    fingerprint_of,
    float_tolerances,
)
from smartfab.datasets.registry import Generator, Registry
from smartfab.errors import ContentMismatchError

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "datasets"
#: a difference line of an error: "<variable>: <statistic>: expected <a>, got <b>"
DIFFERENCE = re.compile(
    r"^  (?P<variable>\S+): (?P<statistic>[^:]+): expected (?P<a>.+), got (?P<b>.+?)(?: \(|$)", re.M
)

Change = Callable[[xr.Dataset], xr.Dataset]


def _generator(name: str, change: Change | None = None) -> Generator[Any]:
    """The curated generator ``name``, its output passed through ``change``."""
    real = Registry().generator(name)
    if change is None:
        return real

    def build(params: Any, seed: int) -> xr.Dataset:
        return change(real.build(params, seed))

    return Generator(name=name, params=real.params, build=build)


@pytest.fixture
def sf_curated(tmp_path: Path) -> Callable[..., Catalog]:
    """A catalog of one curated card (optionally edited) whose generator may be changed."""

    def make(dataset_id: str, change: Change | None = None, **card_changes: Any) -> Catalog:
        cards = tmp_path / "cards"
        cards.mkdir(exist_ok=True)
        data = yaml.safe_load((CARDS / f"{dataset_id}.yaml").read_text())
        for key, value in card_changes.items():
            data["provenance"][key] = value
        (cards / f"{dataset_id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        generator = data["provenance"]["generator"]
        return Catalog(
            cards_dir=cards,
            data_dir=tmp_path / "data",
            access=AccessPolicy(),
            registry=Registry.of([_generator(generator, change)]),
            shared_dirs=[],
        )

    return make


def _refused(catalog: Catalog, dataset_id: str) -> tuple[str, list[dict[str, str]]]:
    """Build ``dataset_id``, which must be refused; the message and its difference lines."""
    with pytest.raises(ContentMismatchError) as caught:
        catalog.build(dataset_id)
    message = str(caught.value)
    assert message.startswith(f"{dataset_id}: "), message
    assert "the new build was discarded" in message
    path = catalog.build_path(catalog.card(dataset_id))
    # nothing half-written: neither the file nor any record of it is left
    assert not path.exists() and not sha256_record_path(path).exists()
    assert not fingerprint_record_path(path).exists()
    shown = [m.groupdict() for m in DIFFERENCE.finditer(message)]
    assert shown, message
    every = "\n".join("  " + line for line in caught.value.differences)
    return message, [m.groupdict() for m in DIFFERENCE.finditer(every)]


def _float_data(ds: xr.Dataset, dtype: str = "float64") -> list[str]:
    return [str(n) for n, v in ds.data_vars.items() if v.dtype == np.dtype(dtype) and v.size > 1]


# -- accepted: the same content in other bytes ----------------------------------------------------


def test_a_build_perturbed_at_the_last_bit_is_accepted(sf_curated: Callable[..., Catalog]) -> None:
    """What another CPU gives: every float64 value off by a few parts in 1e16."""

    def other_cpu(ds: xr.Dataset) -> xr.Dataset:
        for name in _float_data(ds):
            ds[name] = ds[name] * (1 + 1e-15)
        return ds

    plain = sf_curated("spindle-thermal").build("spindle-thermal")
    plain_sha = sha256_of(plain)
    plain.unlink()
    catalog = sf_curated("spindle-thermal", other_cpu)
    built = catalog.build("spindle-thermal", force=True)
    assert sha256_of(built) != plain_sha  # other bytes ...
    ds = catalog.open("spindle-thermal")  # ... the same dataset
    assert ds.attrs["smartfab_fingerprint"] == catalog.card("spindle-thermal").fingerprint.digest()  # type: ignore[union-attr]
    assert float(ds["displacement_z"][5]) != 0.0


def test_float32_values_off_by_one_ulp_are_accepted(sf_curated: Callable[..., Catalog]) -> None:
    """float32 sensor data computed wider and rounded differs by a whole ulp where it does."""
    rng = np.random.default_rng(7)

    def other_cpu(ds: xr.Dataset) -> xr.Dataset:
        values = ds["acceleration"].values
        flat = values.ravel()
        picked = rng.choice(flat.size, size=flat.size // 50, replace=False)
        flat[picked] = np.nextafter(flat[picked], np.float32(np.inf))
        ds["acceleration"] = (ds["acceleration"].dims, values, ds["acceleration"].attrs)
        return ds

    catalog = sf_curated("bearing-run-to-failure", other_cpu)
    catalog.build("bearing-run-to-failure")  # accepted
    assert catalog.verify(["bearing-run-to-failure"])[0].status == "ok"


def test_a_build_written_with_other_chunking_is_accepted(
    sf_curated: Callable[..., Catalog], tmp_path: Path
) -> None:
    catalog = sf_curated("bearing-run-to-failure")
    card = catalog.card("bearing-run-to-failure")
    ds = _generator("bearing-run-to-failure")(seed=card.provenance.seed or 0)
    ours = tmp_path / "ours.nc"
    write_netcdf(ds, ours)
    other = tmp_path / "other.nc"
    encoding = {
        name: {"chunksizes": tuple(max(1, s // 3) for s in var.shape), "zlib": True, "complevel": 4}
        for name, var in ds.data_vars.items()
        if var.ndim >= 1
    }
    ds.to_netcdf(other, engine=NETCDF_ENGINE, encoding=encoding)
    assert sha256_of(ours) != sha256_of(other)
    assert card.fingerprint is not None
    for path in (ours, other):
        assert (
            differences(
                card.fingerprint, fingerprint_file(path, NETCDF_ENGINE, like=card.fingerprint)
            )
            == []
        )


def test_the_writing_library_versions_are_not_part_of_the_identity(tmp_path: Path) -> None:
    ds = _generator("spindle-thermal")(seed=2026)
    pinned = fingerprint_of(ds)
    ds.attrs["product_version"] = "99.0.0"
    ds.attrs["_NCProperties"] = "version=2,h5netcdf=9.9.9,hdf5=9.9.9"
    assert differences(pinned, fingerprint_of(ds, like=pinned)) == []
    assert fingerprint_of(ds).digest() == pinned.digest()


# -- refused: every real change -------------------------------------------------------------------


def test_a_changed_seed_is_refused(sf_curated: Callable[..., Catalog]) -> None:
    message, lines = _refused(sf_curated("spindle-thermal", seed=2027), "spindle-thermal")
    statistics = {(line["variable"], line["statistic"]) for line in lines}
    assert ("temperature_ambient", "mean") in statistics, message
    for line in lines:
        assert line["a"] != line["b"], message


def test_a_changed_parameter_is_refused(sf_curated: Callable[..., Catalog]) -> None:
    catalog = sf_curated("spindle-thermal", parameters={"rise_front_bearing": 17.0})
    message, lines = _refused(catalog, "spindle-thermal")
    variables = {line["variable"] for line in lines}
    assert "temperature_front_bearing" in variables, message
    assert "(attributes)" in variables, message  # the parameters are recorded in the data too


def test_a_changed_formula_is_refused(sf_curated: Callable[..., Catalog]) -> None:
    def an_extra_quadratic_term(ds: xr.Dataset) -> xr.Dataset:
        truth = ds["displacement_z_true"]
        rise = (ds["temperature_front_bearing"] - ds["temperature_front_bearing"][0]).values
        ds["displacement_z_true"] = truth.copy(data=truth.values + 0.001 * rise**2)
        return ds

    message, lines = _refused(
        sf_curated("spindle-thermal", an_extra_quadratic_term), "spindle-thermal"
    )
    assert {line["variable"] for line in lines} == {"displacement_z_true"}, message
    mean = next(line for line in lines if line["statistic"] == "mean")
    assert float(mean["b"]) > float(mean["a"]), message


def test_one_value_changed_beyond_tolerance_is_refused(sf_curated: Callable[..., Catalog]) -> None:
    """A single float64 value moved by three rounding steps: too small for any statistic of 961
    values to notice beyond 1e-9, caught by the rounded values."""
    card = sf_curated("spindle-thermal").card("spindle-thermal")
    assert card.fingerprint is not None
    floats = card.fingerprint.variables["displacement_z"].floats
    assert floats is not None
    index = 400
    assert index not in floats.apart_index and index not in (0, 960)

    def one_value(ds: xr.Dataset) -> xr.Dataset:
        values = ds["displacement_z"].values.copy()
        values[index] += 3 * floats.step
        ds["displacement_z"] = (ds["displacement_z"].dims, values, ds["displacement_z"].attrs)
        return ds

    message, lines = _refused(sf_curated("spindle-thermal", one_value), "spindle-thermal")
    assert [line["variable"] for line in lines] == ["displacement_z"] * len(lines), message
    assert any(line["statistic"].startswith("values rounded to ") for line in lines), message


def test_a_changed_label_is_refused_exactly(sf_curated: Callable[..., Catalog]) -> None:
    """Ground truth held in integers is compared exactly: one label is enough."""

    def one_label(ds: xr.Dataset) -> xr.Dataset:
        values = ds["fault_active"].values.copy()
        values[3] = 1 - values[3]
        ds["fault_active"] = (ds["fault_active"].dims, values, ds["fault_active"].attrs)
        return ds

    catalog = sf_curated("bearing-run-to-failure", one_label)
    message, lines = _refused(catalog, "bearing-run-to-failure")
    assert [(line["variable"], line["statistic"]) for line in lines] == [
        ("fault_active", "exact values (sha256)")
    ], message


def test_a_change_of_units_or_dtype_is_refused(tmp_path: Path) -> None:
    ds = _generator("spindle-thermal")(seed=2026)
    pinned = fingerprint_of(ds)
    other = ds.copy()
    other["displacement_z"].attrs["units"] = "mm"
    other["temperature_motor"] = other["temperature_motor"].astype("float32")
    found = {
        (d.variable, d.statistic): d
        for d in differences(pinned, fingerprint_of(other, like=pinned))
    }
    assert found[("displacement_z", "units")].expected == "um"
    assert found[("displacement_z", "units")].actual == "mm"
    assert found[("temperature_motor", "dtype")].actual == "f4"


def test_a_small_change_spread_over_all_values_is_refused(tmp_path: Path) -> None:
    """Every value scaled by 1 + 1e-8: each within its rounding step, the mean is not."""
    ds = _generator("spindle-thermal")(seed=2026)
    pinned = fingerprint_of(ds)
    ds["temperature_motor"] = ds["temperature_motor"] * (1 + 1e-8)
    found = [
        (d.variable, d.statistic) for d in differences(pinned, fingerprint_of(ds, like=pinned))
    ]
    assert ("temperature_motor", "mean") in found


def test_a_stale_build_without_records_is_checked_on_open(
    sf_curated: Callable[..., Catalog],
) -> None:
    """A build whose content record is missing (made by an older smartfab, or copied in) is
    fingerprinted when opened; one that is not the card's content is refused and left alone."""
    catalog = sf_curated("spindle-thermal")
    path = catalog.build("spindle-thermal")
    fingerprint_record_path(path).unlink()
    catalog.open("spindle-thermal")  # checked, and the record written again
    assert fingerprint_record_path(path).exists()

    wrong = sf_curated("spindle-thermal", seed=2030)  # same folders, a card of other content
    wrong.card("spindle-thermal")
    other = _generator("spindle-thermal")(seed=2030)
    write_netcdf(other, path)
    sha256_record_path(path).write_text(f"{sha256_of(path)}  {path.name}\n")
    fingerprint_record_path(path).unlink()
    with pytest.raises(ContentMismatchError, match="it was not used; rebuild it") as caught:
        catalog.open("spindle-thermal")
    assert "spindle-thermal" in str(caught.value)
    assert path.exists()  # left as found, for the curator


def test_float_tolerances_follow_the_stored_precision() -> None:
    step64, tol64 = float_tolerances(np.dtype("float64"), 8.0)
    step32, tol32 = float_tolerances(np.dtype("float32"), 8.0)
    assert step64 == 8.0 * 2.0**-27 and tol64 == 8e-9
    assert step32 == 8.0 * 2.0**-11 and tol32 == pytest.approx(8.0 * 2.0**-20)


def test_fingerprints_round_trip_through_the_card_yaml() -> None:
    card = yaml.safe_load((CARDS / "milling-tool-wear.yaml").read_text())
    fingerprint = Fingerprint.model_validate(card["fingerprint"])
    again = yaml.safe_load(yaml.safe_dump(fingerprint.model_dump(mode="json")))
    assert Fingerprint.model_validate(again) == fingerprint


def test_stored_runs_count_as_unchanged_while_the_content_is(
    sf_curated: Callable[..., Catalog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run is not executed again while its datasets hold the same content, even when the file
    was rebuilt with other bytes; other content, or a missing build, runs it again."""
    from smartfab.datasets import api
    from smartfab.runs.models import DatasetUse
    from smartfab.runs.runner import datasets_unchanged

    catalog = sf_curated("spindle-thermal")
    monkeypatch.setattr(api, "_default", catalog)
    ds = catalog.open("spindle-thermal")
    use = DatasetUse(
        id="spindle-thermal",
        sha256=ds.attrs["smartfab_sha256"],
        fingerprint=ds.attrs["smartfab_fingerprint"],
    )
    assert datasets_unchanged([use])
    assert not datasets_unchanged([use.model_copy(update={"fingerprint": "0" * 64})])
    assert datasets_unchanged([use.model_copy(update={"fingerprint": ""})])  # an older record

    def other_cpu(ds: xr.Dataset) -> xr.Dataset:
        ds["displacement_z"] = ds["displacement_z"] * (1 + 1e-15)
        return ds

    rebuilt = sf_curated("spindle-thermal", other_cpu)
    rebuilt.build("spindle-thermal", force=True)
    monkeypatch.setattr(api, "_default", rebuilt)
    assert rebuilt.open("spindle-thermal").attrs["smartfab_sha256"] != use.sha256
    assert datasets_unchanged([use])  # same content, other bytes
    assert not datasets_unchanged([use.model_copy(update={"fingerprint": ""})])  # bytes differ
    catalog.build_path(catalog.card("spindle-thermal")).unlink()
    assert not datasets_unchanged([use])


_BUILD_ALL = """
import json, sys
from pathlib import Path
from smartfab.datasets.access import AccessPolicy
from smartfab.datasets.catalog import Catalog
from smartfab.datasets.checksums import sha256_of
catalog = Catalog(cards_dir=Path(sys.argv[1]), data_dir=Path(sys.argv[2]),
                  access=AccessPolicy(operator=True))
out = {}
for card in catalog.available():
    if card.kind.value != "synthetic":
        continue
    try:
        out[card.id] = sha256_of(catalog.build(card.id))
    except Exception as err:
        out[card.id] = f"{type(err).__name__}: {err}"
print(json.dumps(out))
"""


def test_every_curated_dataset_verifies_with_other_cpu_features(tmp_path: Path) -> None:
    """Each synthetic default build, made with numpy's vectorised code paths above the baseline
    switched off (as on a CPU without AVX-512 or AVX2), is accepted by its card; on a CPU that
    has such paths, some of those builds may have other bytes, which is why bytes are not pinned."""
    import json
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    present = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]

    def build_all(folder: str, disabled: list[str]) -> dict[str, str]:
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(disabled)}
        done = subprocess.run(
            [sys.executable, "-c", _BUILD_ALL, str(CARDS), str(tmp_path / folder)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, str] = json.loads(done.stdout)
        return result

    here = build_all("here", [])
    other = build_all("other-cpu", present)
    assert set(here) == set(other) and len(here) >= 6
    refused = {k: v for k, v in {**here, **other}.items() if not re.fullmatch(r"[0-9a-f]{64}", v)}
    assert not refused, refused
    # whether switching the faster paths off changes any bytes depends on the CPU (with AVX-512
    # some builds move, with AVX2 alone none may): what must hold on every CPU is that each build,
    # with or without them, is accepted by its card (above)


def test_content_records_are_bound_to_their_bytes(sf_curated: Callable[..., Catalog]) -> None:
    """A record made for other bytes is not trusted (the content is fingerprinted again and the
    record rewritten); a damaged one is an error naming it."""
    from smartfab.datasets.content import read_content_digest
    from smartfab.errors import DatasetError

    catalog = sf_curated("spindle-thermal")
    path = catalog.build("spindle-thermal")
    record = fingerprint_record_path(path)
    sha256 = sha256_of(path)
    header, body = record.read_text().splitlines()
    assert read_content_digest(path, sha256) == catalog.card("spindle-thermal").fingerprint.digest()  # type: ignore[union-attr]
    record.write_text(header.replace(sha256, "0" * 64) + "\n" + body + "\n")
    assert read_content_digest(path, sha256) is None
    catalog.open("spindle-thermal")
    assert read_content_digest(path, sha256) is not None  # fingerprinted again, recorded
    record.write_text("not json\n")
    with pytest.raises(DatasetError, match=re.escape(f"{record}: not a readable content record")):
        catalog.open("spindle-thermal")
