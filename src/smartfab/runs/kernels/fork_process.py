"""The kernel fork server's own process: preload once, then fork one fresh kernel per request.

Started by :class:`~smartfab.runs.kernels.fork_server.KernelForkServer` as
``python -c "...; main()" OWNER_PID``, with its end of the control socket as standard input
(the messages: :mod:`smartfab.runs.kernels.fork_protocol`). :func:`serve` preloads the kernel
and the stack (:mod:`smartfab.runs.kernels.preload`), then forks and reaps children. Each warm
kernel is a ``fork()`` that initialises its own ``IPKernelApp`` (sockets, shell, history)
exactly as ``ipykernel_launcher`` would, and serves one notebook; nothing is shared between
kernels after the fork. Entropy drawn at import (numpy's global generator) is drawn anew in
each kernel. A program (a kernel that cannot be forked warm) is forked and executed with its
own environment and working directory.

Lifetime: the server exits, killing and reaping its children and removing their connection
files, when the owner's end of the socket closes or its parent dies (``PR_SET_PDEATHSIG``);
each child is killed when the server dies.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from smartfab.prctl import PR_SET_PDEATHSIG, prctl
from smartfab.runs.kernels.fork_protocol import (
    MAX_MESSAGE,
    ExecProgram,
    ForkKernel,
    SendSignal,
    parse_request,
)
from smartfab.runs.kernels.preload import preload


def _die_with_parent(signum: int) -> None:
    """Ask Linux to send ``signum`` to this process when its parent (thread) ends."""
    prctl(PR_SET_PDEATHSIG, signum)


@dataclass
class _Server:
    """State of the serving loop: the control socket and the children not yet reaped."""

    control: socket.socket
    wake: tuple[int, int]  # the self-pipe signals are written to
    children: dict[int, str] = field(default_factory=dict)  # pid -> connection file

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the owner is gone: the loop sees EOF next
            self.control.send(json.dumps(message).encode())

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection_file = self.children.pop(pid, "")
            if connection_file:
                Path(connection_file).unlink(missing_ok=True)
            self.send({"op": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})

    def handle(self, data: bytes) -> None:
        try:
            request = parse_request(data)
        except ValidationError as err:
            self.send({"op": "refused", "token": None, "error": str(err)})
            return
        if isinstance(request, SendSignal):
            if request.pid in self.children:
                _signal_group(request.pid, request.signum)
            return
        try:
            pid = os.fork()
        except OSError as err:
            self.send({"op": "refused", "token": request.token, "error": f"fork: {err}"})
            return
        if pid == 0:
            if isinstance(request, ForkKernel):
                _run_kernel(request, self.control, self.wake)
            _run_program(request, self.control, self.wake)
        self.children[pid] = request.connection_file
        self.send({"op": "forked", "token": request.token, "pid": pid})

    def stop_children(self) -> None:
        for pid in self.children:
            _signal_group(pid, signal.SIGKILL)
        for pid, connection_file in self.children.items():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            if connection_file:
                Path(connection_file).unlink(missing_ok=True)
        self.children.clear()


def _signal_group(pid: int, signum: int) -> None:
    """Signal a child's process group (it leads one), or the child itself before ``setsid``."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _reset_child_signals(wake: tuple[int, int]) -> None:
    signal.set_wakeup_fd(-1)
    for fd in wake:
        os.close(fd)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _reseed() -> None:
    """Draw anew the entropy a new interpreter draws at import and a fork copies.

    Python's ``random`` reseeds itself after a fork; numpy's global generator does not, and
    multiprocessing keeps its authentication key.
    """
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    if "multiprocessing" in sys.modules:
        import multiprocessing

        multiprocessing.current_process().authkey = os.urandom(32)


def _reopen_debugger_log() -> None:
    """debugpy's log stream is the ``sys.stderr`` of its first message: make it the kernel's."""
    with contextlib.suppress(ImportError):
        # debugpy's vendored pydevd, on sys.path once debugpy is imported
        pydev_log = importlib.import_module("_pydev_bundle.pydev_log")
        pydev_log.initialize_debug_stream(reinitialize=True)


def _run_kernel(request: ForkKernel, control: socket.socket, wake: tuple[int, int]) -> NoReturn:
    """In a forked child: become a kernel, report how to connect, serve; never returns."""
    code = 1
    try:
        server = os.getppid()
        _reset_child_signals(wake)
        _die_with_parent(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)
        os.setsid()  # like jupyter_client: interrupts reach the kernel's whole process group
        _reseed()
        sys.argv = list(request.argv)
        from setproctitle import setproctitle

        setproctitle(" ".join([sys.executable, "-m", "ipykernel_launcher", *request.argv[1:]]))
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(request.args)  # type: ignore[no-untyped-call]
        _reopen_debugger_log()
        session = app.session
        connection = {
            "ip": app.ip,
            "transport": app.transport,
            "shell_port": app.shell_port,
            "iopub_port": app.iopub_port,
            "stdin_port": app.stdin_port,
            "hb_port": app.hb_port,
            "control_port": app.control_port,
            "key": session.key.decode("ascii"),
            "signature_scheme": session.signature_scheme,
        }
        control.send(
            json.dumps(
                {
                    "op": "ready",
                    "token": request.token,
                    "pid": os.getpid(),
                    "connection": connection,
                }
            ).encode()
        )
        control.close()
        app.start()  # type: ignore[no-untyped-call]
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # the child must never fall back into the server loop
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_program(request: ExecProgram, control: socket.socket, wake: tuple[int, int]) -> NoReturn:
    """In a forked child: execute the program with its own environment; never returns."""
    try:
        server = os.getppid()
        control.close()
        _reset_child_signals(wake)
        _die_with_parent(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)
        os.setsid()
        os.chdir(request.cwd)
        os.execvpe(request.argv[0], request.argv, request.env)
    except BaseException as err:
        with contextlib.suppress(Exception):
            print(f"smartfab: cannot start {request.argv[0]}: {err}", file=sys.stderr, flush=True)
    os._exit(127)


def serve(control: socket.socket) -> None:
    """Preload, then fork and reap children for the owner until it goes away."""
    from setproctitle import setproctitle

    setproctitle("smartfab kernel fork server")
    # like ipykernel_launcher: the directory it starts in is not importable; IPython puts ''
    # back in each kernel, where it means the run's working directory
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    os.chdir("/")  # each kernel moves to its run's directory; the server pins none
    shadowable = preload()
    # preloaded objects never change: keep them out of the children's collections (and pages)
    gc.collect()
    gc.freeze()
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = _Server(control, (wake_read, wake_write))
    server.send({"op": "hello", "pid": os.getpid(), "shadowable": shadowable})
    try:
        while True:
            ready, _, _ = select.select([control.fileno(), wake_read], [], [])
            if wake_read in ready:
                signals = os.read(wake_read, 4096)
                server.reap()
                if signal.SIGTERM in signals:
                    return
            if control.fileno() in ready:
                try:
                    data = control.recv(MAX_MESSAGE)
                except ConnectionResetError:
                    data = b""
                if not data:
                    return  # the owner is gone
                server.handle(data)
    finally:
        server.stop_children()


def main() -> None:
    """Entry point of the fork server: the control socket is standard input."""
    if len(sys.argv) != 2:
        sys.exit("usage: smartfab kernel fork server OWNER_PID (started by KernelForkServer)")
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != int(sys.argv[1]):
        sys.exit(0)  # the owner died before we could bind our lifetime to it
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    serve(control)
