"""Starting, watching and stopping the hub process and everything it starts.

What outlives a hub (its proxy, the single-user servers and their kernels, the test bench's
batches) is found again by pid: the proxy's in its pid file, the others' in the
:class:`~smartfab.host.outliving.ServerRegistry` of the state directory.
A pid is only trusted together with the creation time of the process it was recorded for, so a
pid reused by another process is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

import psutil

from smartfab.errors import HubError
from smartfab.host.outliving import process_of
from smartfab.prctl import PR_SET_CHILD_SUBREAPER, prctl


def ensure_port_free(ip: str, port: int, what: str) -> None:
    """Fail early, naming the port, when something already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip or "0.0.0.0", port))
        except OSError as err:
            raise HubError(f"{what} port {port} on {ip or '0.0.0.0'} is not free: {err}") from err


def wait_until_ready(
    url: str,
    alive: Callable[[], bool],
    timeout: float = 90.0,
    interval: float = 0.2,
    started: Callable[[], bool] = lambda: True,
) -> None:
    """Poll ``url`` until it answers 200 and ``started()`` holds, the process dies, or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise HubError("the hub exited during start-up; its log above says why")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200 and started():
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    raise HubError(f"the hub did not answer at {url} within {timeout:.0f} s")


def catches_signal(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` of ``/proc/<pid>/status``).

    JupyterHub answers its API before it has started its services and set its handler of
    SIGTERM; a SIGTERM before that kills it without stopping them.
    """
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def descendants(pid: int) -> list[psutil.Process]:
    """Every live process below ``pid`` (proxy, services, single-user servers, kernels)."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


#: longer than JupyterHub's own shutdown of a server (SIGINT, 30 s, SIGTERM, 5 s, SIGKILL)
STOP_GRACE_SECONDS = 60.0


def stop_tree(
    proc: subprocess.Popen[bytes],
    keep: Callable[[], Collection[int]] = tuple,
    grace: float = STOP_GRACE_SECONDS,
) -> int:
    """Ask the hub to shut down (SIGTERM), then kill whatever it left behind but ``keep``.

    JupyterHub stops its services itself; anything else below it still alive after ``grace``
    seconds (or started in a new session and orphaned) is killed by pid, except the processes
    ``keep()`` names once the hub is gone (the proxy and the servers) and their descendants.
    """
    below = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    kept = with_descendants(keep())
    survivors = [p for p in below if p.pid not in kept and p.is_running() and not _exited(p)]
    for process in survivors:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, still = psutil.wait_procs(survivors, timeout=10)
    for process in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return proc.returncode if proc.returncode is not None else 0


def with_descendants(pids: Iterable[int]) -> set[int]:
    """``pids`` and the pids of every live process below them."""
    found = set(pids)
    for pid in list(found):
        found.update(p.pid for p in descendants(pid))
    return found


def become_subreaper() -> None:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    When the hub dies (a crash during start-up, SIGKILL), the proxy and the services it started
    are re-parented to this process rather than to PID 1, so :func:`stop_descendants` still finds
    them. Their zombies are ours to reap from then on (:func:`reap_exited_children`).
    """
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def _exited(process: psutil.Process) -> bool:
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def reap_exited_children(spare: int | None = None) -> None:
    """Reap every exited child of this process except ``spare``.

    ``spare`` is the hub: its :class:`subprocess.Popen` must reap it itself, or it would never
    learn the exit status.
    """
    for child in psutil.Process().children():
        if child.pid != spare and _exited(child):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, os.WNOHANG)


def stop_descendants(
    keep: Callable[[], Collection[int]] = tuple, grace: float = 10.0, interval: float = 0.1
) -> None:
    """Stop every process below this one by pid (SIGTERM, ``grace`` seconds, SIGKILL); reap all.

    For the launcher once its hub is reaped: what is left below it are orphans it adopted as a
    subreaper. The processes ``keep()`` names and their descendants are spared (the proxy and
    the single-user servers, which outlive the launcher). Nothing is chosen by name; a process
    that a dying parent leaves to us while this runs is stopped and reaped too.
    """
    me = psutil.Process()

    def alive() -> list[psutil.Process]:
        reap_exited_children()
        kept = with_descendants(keep())
        return [p for p in me.children(recursive=True) if p.pid not in kept and not _exited(p)]

    for process in alive():
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(interval)
    deadline = time.monotonic() + grace
    while (left := alive()) and time.monotonic() < deadline:
        for process in left:  # what would not stop, and anything started meanwhile
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        time.sleep(interval)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with ``pid`` runs (and is not a zombie)."""
    return process_of(pid) is not None


def install_stop_signals(handler: Callable[[int], None]) -> None:
    """Route SIGINT and SIGTERM to ``handler`` (called once with the signal number)."""

    def on_signal(signum: int, frame: object) -> None:
        handler(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None when there is none or it holds no number."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _signal(process: psutil.Process, signum: int, group: bool = False) -> None:
    """Signal ``process`` (and its process group when it leads one and ``group``)."""
    try:
        if group and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    except (PermissionError, psutil.AccessDenied) as err:
        raise HubError(
            f"not allowed to stop pid {process.pid}: run as the account that runs the hub"
        ) from err


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each of ``processes`` is gone or a zombie (reaping our own); return the rest."""
    deadline = time.monotonic() + timeout
    while True:
        for process in processes:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, os.WNOHANG)
        left = [p for p in processes if p.is_running() and not _exited(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def stop_processes(roots: list[psutil.Process], grace: float = 30.0, tree: bool = True) -> None:
    """Stop ``roots`` by pid: SIGTERM (a server shuts its kernels down), and after ``grace``
    seconds SIGKILL to what is left of them and, with ``tree``, of their process groups and
    their descendants (without: a launcher, whose proxy and servers outlive it)."""
    below = [child for root in roots for child in descendants(root.pid)] if tree else []
    for root in roots:
        _signal(root, signal.SIGTERM)
    left = _wait_gone(roots, grace)
    below = [p for p in below if p.is_running() and not _exited(p)]
    for process in left:
        _signal(process, signal.SIGKILL, group=tree)
    for process in below:
        _signal(process, signal.SIGKILL)
    _wait_gone(left + below, grace)
