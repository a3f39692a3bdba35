"""Restarting the hub keeps everyone's work: servers, kernels and the proxy outlive ``hub up``.

Stopping ``smartfab hub up`` (SIGTERM, as an operator or a service manager would) stops
JupyterHub and its managed services only; the same command again reuses the running proxy and
JupyterHub finds the servers again from its database. ``smartfab hub down`` stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.support.hubtools import SMARTFAB, RunningHub, execute_in_kernel, start_kernel

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def sf_restart_hub(sf_hub_factory: Callable[..., RunningHub]) -> RunningHub:
    """The demo alliance hub; the factory's teardown runs ``smartfab hub down``."""
    hub = sf_hub_factory()
    hub.start()
    return hub


def _status(hub: RunningHub) -> dict[str, Any]:
    done = subprocess.run(
        [SMARTFAB, "hub", "status", "--state-dir", str(hub.state_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def _server_pid(hub: RunningHub, user: str) -> int:
    pids = [s["pid"] for s in _status(hub)["servers"] if s["user"] == user]
    assert len(pids) == 1 and pids[0], _status(hub)
    return int(pids[0])


def _proxy_pid(hub: RunningHub) -> int:
    return int((hub.state_dir / "proxy.pid").read_text())


def _proxies(hub: RunningHub) -> list[int]:
    """Pids of every process started as this hub's proxy (its command names the pid file)."""
    marker = str(hub.state_dir / "proxy.pid")
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in (process.info["cmdline"] or []):
            found.append(process.pid)
    return found


def _gone(process: psutil.Process) -> bool:
    """Exited: no such process any more, or a zombie its parent has not reaped yet."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    return True


def _run(hub: RunningHub, token: str, kernel: str, code: str) -> str:
    result = asyncio.run(execute_in_kernel(hub.url, "ben", token, kernel, code))
    assert result["error"] is None, result
    return str(result["stdout"]).strip()


def test_servers_kernels_and_proxy_outlive_a_restart(sf_restart_hub: RunningHub) -> None:
    """ben's server and a kernel in it keep running while the hub is stopped and started
    again: same pids, same proxy, the kernel still holds its variables and answers."""
    hub = sf_restart_hub
    ben = hub.client("ben")
    ben.start_server()
    ben.wait_for_server()
    token = ben.token or ""
    kernel = start_kernel(hub.url, "ben", token)
    assert _run(hub, token, kernel, "x = 1 + 1; print(x)") == "2"
    server = psutil.Process(_server_pid(hub, "ben"))
    kernels = server.children(recursive=True)
    assert kernels, "the kernel runs below ben's server"
    proxy = _proxy_pid(hub)

    assert hub.stop(keep_servers=True) == 0, hub.log()[-4000:]
    assert "keep running" in hub.log() and "smartfab hub down" in hub.log()
    assert not any(_gone(p) for p in [server, *kernels])
    assert _proxies(hub) == [proxy]
    left = _status(hub)
    assert not left["running"] and left["proxy_running"], left
    assert [(s["user"], s["pid"]) for s in left["servers"]] == [("ben", server.pid)]

    hub.start()
    assert f"proxy: pid {proxy} (still running, reused)" in hub.log()
    assert _proxies(hub) == [proxy]
    ben.wait_for_server()
    assert _server_pid(hub, "ben") == server.pid
    listed = ben.server_api("GET", "ben", "kernels").json()
    assert kernel in [k["id"] for k in listed]
    assert _run(hub, token, kernel, "print(x, 1 + 1)") == "2 2"
    assert server.children(recursive=True) == kernels


def test_a_proxy_that_dies_is_started_again_with_its_routes(sf_restart_hub: RunningHub) -> None:
    """The proxy killed while the hub runs: the launcher starts a new one with the routes it
    had, and ben reaches his server through it again."""
    hub = sf_restart_hub
    ben = hub.client("ben")
    killed = psutil.Process(_proxy_pid(hub))
    killed.kill()
    answered = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if killed.pid not in _proxies(hub):
            with contextlib.suppress(requests.RequestException):
                answered = ben.server_api("GET", "ben", "status").status_code
            if answered == 200:
                break
        time.sleep(0.5)
    assert answered == 200, hub.log()[-4000:]
    assert len(_proxies(hub)) == 1 and _proxies(hub) == [_proxy_pid(hub)]
    assert f"the proxy (pid {killed.pid}) exited; starting it again" in hub.log()


def test_hub_down_stops_hub_servers_kernels_and_proxy(sf_restart_hub: RunningHub) -> None:
    """`smartfab hub down` on a running hub: no launcher, hub, proxy, server or kernel is left;
    a second `hub down` has nothing to do and succeeds."""
    hub = sf_restart_hub
    assert hub.proc is not None and hub.proc.poll() is None
    run = json.loads((hub.state_dir / "hub-run.json").read_text())
    server = psutil.Process(_server_pid(hub, "ben"))
    processes = [
        psutil.Process(run["launcher_pid"]),
        psutil.Process(run["hub_pid"]),
        psutil.Process(_proxy_pid(hub)),
        server,
        *server.children(recursive=True),
    ]
    assert len(processes) > 4 and not any(_gone(p) for p in processes)

    done = hub.down()
    assert done is not None
    assert "stopped the hub" in done.stdout and "stopped the proxy" in done.stdout, done.stdout
    assert f"ben (pid {server.pid})" in done.stdout
    assert hub.proc.wait(timeout=60) == 0, hub.log()[-4000:]
    left = [p.pid for p in processes if not _gone(p)]
    assert not left, left
    assert _proxies(hub) == []
    assert not (hub.state_dir / "proxy.pid").exists()

    again = hub.down()
    assert again is not None and "was running" in again.stdout, again.stdout
    status = _status(hub)
    assert not status["running"] and not status["proxy_running"] and status["servers"] == []


@pytest.mark.parametrize("kind", ["missing", "not-a-state-dir"])
def test_hub_down_refuses_what_is_no_state_dir(tmp_path: Path, kind: str) -> None:
    """A state directory that does not exist, or holds no hub: exit 3, naming the folder."""
    folder = tmp_path / "no-such-state" if kind == "missing" else tmp_path
    done = subprocess.run(
        [SMARTFAB, "hub", "down", "--state-dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done
    assert str(folder) in done.stderr
