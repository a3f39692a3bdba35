"""Starting, watching and stopping the hub process and everything it starts."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import psutil

from smartfab.errors import HubError
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
    url: str, alive: Callable[[], bool], timeout: float = 90.0, interval: float = 0.2
) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise HubError("the hub exited during start-up; its log above says why")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    raise HubError(f"the hub did not answer at {url} within {timeout:.0f} s")


def descendants(pid: int) -> list[psutil.Process]:
    """Every live process below ``pid`` (proxy, services, single-user servers, kernels)."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


#: longer than JupyterHub's own shutdown of a server (SIGINT, 30 s, SIGTERM, 5 s, SIGKILL)
STOP_GRACE_SECONDS = 60.0


def stop_tree(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> int:
    """Ask the hub to shut down (SIGTERM), then kill whatever it left behind.

    JupyterHub stops the proxy, its services and the single-user servers itself; anything still
    alive after ``grace`` seconds (or started in a new session and orphaned) is killed by pid.
    """
    below = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    survivors = [p for p in below if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for process in survivors:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, still = psutil.wait_procs(survivors, timeout=10)
    for process in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return proc.returncode if proc.returncode is not None else 0


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


def stop_descendants(grace: float = 10.0, interval: float = 0.1) -> None:
    """Stop every process below this one by pid (SIGTERM, ``grace`` seconds, SIGKILL); reap all.

    For the launcher once its hub is reaped: what is left below it are orphans it adopted as a
    subreaper. Nothing is chosen by name; a process that a dying parent leaves to us while this
    runs is stopped and reaped too.
    """
    me = psutil.Process()

    def alive() -> list[psutil.Process]:
        reap_exited_children()
        return [p for p in me.children(recursive=True) if not _exited(p)]

    for process in alive():
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(interval)
    deadline = time.monotonic() + grace
    while me.children() and time.monotonic() < deadline:
        for process in alive():  # what would not stop, and anything started meanwhile
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        time.sleep(interval)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with ``pid`` runs (and is not a zombie)."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def install_stop_signals(handler: Callable[[int], None]) -> None:
    """Route SIGINT and SIGTERM to ``handler`` (called once with the signal number)."""

    def on_signal(signum: int, frame: object) -> None:
        handler(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
