"""Writing a file so that it holds either its old content or all of the new one.

The one mechanism of the project: a hidden temporary file in the target's folder, flushed to
disk, renamed over the target, and the rename itself made durable. A process killed (or a
machine stopped) at any moment never leaves a half-written file under the final name, and a
failed write removes its temporary file.

* :func:`atomic_file` yields the temporary file open for writing (bytes);
* :func:`atomic_path` yields the temporary file's path, for writers that open files by name
  (xarray's ``to_netcdf``);
* :func:`write_atomic` writes bytes with :func:`atomic_file`.

Permissions: without ``mode`` the file gets the usual ones (``0o666`` less the umask), like any
file the user writes; with ``mode`` it gets exactly that mode, and the temporary file is created
``0o600`` and set to ``mode`` before anything is written into it: a private file (``0o600``)
is never readable by others, not even for a moment.

This is a core module: it imports nothing of smartfab.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: the temporary file is born private when the caller asks for a mode of its own
_PRIVATE = 0o600


def temporary_path(path: Path) -> Path:
    """A fresh hidden name beside ``path``: ``.<name>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _create(temp: Path, mode: int | None) -> int:
    """Create ``temp`` (never an existing file) and return its descriptor, set to ``mode``."""
    fd = os.open(
        temp,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
        0o666 if mode is None else _PRIVATE,
    )
    if mode is not None:
        try:
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _commit(temp: Path, path: Path) -> None:
    """Rename the (synced) ``temp`` over ``path`` and make the rename durable."""
    os.replace(temp, path)
    fsync_folder(path.parent)


def _discard(temp: Path) -> None:
    with contextlib.suppress(OSError):
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A temporary file beside ``path``, open for writing bytes; ``path`` on success.

    When the block ends without an exception the file is flushed, synced, renamed over
    ``path`` and the folder synced; when it raises, the temporary file is removed and ``path``
    keeps its old content.

    Parameters
    ----------
    path:
        The file to write; its folder must exist.
    mode:
        Exact permissions of the file (None: ``0o666`` less the umask).

    See Also
    --------
    atomic_path : the same for a writer that wants a path.
    write_atomic : write bytes at once.
    """
    temp = temporary_path(path)
    try:
        with os.fdopen(_create(temp, mode), "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _commit(temp, path)
    except BaseException:
        _discard(temp)
        raise


@contextlib.contextmanager
def atomic_path(path: Path, mode: int | None = None) -> Iterator[Path]:
    """The path of a temporary file beside ``path``, for a writer that opens files by name.

    The temporary file exists (empty, with its permissions already set) when the block starts;
    the writer may overwrite or truncate it. When the block ends without an exception it is
    synced, given ``mode`` again (in case the writer made a new file) and renamed over ``path``;
    when it raises, it is removed.

    See Also
    --------
    atomic_file : the same with the file open for writing.
    """
    temp = temporary_path(path)
    try:
        os.close(_create(temp, mode))
        yield temp
        if mode is not None:
            os.chmod(temp, mode)
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _commit(temp, path)
    except BaseException:
        _discard(temp)
        raise


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically and durably; OSError when it cannot.

    ``mode`` as for :func:`atomic_file`; the temporary file is removed when anything fails.
    """
    with atomic_file(path, mode) as handle:
        handle.write(data)


def fsync_folder(folder: Path) -> None:
    """Make the entries (renames, new files) of ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
