"""The fork server: a warm process that forks programs with their imports already done.

Starting ``jupyterhub-singleuser`` from scratch costs about 1.5 CPU-seconds, most of it imports
(``rfc3987_syntax`` alone builds a grammar for 0.5 s). When twenty people of a team log in
after a meeting, a two-core hub spends tens of seconds on imports. A fork server imports a
program's stack once; each launch is a ``fork()`` of that process which then becomes the
requested account (:func:`smartfab.host.privileges.become`: gid, supplementary groups, uid,
umask, working directory), replaces its environment and argv, and runs the program's entry
point. Nothing is shared between launched processes after the fork: each has its own copy of
the interpreter (copy-on-write).

Uses
----
A fork server is started for one use, a :class:`ForkUse`: the modules it imports before any
fork (``preload``), the modules that must not have been imported by then because they read the
environment or the account at import (``not_preloadable``: the fork server refuses to start
when preloading imported one), and the entry point each launched process runs (``entry``,
``module:function``, called without arguments once ``sys.argv`` is set; its return value, or
the code of the ``SystemExit`` it raises, is the exit status). The hub's single-user servers are
one use (:data:`smartfab.hub.spawner.SINGLE_USER_SERVERS`).

Protocol
--------
Start: ``python -m smartfab.host.forkserver SOCKET USE`` (``USE``: the :class:`ForkUse` as
JSON; :meth:`ForkServer.start` does this). The fork server preloads, then listens on the Unix
stream socket ``SOCKET``, created mode 0600: only its own account (root in system-account
mode, else the hub's account) can connect.

Per connection one request, a :class:`LaunchRequest` as one line of JSON (at most 1 MiB):
``argv`` (at least one item), ``env`` (the whole environment), ``uid``, ``gid``, ``groups``
(supplementary), ``cwd``, ``umask``. The reply is one line of JSON, ``{"pid": N}`` for the
launched process or ``{"error": "..."}`` for a request that does not validate; a connection
closed early is ignored. Each launched process gets a session of its own and ``/dev/null`` as
standard input; the fork server reaps it when it exits.

Lifetime: the fork server exits when its standard input (a pipe from its owner, the lifeline)
closes; launched processes keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from setproctitle import setproctitle

from smartfab.errors import HubError
from smartfab.host.privileges import become

MAX_REQUEST_BYTES = 1 << 20


class ForkUse(BaseModel):
    """What one fork server is for: what it preloads and what each launch runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="What is launched, for logs and errors.")
    preload: tuple[str, ...] = Field(
        default=(), description="Modules imported once, before any fork (missing ones skipped)."
    )
    not_preloadable: tuple[str, ...] = Field(
        default=(),
        description="Top-level packages that compute defaults from the environment at import: "
        "each launched process must import them itself.",
    )
    entry: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="``module:function`` each launched process runs, without arguments.",
    )


class LaunchRequest(BaseModel):
    """What to run, as whom, where."""

    model_config = ConfigDict(extra="forbid")

    argv: list[str] = Field(min_length=1)
    env: dict[str, str]
    uid: int = Field(ge=0)
    gid: int = Field(ge=0)
    groups: list[int] = Field(default_factory=list)
    cwd: str
    umask: int = Field(ge=0, le=0o777)


# -- the fork server process ------------------------------------------------------------------


def preload(use: ForkUse) -> None:
    """Import the modules of ``use``; exit when that imported one it must not."""
    for name in use.preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in use.not_preloadable)
    if leaked:
        sys.exit(
            f"smartfab fork server of {use.name}: preloading imported {', '.join(leaked)}; "
            "not safe to fork"
        )


def _reap(signum: int, frame: object) -> None:
    """Collect exited processes so they never linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _run_child(
    use: ForkUse, request: LaunchRequest, listener: socket.socket, conn: socket.socket
) -> None:
    """In the child: never returns."""
    code = 1
    try:
        listener.close()
        conn.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        become(request.uid, request.gid, request.groups, request.umask, request.cwd)
        os.environ.clear()
        os.environ.update(request.env)
        sys.argv = list(request.argv)
        # operators (ps, top) and tools see the program's own command line, not the fork server's
        setproctitle(shlex.join(request.argv))
        module, _, function = use.entry.partition(":")
        result = getattr(importlib.import_module(module), function)()
        code = result if isinstance(result, int) else 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException as err:  # the child must never fall back into the server loop
        print(f"smartfab fork server: launch failed: {err!r}", file=sys.stderr, flush=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _answer(use: ForkUse, conn: socket.socket, listener: socket.socket) -> None:
    """Read one request, fork for it and reply; a client that went away is no concern."""
    try:
        data = b""
        while not data.endswith(b"\n") and len(data) < MAX_REQUEST_BYTES:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        try:
            request = LaunchRequest.model_validate_json(data)
        except ValidationError as err:
            conn.sendall(json.dumps({"error": str(err)}).encode() + b"\n")
            return
        pid = os.fork()
        if pid == 0:
            _run_child(use, request, listener, conn)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:
        pass


def serve(socket_path: Path, use: ForkUse) -> None:
    """Run the fork server for ``use`` until standard input closes."""
    # first use locates argv beside the environment block: before any child clears its environment
    setproctitle(f"smartfab fork server of {use.name} {socket_path}")
    preload(use)
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    socket_path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is born 0600
    try:
        listener.bind(str(socket_path))
    finally:
        os.umask(old_umask)
    listener.listen(64)
    try:
        while True:
            try:
                ready, _, _ = select.select([listener, sys.stdin], [], [])
            except InterruptedError:
                continue
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
                return  # the owner is gone
            if listener in ready:
                conn, _ = listener.accept()
                with conn:
                    _answer(use, conn, listener)
    finally:
        listener.close()
        socket_path.unlink(missing_ok=True)


# -- the owner's side -------------------------------------------------------------------------


class ForkServer:
    """Handle on a fork server process for ``use``, listening on ``socket_path``."""

    def __init__(self, socket_path: Path, use: ForkUse) -> None:
        self.socket_path = socket_path
        self.use = use
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until its socket accepts connections."""
        # stdin is the lifeline: the fork server exits when its owner does
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smartfab.host.forkserver",
                str(self.socket_path),
                self.use.model_dump_json(),
            ],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HubError(
                    f"the fork server of {self.use.name} exited with status {self.proc.returncode}"
                )
            if self.socket_path.exists():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    try:
                        probe.connect(str(self.socket_path))
                    except OSError:
                        pass
                    else:
                        # an empty request: the server answers with an error and carries on
                        probe.sendall(b"\n")
                        return
            time.sleep(0.05)
        raise HubError(
            f"the fork server of {self.use.name} did not listen on {self.socket_path} "
            f"in {timeout:.0f} s"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def launch(self, request: LaunchRequest) -> int:
        """Fork a process for ``request``; return its pid."""
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        try:
            writer.write(request.model_dump_json().encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout=30)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        reply: dict[str, Any] = json.loads(line or b"{}")
        if "pid" not in reply:
            raise HubError(f"the fork server refused a launch: {reply.get('error', 'no answer')}")
        return int(reply["pid"])

    def stop(self) -> None:
        """Close the lifeline and wait for the process to exit."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    """``python -m smartfab.host.forkserver SOCKET USE``."""
    if len(sys.argv) != 3:
        sys.exit("usage: python -m smartfab.host.forkserver SOCKET USE (a ForkUse as JSON)")
    try:
        use = ForkUse.model_validate_json(sys.argv[2])
    except ValidationError as err:
        sys.exit(f"smartfab fork server: bad use: {err}")
    serve(Path(sys.argv[1]), use)


if __name__ == "__main__":
    main()
