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
