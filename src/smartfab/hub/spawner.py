"""The spawner of the alliance hub: one local process per server, as the right system account."""

from __future__ import annotations

import asyncio
import functools
import os
import pwd
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import psutil
from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Bool, Dict, Enum, Float, List, Unicode, default

from smartfab.errors import ForkServerError
from smartfab.host.forkprotocol import Account, ForkUse, Launch, Lifetime
from smartfab.host.forkserver import ForkServer
from smartfab.host.layout import Layout
from smartfab.host.names import WORKSPACE_PREFIX
from smartfab.host.outliving import ServerRecord, ServerRegistry, process_of
from smartfab.host.privileges import become
from smartfab.host.provision import ensure_member, ensure_workspace
from smartfab.host.settings import SpawnMode
from smartfab.host.state import StateDir

#: files created by servers are shared with the team group and hidden from everyone else
SERVER_UMASK = 0o007

#: single-user servers as the fork server runs them: the server stack imported once
SINGLE_USER_SERVERS = ForkUse(
    name="single-user servers",
    preload=(
        "jupyterhub.singleuser",
        "jupyter_server.serverapp",
        "jupyterlab",
        "jupyterlab.labapp",
        "jupyter_lsp",
        "jupyter_server_terminals",
        "jupyter_collaboration",
        "notebook_shim",
        # real-time collaboration's document stack (jupyter_server_ydoc itself imports fileid)
        "jupyter_ydoc",
        "pycrdt",
        "anyio",
    ),
    # jupyter_server_fileid takes its database path from the home of the account that imports
    # it (root's, in the fork server): each server must import it as its own user
    not_preloadable=("jupyter_server_fileid", "jupyter_server_ydoc"),
    entry="smartfab.hub.singleuser:run",
    # servers keep running while the hub restarts (cleanup_servers = False)
    lifetime=Lifetime.outlive_server,
)


#: the singleuser entry point decides at import between two modes: only the default one is warm
MODE_VARIABLES = ("JUPYTERHUB_SINGLEUSER_APP", "JUPYTERHUB_SINGLEUSER_EXTENSION")


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

    team_grants = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        help="Datasets the alliance file grants to each team (team id -> dataset ids).",
    ).tag(config=True)

    use_fork_server = Bool(
        True,
        help="Fork servers from a process with Jupyter already imported (about 0.2 instead of "
        "1.5 CPU-seconds per start); False starts each one as a new process.",
    ).tag(config=True)

    pid_started = Float(
        0.0,
        help="Creation time of the server's process (psutil's), kept in the spawner's state: "
        "after a restart of the hub it tells the server from a process that reused its pid.",
    )

    port: int  # a traitlet of Spawner; declared for the type checker only
    pid: int  # a traitlet of LocalProcessSpawner; declared for the type checker only

    #: one fork server per hub process, started on the first spawn
    _fork_server: ClassVar[ForkServer | None] = None
    _fork_server_lock: ClassVar[asyncio.Lock | None] = None
    _fork_server_failed: ClassVar[bool] = False

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

    @property
    def registry(self) -> ServerRegistry:
        """Where servers are recorded, for ``smartfab hub down`` and the launcher."""
        return ServerRegistry(StateDir(Path(self.state_dir)).servers)

    async def start(self) -> Any:
        """Provision account, groups, home and links, then start the server there; record it."""
        address = await self._start()
        try:
            record = ServerRecord.of(self.pid, self.user.name, self.name)
        except psutil.NoSuchProcess:
            return address  # gone already: the hub finds it not answering
        self.pid_started = record.started
        await asyncio.to_thread(self.registry.record, record)
        return address

    async def _start(self) -> Any:
        self.notebook_dir = await asyncio.to_thread(self._provision)
        if self.port == 0:
            self.port = random_port()  # before get_env(): the environment carries the URL
        env = self.get_env()
        if not self._can_fork(env):
            return await super().start()
        try:
            server = await self._get_fork_server()
        except ForkServerError as err:
            self.log.warning("Starting servers without the fork server: %s", err)
            type(self)._fork_server_failed = True
            return await super().start()
        identity = self._identity()
        cwd = identity.pop("cwd")
        request = Launch(
            argv=[*self.cmd, *self.get_args()],
            env=env,
            cwd=cwd,
            account=Account(umask=SERVER_UMASK, **identity),
        )
        self.pid = (await server.launch(request)).pid
        self.proc = None
        self.log.info("Forked server for %s as pid %i", self.user.name, self.pid)
        return (self.ip or "127.0.0.1", self.port)

    def _can_fork(self, env: dict[str, str]) -> bool:
        """The fork server runs this environment's jupyterhub-singleuser in its default mode."""
        singleuser = str(Path(sys.executable).parent / "jupyterhub-singleuser")
        return (
            self.use_fork_server
            and not type(self)._fork_server_failed
            and list(self.cmd) == [singleuser]
            and not self.shell_cmd
            and not any(env.get(name) for name in MODE_VARIABLES)
        )

    async def _get_fork_server(self) -> ForkServer:
        cls = type(self)
        if cls._fork_server_lock is None:
            cls._fork_server_lock = asyncio.Lock()
        async with cls._fork_server_lock:
            if cls._fork_server is None or not cls._fork_server.running:
                server = ForkServer(SINGLE_USER_SERVERS)
                await server.start()
                cls._fork_server = server
            return cls._fork_server

    def _identity(self) -> dict[str, Any]:
        """Who the server runs as and where it starts: its home, or a workspace's team folder
        (so consoles and terminals open there too)."""
        if self.spawn_mode == SpawnMode.single.value:
            identity: dict[str, Any] = {
                "uid": os.getuid(),
                "gid": os.getgid(),
                "groups": os.getgroups(),
                "cwd": str(self.layout.home(self.user.name)),
            }
        else:
            account = pwd.getpwnam(self.system_user)
            identity = {
                "uid": account.pw_uid,
                "gid": account.pw_gid,
                "groups": os.getgrouplist(account.pw_name, account.pw_gid),
                "cwd": account.pw_dir,
            }
        if self.workspace_team is not None:
            identity["cwd"] = str(self.notebook_dir)
        return identity

    async def poll(self) -> int | None:
        """Whether the server runs, also for a server this hub process did not start (after a
        restart of the hub it is no child of ours: it is found by pid and creation time)."""
        if self.proc is None and self.pid and self._process() is None:
            self.clear_state()
            return 0
        status: int | None = await super().poll()
        return status

    def _process(self) -> psutil.Process | None:
        """The server's process if it still runs (the one recorded, not a reuse of its pid)."""
        return process_of(self.pid, self.pid_started or None)

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.pid and self.pid_started:
            state["pid_started"] = self.pid_started
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.pid_started = float(state.get("pid_started", 0.0))

    def clear_state(self) -> None:
        """Forget the server; its record too once its process is gone (one that would not
        stop stays recorded, for ``smartfab hub down``)."""
        if self.pid and self._process() is None:
            self.registry.forget(self.pid)
        super().clear_state()
        self.pid_started = 0.0

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
        """For servers started as new processes: the same identity as forked ones."""
        return functools.partial(become, umask=SERVER_UMASK, **self._identity())

    def dataset_env(self) -> dict[str, str]:
        """What the dataset catalog in the server needs: teams, grants, shared build folders."""
        team = self.workspace_team
        teams = [team] if team is not None else self.member_teams
        return self.layout.dataset_environment(teams, self.team_grants)

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env.update(self.dataset_env())
        if self.spawn_mode == SpawnMode.single.value:
            env["USER"] = self.user.name
            env["HOME"] = str(self.layout.home(self.user.name))
            env["SHELL"] = "/bin/bash"
            return env
        account = pwd.getpwnam(self.system_user)
        env["USER"] = account.pw_name
        env["HOME"] = account.pw_dir
        env["SHELL"] = account.pw_shell or "/bin/bash"
        return env
