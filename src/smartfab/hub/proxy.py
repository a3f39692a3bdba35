"""The configurable-http-proxy of a hub: finding it, starting it, finding it again, stopping it.

The launcher of ``smartfab hub up`` runs the proxy, not JupyterHub (which is told
``should_start = False``): the proxy outlives the hub, so a restarted hub finds every route of
the servers that kept running. The proxy names its state directory's pid file on its command
line (``--pid-file``), which tells it from any other process that reuses its pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from smartfab.errors import HubError
from smartfab.host.outliving import process_of
from smartfab.host.settings import HubSettings
from smartfab.host.state import StateDir
from smartfab.hub.processes import read_pid, stop_processes

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


def proxy_arguments(settings: HubSettings) -> list[str]:
    """The proxy's options: what JupyterHub would give it, and the state directory's pid file."""
    return [
        "--ip", settings.ip,
        "--port", str(settings.port),
        "--api-ip", "127.0.0.1",
        "--api-port", str(settings.proxy_api_port),
        "--error-target", f"http://127.0.0.1:{settings.hub_port}/hub/error",
        "--log-level", "info",
        "--pid-file", str(StateDir(settings.state_dir).proxy_pid),
    ]  # fmt: skip


def running_proxy(state: StateDir) -> psutil.Process | None:
    """The proxy started for ``state`` if it still runs: the process in the pid file whose
    command line names that pid file."""
    process = process_of(read_pid(state.proxy_pid))
    try:
        if process is not None and str(state.proxy_pid) in process.cmdline():
            return process
    except psutil.Error:
        pass
    return None


def _routes_api(
    settings: HubSettings, method: str = "GET", path: str = "", body: Any = None
) -> Any:
    """Call the proxy's REST API (``/api/routes<path>``) with the state directory's token."""
    token = StateDir(settings.state_dir).proxy_token.read_text().strip()
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.proxy_api_port}/api/routes"
        + urllib.parse.quote(path, safe="/@~"),
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        data = response.read()
    return json.loads(data) if data else None


def proxy_answers(settings: HubSettings) -> bool:
    """Whether the proxy API on the settings' port answers to the state directory's token."""
    try:
        _routes_api(settings)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return True


def proxy_routes(settings: HubSettings) -> dict[str, dict[str, Any]]:
    """The proxy's routing table: path -> target and JupyterHub's data."""
    routes: dict[str, dict[str, Any]] = _routes_api(settings)
    return routes


def add_routes(settings: HubSettings, routes: dict[str, dict[str, Any]]) -> None:
    """Put ``routes`` (as :func:`proxy_routes` returned them) into the proxy."""
    for path, route in routes.items():
        body = {key: value for key, value in route.items() if key != "last_activity"}
        _routes_api(settings, "POST", path, body)


def reusable_proxy(settings: HubSettings) -> psutil.Process | None:
    """The running proxy of the settings' state directory, if a hub started with ``settings``
    can use it: same options (ports, hub address) and its API answers to our token."""
    process = running_proxy(StateDir(settings.state_dir))
    if process is None:
        return None
    expected = proxy_arguments(settings)
    try:
        same = process.cmdline()[-len(expected) :] == expected
    except psutil.Error:
        return None
    return process if same and proxy_answers(settings) else None


@dataclass
class ProxyRun:
    """The proxy a hub uses: its pid, and its process when this launcher started it."""

    pid: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def reused(self) -> bool:
        return self.proc is None


def start_proxy(settings: HubSettings, timeout: float = 30.0) -> ProxyRun:
    """Start the proxy in a session of its own, logging to the state directory; wait until its
    API answers."""
    state = StateDir(settings.state_dir)
    env = dict(os.environ)
    env["CONFIGPROXY_AUTH_TOKEN"] = state.proxy_token.read_text().strip()
    state.proxy_pid.unlink(missing_ok=True)
    log = os.open(state.proxy_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [*settings.proxy_command, *proxy_arguments(settings)],
            cwd=state.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # neither the terminal's Ctrl-C nor the launcher's end
        )
    except OSError as err:
        raise HubError(f"cannot start the proxy {settings.proxy_command[0]}: {err}") from err
    finally:
        os.close(log)
    deadline = time.monotonic() + timeout
    while not (proxy_answers(settings) and read_pid(state.proxy_pid)):
        if proc.poll() is not None:
            raise HubError(
                f"the proxy exited during start-up ({proc.returncode}): see {state.proxy_log}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise HubError(
                f"the proxy did not answer within {timeout:.0f} s: see {state.proxy_log}"
            )
        time.sleep(0.1)
    return ProxyRun(pid=read_pid(state.proxy_pid) or proc.pid, proc=proc)


def ensure_proxy(settings: HubSettings) -> ProxyRun:
    """The proxy still running from the last ``hub up`` of this state directory, else a new
    one (stopping a left-over one that does not fit ``settings``)."""
    process = reusable_proxy(settings)
    if process is not None:
        return ProxyRun(pid=process.pid)
    stop_proxy(StateDir(settings.state_dir))
    return start_proxy(settings)


def stop_proxy(state: StateDir, grace: float = 10.0) -> int | None:
    """Stop the proxy of ``state`` if it runs; return its pid (None when none ran)."""
    process = running_proxy(state)
    if process is not None:
        stop_processes([process], grace=grace)
    state.proxy_pid.unlink(missing_ok=True)
    return process.pid if process is not None else None
