"""The launcher stays in charge of everything the hub started, even when the hub dies.

``smartfab hub up`` is a child subreaper: when JupyterHub is killed, its services are
re-parented to the launcher instead of PID 1, and the launcher stops and reaps them by pid. The
proxy (the launcher's own child) and the single-user servers are spared: they outlive the hub
until ``smartfab hub down``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.support.hubtools import ROOT, RunningHub

pytestmark = pytest.mark.hub


def _kill_and_reap(processes: list[psutil.Process], timeout: float = 30) -> None:
    """SIGKILL those of ``processes`` still running (psutil refuses a reused pid); reap them."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    deadline = time.monotonic() + timeout
    while (left := [p for p in processes if p.is_running()]) and time.monotonic() < deadline:
        for process in left:  # ours when adopted; else reaped by their own parent
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, os.WNOHANG)
        time.sleep(0.05)


def _still_there(pid: int, marker: str) -> psutil.Process | None:
    """Process ``pid`` if it was not reaped: a zombie, or alive with ``marker`` in its command."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or marker in process.cmdline():
            return process
    return None


def _start_hub(factory: Callable[..., RunningHub]) -> tuple[RunningHub, psutil.Process]:
    """A started hub (single mode) and its JupyterHub process, the launcher's child."""
    hub = factory(spawn_mode="single")
    hub.start()
    assert hub.proc is not None
    hub_pid = json.loads((hub.state_dir / "hub-run.json").read_text())["hub_pid"]
    jupyterhub = psutil.Process(hub_pid)
    assert jupyterhub.ppid() == hub.proc.pid
    return hub, jupyterhub


def test_killed_hub_leaves_no_orphaned_services_and_keeps_the_proxy(
    sf_subreaper: None, sf_hub_factory: Callable[..., RunningHub]
) -> None:
    """SIGKILL to JupyterHub: the launcher exits non-zero and stops its services; the proxy,
    the launcher's own child, keeps running for the next start until `smartfab hub down`."""
    hub, jupyterhub = _start_hub(sf_hub_factory)
    assert hub.proc is not None
    below: list[psutil.Process] = []
    proxy = psutil.Process(int((hub.state_dir / "proxy.pid").read_text()))
    try:
        assert proxy.ppid() == hub.proc.pid
        assert "configurable-http-proxy" in " ".join(proxy.cmdline())
        below = jupyterhub.children(recursive=True)
        commands = {p.pid: " ".join(p.cmdline()) for p in below}
        assert any("jupyterhub_idle_culler" in c for c in commands.values()), commands
        assert any("smartfab.dashboards" in c for c in commands.values()), commands

        jupyterhub.send_signal(signal.SIGKILL)
        code = hub.proc.wait(timeout=60)
        assert code != 0, hub.log()[-4000:]
        left = {p.pid: commands[p.pid] for p in below if p.is_running()}  # zombies too
        assert not left, hub.log()[-4000:]
        assert not (hub.state_dir / "hub-run.json").exists()
        assert proxy.is_running() and proxy.status() != psutil.STATUS_ZOMBIE
        assert "smartfab hub down" in hub.log()

        hub.down()
        proxy.wait(timeout=30)  # adopted by us (a subreaper) when the launcher exited: reaped
        assert not proxy.is_running()
    finally:
        if hub.proc.poll() is None:
            hub.stop(timeout=30)
        _kill_and_reap([*below, proxy])


def test_orphans_exiting_while_the_hub_runs_are_reaped(
    sf_subreaper: None, sf_hub_factory: Callable[..., RunningHub]
) -> None:
    """A service killed while the hub runs: its Voila processes, orphaned to the launcher, exit
    (``PR_SET_PDEATHSIG``) and are reaped by it; the launcher and the hub go on running."""
    hub, jupyterhub = _start_hub(sf_hub_factory)
    assert hub.proc is not None
    below: list[psutil.Process] = []
    try:
        services = [
            p for p in jupyterhub.children() if "smartfab.dashboards" in " ".join(p.cmdline())
        ]
        assert len(services) == 1, services
        below = services[0].children(recursive=True)
        assert any("voila" in " ".join(p.cmdline()) for p in below), below

        services[0].kill()
        deadline = time.monotonic() + 60
        while any(p.is_running() for p in below) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p.pid for p in below if p.is_running()]
        assert not left, hub.log()[-4000:]
        assert hub.proc.poll() is None
        assert jupyterhub.is_running()
    finally:
        hub.stop(timeout=60)
        _kill_and_reap(below)


# A JupyterHub config that starts a process of its own, then crashes the hub during start-up.
_CRASHING_CONFIG = """\
import os, subprocess, sys
orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", {pid_file!r}])
with open({pid_file!r}, "w") as out:
    out.write(str(orphan.pid))
os._exit(1)
"""


def test_hub_dying_during_start_up_leaves_no_orphans(
    sf_subreaper: None, sf_hub_factory: Callable[..., RunningHub], tmp_path: Path
) -> None:
    """A hub that exits during start-up: the launcher fails (3) and stops what the hub started."""
    pid_file = tmp_path / "orphan.pid"
    config = tmp_path / "crashing_config.py"
    config.write_text(_CRASHING_CONFIG.format(pid_file=str(pid_file)))
    hub = sf_hub_factory(spawn_mode="single", extra_args=["--hub-config", str(config)])
    with pytest.raises(RuntimeError, match="exited 3"):
        hub.start()
    assert "the hub exited during start-up" in hub.log()
    assert pid_file.exists(), hub.log()[-4000:]
    orphan = _still_there(int(pid_file.read_text()), marker=str(pid_file))
    try:
        assert orphan is None, hub.log()[-4000:]
    finally:
        _kill_and_reap([orphan] if orphan else [])


# Started with ``python -c``: becomes a subreaper, starts two sleepers through a middle process
# that exits at once (it prints their pids), then serves the test's requests, one line each.
_SUBREAPER = """\
import os, subprocess, sys
from smartfab.hub.processes import become_subreaper, reap_exited_children, stop_descendants

become_subreaper()
orphans = (
    "import subprocess, sys; "
    "print(*(subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL).pid for _ in 'ab'))"
)
sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
middle = subprocess.run(
    [sys.executable, "-c", orphans, *sleeper], stdout=subprocess.PIPE, text=True, check=True
)
print(middle.stdout.strip(), flush=True)
for line in sys.stdin:
    if line.startswith("reap"):
        spared = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
        os.waitid(os.P_PID, spared.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        reap_exited_children(spare=spared.pid)
        print(spared.wait(), flush=True)
    elif line.startswith("stop"):
        stop_descendants(grace=5)
        print("stopped", flush=True)
"""


@dataclass
class SubreaperProcess:
    """A process that called ``become_subreaper``, and two grandchildren orphaned below it."""

    proc: subprocess.Popen[str]
    orphans: list[psutil.Process]

    def ask(self, request: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()


@pytest.fixture
def sf_subreaper_process(sf_subreaper: None) -> Iterator[SubreaperProcess]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SUBREAPER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    orphans: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        orphans = [psutil.Process(int(pid)) for pid in proc.stdout.readline().split()]
        assert len(orphans) == 2
        yield SubreaperProcess(proc, orphans)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        _kill_and_reap(orphans)


def test_subreaper_adopts_orphans(sf_subreaper_process: SubreaperProcess) -> None:
    """Grandchildren whose parent exited are re-parented to the subreaper, not to PID 1."""
    for orphan in sf_subreaper_process.orphans:
        assert orphan.ppid() == sf_subreaper_process.proc.pid
        assert orphan.status() != psutil.STATUS_ZOMBIE


def test_adopted_orphans_are_reaped_and_stopped(sf_subreaper_process: SubreaperProcess) -> None:
    """An exited orphan is reaped, the spared child is not (its Popen sees status 7); stopping
    the rest terminates and reaps it, leaving the subreaper without children."""
    first, second = sf_subreaper_process.orphans
    first.kill()
    deadline = time.monotonic() + 10
    while first.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.status() == psutil.STATUS_ZOMBIE

    assert sf_subreaper_process.ask("reap") == "7"
    assert not first.is_running()
    assert second.is_running() and second.status() != psutil.STATUS_ZOMBIE

    assert sf_subreaper_process.ask("stop") == "stopped"
    assert not second.is_running()
    assert psutil.Process(sf_subreaper_process.proc.pid).children() == []
