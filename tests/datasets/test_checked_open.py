"""Segment manifests and reads checked chunk by chunk (smartfab.datasets.checked_open)."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from smartfab.datasets.catalog import NETCDF_ENGINE
from smartfab.datasets.checked_open import ChunkedArray, open_checked
from smartfab.datasets.checksums import sha256_of
from smartfab.datasets.manifest import (
    MAX_SEGMENT,
    Manifest,
    Segment,
    build_manifest,
    load_manifest,
    manifest_path,
    save_manifest,
)
from smartfab.errors import ChecksumError, DatasetError

RATE = 1000


def _record(path: Path, snapshots: int = 6, seconds: int = 150) -> Path:
    """A record like the vibration datasets: (snapshot, time) float32, chunks of whole seconds,
    plus a packed variable that xarray decodes (scale_factor), which must be read eagerly."""
    rng = np.random.default_rng(7)
    time = np.arange(seconds * RATE) / RATE
    ds = xr.Dataset(
        {
            "acceleration": (
                ("snapshot", "time"),
                rng.standard_normal((snapshots, time.size)).astype(np.float32),
                {"units": "m s-2"},
            ),
            "temperature": (("time",), 20 + rng.random(time.size), {"units": "degC"}),
        },
        coords={"time": ("time", time, {"units": "s"}), "snapshot": np.arange(snapshots)},
    )
    chunk = 50 * RATE  # whole seconds, as write_netcdf lays them out
    encoding = {
        "acceleration": {"chunksizes": (snapshots, chunk)},
        "time": {"chunksizes": (chunk,)},
        "temperature": {
            "chunksizes": (chunk,),
            "dtype": "int16",
            "scale_factor": 0.01,
            "_FillValue": -1,
        },
    }
    ds.to_netcdf(path, engine=NETCDF_ENGINE, encoding=encoding)
    save_manifest(build_manifest(path), path)
    return path


@pytest.fixture
def sf_record(tmp_path: Path) -> Path:
    return _record(tmp_path / "record.nc")


def _open(path: Path) -> xr.Dataset:
    """Open as the catalog does, expecting the hash recorded at build time."""
    recorded = json.loads(manifest_path(path).read_text())["sha256"]
    manifest = load_manifest(path, recorded)
    assert manifest is not None
    return open_checked(path, manifest, NETCDF_ENGINE)


def _flip(path: Path, offset: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _segment(path: Path, variable: str | None) -> Segment:
    manifest = json.loads(manifest_path(path).read_text())
    offset, length, digest, name = next(row for row in manifest["segments"] if row[3] == variable)
    return Segment(offset, length, digest, name)


def test_manifest_covers_the_file_along_its_chunks(sf_record: Path) -> None:
    manifest = build_manifest(sf_record)
    assert manifest.sha256 == sha256_of(sf_record)
    assert manifest.size == sf_record.stat().st_size
    position = 0
    with sf_record.open("rb") as handle:
        for segment in manifest.segments:
            assert segment.offset == position and 0 < segment.length <= MAX_SEGMENT
            assert hashlib.sha256(handle.read(segment.length)).hexdigest() == segment.sha256
            position += segment.length
    assert position == manifest.size
    names = {s.variable for s in manifest.segments}
    assert {"acceleration", "temperature", "time", None} <= names
    again = Manifest.from_json(manifest.to_json(), sf_record)
    assert again == manifest


def test_large_arrays_are_read_lazily_and_exactly(sf_record: Path) -> None:
    ds = _open(sf_record)
    plain = xr.open_dataset(sf_record, engine=NETCDF_ENGINE)
    accel = ds["acceleration"]
    assert str(accel.data.name).startswith("smartfab-checked-")
    assert accel.chunks is not None and accel.chunks[1][0] % RATE == 0  # whole seconds
    np.testing.assert_array_equal(accel.values, plain["acceleration"].values)
    assert accel.attrs == plain["acceleration"].attrs
    # decoded variables go through xarray, after an up-front check
    assert not str(ds["temperature"].data.name).startswith("smartfab-checked-")
    np.testing.assert_array_equal(ds["temperature"].values, plain["temperature"].values)
    xr.testing.assert_identical(ds.load(), plain.load())


def test_a_damaged_chunk_fails_when_read_naming_file_range_and_hashes(sf_record: Path) -> None:
    segment = _segment(sf_record, "acceleration")
    ds = _open(sf_record)  # opened before the damage: what is read is checked at read time
    _flip(sf_record, segment.offset + segment.length // 2)
    with sf_record.open("rb") as handle:
        handle.seek(segment.offset)
        actual = hashlib.sha256(handle.read(segment.length)).hexdigest()
    with pytest.raises(ChecksumError) as caught:
        ds["acceleration"].values  # noqa: B018
    error = caught.value
    assert error.path == str(sf_record) and error.expected == segment.sha256
    assert error.actual == actual
    assert f"bytes {segment.offset}-{segment.offset + segment.length - 1}" in str(error)
    # the other chunks are intact and still readable
    assert ds["acceleration"].isel(snapshot=0, time=slice(0, RATE)).size == RATE


@pytest.mark.parametrize("variable", [None, "time", "temperature"])
def test_damage_outside_the_lazy_arrays_fails_at_open(
    sf_record: Path, variable: str | None
) -> None:
    """Metadata, coordinates and decoded variables are checked before xarray reads them."""
    segment = _segment(sf_record, variable)
    _flip(sf_record, segment.offset + segment.length // 2)
    with pytest.raises(ChecksumError) as caught:
        _open(sf_record)
    assert caught.value.expected == segment.sha256
    assert str(sf_record) in str(caught.value)


def test_a_truncated_file_is_refused(sf_record: Path) -> None:
    expected = sha256_of(sf_record)
    with sf_record.open("r+b") as handle:
        handle.truncate(sf_record.stat().st_size - 100)
    with pytest.raises(ChecksumError, match="bytes instead of"):
        load_manifest(sf_record, expected)


def test_a_damaged_manifest_is_named(sf_record: Path) -> None:
    source = manifest_path(sf_record)
    source.write_text("{not json")
    with pytest.raises(DatasetError, match=f"{source}: not a readable segment manifest"):
        load_manifest(sf_record, sha256_of(sf_record))
    document = json.loads(build_manifest(sf_record).to_json())
    document["segments"].pop(3)
    source.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match="gap or overlap"):
        load_manifest(sf_record, sha256_of(sf_record))


def test_a_manifest_made_for_other_content_is_not_used(sf_record: Path) -> None:
    assert load_manifest(sf_record, "0" * 64) is None
    (sf_record.parent / "other.nc").unlink(missing_ok=True)
    assert load_manifest(sf_record.parent / "missing.nc", "0" * 64) is None


def test_unaligned_reads_assemble_across_chunks(sf_record: Path) -> None:
    ds = _open(sf_record)
    plain = xr.open_dataset(sf_record, engine=NETCDF_ENGINE)["acceleration"].values
    graph = dict(ds["acceleration"].data.dask)
    sources = [v for v in graph.values() if isinstance(v, ChunkedArray)]
    source = sources[0] if sources else _find_source(graph)
    key = (slice(1, 5), slice(source.chunks[1] - 7, 2 * source.chunks[1] + 3))
    np.testing.assert_array_equal(source[key], plain[key])
    assert source[(slice(2, 2), slice(0, 10))].shape == (0, 10)


def _find_source(graph: dict[object, object]) -> ChunkedArray:
    for value in graph.values():
        inner = getattr(value, "value", None)
        if isinstance(inner, ChunkedArray):
            return inner
    raise AssertionError("no ChunkedArray in the graph")


def test_checked_arrays_travel_to_other_processes(sf_record: Path) -> None:
    """Tasks pickle as plain data (path, layout, hashes), as Dask distributed needs."""
    data = _open(sf_record)["acceleration"].data
    copy = pickle.loads(pickle.dumps(data))
    np.testing.assert_array_equal(copy.compute(), data.compute())
