"""Segment manifests: a file's sha256 split along the chunks of its arrays.

A whole-file sha256 can only be computed by one core, front to back, before any byte is used.
A manifest lists the sha256 of consecutive byte segments that cover the file exactly, with the
segment boundaries on the chunks of the file's HDF5 datasets. The catalog can then check each
chunk of a large array as it is read, on as many threads as dask uses, and check the rest of the
file (metadata, small variables) up front. Every byte read is still checked against a sha256
that was recorded when the file was built.

The manifest also records the whole-file sha256 it was made with: it is only used when that
equals the hash the catalog expects for the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smartfab.atomicfile import write_atomic
from smartfab.errors import ChecksumError, DatasetError

FORMAT = "smartfab-manifest/1"
#: longest segment: splits big chunks and gaps so that up-front checks run on every core
MAX_SEGMENT = 8 << 20


@dataclass(frozen=True)
class Segment:
    """Bytes ``[offset, offset + length)`` of the file; ``variable`` names the HDF5 dataset
    whose chunk they belong to (None: metadata, contiguous data or free space)."""

    offset: int
    length: int
    sha256: str
    variable: str | None = None

    @property
    def end(self) -> int:
        return self.offset + self.length

    def where(self) -> str:
        return f"bytes {self.offset}-{self.end - 1}"


@dataclass(frozen=True)
class Manifest:
    """The segments of one file, and the whole-file sha256 they were made with."""

    name: str
    size: int
    sha256: str
    segments: tuple[Segment, ...]

    def to_json(self) -> str:
        rows = [[s.offset, s.length, s.sha256, s.variable] for s in self.segments]
        document = {
            "format": FORMAT,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "segments": rows,
        }
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, source: Path) -> Manifest:
        """Parse a manifest; a damaged one is a DatasetError naming ``source``."""
        try:
            document = json.loads(text)
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {FORMAT!r}")
            segments = tuple(
                Segment(int(o), int(n), str(h), None if v is None else str(v))
                for o, n, h, v in document["segments"]
            )
            manifest = cls(
                str(document["name"]), int(document["size"]), str(document["sha256"]), segments
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{source}: not a readable segment manifest: {exc}") from None
        manifest.check_cover(source)
        return manifest

    def check_cover(self, source: Path) -> None:
        """Segments must cover ``[0, size)`` exactly, in order."""
        position = 0
        for segment in self.segments:
            if segment.offset != position or segment.length <= 0:
                raise DatasetError(
                    f"{source}: segment manifest has a gap or overlap at byte {position}"
                )
            position = segment.end
        if position != self.size:
            raise DatasetError(f"{source}: segment manifest covers {position} of {self.size} bytes")


def manifest_path(path: Path) -> Path:
    """Where the manifest of ``path`` is kept: beside it."""
    return path.with_name(path.name + ".manifest.json")


def _chunk_ranges(path: Path) -> list[tuple[int, int, str]]:
    """(offset, length, dataset name) of every stored chunk of every chunked HDF5 dataset."""
    import h5py

    ranges: list[tuple[int, int, str]] = []

    def visit(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and item.chunks is not None:
            item.id.chunk_iter(lambda info: ranges.append((info.byte_offset, info.size, name)))

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return sorted(ranges)


def _layout(size: int, chunks: list[tuple[int, int, str]]) -> Iterator[tuple[int, int, str | None]]:
    """Consecutive (offset, length, variable) pieces covering the file, none over MAX_SEGMENT."""
    position = 0
    for offset, length, name in chunks:
        if offset < position or offset + length > size:
            raise DatasetError(f"chunk at byte {offset} overlaps another or passes the end")
        yield from _split(position, offset - position, None)
        yield from _split(offset, length, name)
        position = offset + length
    yield from _split(position, size - position, None)


def _split(offset: int, length: int, variable: str | None) -> Iterator[tuple[int, int, str | None]]:
    end = offset + length
    while offset < end:
        step = min(MAX_SEGMENT, end - offset)
        yield offset, step, variable
        offset += step


def build_manifest(path: Path) -> Manifest:
    """Read ``path`` once, computing its whole sha256 and the sha256 of every segment."""
    size = path.stat().st_size
    layout = list(_layout(size, _chunk_ranges(path)))
    whole = hashlib.sha256()
    segments = []
    with path.open("rb") as handle:
        for offset, length, variable in layout:
            block = handle.read(length)
            if len(block) != length:
                raise DatasetError(f"{path}: changed size while it was read")
            whole.update(block)
            segments.append(Segment(offset, length, hashlib.sha256(block).hexdigest(), variable))
    return Manifest(path.name, size, whole.hexdigest(), tuple(segments))


def save_manifest(manifest: Manifest, path: Path) -> Path:
    """Write the manifest of ``path`` atomically beside it."""
    target = manifest_path(path)
    write_atomic(target, manifest.to_json().encode(), mode=0o644)
    return target


def load_manifest(path: Path, expected_sha256: str) -> Manifest | None:
    """The manifest of ``path`` if there is one made for the file with ``expected_sha256``.

    None when there is no manifest or it was made for other content (then the caller hashes the
    whole file, which reports the mismatch). The size must agree with the file on disk.
    """
    source = manifest_path(path)
    try:
        text = source.read_text()
    except FileNotFoundError:
        return None
    manifest = Manifest.from_json(text, source)
    if manifest.sha256 != expected_sha256 or manifest.name != path.name:
        return None
    actual_size = path.stat().st_size
    if actual_size != manifest.size:
        raise ChecksumError(
            path,
            expected_sha256,
            f"a file of {actual_size} bytes instead of {manifest.size}",
        )
    return manifest


def read_checked(fd: int, path: Path, segments: Iterable[Segment]) -> NDArray[np.uint8]:
    """Read consecutive ``segments`` from ``fd`` into one buffer, checking each one's sha256.

    What is checked is exactly what is returned: the bytes are read once, into memory that no
    other writer can reach, and then hashed.
    """
    parts = list(segments)
    start, end = parts[0].offset, parts[-1].end
    # np.empty, not bytearray: no zero-filling pass over memory the read overwrites anyway
    buffer = np.empty(end - start, dtype=np.uint8)
    view = memoryview(buffer.data)
    done = 0
    while done < len(buffer):
        count = os.preadv(fd, [view[done:]], start + done)
        if count == 0:
            raise ChecksumError(path, parts[-1].sha256, f"end of file at byte {start + done}")
        done += count
    for segment in parts:
        piece = view[segment.offset - start : segment.end - start]
        actual = hashlib.sha256(piece).hexdigest()
        if actual != segment.sha256:
            raise ChecksumError(path, segment.sha256, actual, where=segment.where())
    return buffer


def check_segments(path: Path, segments: Iterable[Segment]) -> None:
    """Check ``segments`` of ``path`` on one thread per core (hashlib releases the GIL)."""
    todo = list(segments)
    if not todo:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        workers = min(len(todo), os.cpu_count() or 1)
        if workers == 1:
            for segment in todo:
                read_checked(fd, path, [segment])
            return
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda s: read_checked(fd, path, [s]), todo):
                pass
    finally:
        os.close(fd)
