"""The content record kept beside each build: its fingerprint, bound to the file's bytes.

A build has three records beside it, written when it is built or received: ``<file>.sha256``
(the bytes, ``sha256sum`` format), ``<file>.manifest.json`` (the bytes segment by segment) and
``<file>.fingerprint.json`` (what the data is, see :mod:`smartfab.datasets.fingerprint`). The
content record names the sha256 of the bytes it was computed from, so a record of other bytes is
never trusted: the fingerprint is then computed again from the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from smartfab.atomicfile import write_atomic
from smartfab.datasets.fingerprint import Fingerprint, differences, fingerprint_of
from smartfab.errors import ContentMismatchError, DatasetError

FORMAT: Final = "smartfab-content/1"


def sha256_record_path(path: Path) -> Path:
    """Where the sha256 of a build's bytes is kept: ``<file>.sha256``."""
    return path.with_name(path.name + ".sha256")


def read_sha256_record(path: Path) -> str | None:
    """The sha256 recorded when ``path`` was built, or None when there is none."""
    try:
        text = sha256_record_path(path).read_text()
    except FileNotFoundError:
        return None
    return text.split()[0] if text.strip() else None


def write_sha256_record(path: Path, sha256: str) -> None:
    """Record the sha256 of ``path``'s bytes beside it (``sha256sum -c`` can check it)."""
    write_atomic(sha256_record_path(path), f"{sha256}  {path.name}\n".encode())


def fingerprint_record_path(path: Path) -> Path:
    """Where the content fingerprint of a build is kept: ``<file>.fingerprint.json``."""
    return path.with_name(path.name + ".fingerprint.json")


def write_fingerprint_record(path: Path, sha256: str, fingerprint: Fingerprint) -> None:
    """Keep ``fingerprint`` beside ``path``, bound to the file's bytes ``sha256``.

    Two lines of JSON: a header (format, file, sha256 of its bytes, digest of its content),
    which opening a dataset reads alone, then the fingerprint, read when it is compared.
    """
    header = {"format": FORMAT, "file": path.name, "sha256": sha256, "digest": fingerprint.digest()}
    body = fingerprint.model_dump(mode="json")
    text = json.dumps(header) + "\n" + json.dumps(body, separators=(",", ":")) + "\n"
    write_atomic(fingerprint_record_path(path), text.encode())


def read_content_digest(path: Path, sha256: str) -> str | None:
    """The content digest recorded for ``path`` when its bytes were ``sha256`` (the record's
    header only: cheap for a large dataset); None when there is no record for those bytes."""
    try:
        with fingerprint_record_path(path).open() as lines:
            header = _header(path, lines.readline())
    except FileNotFoundError:
        return None
    return None if header is None or header["sha256"] != sha256 else str(header["digest"])


def read_fingerprint_record(path: Path, sha256: str) -> Fingerprint | None:
    """The fingerprint recorded for ``path`` when it was computed from bytes ``sha256``.

    None when there is no record or it was made for other bytes; a damaged record is a
    DatasetError naming it.
    """
    try:
        with fingerprint_record_path(path).open() as lines:
            header = _header(path, lines.readline())
            if header is None or header["sha256"] != sha256:
                return None
            body = lines.readline()
    except FileNotFoundError:
        return None
    try:
        return Fingerprint.model_validate_json(body)
    except ValidationError as err:
        source = fingerprint_record_path(path)
        raise DatasetError(f"{source}: damaged fingerprint: {err}") from None


def _header(path: Path, line: str) -> dict[str, Any] | None:
    """The header line of the record of ``path``; None when it is about another file."""
    source = fingerprint_record_path(path)
    try:
        header = json.loads(line)
    except ValueError as err:
        raise DatasetError(f"{source}: not a readable content record: {err}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DatasetError(f"{source}: not a content record of format {FORMAT}")
    if not isinstance(header.get("sha256"), str) or not isinstance(header.get("digest"), str):
        raise DatasetError(f"{source}: the header lacks the sha256 or the digest")
    return header if header.get("file") == path.name else None


def fingerprint_file(path: Path, engine: str, like: Fingerprint | None = None) -> Fingerprint:
    """The fingerprint of the netCDF file at ``path`` as xarray decodes it."""
    import xarray as xr

    with xr.open_dataset(path, engine=engine, chunks=None, cache=False) as ds:
        return fingerprint_of(ds, like=like)


def check_content(
    dataset_id: str, path: Path, pinned: Fingerprint, actual: Fingerprint, outcome: str
) -> None:
    """Raise ContentMismatchError listing how ``actual`` differs from ``pinned``, if it does."""
    found = differences(pinned, actual)
    if found:
        # each differing variable's first difference comes first: a message that lists only the
        # first lines still names every variable that changed
        first = {d.variable: d for d in reversed(found)}
        ordered = [d for d in found if first[d.variable] is d] + [
            d for d in found if first[d.variable] is not d
        ]
        raise ContentMismatchError(dataset_id, path, [d.render() for d in ordered], outcome)
