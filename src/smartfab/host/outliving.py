"""Processes that outlive the hub: single-user servers and test-bench batches, recorded by pid.

The spawner records each server it starts and the test bench each batch process, in the state
directory's ``servers/`` folder; ``smartfab hub up`` leaves them running when it stops and
``smartfab hub down`` stops them. A pid is only trusted together with the creation time of the
process it was recorded for, so a pid reused by another process is never signalled.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from smartfab.host.state import write_private_file

__all__ = ["ServerRecord", "ServerRegistry", "process_of"]


def process_of(pid: int | None, started: float | None = None) -> psutil.Process | None:
    """The live process ``pid`` (not a zombie), or None.

    With ``started`` (the creation time psutil reported when the pid was recorded), only that
    very process: a process that reused the pid since is not it.
    """
    if not pid:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if started is not None and abs(process.create_time() - started) > 0.05:
            return None
    except psutil.NoSuchProcess:
        return None
    return process


@dataclass(frozen=True)
class ServerRecord:
    """One single-user server as its spawner recorded it."""

    pid: int
    #: the creation time of the process (psutil's), which tells it from a later one with its pid
    started: float
    user: str
    server: str = ""

    @classmethod
    def of(cls, pid: int, user: str, server: str = "") -> ServerRecord:
        return cls(pid=pid, started=psutil.Process(pid).create_time(), user=user, server=server)

    @property
    def label(self) -> str:
        return f"{self.user}/{self.server}" if self.server else self.user


class ServerRegistry:
    """The single-user servers a hub started, one JSON file per server named by its pid.

    Written by the spawner when a server starts and when it is gone; read by the launcher (which
    leaves these servers running when it stops) and by ``smartfab hub down`` (which stops them).
    Independent of the hub's database, so it is there whatever database the hub uses and
    whether or not the hub runs.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _file(self, pid: int) -> Path:
        return self.folder / f"{pid}.json"

    def record(self, record: ServerRecord) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_file(self._file(record.pid), json.dumps(asdict(record)))

    def forget(self, pid: int) -> None:
        self._file(pid).unlink(missing_ok=True)

    def records(self) -> list[ServerRecord]:
        """Every record, running or not (unreadable files are skipped)."""
        found = []
        for path in sorted(self.folder.glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                found.append(ServerRecord(**json.loads(path.read_text())))
        return found

    def running(self, prune: bool = False) -> list[tuple[ServerRecord, psutil.Process]]:
        """The recorded servers still running; with ``prune``, forget the others."""
        alive = []
        for record in self.records():
            process = process_of(record.pid, record.started)
            if process is not None:
                alive.append((record, process))
            elif prune:
                self.forget(record.pid)
        return alive
