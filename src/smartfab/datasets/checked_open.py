"""Open a built netCDF file so that every byte read is checked against its segment manifest.

Up front (on every core): the metadata, the small variables and the chunks of every variable
that is read through xarray. Lazily, inside each dask task: the chunks of the large array
variables, which are read straight from the file (one ``preadv`` per chunk), hashed, and only
then turned into an array. Hashing thus runs in parallel with the computation on the data
instead of before it, and what is hashed is exactly what the computation gets.

Only variables that decode to their stored values take the lazy path: uncompressed numeric
chunks without scale, offset, integer fill values or time units. Everything else is checked up
front and read by xarray as usual.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from smartfab.datasets.manifest import Manifest, Segment, check_segments, read_checked

#: attributes that make xarray change stored values while decoding
DECODED_ATTRS = (
    "scale_factor",
    "add_offset",
    "missing_value",
    "valid_min",
    "valid_max",
    "calendar",
)


@dataclass(frozen=True)
class ChunkedArray:
    """A chunked HDF5 dataset read chunk by chunk through :func:`read_checked`.

    Implements what ``dask.array.from_array`` needs (shape, dtype, ndim, ``__getitem__``) and
    pickles as plain data, so tasks can run on any worker that sees the same path.
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    chunks: tuple[int, ...]
    #: chunk index (tuple) -> the segments holding that chunk's bytes
    table: dict[tuple[int, ...], tuple[Segment, ...]]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dask_chunks(self) -> tuple[tuple[int, ...], ...]:
        return tuple(
            tuple(min(c, n - start) for start in range(0, n, c))
            for n, c in zip(self.shape, self.chunks, strict=True)
        )

    def read_chunk(self, index: tuple[int, ...]) -> np.ndarray:
        """The chunk at ``index``, trimmed to the array's extent, after checking its bytes."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            buffer = read_checked(fd, Path(self.path), self.table[index])
        finally:
            os.close(fd)
        values = buffer.view(self.dtype).reshape(self.chunks)
        extent = tuple(
            slice(0, min(c, n - i * c))
            for i, c, n in zip(index, self.chunks, self.shape, strict=True)
        )
        return values[extent]

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        bounds = [s.indices(n)[:2] for s, n in zip(key, self.shape, strict=True)]
        first = [start // c for (start, _), c in zip(bounds, self.chunks, strict=True)]
        last = [
            max(start, stop - 1) // c for (start, stop), c in zip(bounds, self.chunks, strict=True)
        ]
        out = np.empty([stop - start for start, stop in bounds], dtype=self.dtype)
        if out.size == 0:
            return out
        for index in product(*(range(a, b + 1) for a, b in zip(first, last, strict=True))):
            chunk = self.read_chunk(index)
            src, dst = [], []
            for i, c, (start, stop), n in zip(index, self.chunks, bounds, chunk.shape, strict=True):
                lo, hi = max(start, i * c), min(stop, i * c + n)
                src.append(slice(lo - i * c, hi - i * c))
                dst.append(slice(lo - start, hi - start))
            out[tuple(dst)] = chunk[tuple(src)]
        return out


def _decodes_to_itself(item: Any) -> bool:
    """Whether xarray returns this HDF5 dataset's stored values unchanged."""
    attrs = item.attrs
    if item.dtype.kind not in "fiu" or item.ndim == 0 or item.chunks is None:
        return False
    if item.id.get_create_plist().get_nfilters() != 0:
        return False
    if attrs.get("CLASS") == b"DIMENSION_SCALE":  # coordinates are read eagerly by xarray
        return False
    if any(name in attrs for name in DECODED_ATTRS):
        return False
    if "since" in str(attrs.get("units", "")):
        return False
    if "_FillValue" in attrs:
        fill = np.asarray(attrs["_FillValue"])
        return bool(item.dtype.kind == "f" and np.all(np.isnan(fill)))
    return True


def _lazy_arrays(path: Path, manifest: Manifest) -> dict[str, ChunkedArray]:
    """The variables to read lazily, each with the manifest segments of each of its chunks."""
    import h5py

    by_offset = {s.offset: i for i, s in enumerate(manifest.segments)}
    arrays: dict[str, ChunkedArray] = {}
    with h5py.File(path, "r") as handle:
        for name, item in handle.items():
            if isinstance(item, h5py.Dataset) and _decodes_to_itself(item):
                table = _chunk_table(item, name, manifest, by_offset)
                if table is not None:
                    arrays[name] = ChunkedArray(
                        str(path),
                        tuple(item.shape),
                        np.dtype(item.dtype),
                        tuple(item.chunks),
                        table,
                    )
    return arrays


def _chunk_table(
    item: Any, name: str, manifest: Manifest, by_offset: dict[int, int]
) -> dict[tuple[int, ...], tuple[Segment, ...]] | None:
    """Chunk index -> segments for every chunk of ``item``; None unless every chunk is stored
    whole and lines up with segments of ``name`` in the manifest."""
    chunk_bytes = math.prod(item.chunks) * np.dtype(item.dtype).itemsize
    n_chunks = math.prod(-(-n // c) for n, c in zip(item.shape, item.chunks, strict=True))
    infos: list[Any] = []
    item.id.chunk_iter(infos.append)
    if len(infos) != n_chunks:  # chunks never written hold fill values, not stored bytes
        return None
    table: dict[tuple[int, ...], tuple[Segment, ...]] = {}
    for info in infos:
        segments = _segments_at(manifest, by_offset, info.byte_offset, info.size, name)
        if segments is None or info.size != chunk_bytes:
            return None
        index = tuple(o // c for o, c in zip(info.chunk_offset, item.chunks, strict=True))
        table[index] = segments
    return table


def _segments_at(
    manifest: Manifest, by_offset: dict[int, int], offset: int, size: int, name: str
) -> tuple[Segment, ...] | None:
    """The manifest segments that exactly make up the bytes of one chunk of ``name``."""
    index = by_offset.get(offset)
    if index is None:
        return None
    segments = []
    end = offset + size
    for segment in manifest.segments[index:]:
        if segment.offset >= end:
            break
        if segment.variable != name or segment.end > end:
            return None
        segments.append(segment)
    return tuple(segments) if segments and segments[-1].end == end else None


def open_checked(path: Path, manifest: Manifest, engine: str) -> xr.Dataset:
    """``xr.open_dataset(path, chunks={})``, with every byte it reads checked (see module)."""
    metadata = [s for s in manifest.segments if s.variable is None]
    check_segments(path, metadata)
    try:
        lazy = _lazy_arrays(path, manifest)
    except (OSError, ValueError, KeyError):
        lazy = {}  # a layout we cannot map chunk by chunk: everything is checked up front
    lazy_offsets = {
        s.offset for array in lazy.values() for part in array.table.values() for s in part
    }
    check_segments(path, _other(manifest.segments, lazy_offsets, metadata))
    ds = xr.open_dataset(path, engine=engine, chunks={})
    return _substitute(ds, lazy, manifest)


def _other(segments: Iterable[Segment], lazy: set[int], done: list[Segment]) -> list[Segment]:
    checked = {s.offset for s in done} | lazy
    return [s for s in segments if s.offset not in checked]


def _substitute(ds: xr.Dataset, lazy: dict[str, ChunkedArray], manifest: Manifest) -> xr.Dataset:
    """Replace the data of the lazily checked variables with dask arrays over ChunkedArray."""
    import dask.array as da

    for name, source in lazy.items():
        variable = ds.variables.get(name)
        if variable is None or variable.dtype != source.dtype or variable.shape != source.shape:
            check_segments(Path(source.path), [s for v in source.table.values() for s in v])
            continue
        data = da.from_array(  # type: ignore[no-untyped-call]
            source,
            chunks=source.dask_chunks(),
            name=f"smartfab-checked-{manifest.sha256[:16]}-{name}",
            lock=False,
            asarray=False,
            fancy=False,
            meta=np.empty((0,) * source.ndim, dtype=source.dtype),
        )
        ds[name] = variable.copy(deep=False, data=data)
    return ds
