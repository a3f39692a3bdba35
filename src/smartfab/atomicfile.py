"""Writing a file so that it holds either its old content or all of the new one.

A hidden temporary file in the same folder, flushed to disk, renamed over the target, and the
rename itself made durable: a process killed (or a machine stopped) at any moment never leaves a
half-written file under the final name. Used by the run store and the batch reports.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably; OSError when it cannot.

    The file gets the usual permissions (``0o666`` less the umask), like any file the user
    writes; the temporary file is removed when anything fails.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        fsync_folder(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise


def fsync_folder(folder: Path) -> None:
    """Make the entries (renames, new files) of ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
