"""A fork server's own process: preload once, then fork one fresh process per request.

Started by :class:`~smartfab.host.forkserver.ForkServer` as
``python -m smartfab.host.forkprocess OWNER_PID USE`` (``USE``: the
:class:`~smartfab.host.forkprotocol.ForkUse` as JSON), with its end of the control socket as
standard input (the messages: :mod:`smartfab.host.forkprotocol`). :func:`serve` imports the
use's modules and runs its preload hook, then forks and reaps children.

A launched child is a ``fork()`` of the preloaded server: it gets a session of its own and
``/dev/null`` as standard input, draws anew the entropy a fork copies (numpy's global
generator, multiprocessing's key), becomes the requested account
(:func:`smartfab.host.privileges.become`), takes the requested environment, working
directory and ``sys.argv``, and runs the use's entry point with a :class:`Launched`. Nothing
is shared between launched processes after the fork. An ``exec`` request forks and executes
a program instead.

Lifetime (:class:`~smartfab.host.forkprotocol.Lifetime`): the server exits when the owner's
end of the socket closes. With ``die_with_server`` it also dies with the thread that started
it (``PR_SET_PDEATHSIG``), each child dies with the server, and on exit the server kills and
reaps its children and removes their ``remove_on_exit`` files. With ``outlive_server``
children keep running after the server ends.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import shlex
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from setproctitle import setproctitle

from smartfab.host.forkprotocol import (
    MAX_MESSAGE,
    Exec,
    ForkUse,
    Launch,
    Lifetime,
    SendSignal,
    parse_request,
)
from smartfab.host.privileges import become
from smartfab.netns import seal_network
from smartfab.prctl import PR_SET_PDEATHSIG, prctl


@dataclass
class Launched:
    """What a launched process's entry point gets: its request, and a way to report once."""

    request: Launch
    _control: socket.socket | None

    def report(self, data: dict[str, Any]) -> None:
        """Send ``data`` to the owner (once; a use with ``reports`` only)."""
        if self._control is None:
            raise RuntimeError("this launch has reported already, or its use does not report")
        message = {"op": "report", "token": self.request.token, "pid": os.getpid(), "data": data}
        try:
            self._control.send(json.dumps(message).encode())
        finally:
            self._control.close()
            self._control = None


def _function(entry: str) -> Callable[..., Any]:
    module, _, name = entry.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def preload(use: ForkUse) -> Any:
    """Import the modules of ``use``, run its hook and import its entry point; exit when that
    imported a module it must not.

    Returns what the hook returned (None without a hook).
    """
    for name in use.preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    preloaded = _function(use.preload_hook)() if use.preload_hook else None
    _function(use.entry)  # every child runs it: imported once, here (a missing one is fatal)
    leaked = sorted(
        name
        for name in sys.modules
        if any(name == bad or name.startswith(bad + ".") for bad in use.not_preloadable)
    )
    if leaked:
        sys.exit(
            f"smartfab fork server of {use.name}: preloading imported {', '.join(leaked)}; "
            "not safe to fork"
        )
    return preloaded


@dataclass
class _Server:
    """State of the serving loop: the control socket and the children not yet reaped."""

    use: ForkUse
    control: socket.socket
    wake: tuple[int, int]  # the self-pipe signals are written to
    children: dict[int, str] = field(default_factory=dict)  # pid -> file removed at its exit

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
            leftover = self.children.pop(pid, "")
            if leftover:
                Path(leftover).unlink(missing_ok=True)
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
            if isinstance(request, Launch):
                _run_launch(self.use, request, self.control, self.wake)
            _run_program(self.use, request, self.control, self.wake)
        self.children[pid] = request.remove_on_exit
        self.send({"op": "forked", "token": request.token, "pid": pid})

    def stop_children(self) -> None:
        if self.use.lifetime is Lifetime.outlive_server:
            return
        for pid in self.children:
            _signal_group(pid, signal.SIGKILL)
        for pid, leftover in self.children.items():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            if leftover:
                Path(leftover).unlink(missing_ok=True)
        self.children.clear()


def _signal_group(pid: int, signum: int) -> None:
    """Signal a child's process group (it leads one), or the child itself before ``setsid``."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _become_child(use: ForkUse, wake: tuple[int, int]) -> None:
    """First steps of every child: signals as a new program has them, its own session."""
    server = os.getppid()
    signal.set_wakeup_fd(-1)
    for fd in wake:
        os.close(fd)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if use.lifetime is Lifetime.die_with_server:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)  # the server died before our lifetime was bound to it
    os.setsid()  # like jupyter_client: interrupts reach the child's whole process group


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


def _run_launch(
    use: ForkUse, request: Launch, control: socket.socket, wake: tuple[int, int]
) -> NoReturn:
    """In a forked child: become what the request asks and run the entry; never returns."""
    code = 1
    try:
        _become_child(use, wake)
        if not use.reports:
            control.close()
        _reseed()
        if request.sealed:
            seal_network()  # as root, before the account is taken
        if request.account is not None:
            account = request.account
            become(
                account.uid, account.gid, account.groups, account.umask, request.cwd or os.getcwd()
            )
        elif request.cwd is not None:
            os.chdir(request.cwd)
        if request.env is not None:
            os.environ.clear()
            os.environ.update(request.env)
        sys.argv = list(request.argv)
        # operators (ps, top) and tools see the program's own command line, not the server's
        setproctitle(request.title or shlex.join(request.argv))
        launched = Launched(request, control if use.reports else None)
        result = _function(use.entry)(launched)
        code = result if isinstance(result, int) else 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # the child must never fall back into the server loop
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_program(
    use: ForkUse, request: Exec, control: socket.socket, wake: tuple[int, int]
) -> NoReturn:
    """In a forked child: execute the program with its own environment; never returns."""
    try:
        control.close()
        _become_child(use, wake)
        os.chdir(request.cwd)
        os.execvpe(request.argv[0], request.argv, request.env)
    except BaseException as err:
        with contextlib.suppress(Exception):
            print(f"smartfab: cannot start {request.argv[0]}: {err}", file=sys.stderr, flush=True)
    os._exit(127)


def serve(control: socket.socket, use: ForkUse) -> None:
    """Preload, then fork and reap children for the owner until it goes away."""
    # first use locates argv beside the environment block: before any child clears its environment
    setproctitle(f"smartfab fork server of {use.name}")
    # like ipykernel_launcher: the directory it starts in is not importable
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    os.chdir("/")  # each child moves to its own folder; the server pins none
    preloaded = preload(use)
    # preloaded objects never change: keep them out of the children's collections (and pages)
    gc.collect()
    gc.freeze()
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = _Server(use, control, (wake_read, wake_write))
    server.send({"op": "hello", "pid": os.getpid(), "preloaded": preloaded})
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
    """``python -m smartfab.host.forkprocess OWNER_PID USE``; the control socket is stdin."""
    if len(sys.argv) != 3:
        sys.exit("usage: python -m smartfab.host.forkprocess OWNER_PID USE (started by ForkServer)")
    try:
        use = ForkUse.model_validate_json(sys.argv[2])
    except ValidationError as err:
        sys.exit(f"smartfab fork server: bad use: {err}")
    if use.lifetime is Lifetime.die_with_server:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != int(sys.argv[1]):
            sys.exit(0)  # the owner died before we could bind our lifetime to it
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    serve(control, use)


if __name__ == "__main__":
    main()
