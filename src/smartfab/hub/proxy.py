"""Finding the locally installed configurable-http-proxy."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from smartfab.errors import HubError

PROXY_BIN = Path("node_modules") / ".bin" / "configurable-http-proxy"
PROXY_ENV = "SMARTFAB_PROXY_COMMAND"


def _candidates(starts: Iterable[Path]) -> Iterable[Path]:
    for start in starts:
        for folder in (start, *start.parents):
            yield folder / PROXY_BIN


def find_proxy(starts: Iterable[Path]) -> list[str]:
    """The proxy command: ``$SMARTFAB_PROXY_COMMAND``, else ``node_modules/.bin`` in one of
    ``starts`` or their parents (the project's local npm install), else ``PATH``."""
    env = os.environ.get(PROXY_ENV)
    if env:
        command = env.split()
        if shutil.which(command[0]) is None:
            raise HubError(f"{PROXY_ENV}={env!r}: {command[0]} is not an executable")
        return command
    for candidate in _candidates(Path(s).resolve() for s in starts):
        if os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which("configurable-http-proxy")
    if found:
        return [found]
    raise HubError(
        "configurable-http-proxy not found: run 'npm ci' in the smartfab checkout "
        f"(it installs the pinned proxy into {PROXY_BIN}) or set {PROXY_ENV}"
    )
