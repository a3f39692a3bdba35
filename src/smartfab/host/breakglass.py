"""Break-glass: an alliance admin's explicit, logged and time-limited entry into one team's
workspace, servers, run store and reports.

Admins manage accounts, teams and services; they are not a way into a team's work. An entry is
one JSON line in the team's log, ``<team folder>/.testbench/break-glass.log`` (readable by the
team's group, so its leads and members see who entered, when, why and until when). The test
bench writes entries (:mod:`smartfab.testbench`); the team's servers read the log to let such an
admin in until the entry expires (:mod:`smartfab.hub.guard`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

#: the folder of a team's test-bench files, inside the team folder
TEAM_BENCH_DIR = ".testbench"
#: the log of break-glass entries into a team, in that folder
LOG_NAME = "break-glass.log"


class BreakGlass(BaseModel):
    """One entry: who, into which team, why, from when until when (epoch seconds)."""

    model_config = ConfigDict(extra="forbid")

    admin: str
    team: str
    reason: str
    opened_at: float
    until: float

    def open_at(self, now: float) -> bool:
        return self.opened_at <= now < self.until


def log_path(team_folder: Path) -> Path:
    """The break-glass log of the team whose folder is ``team_folder``."""
    return team_folder / TEAM_BENCH_DIR / LOG_NAME


def read_entries(path: Path) -> list[BreakGlass]:
    """Every well-formed entry of the log at ``path`` (none when it does not exist)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, PermissionError):
        return []
    entries = []
    for line in lines:
        try:
            entries.append(BreakGlass.model_validate(json.loads(line)))
        except (ValueError, ValidationError):
            continue  # a torn last line of a log being written
    return entries


def admitted(admin: str, team_folders: dict[str, Path], now: float | None = None) -> list[str]:
    """The teams (of ``team_folders``: team id -> folder) whose log holds an entry of
    ``admin`` open at ``now``."""
    moment = time.time() if now is None else now

    def holds(team: str, folder: Path) -> bool:
        entries = read_entries(log_path(folder))
        return any(e.admin == admin and e.team == team and e.open_at(moment) for e in entries)

    return sorted(team for team, folder in team_folders.items() if holds(team, folder))
