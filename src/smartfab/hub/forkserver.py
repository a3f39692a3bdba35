"""A warm process that forks single-user servers with Jupyter already imported.

Starting ``jupyterhub-singleuser`` from scratch costs about 1.5 CPU-seconds, most of it imports
(``rfc3987_syntax`` alone builds a grammar for 0.5 s). When twenty people of a team log in
after a meeting, a two-core hub spends tens of seconds on imports. The fork server imports the
single-user server stack once; each launch is a ``fork()`` of that process which then becomes the
user, exactly as LocalProcessSpawner's ``preexec_fn`` would (gid, supplementary groups, uid,
umask, working directory), replaces its environment and argv, and runs the server's ``main``.

Nothing is shared between servers after the fork: each child has its own copy of the
interpreter (copy-on-write) and its own kernels, started as fresh processes by the server.

Protocol: one JSON request per connection on a Unix socket only root (or, in single-account
mode, the hub's account) can open; the reply is ``{"pid": N}`` or ``{"error": "..."}``. The
fork server exits when its standard input (a pipe from the hub) closes.
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

#: modules of the single-user server stack imported once, before any fork
PRELOAD = (
    "jupyterhub.singleuser",
    "jupyter_server.serverapp",
    "jupyterlab",
    "jupyterlab.labapp",
    "jupyter_lsp",
    "jupyter_server_terminals",
    "jupyter_collaboration",
    "notebook_shim",
    # real-time collaboration's document stack (jupyter_server_ydoc itself imports fileid)
    "jupyter_ydoc",
    "pycrdt",
    "anyio",
)
#: modules that compute defaults from the environment at import (jupyter_server_fileid takes
#: its database path from root's home): they must be imported by each child, never preloaded
NOT_PRELOADABLE = ("jupyter_server_fileid", "jupyter_server_ydoc")
#: the singleuser entry point decides at import between two modes: only the default one is warm
MODE_VARIABLES = ("JUPYTERHUB_SINGLEUSER_APP", "JUPYTERHUB_SINGLEUSER_EXTENSION")
MAX_REQUEST_BYTES = 1 << 20


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


def _preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in NOT_PRELOADABLE)
    if leaked:
        sys.exit(f"smartfab fork server: preloading imported {', '.join(leaked)}; not safe to fork")


def _reap(signum: int, frame: object) -> None:
    """Collect exited servers so they never linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def become(uid: int, gid: int, groups: list[int], umask: int, cwd: str) -> None:
    """In a new server process: become the user, like JupyterHub's ``set_user_setuid``.

    Unlike it, a failure to set the supplementary groups is an error, never a server that runs
    with the groups of root.
    """
    if os.getuid() != uid:
        os.setgid(gid)
        os.setgroups(groups)
        os.setuid(uid)
    os.umask(umask)
    os.chdir(cwd)


def _run_child(request: LaunchRequest, listener: socket.socket, conn: socket.socket) -> None:
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
        # operators (ps, top) and tools see the server's own command line, not the fork server's
        setproctitle(shlex.join(request.argv))
        from jupyterhub.singleuser import main

        result = main()
        code = result if isinstance(result, int) else 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException as err:  # the child must never fall back into the server loop
        print(f"smartfab fork server: launch failed: {err!r}", file=sys.stderr, flush=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _answer(conn: socket.socket, listener: socket.socket) -> None:
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
            _run_child(request, listener, conn)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:
        pass


def serve(socket_path: Path) -> None:
    """Run the fork server until standard input closes."""
    # first use locates argv beside the environment block: before any child clears its environment
    setproctitle(f"smartfab fork server {socket_path}")
    _preload()
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
                return  # the hub is gone
            if listener in ready:
                conn, _ = listener.accept()
                with conn:
                    _answer(conn, listener)
    finally:
        listener.close()
        socket_path.unlink(missing_ok=True)


# -- the hub's side ---------------------------------------------------------------------------


class ForkServer:
    """Handle on a fork server process started by the hub."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until its socket accepts connections."""
        # stdin is the lifeline: the fork server exits when the hub does
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smartfab.hub.forkserver", str(self.socket_path)],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HubError(f"the fork server exited with status {self.proc.returncode}")
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
        raise HubError(f"the fork server did not listen on {self.socket_path} in {timeout:.0f} s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def launch(self, request: LaunchRequest) -> int:
        """Fork a server for ``request``; return its pid."""
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
    """``python -m smartfab.hub.forkserver SOCKET``."""
    if len(sys.argv) != 2:
        sys.exit("usage: python -m smartfab.hub.forkserver SOCKET")
    serve(Path(sys.argv[1]))


if __name__ == "__main__":
    main()
