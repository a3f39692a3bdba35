"""The fork server on its own: safe preloading, refusing bad requests, exiting with the hub."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartfab.errors import HubError
from smartfab.host.forkserver import ForkServer, ForkUse, LaunchRequest
from smartfab.hub.spawner import SINGLE_USER_SERVERS


def test_preload_imports_nothing_that_reads_the_environment_at_import() -> None:
    """Preloading imports the server stack but not the modules each user must import."""
    code = (
        "import json, sys; from smartfab.host.forkserver import ForkUse, preload; "
        f"preload(ForkUse.model_validate_json({SINGLE_USER_SERVERS.model_dump_json()!r})); "
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert {"jupyter_server", "jupyterlab", "jupyterhub"} <= loaded
    assert not loaded & set(SINGLE_USER_SERVERS.not_preloadable)


def test_a_use_that_preloads_what_it_must_not_is_refused(tmp_path: Path) -> None:
    """The fork server does not start when preloading imported a module of ``not_preloadable``."""
    use = ForkUse(name="bad", preload=("json",), not_preloadable=("json",), entry="json:dumps")
    with pytest.raises(HubError, match="exited with status 1"):
        ForkServer(tmp_path / "fs.sock", use).start()
    assert not (tmp_path / "fs.sock").exists()


#: an entry point that reports what it was launched with, then exits 0
PROBE_MODULE = """
import json, os, sys

def main():
    out = os.environ["SF_OUT"]
    with open(out + ".part", "w") as handle:
        json.dump({"argv": sys.argv, "cwd": os.getcwd(), "umask": os.umask(0)}, handle)
    os.rename(out + ".part", out)
    return 0
"""


def test_a_launch_runs_the_entry_point_of_its_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any use: the launched process has the request's argv, environment, umask and folder."""
    (tmp_path / "sf_probe.py").write_text(PROBE_MODULE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    server = ForkServer(
        tmp_path / "fs.sock", ForkUse(name="probe", preload=("sf_probe",), entry="sf_probe:main")
    )
    server.start()
    out = tmp_path / "out.json"
    request = LaunchRequest(
        argv=["probe", "--flag"],
        env={"SF_OUT": str(out)},
        uid=os.getuid(),
        gid=os.getgid(),
        groups=os.getgroups(),
        cwd=str(tmp_path),
        umask=0o027,
    )
    try:
        pid = asyncio.run(server.launch(request))
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        report = json.loads(out.read_text())
    finally:
        server.stop()
    assert pid > 0
    assert report == {"argv": ["probe", "--flag"], "cwd": str(tmp_path.resolve()), "umask": 0o027}


@pytest.fixture
def sf_fork_server(tmp_path: Path) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path / "fs.sock", SINGLE_USER_SERVERS)
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
