"""The pool of fresh kernels for program test runs: one kernel per run, then killed.

A :class:`KernelPool` keeps ``size`` kernels started and connected (``kernel_info`` answered,
IOPub subscribed) before any run asks for one. They are forked from a fork server
(:class:`~smartfab.host.forkserver.ForkServer` for
:data:`~smartfab.runs.kernels.forked.RUN_KERNELS`) that has imported the kernel and
the scientific stack, so a kernel costs a fork and an ``IPKernelApp`` initialisation, not a new
interpreter and its imports. Since a kernel starts before its run is known, the run's working
directory and environment are applied when it is acquired, by a silent execution that leaves
no trace in the notebook, the execution count or the In/Out history.

A run gets a kernel started from its kernelspec instead (still a child of the fork server, so
it dies with it) when a warm fork would not behave like that kernelspec
(:func:`~smartfab.runs.kernels.warm_rules.cold_start_reason`).

Thread safety: the pool owns an asyncio event loop in a background thread. :meth:`KernelPool.run`
runs a coroutine there from any thread; the coroutines that use kernels
(:meth:`KernelPool.acquire`, :meth:`KernelPool.release`, executing a notebook) run on it.
A process forked from the pool's owner abandons every pool it copied.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import zmq.asyncio
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir

from smartfab.errors import ForkServerError, KernelStartError, RunsError
from smartfab.host.forkprotocol import describe_exit
from smartfab.host.forkserver import ForkServer, ServerChild
from smartfab.runs.kernels.channels import reply_to, wait_connected
from smartfab.runs.kernels.forked import RUN_KERNELS, kernel_launch
from smartfab.runs.kernels.provisioner import ServerChildProvisioner
from smartfab.runs.kernels.warm_rules import (
    as_kernel_sees_it,
    cold_start_reason,
    environment_changes,
    forkable,
    kernel_environment,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_KERNEL = "python3"
#: kernels kept ready by the process-wide pool (default: the number of usable cores)
POOL_SIZE_ENV = "SMARTFAB_KERNEL_POOL"
#: what nbclient passes to the IPython kernels it starts: no history file is read or written
HISTORY_IN_MEMORY = "--HistoryManager.hist_file=:memory:"
#: a batch prints a progress bar, not every kernel's start-up warnings (ipykernel warns about
#: plain TCP on loopback for each kernel); errors still reach the terminal
KERNEL_LOG_LEVEL = "--IPKernelApp.log_level=ERROR"
#: applied to an acquired warm kernel in a throwaway namespace: chdir, environment, and the
#: directory records IPython took at start (``_dh``), as if it had started there
_SETUP = """\
import os, pathlib
os.chdir({cwd!r})
os.environ.update({assign!r})
for name in {remove!r}:
    os.environ.pop(name, None)
shell = get_ipython()
shell.starting_dir = os.getcwd()
shell.history_manager.dir_hist[:] = [pathlib.Path.cwd()]
"""


def default_pool_size() -> int:
    """``$SMARTFAB_KERNEL_POOL``, else the number of cores this process may use."""
    value = os.environ.get(POOL_SIZE_ENV, "").strip()
    if value:
        try:
            size = int(value)
        except ValueError:
            size = -1
        if size < 0:
            raise RunsError(f"{POOL_SIZE_ENV}={value!r}: expected a number of kernels (0 or more)")
        return size
    return len(os.sched_getaffinity(0))


@dataclass(eq=False)
class PooledKernel:
    """One kernel for one run: its manager, a connected client, and its process."""

    manager: Any  # jupyter_client AsyncKernelManager
    client: Any  # jupyter_client AsyncKernelClient (shell and IOPub channels)
    process: ServerChild
    warm: bool  # forked from the fork server, rather than started from its kernelspec

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def exit_description(self) -> str:
        """How the process ended (``killed by SIGKILL``), or ``running``."""
        code = self.process.returncode
        return "running" if code is None else describe_exit(code)


@dataclass(frozen=True)
class _KernelChoice:
    name: str
    spec: Any  # jupyter_client KernelSpec
    warm: bool


class KernelPool:
    """Fresh kernels, one per run, ``size`` of them started and connected ahead of need.

    Parameters
    ----------
    size:
        Kernels kept ready; default :func:`default_pool_size`. With ``0`` each acquire still
        forks a warm kernel, but only when asked.
    start_timeout:
        Seconds to wait for the fork server to preload, or a kernel to answer.

    See Also
    --------
    smartfab.runs.execute.execute_notebook : executes a notebook with a kernel of the pool.
    """

    def __init__(self, size: int | None = None, *, start_timeout: float = 60.0) -> None:
        self.size = default_pool_size() if size is None else size
        if self.size < 0:
            raise ValueError(f"size must be 0 or more, not {self.size}")
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        # state below is only touched on the pool's loop
        self._server: ForkServer | None = None
        self._server_start: asyncio.Task[ForkServer] | None = None
        self._servers: list[ForkServer] = []
        self._ready: deque[asyncio.Task[PooledKernel]] = deque()
        self._lent: set[PooledKernel] = set()
        self._calls: set[asyncio.Task[Any]] = set()
        self._choices: dict[str, _KernelChoice] = {}
        self._context: Any = None
        self._spec_manager: Any = None
        self._runtime_dir = ""
        _POOLS.add(self)

    # -- thread-safe API

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        """Start the pool's thread and begin starting kernels (idempotent, returns at once)."""
        with self._lock:
            if self._closed:
                raise KernelStartError("the kernel pool is closed")
            if self._thread is not None:
                return
            loop = asyncio.new_event_loop()
            # the fork server is started from this thread: its lifetime is tied to it
            thread = threading.Thread(
                target=self._serve, args=(loop,), name="smartfab-kernel-pool", daemon=True
            )
            self._loop, self._thread = loop, thread
            thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), loop).result()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the pool's loop and return its result (from any other thread)."""
        self.start()
        assert self._loop is not None
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("KernelPool.run() called from the pool's own thread: await instead")
        future = asyncio.run_coroutine_threadsafe(self._tracked(coro), self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # an interrupted caller: the coroutine releases its kernel
            raise

    def resize(self, size: int) -> None:
        """Keep ``size`` kernels ahead of need from now on (kernels in use are not touched)."""
        if size < 0:
            raise ValueError(f"size must be 0 or more, not {size}")

        async def apply() -> None:
            self.size = size
            while len(self._ready) > size:
                task = self._ready.pop()
                task.cancel()
                for result in await asyncio.gather(task, return_exceptions=True):
                    if isinstance(result, PooledKernel):
                        await self.release(result)
            self._replenish()

        self.run(apply())

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Block until the ``size`` kernels kept ahead of need are started and connected."""

        async def ready() -> None:
            starting = [asyncio.shield(task) for task in self._ready]
            try:
                await asyncio.wait_for(asyncio.gather(*starting), timeout)
            except TimeoutError:
                raise KernelStartError(f"the pool was not ready in {timeout:g} s") from None

        self.run(ready())

    def process_ids(self) -> set[int]:
        """The fork server's pid and those of every kernel it has not reaped yet."""
        if self._loop is None or self._closed:
            return set()

        async def collect() -> set[int]:
            pids = {child.pid for server in self._servers for child in server.children}
            pids.update(server.pid for server in self._servers if server.pid and server.running)
            return pids

        return self.run(collect())

    def close(self) -> None:
        """Kill every kernel, stop the fork server and the pool's thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("KernelPool.close() called from the pool's own thread")
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> KernelPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- on the pool's loop

    async def acquire(
        self,
        kernel_name: str = DEFAULT_KERNEL,
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> PooledKernel:
        """A fresh kernel, working in ``cwd`` with ``env`` added to its environment.

        Raises :class:`KernelStartError` when no kernel answers within ``timeout`` seconds
        (default ``start_timeout``). Give the kernel back with :meth:`release`.
        """
        self._check_loop()
        if self._closed:
            raise KernelStartError("the kernel pool is closed")
        timeout = self.start_timeout if timeout is None else timeout
        choice = self._choice(kernel_name)
        target = kernel_environment(choice.spec.env, env)
        server = await self._running_server()
        reason = cold_start_reason(
            choice.warm, server.env, frozenset(server.preloaded or ()), cwd, target
        )
        if reason is None:
            kernel = await self._take_warm(timeout)
            kernel.manager.kernel_name = choice.name
            try:
                await self._prepare(kernel, server, cwd, target, timeout)
            except BaseException:
                await self.release(kernel)
                raise
        else:
            log.debug(
                "run in %s: kernel %r started from its kernelspec: %s", cwd, kernel_name, reason
            )
            kernel = await self._start_cold(choice, server, cwd, target, timeout)
        self._lent.add(kernel)
        return kernel

    async def kill(self, kernel: PooledKernel) -> None:
        """Kill a kernel's processes and wait until the fork server has reaped it."""
        self._check_loop()
        provisioner = kernel.manager.provisioner
        if kernel.alive and provisioner is not None:
            await provisioner.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(kernel.process.wait(), 10)

    async def release(self, kernel: PooledKernel) -> None:
        """Kill a kernel handed out by :meth:`acquire` (kernels are never reused)."""
        self._check_loop()
        self._lent.discard(kernel)
        with contextlib.suppress(Exception):
            kernel.client.stop_channels()
        await self.kill(kernel)
        with contextlib.suppress(Exception):
            await kernel.manager.cleanup_resources()

    # -- internals

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def _check_loop(self) -> None:
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("use the kernel pool's coroutines on its loop (KernelPool.run)")

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await coro
        finally:
            self._calls.discard(task)

    async def _open(self) -> None:
        self._context = zmq.asyncio.Context()
        self._spec_manager = KernelSpecManager()
        self._replenish()

    def _choice(self, kernel_name: str) -> _KernelChoice:
        choice = self._choices.get(kernel_name)
        if choice is None:
            try:
                spec = self._spec_manager.get_kernel_spec(kernel_name)
            except NoSuchKernel:
                raise KernelStartError(f"no kernel named {kernel_name!r} is installed") from None
            choice = _KernelChoice(kernel_name, spec, forkable(spec))
            self._choices[kernel_name] = choice
        return choice

    async def _running_server(self) -> ForkServer:
        if self._server is not None and self._server.running:
            return self._server
        if self._server_start is None or self._server_start.done():
            self._server_start = asyncio.ensure_future(self._start_server())
        return await asyncio.shield(self._server_start)

    async def _start_server(self) -> ForkServer:
        if self._server is not None:
            await self._server.stop()
        self._runtime_dir = jupyter_runtime_dir()
        server = ForkServer(RUN_KERNELS, as_kernel_sees_it(kernel_environment({}, None)))
        try:
            await server.start(self.start_timeout)
        except ForkServerError as err:
            raise KernelStartError(str(err)) from err
        self._server = server
        self._servers = [s for s in self._servers if s.running] + [server]
        return server

    def _replenish(self) -> None:
        while not self._closed and len(self._ready) < self.size:
            self._ready.append(asyncio.ensure_future(self._start_warm()))

    async def _take_warm(self, timeout: float) -> PooledKernel:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            task = (
                self._ready.popleft() if self._ready else asyncio.ensure_future(self._start_warm())
            )
            self._replenish()
            try:
                kernel = await asyncio.wait_for(task, max(deadline - loop.time(), 0.001))
            except TimeoutError:
                raise KernelStartError(f"no kernel was ready in {timeout:g} s") from None
            if kernel.alive:
                return kernel
            await self.release(kernel)  # died while waiting (OOM killer, ...): take the next

    def _manager(self, kernel_name: str, kernel_id: str) -> Any:
        km = AsyncKernelManager(
            kernel_name=kernel_name, context=self._context, kernel_spec_manager=self._spec_manager
        )
        km.kernel_id = kernel_id
        return km

    async def _start_warm(self) -> PooledKernel:
        server = await self._running_server()
        kernel_id = str(uuid.uuid4())
        connection_file = os.path.join(self._runtime_dir, f"kernel-{kernel_id}.json")
        argv = [_launcher(), "-f", connection_file, HISTORY_IN_MEMORY, KERNEL_LOG_LEVEL]
        launch = kernel_launch(kernel_id, connection_file, argv, [*argv[1:], "--ip=127.0.0.1"])
        try:
            child, connection = await server.launch_reported(launch, self.start_timeout)
        except ForkServerError as err:
            raise KernelStartError(str(err)) from err
        km = self._manager(DEFAULT_KERNEL, kernel_id)
        km.load_connection_info(connection)
        km.connection_file = connection_file
        provisioner = ServerChildProvisioner(kernel_id=kernel_id, parent=km)
        provisioner.server, provisioner.child = server, child
        provisioner.connection_info = km.get_connection_info()
        km.provisioner = provisioner
        client = km.client(context=self._context)
        kernel = PooledKernel(km, client, child, warm=True)
        try:
            client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
            await wait_connected(client, self.start_timeout)
        except BaseException:
            await self.release(kernel)
            raise
        return kernel

    async def _prepare(
        self,
        kernel: PooledKernel,
        server: ForkServer,
        cwd: Path,
        target: Mapping[str, str],
        timeout: float,
    ) -> None:
        """Apply the run's directory and environment, silently (no history, no count)."""
        assign, remove = environment_changes(server.env, as_kernel_sees_it(target))
        code = _SETUP.format(cwd=str(cwd), assign=assign, remove=remove)
        msg_id = kernel.client.execute(
            f"exec({code!r}, {{}})", silent=True, store_history=False, allow_stdin=False
        )
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            reply = await reply_to(kernel.client.shell_channel, msg_id, deadline)
        except TimeoutError:
            raise KernelStartError(
                f"the kernel did not take its settings in {timeout:g} s"
            ) from None
        content = reply["content"]
        if content.get("status") != "ok":
            error = f"{content.get('ename')}: {content.get('evalue')}"
            raise KernelStartError(f"the kernel could not take the run's settings: {error}")

    async def _start_cold(
        self,
        choice: _KernelChoice,
        server: ForkServer,
        cwd: Path,
        target: Mapping[str, str],
        timeout: float,
    ) -> PooledKernel:
        km = self._manager(choice.name, str(uuid.uuid4()))
        provisioner = ServerChildProvisioner(
            kernel_id=km.kernel_id, kernel_spec=choice.spec, parent=km
        )
        provisioner.server = server
        km.provisioner = provisioner
        extra = [HISTORY_IN_MEMORY, KERNEL_LOG_LEVEL] if km.ipykernel else []
        try:
            await km.start_kernel(cwd=str(cwd), env=dict(target), extra_arguments=extra)
        except BaseException as err:
            await provisioner.kill()  # if its process was started at all
            with contextlib.suppress(Exception):
                await km.cleanup_resources()
            if isinstance(err, Exception) and not isinstance(err, KernelStartError):
                raise KernelStartError(f"kernel {choice.name!r} could not start: {err}") from err
            raise
        assert provisioner.child is not None
        client = km.client(context=self._context)
        kernel = PooledKernel(km, client, provisioner.child, warm=False)
        try:
            client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
            await asyncio.wait_for(client.wait_for_ready(timeout=timeout), timeout + 1)
        except BaseException as err:
            await self.release(kernel)
            if isinstance(err, Exception):
                raise KernelStartError(
                    f"kernel {choice.name!r} did not answer: {kernel.exit_description()}"
                ) from err
            raise
        return kernel

    async def _aclose(self) -> None:
        for call in list(self._calls):
            call.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        starting = list(self._ready)
        self._ready.clear()
        for task in starting:
            task.cancel()
        for result in await asyncio.gather(*starting, return_exceptions=True):
            if isinstance(result, PooledKernel):
                await self.release(result)
        for kernel in list(self._lent):
            await self.release(kernel)
        if self._server_start is not None and not self._server_start.done():
            self._server_start.cancel()
            await asyncio.gather(self._server_start, return_exceptions=True)
        for server in self._servers:
            await server.stop()
        if self._context is not None:
            self._context.destroy(linger=0)

    def _abandon(self) -> None:
        """In a child forked from the owner: this copy must not keep the server alive."""
        self._closed = True
        for server in self._servers:
            server.abandon()


def _launcher() -> str:
    spec = importlib.util.find_spec("ipykernel_launcher")
    return spec.origin if spec is not None and spec.origin else "ipykernel_launcher"


# -- every pool of this process: a copy of it made by fork() must let go of them --------------

_POOLS: weakref.WeakSet[KernelPool] = weakref.WeakSet()


def _abandon_pools() -> None:
    for pool in list(_POOLS):
        pool._abandon()


os.register_at_fork(after_in_child=_abandon_pools)
