"""The fork server on its own: safe preloading, refusing bad requests, exiting with the hub."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartfab.hub.forkserver import NOT_PRELOADABLE, ForkServer, LaunchRequest


def test_preload_imports_nothing_that_reads_the_environment_at_import() -> None:
    """Preloading imports the server stack but not the modules each user must import."""
    code = (
        "import json, sys; from smartfab.hub.forkserver import _preload; _preload(); "
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert {"jupyter_server", "jupyterlab", "jupyterhub"} <= loaded
    assert not loaded & set(NOT_PRELOADABLE)


@pytest.fixture
def sf_fork_server(tmp_path: Path) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path / "fs.sock")
    server.start()
    yield server
    server.stop()


def _ask(path: Path, payload: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(path))
        conn.sendall(payload)
        reply: dict[str, object] = json.loads(conn.makefile().readline())
        return reply


def test_socket_is_private(sf_fork_server: ForkServer) -> None:
    assert sf_fork_server.socket_path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "payload",
    [b"not json\n", b'{"argv": []}\n', b'{"argv": ["x"], "env": {}, "uid": -1}\n'],
    ids=["garbage", "empty-argv", "negative-uid"],
)
def test_bad_requests_are_refused_and_the_server_goes_on(
    sf_fork_server: ForkServer, payload: bytes
) -> None:
    reply = _ask(sf_fork_server.socket_path, payload)
    assert "error" in reply and "pid" not in reply
    assert sf_fork_server.running
    ok = LaunchRequest(argv=["x"], env={}, uid=0, gid=0, cwd="/", umask=0o077)
    assert ok.argv == ["x"]


def test_exits_when_the_hub_goes_away(sf_fork_server: ForkServer) -> None:
    """Closing the lifeline (the hub exiting) ends the fork server and removes its socket."""
    sf_fork_server.stop()
    assert not sf_fork_server.running
    assert not sf_fork_server.socket_path.exists()
