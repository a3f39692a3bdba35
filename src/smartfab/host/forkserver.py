"""The fork server: a warm process that forks programs with their imports already done.

Starting ``jupyterhub-singleuser`` from scratch costs about 1.5 CPU-seconds, most of it
imports; a kernel with the scientific stack costs about as much before a notebook's first cell
runs. A fork server imports a use's stack once (:class:`~smartfab.host.forkprotocol.ForkUse`);
each launch is a ``fork()`` of that process which then becomes the requested account, takes
its environment, folder and argv, and runs the use's entry point. Nothing is shared between
launched processes after the fork: each has its own copy of the interpreter (copy-on-write).

The uses: the hub's single-user servers (:data:`smartfab.hub.spawner.SINGLE_USER_SERVERS`,
whose children outlive the server), the test bench's batches
(:data:`smartfab.testbench.batchprocess.BATCH_PROCESSES`, which outlive it too) and the kernels
of program runs (:data:`smartfab.runs.kernels.forked.RUN_KERNELS`, whose children die with it).

:class:`ForkServer` is the owner's handle, used from one asyncio event loop: it starts the
server process (:mod:`smartfab.host.forkprocess`) with one end of a ``SOCK_SEQPACKET`` socket
pair as its standard input, waits until it has preloaded, and asks it for launches, programs
and signals (:mod:`smartfab.host.forkprotocol`); each child is a :class:`ServerChild` whose
exit the server reports. Nothing in the file system can reach the server: only the owner
holds the other end of the socket. Closing it (:meth:`ForkServer.stop`, or the owner
exiting) ends the server.
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

from smartfab.errors import ForkServerError
from smartfab.host.forkprotocol import (
    MAX_MESSAGE,
    Exec,
    ForkUse,
    Launch,
    Lifetime,
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
    report: asyncio.Future[dict[str, Any]]


class ForkServer:
    """Handle on a fork server for ``use``, used from one asyncio event loop.

    ``env`` is the server's environment (default: the owner's), which launches without an
    ``env`` of their own keep. With :attr:`Lifetime.die_with_server`, start it from a thread
    that lives as long as the server: Linux ties ``PR_SET_PDEATHSIG`` to the thread that forked.
    """

    def __init__(self, use: ForkUse, env: Mapping[str, str] | None = None) -> None:
        self.use = use
        self.env = dict(os.environ if env is None else env)
        self.preloaded: Any = None
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

    async def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until it has preloaded."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [
            sys.executable,
            "-m",
            "smartfab.host.forkprocess",
            str(os.getpid()),
            self.use.model_dump_json(),
        ]
        try:
            self._proc = subprocess.Popen(
                command,
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
                raise ForkServerError(
                    f"the fork server of {self.use.name} did not preload in {timeout:g} s"
                ) from None
            code = self._proc.returncode if self._proc is not None else None
            if isinstance(err, ForkServerError) and code is not None:
                raise ForkServerError(
                    f"the fork server of {self.use.name} {describe_exit(code)} while preloading"
                ) from None
            raise
        self.pid = int(hello["pid"])
        self.preloaded = hello.get("preloaded")

    async def launch(self, request: Launch, timeout: float = 30.0) -> ServerChild:
        """Fork a warm process for ``request``; return it once forked."""
        child, _ = await self._launch(request, timeout, wait_report=False)
        return child

    async def launch_reported(
        self, request: Launch, timeout: float
    ) -> tuple[ServerChild, dict[str, Any]]:
        """Fork a warm process and wait for its report (a use with ``reports``)."""
        if not self.use.reports:
            raise ForkServerError(f"launches of {self.use.name} do not report")
        return await self._launch(request, timeout, wait_report=True)

    async def _launch(
        self, request: Launch, timeout: float, wait_report: bool
    ) -> tuple[ServerChild, dict[str, Any]]:
        pending = self._expect(request.token)
        try:
            await self._send(request)
            pid = await asyncio.wait_for(asyncio.shield(pending.forked), timeout)
            child = self._children[pid]
            if not wait_report:
                return child, {}
            try:
                report = await asyncio.wait_for(asyncio.shield(pending.report), timeout)
            except BaseException:
                await self.send_signal(pid, signal.SIGKILL)
                raise
            return child, report
        except TimeoutError:
            raise ForkServerError(
                f"no process of {self.use.name} was ready in {timeout:g} s"
            ) from None
        finally:
            self._forget(request.token)

    async def execute(self, request: Exec, timeout: float = 30.0) -> ServerChild:
        """Start a program as a child of the server."""
        pending = self._expect(request.token)
        try:
            await self._send(request)
            pid = await asyncio.wait_for(asyncio.shield(pending.forked), timeout)
            return self._children[pid]
        except TimeoutError:
            raise ForkServerError(f"{request.argv[0]} was not started in {timeout:g} s") from None
        finally:
            self._forget(request.token)

    async def send_signal(self, pid: int, signum: int) -> None:
        """Signal a child (and its process group) unless it has been reaped already."""
        if pid in self._children and not self._eof:
            with contextlib.suppress(OSError):
                await self._send(SendSignal(pid=pid, signum=signum))

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the lifeline; wait for the server to exit (killing its children if they die
        with it)."""
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
            raise ForkServerError(f"the fork server of {self.use.name} is not running")
        if token in self._pending:
            raise ForkServerError(f"a request with token {token!r} is already waiting")
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future(), loop.create_future())
        self._pending[token] = pending
        return pending

    def _forget(self, token: str) -> None:
        pending = self._pending.pop(token, None)
        if pending is not None:
            for future in (pending.forked, pending.report):
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
        elif op == "report":
            pending = self._pending.get(message["token"])
            if pending is not None and not pending.report.done():
                pending.report.set_result(message["data"])
        elif op == "exited":
            self._exited(int(message["pid"]), int(message["code"]))
        elif op == "refused":
            token = message.get("token")
            for key, pending in self._pending.items():
                if (token is None or key == token) and not pending.forked.done():
                    pending.forked.set_exception(
                        ForkServerError(
                            f"the fork server of {self.use.name} refused: {message['error']}"
                        )
                    )

    def _exited(self, pid: int, code: int) -> None:
        child = self._children.pop(pid, None)
        if child is not None and not child.exited.done():
            child.exited.set_result(code)
        pending = self._pending.get(self._token_of.pop(pid, ""))
        if pending is not None and not pending.report.done():
            pending.report.set_exception(
                ForkServerError(f"the process {describe_exit(code)} while starting")
            )

    def _on_eof(self) -> None:
        """The server is gone; so are its children, unless they outlive it."""
        if self._eof:
            return
        self._eof = True
        gone = ForkServerError(f"the fork server of {self.use.name} exited")
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(gone)
        for pid in list(self._children):
            if self.use.lifetime is Lifetime.die_with_server:
                self._exited(pid, -signal.SIGKILL)
            else:  # still running: no longer ours to watch
                self._children.pop(pid).exited.cancel()
                self._token_of.pop(pid, None)
        for pending in self._pending.values():
            for future in (pending.forked, pending.report):
                if not future.done():
                    future.set_exception(gone)
