"""Putting the machine in the state the alliance describes: accounts, groups, folders, links
of each person, team workspace and team's dashboards.

Every step is idempotent and safe to re-run on each hub start, each server start and each start
of a team's Voila.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from smartfab.host import accounts
from smartfab.host.layout import TEAM_LINKS_DIR, Layout
from smartfab.host.settings import SpawnMode

#: useradd/usermod lock /etc/passwd and /etc/group; the hub runs spawns concurrently
_ACCOUNTS_LOCK = threading.Lock()


def ensure_workspace(layout: Layout, team_id: str) -> Path:
    """Team group, workspace account and team folder of ``team_id``; returns the folder."""
    folder = layout.team_folder(team_id)
    if layout.mode is SpawnMode.single:
        layout.team_datasets(team_id).mkdir(parents=True, exist_ok=True)
        layout.home(layout.workspace_user(team_id)).mkdir(parents=True, exist_ok=True)
        return folder
    group = layout.team_group(team_id)
    owner = layout.system_user(layout.workspace_user(team_id))
    with _ACCOUNTS_LOCK:
        accounts.ensure_group(group)
        accounts.ensure_user(owner, layout.home(layout.workspace_user(team_id)), group)
    accounts.ensure_team_folder(folder, owner, group)
    accounts.ensure_team_folder(layout.team_datasets(team_id), owner, group)
    return folder


def ensure_member(layout: Layout, hub_user: str, team_ids: Iterable[str]) -> Path:
    """Account (system mode), home and team links of a person; returns the home folder.

    In system mode the account's team groups become exactly those of ``team_ids``, so removing a
    person from a team also removes their file access at their next server start.
    """
    teams = sorted(set(team_ids))
    home = layout.home(hub_user)
    if layout.mode is SpawnMode.system:
        with _ACCOUNTS_LOCK:
            account = accounts.ensure_user(layout.system_user(hub_user), home)
            accounts.ensure_team_groups(
                account.pw_name, {layout.team_group(t) for t in teams}, layout.prefix
            )
        # an existing account keeps the home it was created with
        home = Path(account.pw_dir)
        uid, gid = account.pw_uid, account.pw_gid
    else:
        home.mkdir(parents=True, exist_ok=True)
        uid, gid = os.getuid(), os.getgid()
    links = home / TEAM_LINKS_DIR
    links.mkdir(exist_ok=True)
    os.chown(links, uid, gid)
    for team_id in teams:
        accounts.ensure_link(links / team_id, layout.team_folder(team_id))
    for stale in links.iterdir():
        if stale.is_symlink() and stale.name not in teams:
            stale.unlink()
    return home


def ensure_dashboard_account(layout: Layout, team_id: str) -> Path:
    """Account (system mode) and home of the Voila that renders ``team_id``'s dashboards;
    returns the home.

    In system mode the account ``<prefix>dash-<team>`` has its own user group and, as its only
    team group, the team's: its kernels read the team's curated datasets and nothing of any
    other team. The team group must exist (see :func:`ensure_workspace`).
    """
    return _ensure_team_service_account(layout, layout.dashboard_user(team_id), team_id)


def ensure_run_account(layout: Layout, team_id: str) -> Path:
    """Account (system mode) and home that run ``team_id``'s test-bench batches; returns the
    home.

    Like the dashboards account: ``<prefix>run-<team>``, its own user group and the team's
    group only, so its kernels read and write the team's folder and run store, the datasets
    granted to the team, and nothing of any other team.
    """
    return _ensure_team_service_account(layout, layout.run_user(team_id), team_id)


def _ensure_team_service_account(layout: Layout, name: str, team_id: str) -> Path:
    home = layout.home(name)
    if layout.mode is SpawnMode.single:
        home.mkdir(parents=True, exist_ok=True)
        return home
    with _ACCOUNTS_LOCK:
        account = accounts.ensure_user(layout.system_user(name), home)
        accounts.ensure_team_groups(account.pw_name, {layout.team_group(team_id)}, layout.prefix)
    return Path(account.pw_dir)


def provision(
    layout: Layout, team_ids: Iterable[str], members: Mapping[str, Iterable[str]]
) -> None:
    """The state directory, every team's workspace, and every person with a server of their own
    (``members``: hub user -> the teams whose folders they work in)."""
    layout.state.ensure()
    for team_id in team_ids:
        ensure_workspace(layout, team_id)
    for name, teams in members.items():
        ensure_member(layout, name, teams)
