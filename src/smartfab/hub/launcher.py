"""``smartfab hub up``: validate, provision, start JupyterHub with its proxy, stop it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from smartfab.alliance import Alliance
from smartfab.errors import HubError
from smartfab.host.layout import Layout
from smartfab.host.provision import provision
from smartfab.host.settings import SETTINGS_ENV, HubSettings, SpawnMode
from smartfab.host.state import StateDir, write_private_file
from smartfab.hub.processes import (
    become_subreaper,
    ensure_port_free,
    install_stop_signals,
    pid_alive,
    reap_exited_children,
    stop_descendants,
    stop_tree,
    wait_until_ready,
)
from smartfab.hub.services import load_checked_alliance, prepare_services

PACKAGED_CONFIG = Path(__file__).with_name("default_jupyterhub_config.py")

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
    ensure_port_free(settings.ip, settings.port, "hub")
    ensure_port_free("127.0.0.1", settings.hub_port, "hub API")
    ensure_port_free("127.0.0.1", settings.proxy_api_port, "proxy API")
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
    """One running hub: the JupyterHub process and the facts ``smartfab hub status`` reads."""

    settings: HubSettings
    config_file: Path
    out: TextIO = field(default=sys.stdout)
    proc: subprocess.Popen[bytes] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def state(self) -> StateDir:
        return StateDir(self.settings.state_dir)

    def start(self) -> None:
        env = dict(os.environ)
        env[SETTINGS_ENV] = str(self.settings.settings_file)
        cmd = [sys.executable, "-m", "jupyterhub", "-f", str(self.config_file)]
        # whatever the hub leaves behind when it dies (proxy, services) stays ours to stop
        become_subreaper()
        # a session of its own: the terminal's Ctrl-C reaches us, and we stop the hub in order
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.settings.state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"{self.settings.url}hub/api/"
        wait_until_ready(url, alive=lambda: self.proc is not None and self.proc.poll() is None)
        write_private_file(
            self.state.run_file,
            json.dumps(
                {
                    "launcher_pid": os.getpid(),
                    "hub_pid": self.proc.pid,
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
        """Block until a stop is requested or the hub exits; then stop everything."""
        assert self.proc is not None
        while not self._stop.is_set() and self.proc.poll() is None:
            # orphans we adopted that exit are reaped here; the hub's Popen reaps the hub
            reap_exited_children(spare=self.proc.pid)
            self._stop.wait(0.5)
        return self.stop()

    def stop(self) -> int:
        """Stop the hub and its tree, then every orphan it left us; return the hub's status."""
        code = 0
        if self.proc is not None:
            code = stop_tree(self.proc)
        stop_descendants()
        self.state.run_file.unlink(missing_ok=True)
        return code


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
    print("stop with Ctrl-C or SIGTERM\n")
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
        run.stop()
        raise
    announce(run, alliance)
    code = run.wait()
    out.write("smartfab hub stopped\n")
    return code
