"""Who a single-user server lets in (smartfab.hub.guard), without a hub."""

from __future__ import annotations

import time
from pathlib import Path

from smartfab.host.breakglass import BreakGlass, log_path
from smartfab.host.names import TEAM_FOLDERS_ENV, TEAMS_ENV
from smartfab.hub.guard import admission, team_folders


def _env(tmp_path: Path, *teams: str) -> dict[str, str]:
    folders = ":".join(f"{t}={tmp_path / t}" for t in teams)
    return {TEAMS_ENV: ",".join(teams), TEAM_FOLDERS_ENV: folders}


def _enter(tmp_path: Path, admin: str, team: str, until: float) -> None:
    path = log_path(tmp_path / team)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = BreakGlass(admin=admin, team=team, reason="support ticket", opened_at=0, until=until)
    with path.open("a") as out:
        out.write(entry.model_dump_json() + "\n")


def test_owner_team_and_services_are_let_in(tmp_path: Path) -> None:
    env = _env(tmp_path, "acme")
    assert admission({"name": "ben", "groups": ["acme"]}, "ben", env) == "its owner"
    assert admission({"name": "ben", "groups": ["acme"]}, "team-acme", env) == (
        "a member of team acme"
    )
    assert admission({"name": "idle-culler", "kind": "service"}, "ben", env)


def test_anyone_else_needs_an_open_break_glass_of_the_servers_team(tmp_path: Path) -> None:
    env = _env(tmp_path, "acme")
    olga = {"name": "olga", "groups": []}
    assert admission(olga, "team-acme", env) is None
    assert admission({"name": "vera", "groups": ["voltronic"]}, "team-acme", env) is None
    _enter(tmp_path, "olga", "acme", until=time.time() - 1)  # expired
    _enter(tmp_path, "olga", "voltronic", until=time.time() + 600)  # another team
    assert admission(olga, "team-acme", env) is None
    _enter(tmp_path, "mallory", "acme", until=time.time() + 600)  # someone else's
    assert admission(olga, "team-acme", env) is None
    _enter(tmp_path, "olga", "acme", until=time.time() + 600)
    assert admission(olga, "team-acme", env) == "break-glass into acme"
    # a member's own server: through break-glass into one of the owner's teams
    assert admission(olga, "ben", env) == "break-glass into acme"


def test_a_torn_or_foreign_log_line_is_ignored(tmp_path: Path) -> None:
    path = log_path(tmp_path / "acme")
    path.parent.mkdir(parents=True)
    path.write_text('{"admin": "olga", "team": "acme"\nnot json\n')
    assert admission({"name": "olga"}, "team-acme", _env(tmp_path, "acme")) is None


def test_team_folders_parse_pairs() -> None:
    assert team_folders("a=/x:b=/y/z:bad") == {"a": Path("/x"), "b": Path("/y/z")}
