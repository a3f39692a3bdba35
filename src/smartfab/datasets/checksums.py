"""The one sha256 of a file that cards, the catalog and the loaders agree on."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: read size: large blocks keep hashing near the speed of the hash itself
BLOCK = 8 << 20


def sha256_of(path: Path | str) -> str:
    """Hex sha256 (64 lowercase digits) of the file at ``path``."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


#: (device, inode, size, mtime ns, ctime ns): changes whenever the file's content is written
Stamp = tuple[int, int, int, int, int]


def stamp_of(path: Path) -> Stamp:
    """The stat signature of a file; ctime cannot be set back by users, unlike mtime."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VerifiedFiles:
    """Files whose full sha256 this process computed, with their stat signature then.

    Used by the ``verify="changed"`` policy: a file is hashed in full on its first open in the
    process and again whenever its stat signature changes (how DVC and git avoid rehashing).
    Corruption below the filesystem (a bit flipped on disk without a write) is only caught by
    the ``"always"`` policy or ``smartfab datasets verify``.
    """

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[Stamp, str]] = {}

    def sha256(self, path: Path) -> str:
        """The file's sha256, recomputed unless unchanged since this process last hashed it."""
        stamp = stamp_of(path)
        known = self._seen.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        digest = sha256_of(path)
        if stamp_of(path) == stamp:  # not written while we read it
            self._seen[path] = (stamp, digest)
        return digest
