"""The one fork server on its own: safe preloading, launches, bad requests, both lifetimes."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from smartfab.errors import ForkServerError
from smartfab.host.forkprotocol import Account, Exec, ForkUse, Launch, Lifetime
from smartfab.host.forkserver import ForkServer
from smartfab.hub.spawner import SINGLE_USER_SERVERS
from smartfab.runs.kernels.forked import RUN_KERNELS

T = TypeVar("T")

#: entry points that say what they were launched as: in a file, or as their report
PROBE_MODULE = """
import json, os, sys

def facts(launched):
    return {
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "umask": os.umask(0),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "env": os.environ.get("SF_PROBE"),
        "payload": launched.request.payload,
        "sid_is_pid": os.getsid(0) == os.getpid(),
        "stdin": os.readlink("/proc/self/fd/0"),
    }

def write(launched):
    out = os.environ["SF_OUT"]
    with open(out + ".part", "w") as handle:
        json.dump(facts(launched), handle)
    os.rename(out + ".part", out)
    return 3

def report(launched):
    launched.report(facts(launched))
    return 0

def report_then_sleep(launched):
    launched.report({"pid": os.getpid()})
    import time
    time.sleep(600)
"""


def _use(entry: str, **kwargs: Any) -> ForkUse:
    return ForkUse(name="probe", preload=("sf_probe",), entry=f"sf_probe:{entry}", **kwargs)


@pytest.fixture
def sf_probe_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The probe module, importable by fork servers started from here."""
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "sf_probe.py").write_text(PROBE_MODULE)
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    return folder


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(factory())


async def _started(use: ForkUse) -> ForkServer:
    server = ForkServer(use)
    await server.start(timeout=60)
    return server


async def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not path.exists():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path} was not written in {timeout} s")
        await asyncio.sleep(0.05)


# -- preloading ----------------------------------------------------------------------------------


def test_preload_imports_nothing_that_reads_the_environment_at_import() -> None:
    """Preloading imports the server stack but not the modules each user must import."""
    code = (
        "import json, sys; from smartfab.host.forkprocess import preload; "
        "from smartfab.host.forkprotocol import ForkUse; "
        f"preload(ForkUse.model_validate_json({SINGLE_USER_SERVERS.model_dump_json()!r})); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout))
    loaded = {name.split(".")[0] for name in modules}
    assert {"jupyter_server", "jupyterlab", "jupyterhub"} <= loaded
    assert not loaded & set(SINGLE_USER_SERVERS.not_preloadable)
    # the entry point's module is imported once, not by every server, and it is a small one
    assert "smartfab.hub.singleuser" in modules
    assert "smartfab.hub.spawner" not in modules


def test_a_use_whose_entry_point_cannot_be_imported_is_refused() -> None:
    use = ForkUse(name="missing", entry="sf_no_such_module:main")
    with pytest.raises(ForkServerError, match="missing exited with status 1 while preloading"):
        _run(lambda: _started(use))


def test_a_use_that_preloads_what_it_must_not_is_refused() -> None:
    """The fork server does not start when preloading imported a module of ``not_preloadable``."""
    use = ForkUse(name="bad", preload=("json",), not_preloadable=("json",), entry="json:dumps")
    with pytest.raises(ForkServerError, match="bad exited with status 1 while preloading"):
        _run(lambda: _started(use))


def test_the_preload_hook_answers_in_the_hello() -> None:
    """Run kernels: the hook's answer (top-level names only the stack imported) reaches the
    owner, and the kernel modules are not among them."""

    async def scenario() -> Any:
        server = await _started(RUN_KERNELS)
        try:
            return server.preloaded
        finally:
            await server.stop()

    preloaded = set(_run(scenario))
    assert {"numpy", "xarray", "pandas"} <= preloaded
    assert not preloaded & {"ipykernel", "IPython", "json"}


# -- launches ------------------------------------------------------------------------------------


def test_a_launch_runs_the_entry_point_with_the_requested_argv_environment_and_folder(
    sf_probe_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"

    async def scenario() -> tuple[int, dict[str, Any]]:
        server = await _started(_use("write"))
        try:
            request = Launch(
                argv=["probe", "--flag"],
                env={"SF_OUT": str(out), "SF_PROBE": "yes"},
                cwd=str(tmp_path),
                account=Account(
                    uid=os.getuid(), gid=os.getgid(), groups=os.getgroups(), umask=0o027
                ),
                payload={"k": [1, 2]},
            )
            child = await server.launch(request)
            code = await asyncio.wait_for(child.wait(), 30)
            return code, json.loads(out.read_text())
        finally:
            await server.stop()

    code, facts = _run(scenario)
    assert code == 3  # the entry point's return value is the exit status
    assert facts["argv"] == ["probe", "--flag"]
    assert facts["cwd"] == str(tmp_path.resolve())
    assert facts["umask"] == 0o027
    assert facts["env"] == "yes"
    assert facts["payload"] == {"k": [1, 2]}
    assert facts["sid_is_pid"] and facts["stdin"] == os.devnull


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another account needs root")
def test_a_launch_becomes_the_requested_account(sf_probe_path: Path) -> None:
    """As root: uid, gid and exactly the supplementary groups asked for."""
    nobody = pwd.getpwnam("nobody")
    sf_probe_path.chmod(0o755)
    sf_probe_path.parent.chmod(0o755)

    async def scenario() -> dict[str, Any]:
        server = await _started(_use("report", reports=True))
        try:
            account = Account(uid=nobody.pw_uid, gid=nobody.pw_gid, groups=[], umask=0o077)
            request = Launch(argv=["probe"], cwd="/", account=account)
            _, facts = await server.launch_reported(request, timeout=30)
            return facts
        finally:
            await server.stop()

    facts = _run(scenario)
    assert (facts["uid"], facts["gid"], facts["groups"]) == (nobody.pw_uid, nobody.pw_gid, [])
    assert facts["umask"] == 0o077


def test_a_program_is_executed_and_its_exit_reported(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        server = await _started(RUN_KERNELS)
        try:
            ok = await server.execute(
                Exec(argv=["sh", "-c", "exit 7"], env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
            )
            missing = await server.execute(
                Exec(argv=["/nonexistent/program"], env={}, cwd=str(tmp_path))
            )
            return await ok.wait(), await missing.wait()
        finally:
            await server.stop()

    assert _run(scenario) == (7, 127)


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"op": "launch", "argv": []}', b'{"op": "signal", "pid": -1, "signum": 9}'],
    ids=["garbage", "empty-argv", "negative-pid"],
)
def test_bad_requests_are_refused_and_the_server_goes_on(
    sf_probe_path: Path, payload: bytes
) -> None:
    async def scenario() -> dict[str, Any]:
        server = await _started(_use("report", reports=True))
        try:
            assert server._sock is not None
            await asyncio.get_running_loop().sock_sendall(server._sock, payload)
            await asyncio.sleep(0.2)
            assert server.running
            _, facts = await server.launch_reported(Launch(argv=["after"]), timeout=30)
            return facts
        finally:
            await server.stop()

    assert _run(scenario)["argv"] == ["after"]


def test_a_launch_that_dies_before_reporting_is_an_error(sf_probe_path: Path) -> None:
    async def scenario() -> None:
        server = await _started(_use("write", reports=True))  # no SF_OUT: KeyError, exit 1
        try:
            await server.launch_reported(Launch(argv=["x"], env={}), timeout=30)
        finally:
            await server.stop()

    with pytest.raises(ForkServerError, match="exited with status 1 while starting"):
        _run(scenario)


# -- lifetimes -----------------------------------------------------------------------------------


def _child_of_a_stopped_server(lifetime: Lifetime, leftover: Path) -> tuple[int, int]:
    """Launch a child that reports and sleeps, stop its server; return (child, server) pids."""

    async def scenario() -> tuple[int, int]:
        server = await _started(_use("report_then_sleep", reports=True, lifetime=lifetime))
        leftover.write_text("connection")
        _, report = await server.launch_reported(
            Launch(argv=["sleeper"], remove_on_exit=str(leftover)), timeout=30
        )
        await server.stop()
        assert server.pid is not None
        return int(report["pid"]), server.pid

    return _run(scenario)


def test_children_of_a_die_with_server_use_end_with_it(sf_probe_path: Path, tmp_path: Path) -> None:
    """Run kernels' lifetime: closing the lifeline kills and reaps every child and removes
    its file."""
    leftover = tmp_path / "kernel.json"
    pid, server_pid = _child_of_a_stopped_server(Lifetime.die_with_server, leftover)
    assert not psutil.pid_exists(server_pid)
    assert not psutil.pid_exists(pid)  # killed and reaped: not even a zombie
    assert not leftover.exists()


def test_children_of_an_outlive_server_use_keep_running(
    sf_probe_path: Path, tmp_path: Path, sf_subreaper: None
) -> None:
    """Single-user servers' lifetime: the server ends with its owner, the children do not."""
    leftover = tmp_path / "kept"
    pid, server_pid = _child_of_a_stopped_server(Lifetime.outlive_server, leftover)
    try:
        assert not psutil.pid_exists(server_pid)
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        assert leftover.exists()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # adopted by this process, the subreaper
