"""The spawner of the alliance hub: one local process per server, as the right system account."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Enum, List, Unicode, default

from smartfab.alliance.models import WORKSPACE_PREFIX
from smartfab.hub.layout import Layout
from smartfab.hub.provision import ensure_member, ensure_workspace
from smartfab.hub.settings import SpawnMode
from smartfab.hub.state import StateDir

#: files created by servers are shared with the team group and hidden from everyone else
SERVER_UMASK = 0o007


class SmartfabSpawner(LocalProcessSpawner):  # type: ignore[misc]
    """Start each server as a local process, provisioning its account and folders first.

    In ``system`` mode a person's server runs as ``<prefix><name>`` with the team groups of the
    hub groups they belong to; a team workspace (hub user ``team-<id>``) runs as
    ``<prefix>team-<id>`` with the team folder as its root. In ``single`` mode every server runs
    as the hub's own account: there is no isolation.
    """

    spawn_mode = Enum(
        [m.value for m in SpawnMode],
        default_value=SpawnMode.system.value,
        help="'system': one system account per hub user (needs root); 'single': no isolation.",
    ).tag(config=True)
    account_prefix = Unicode(
        "sf-", help="Prefix of system account and group names created by smartfab."
    ).tag(config=True)
    home_root = Unicode(
        "/home", help="Directory holding the homes of system accounts (system mode)."
    ).tag(config=True)
    state_dir = Unicode(help="The hub's state directory (team folders, single-mode homes).").tag(
        config=True
    )
    team_ids = List(
        Unicode(), help="Ids of teams: hub groups with these names own a team folder."
    ).tag(config=True)

    @default("popen_kwargs")
    def _popen_kwargs_default(self) -> dict[str, Any]:
        # servers must never read the operator's terminal (jupyter_server prompts on it)
        return {"stdin": subprocess.DEVNULL}

    @property
    def layout(self) -> Layout:
        return Layout(
            prefix=self.account_prefix,
            mode=SpawnMode(self.spawn_mode),
            home_root=Path(self.home_root),
            state=StateDir(Path(self.state_dir)),
        )

    @property
    def workspace_team(self) -> str | None:
        """Team id when this server is a team workspace, else None."""
        name: str = self.user.name
        team = name.removeprefix(WORKSPACE_PREFIX)
        return team if name.startswith(WORKSPACE_PREFIX) and team in self.team_ids else None

    @property
    def member_teams(self) -> list[str]:
        """Teams whose hub group this user is in (viewer groups carry no folder)."""
        return sorted(g.name for g in self.user.groups if g.name in self.team_ids)

    @property
    def system_user(self) -> str:
        return self.layout.system_user(self.user.name)

    def _provision(self) -> str:
        team = self.workspace_team
        if team is not None:
            return str(ensure_workspace(self.layout, team))
        return str(ensure_member(self.layout, self.user.name, self.member_teams))

    async def start(self) -> Any:
        """Provision account, groups, home and links, then start the server there."""
        self.notebook_dir = await asyncio.to_thread(self._provision)
        return await super().start()

    async def stop(self, now: bool = False) -> None:
        """Stop the server with SIGTERM (then SIGKILL after ``term_timeout``).

        LocalProcessSpawner sends SIGINT first, but jupyter_server only treats SIGINT as a clean
        stop when its stdin is a terminal; otherwise SIGINT skips its cleanup and the process
        lingers until SIGTERM anyway. SIGTERM always shuts kernels down in order.
        """
        await super().stop(now=True)

    def get_args(self) -> list[str]:
        args: list[str] = list(super().get_args())
        if self.spawn_mode == SpawnMode.single.value and os.geteuid() == 0:
            args.append("--allow-root")
        return args

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        # a workspace starts in the team folder, so consoles and terminals open there too
        start_in = self.notebook_dir if self.workspace_team is not None else None
        if self.spawn_mode == SpawnMode.single.value:
            home = str(self.layout.home(self.user.name))

            def single() -> None:
                os.umask(SERVER_UMASK)
                os.chdir(start_in or home)

            return single
        become_user = set_user_setuid(self.system_user)

        def system() -> None:
            os.umask(SERVER_UMASK)
            become_user()
            if start_in:
                os.chdir(start_in)

        return system

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        if self.spawn_mode == SpawnMode.single.value:
            env["USER"] = self.user.name
            env["HOME"] = str(self.layout.home(self.user.name))
            env["SHELL"] = "/bin/bash"
            return env
        import pwd

        account = pwd.getpwnam(self.system_user)
        env["USER"] = account.pw_name
        env["HOME"] = account.pw_dir
        env["SHELL"] = account.pw_shell or "/bin/bash"
        return env
