"""The owner's handle on a kernel fork server: :class:`KernelForkServer`.

The handle starts the fork server (:mod:`smartfab.runs.kernels.fork_process`), waits until it
has preloaded, and asks it over the control socket (:mod:`smartfab.runs.kernels.fork_protocol`)
for warm kernels, for programs started from a kernelspec, and for signals to its children;
each child is a :class:`ServerChild` whose exit the server reports. It is used from one
asyncio event loop.

Lifetime: closing the handle's end of the socket (:meth:`KernelForkServer.stop`) makes the
server kill and reap its children and exit; the server also dies with the thread that started
it (``PR_SET_PDEATHSIG``), and each child dies with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from smartfab.errors import KernelStartError
from smartfab.runs.kernels.fork_protocol import (
    MAX_MESSAGE,
    ExecProgram,
    ForkKernel,
    SendSignal,
    describe_exit,
)


@dataclass(eq=False)
class ServerChild:
    """A process the fork server started for us; ``exited`` resolves to its exit code."""

    pid: int
    exited: asyncio.Future[int]

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self.exited)


@dataclass(eq=False)
class _Pending:
    forked: asyncio.Future[int]
    ready: asyncio.Future[dict[str, Any]]


class KernelForkServer:
    """Handle on a kernel fork server, used from one asyncio event loop.

    Start it from a thread that lives as long as the server: Linux ties ``PR_SET_PDEATHSIG``
    to the thread that forked.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.shadowable: frozenset[str] = frozenset()
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._hello: asyncio.Future[dict[str, Any]] | None = None
        self._pending: dict[str, _Pending] = {}
        self._token_of: dict[int, str] = {}
        self._children: dict[int, ServerChild] = {}
        self._eof = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._eof

    @property
    def children(self) -> list[ServerChild]:
        """Children not yet reaped."""
        return list(self._children.values())

    async def start(self, timeout: float) -> None:
        """Start the process and wait until it has preloaded."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = "from smartfab.runs.kernels.fork_process import main; main()"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(os.getpid())],
                stdin=theirs.fileno(),
                env=self.env,
                start_new_session=True,  # a Ctrl-C in the owner's terminal is the owner's
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._hello = loop.create_future()
        self._reader = loop.create_task(self._read())
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._hello), timeout)
        except BaseException as err:
            await self.stop()
            if isinstance(err, TimeoutError):
                raise KernelStartError(
                    f"the kernel fork server did not preload in {timeout:g} s"
                ) from None
            raise
        self.pid = int(hello["pid"])
        self.shadowable = frozenset(hello["shadowable"])

    async def fork_kernel(
        self, token: str, connection_file: str, argv: list[str], args: list[str], timeout: float
    ) -> tuple[ServerChild, dict[str, Any]]:
        """Fork a kernel; return it and its connection information once it listens."""
        pending = self._expect(token)
        request = ForkKernel(
            op="fork", token=token, connection_file=connection_file, argv=argv, args=args
        )
        try:
            await self._send(request)
            pid = await asyncio.wait_for(asyncio.shield(pending.forked), timeout)
            child = self._children[pid]
            try:
                connection = await asyncio.wait_for(asyncio.shield(pending.ready), timeout)
            except BaseException:
                await self.send_signal(pid, signal.SIGKILL)
                raise
            return child, connection
        except TimeoutError:
            raise KernelStartError(f"no kernel was ready in {timeout:g} s") from None
        finally:
            self._forget(token)

    async def spawn(
        self, argv: list[str], env: Mapping[str, str], cwd: str, connection_file: str, token: str
    ) -> ServerChild:
        """Start a program as a child of the server (it dies with the server)."""
        pending = self._expect(token)
        request = ExecProgram(
            op="exec",
            token=token,
            argv=argv,
            env=dict(env),
            cwd=cwd,
            connection_file=connection_file,
        )
        try:
            await self._send(request)
            pid = await asyncio.wait_for(asyncio.shield(pending.forked), 30)
            return self._children[pid]
        finally:
            self._forget(token)

    async def send_signal(self, pid: int, signum: int) -> None:
        """Signal a child (and its process group) unless it has been reaped already."""
        if pid in self._children and not self._eof:
            with contextlib.suppress(OSError):
                await self._send(SendSignal(op="signal", pid=pid, signum=signum))

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the lifeline; wait for the server to kill and reap its children and exit."""
        if self._sock is not None and not self._eof:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
        if self._reader is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._reader), timeout)
            self._reader.cancel()
        if self._proc is not None:
            proc = self._proc
            try:
                await asyncio.to_thread(proc.wait, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._sock is not None:
            self._sock.close()
        self._on_eof()

    def abandon(self) -> None:
        """In a copy of the owner made by ``fork()``: let go of the lifeline, touch nothing else."""
        self._eof = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    # -- internals

    def _expect(self, token: str) -> _Pending:
        if not self.running:
            raise KernelStartError("the kernel fork server is not running")
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future(), loop.create_future())
        self._pending[token] = pending
        return pending

    def _forget(self, token: str) -> None:
        pending = self._pending.pop(token, None)
        if pending is not None:
            for future in (pending.forked, pending.ready):
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: never reported as unhandled
                future.cancel()

    async def _send(self, request: BaseModel) -> None:
        assert self._sock is not None
        await asyncio.get_running_loop().sock_sendall(
            self._sock, request.model_dump_json().encode()
        )

    async def _read(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self._sock, MAX_MESSAGE)
                if not data:
                    return
                self._dispatch(json.loads(data))
        except OSError:
            return
        finally:
            self._on_eof()

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "hello" and self._hello is not None and not self._hello.done():
            self._hello.set_result(message)
        elif op == "forked":
            pid = int(message["pid"])
            child = ServerChild(pid, asyncio.get_running_loop().create_future())
            self._children[pid] = child
            self._token_of[pid] = message["token"]
            pending = self._pending.get(message["token"])
            if pending is not None and not pending.forked.done():
                pending.forked.set_result(pid)
        elif op == "ready":
            pending = self._pending.get(message["token"])
            if pending is not None and not pending.ready.done():
                pending.ready.set_result(message["connection"])
        elif op == "exited":
            pid, code = int(message["pid"]), int(message["code"])
            self._exited(pid, code)
        elif op == "refused":
            token = message.get("token")
            for key, pending in self._pending.items():
                if (token is None or key == token) and not pending.forked.done():
                    pending.forked.set_exception(
                        KernelStartError(f"the kernel fork server refused: {message['error']}")
                    )

    def _exited(self, pid: int, code: int) -> None:
        child = self._children.pop(pid, None)
        if child is not None and not child.exited.done():
            child.exited.set_result(code)
        pending = self._pending.get(self._token_of.pop(pid, ""))
        if pending is not None and not pending.ready.done():
            pending.ready.set_exception(
                KernelStartError(f"the kernel {describe_exit(code)} while starting")
            )

    def _on_eof(self) -> None:
        """The server is gone: so are its children (they die with it)."""
        if self._eof:
            return
        self._eof = True
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(KernelStartError("the kernel fork server exited"))
        for pid in list(self._children):
            self._exited(pid, -signal.SIGKILL)
        for pending in self._pending.values():
            for future in (pending.forked, pending.ready):
                if not future.done():
                    future.set_exception(KernelStartError("the kernel fork server exited"))
