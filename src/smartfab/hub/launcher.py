"""``smartfab hub up``: validate, provision, start the proxy and JupyterHub; ``smartfab hub down``.

Stopping ``hub up`` (Ctrl-C, SIGTERM) stops JupyterHub and its managed services but leaves the
proxy and every single-user server running, so the hub can be restarted or upgraded without
ending anyone's work: the next ``hub up`` on the same state directory reuses the proxy and
JupyterHub finds the servers again from its database. ``hub down`` stops what is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psutil

from smartfab.alliance import Alliance
from smartfab.errors import HubError
from smartfab.host.layout import Layout
from smartfab.host.outliving import ServerRegistry, process_of
from smartfab.host.provision import provision
from smartfab.host.settings import SETTINGS_ENV, HubSettings, SpawnMode
from smartfab.host.state import SETTINGS_FILE, StateDir, write_private_file
from smartfab.hub.processes import (
    STOP_GRACE_SECONDS,
    become_subreaper,
    catches_signal,
    ensure_port_free,
    install_stop_signals,
    pid_alive,
    reap_exited_children,
    stop_descendants,
    stop_processes,
    stop_tree,
    wait_until_ready,
)
from smartfab.hub.proxy import (
    ProxyRun,
    add_routes,
    ensure_proxy,
    proxy_routes,
    reusable_proxy,
    start_proxy,
    stop_proxy,
)
from smartfab.hub.services import load_checked_alliance, prepare_services

PACKAGED_CONFIG = Path(__file__).with_name("default_jupyterhub_config.py")

#: the launcher checks that its proxy runs every this many half-second ticks (2 s), and notes
#: its routes every ROUTES_TICKS (30 s: the proxy logs every request of its API)
PROXY_CHECK_TICKS = 4
ROUTES_TICKS = 60

SINGLE_MODE_WARNING = """\
!!! WARNING: single-account mode: ISOLATION IS OFF !!!
Every user's server runs as {account}; any user can read and change every other user's
and every team's files. Use this only for development. Run the hub as root for
system-account mode, where each user runs as their own system account."""


def hub_config_for(alliance_file: Path) -> Path:
    """``jupyterhub_config.py`` beside the alliance file, else the packaged one."""
    beside = alliance_file.parent / "jupyterhub_config.py"
    return beside if beside.is_file() else PACKAGED_CONFIG


def check_not_running(state: StateDir) -> None:
    run = state.read_run_file()
    if run and pid_alive(run.get("launcher_pid")):
        raise HubError(
            f"a hub already runs from {state.root} (pid {run['launcher_pid']}, {run.get('url')}); "
            "stop it first or use another --state-dir"
        )


def prepare(settings: HubSettings, alliance: Alliance) -> Layout:
    """Everything before the hub starts: free ports, state directory, accounts, settings file."""
    if settings.spawn_mode is SpawnMode.system and os.geteuid() != 0:
        raise HubError(
            "system-account mode needs root (it creates one system account per user); "
            "run as root or use --spawn-mode single for development"
        )
    state = StateDir(settings.state_dir)
    check_not_running(state)
    if reusable_proxy(settings) is None:
        stop_proxy(state)  # one left by an earlier hub up with other ports: not ours to reuse
        ensure_port_free(settings.ip, settings.port, "hub")
        ensure_port_free("127.0.0.1", settings.proxy_api_port, "proxy API")
    ensure_port_free("127.0.0.1", settings.hub_port, "hub API")
    layout = Layout.from_settings(settings)
    provision_alliance(layout, alliance)
    prepare_services(settings, alliance)
    settings.save()
    return layout


def provision_alliance(layout: Layout, alliance: Alliance) -> None:
    """The state directory, every team workspace and every person's account the alliance file
    names (a person works in the folders of the teams they are a worker of)."""
    members = {
        name: [team.id for team in alliance.teams if name in team.workers]
        for name in alliance.server_owners
    }
    provision(layout, [team.id for team in alliance.teams], members)


@dataclass
class HubRun:
    """One running hub: the proxy, the JupyterHub process and the facts ``smartfab hub status``
    reads."""

    settings: HubSettings
    config_file: Path
    out: TextIO = field(default=sys.stdout)
    proc: subprocess.Popen[bytes] | None = None
    proxy: ProxyRun | None = None
    #: the proxy's routing table as last seen, put back into a proxy started anew
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def state(self) -> StateDir:
        return StateDir(self.settings.state_dir)

    @property
    def servers(self) -> ServerRegistry:
        return ServerRegistry(self.state.servers)

    def start(self) -> None:
        # whatever the hub leaves behind when it dies (services) stays ours to stop
        become_subreaper()
        self.proxy = ensure_proxy(self.settings)
        env = dict(os.environ)
        env[SETTINGS_ENV] = str(self.settings.settings_file)
        cmd = [sys.executable, "-m", "jupyterhub", "-f", str(self.config_file)]
        # a session of its own: the terminal's Ctrl-C reaches us, and we stop the hub in order
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.settings.state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"{self.settings.url}hub/api/"
        proc = self.proc
        wait_until_ready(
            url,
            alive=lambda: proc.poll() is None,
            # up means started in full: services running, SIGTERM stops it in order
            started=lambda: catches_signal(proc.pid, signal.SIGTERM),
        )
        write_private_file(
            self.state.run_file,
            json.dumps(
                {
                    "launcher_pid": os.getpid(),
                    "hub_pid": self.proc.pid,
                    "proxy_pid": self.proxy.pid,
                    "url": self.settings.url,
                    "spawn_mode": self.settings.spawn_mode.value,
                    "alliance_file": str(self.settings.alliance_file),
                    "started_at": time.time(),
                },
                indent=2,
            ),
            mode=0o644,
        )

    def request_stop(self, signum: int = 0) -> None:
        self._stop.set()

    def wait(self) -> int:
        """Block until a stop is requested or the hub exits; then stop the hub."""
        assert self.proc is not None
        ticks = 0
        while not self._stop.is_set() and self.proc.poll() is None:
            # orphans we adopted that exit are reaped here; the hub's Popen reaps the hub
            reap_exited_children(spare=self.proc.pid)
            if ticks % PROXY_CHECK_TICKS == 0:
                self.watch_proxy(note_routes=ticks % ROUTES_TICKS == 0)
            ticks += 1
            self._stop.wait(0.5)
        return self.stop()

    def watch_proxy(self, note_routes: bool = True) -> None:
        """Note the proxy's routes; should it have died, start it again with those routes.

        JupyterHub does not watch a proxy it did not start, and checks its routes only every
        few minutes: without this a dead proxy would cut everyone off until then.
        """
        assert self.proxy is not None
        try:
            if process_of(self.proxy.pid) is not None:
                if note_routes:
                    self.routes = proxy_routes(self.settings)
                return
            self.out.write(f"the proxy (pid {self.proxy.pid}) exited; starting it again\n")
            self.out.flush()
            self.proxy = start_proxy(self.settings)
            add_routes(self.settings, self.routes)
        except (HubError, OSError, ValueError) as err:  # tried again at the next check
            self.out.write(f"the proxy does not answer: {err}\n")
            self.out.flush()

    def outliving(self) -> list[int]:
        """Pids of what outlives the hub: the proxy and the recorded single-user servers."""
        pids = [record.pid for record, _ in self.servers.running()]
        return [self.proxy.pid, *pids] if self.proxy is not None else pids

    def stop(self) -> int:
        """Stop the hub, then every orphan it left us but the proxy and the servers; return the
        hub's status."""
        code = 0
        if self.proc is not None:
            code = stop_tree(self.proc, keep=self.outliving)
        stop_descendants(keep=self.outliving)
        self.state.run_file.unlink(missing_ok=True)
        return code

    def abort(self) -> None:
        """After a failed start: stop it all, the proxy too when this run started it."""
        self.stop()
        if self.proxy is not None and not self.proxy.reused:
            stop_proxy(self.state)

    def left_running(self) -> str:
        """One line: what keeps running after the hub stopped, and how to stop it."""
        servers = len(self.servers.running())
        proxy = f"the proxy (pid {self.proxy.pid})" if self.proxy is not None else "the proxy"
        return (
            f"{proxy} and {servers} single-user server{'s' if servers != 1 else ''} keep "
            f"running; stop them all with: smartfab hub down --state-dir {self.state.root}"
        )


def announce(run: HubRun, alliance: Alliance) -> None:
    settings = run.settings
    print = run.out.write
    print(f"smartfab hub for {alliance.alliance.name} is up at {settings.url}\n")
    if settings.spawn_mode is SpawnMode.system:
        print(
            "spawn mode: system accounts (each user runs as their own system account "
            f"'{settings.account_prefix}<name>'; team folders are guarded by OS groups)\n"
        )
    else:
        print(SINGLE_MODE_WARNING.format(account=os.environ.get("USER", "this account")) + "\n")
    print(f"state directory: {settings.state_dir}\n")
    print(
        f"initial passwords: {run.state.passwords}/<name> (one 0600 file per account, "
        "written once when the account is created)\n"
    )
    if run.proxy is not None:
        how = "still running, reused" if run.proxy.reused else "started"
        print(f"proxy: pid {run.proxy.pid} ({how}); log: {run.state.proxy_log}\n")
    print(
        "Ctrl-C or SIGTERM stops the hub and leaves the proxy and servers running "
        "(restart with the same command); 'smartfab hub down' stops everything\n"
    )
    run.out.flush()


def hub_up(settings: HubSettings, config_file: Path | None = None, out: TextIO = sys.stdout) -> int:
    """Validate, provision and run the hub until Ctrl-C or SIGTERM; return the exit status."""
    # every problem of the file at once, grants of datasets and dashboards that exist included
    alliance = load_checked_alliance(settings.alliance_file, settings.state_dir)
    if config_file is not None and not config_file.is_file():
        raise HubError(f"{config_file}: JupyterHub config file not found")
    prepare(settings, alliance)
    run = HubRun(settings, config_file or hub_config_for(settings.alliance_file), out=out)
    install_stop_signals(run.request_stop)
    try:
        run.start()
    except BaseException:
        run.abort()
        raise
    announce(run, alliance)
    code = run.wait()
    out.write(f"smartfab hub stopped; {run.left_running()}\n")
    out.flush()
    return code


#: files of a state directory that only smartfab writes: one of them must be there for hub down
STATE_MARKERS = (SETTINGS_FILE, "hub-run.json", "proxy.pid", "servers", "proxy-auth-token")


def check_state_dir(state: StateDir) -> None:
    """Refuse a folder that does not exist or holds no hub's state, naming it."""
    if not state.root.is_dir():
        raise HubError(f"{state.root}: no such state directory")
    if not any((state.root / name).exists() for name in STATE_MARKERS):
        raise HubError(
            f"{state.root} is not the state directory of a smartfab hub "
            f"(it has none of {', '.join(STATE_MARKERS)})"
        )


def _recorded(run: dict[str, object], key: str) -> psutil.Process | None:
    """The process the run file names under ``key``, if it still runs (one that started after
    the hub was up has reused the pid and is not it)."""
    pid = run.get(key)
    process = process_of(pid if isinstance(pid, int) else None)
    started_at = run.get("started_at")
    if process is None or not isinstance(started_at, (int, float)):
        return None
    return process if process.create_time() <= started_at else None


def stop_hub(state: StateDir) -> list[str]:
    """Stop the launcher of ``state`` (which stops JupyterHub), or JupyterHub alone when its
    launcher is gone; return what was stopped."""
    run = state.read_run_file() or {}
    stopped = []
    for key in ("launcher_pid", "hub_pid"):
        process = _recorded(run, key)
        if process is not None:
            # the launcher takes up to STOP_GRACE_SECONDS for the hub, then its orphans
            stop_processes([process], grace=STOP_GRACE_SECONDS + 30, tree=False)
            stopped.append(f"{key.removesuffix('_pid')} pid {process.pid}")
    state.run_file.unlink(missing_ok=True)
    return stopped


def stop_servers(state: StateDir) -> list[str]:
    """Stop every recorded single-user server still running (kernels with it); forget all."""
    registry = ServerRegistry(state.servers)
    running = registry.running(prune=True)
    stop_processes([process for _, process in running])
    for record, _ in running:
        registry.forget(record.pid)
    return [f"{record.label} (pid {record.pid})" for record, _ in running]


def hub_down(state: StateDir, out: TextIO = sys.stdout) -> int:
    """Stop everything of the deployment in ``state``: the hub if it runs, the single-user
    servers, the proxy. Idempotent: what is not running is skipped."""
    check_state_dir(state)
    hub = stop_hub(state)
    servers = stop_servers(state)
    proxy = stop_proxy(state)
    if hub:
        out.write(f"stopped the hub ({', '.join(hub)})\n")
    if servers:
        plural = "s" if len(servers) != 1 else ""
        out.write(f"stopped {len(servers)} single-user server{plural}: {', '.join(servers)}\n")
    if proxy is not None:
        out.write(f"stopped the proxy (pid {proxy})\n")
    if not (hub or servers or proxy):
        out.write(f"nothing of the hub in {state.root} was running\n")
    out.write(f"smartfab hub down: nothing runs from {state.root}\n")
    return 0
