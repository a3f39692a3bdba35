"""``smartfab hub status``: what runs from a state directory."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from smartfab.host.outliving import ServerRegistry
from smartfab.host.state import StateDir
from smartfab.hub.processes import pid_alive, read_pid


@dataclass
class HubStatus:
    """Processes and servers of one hub."""

    state_dir: str
    running: bool
    url: str | None = None
    spawn_mode: str | None = None
    launcher_pid: int | None = None
    hub_pid: int | None = None
    proxy_pid: int | None = None
    proxy_running: bool = False
    servers: list[dict[str, Any]] = field(default_factory=list)
    api_error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def render(self) -> str:
        if not self.running:
            return "\n".join([f"no hub runs from {self.state_dir}", *self._left_running()])
        lines = [
            f"hub: running at {self.url} "
            f"(launcher pid {self.launcher_pid}, hub pid {self.hub_pid})",
            f"spawn mode: {self.spawn_mode}",
            f"proxy: {'running' if self.proxy_running else 'NOT running'} (pid {self.proxy_pid})",
        ]
        if self.api_error:
            lines.append(f"hub API: {self.api_error}")
        else:
            lines.append(f"servers running: {len(self.servers)}")
            lines += [
                f"  {s['user']}: {s['url']} (since {s['started']}, pid {s.get('pid')})"
                for s in self.servers
            ]
        return "\n".join(lines)

    def _left_running(self) -> list[str]:
        """What a stopped hub left running (``smartfab hub down`` stops it)."""
        left = [f"server of {s['user']} (pid {s['pid']})" for s in self.servers]
        if self.proxy_running:
            left.insert(0, f"proxy (pid {self.proxy_pid})")
        if not left:
            return []
        return [
            f"still running: {', '.join(left)}",
            f"stop them with: smartfab hub down --state-dir {self.state_dir}",
        ]


def _api(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _recorded_servers(state: StateDir) -> dict[tuple[str, str], int]:
    """(user, server name) -> pid of the single-user servers recorded as running."""
    return {
        (record.user, record.server): record.pid
        for record, _ in ServerRegistry(state.servers).running()
    }


def hub_status(state: StateDir) -> HubStatus:
    """Inspect the run file, the processes and the hub API of the hub in ``state``."""
    run = state.read_run_file()
    recorded = _recorded_servers(state)
    if not run or not pid_alive(run.get("launcher_pid")):
        status = HubStatus(state_dir=str(state.root), running=False)
        status.proxy_pid = read_pid(state.proxy_pid)
        status.proxy_running = pid_alive(status.proxy_pid)
        status.servers = [
            {"user": user, "server": server, "pid": pid}
            for (user, server), pid in sorted(recorded.items())
        ]
        return status
    status = HubStatus(
        state_dir=str(state.root),
        running=pid_alive(run.get("hub_pid")),
        url=run.get("url"),
        spawn_mode=run.get("spawn_mode"),
        launcher_pid=run.get("launcher_pid"),
        hub_pid=run.get("hub_pid"),
        proxy_pid=read_pid(state.proxy_pid),
    )
    status.proxy_running = pid_alive(status.proxy_pid)
    try:
        token = state.status_token.read_text().strip()
        users = _api(f"{status.url}hub/api/users?state=active", token)
    except (OSError, urllib.error.URLError, json.JSONDecodeError) as err:
        status.api_error = str(err)
        return status
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            status.servers.append(
                {
                    "user": user["name"],
                    "server": name,
                    "url": server.get("url"),
                    "started": server.get("started"),
                    "pid": recorded.get((user["name"], name)),
                }
            )
    return status
