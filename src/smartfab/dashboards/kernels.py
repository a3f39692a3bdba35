"""The kernel manager of the dashboards' Voila processes: kernels start a few at a time.

Starting a kernel is mostly CPU (Python, ipykernel and its imports). When many viewers open an
app at once, Voila starts a kernel for each of them, and for the pool refills, all together:
on a small machine they share the cores and all become ready late, while the pages of the
viewers who got a warm kernel wait for CPU as well. Started a few at a time (one per core by
default), the first are ready early and the others follow in turn.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Float, Integer, default


class PacedKernelManager(AsyncMappingKernelManager):
    """An ``AsyncMappingKernelManager`` that lets at most ``starting_at_once`` kernels start
    at the same time (Voila's ``VoilaConfiguration.multi_kernel_manager_class``).

    A kernel counts as starting until it has been quiet (idle, no message) for
    ``quiet_seconds``: Voila runs the notebook in it right after the start, and that run is
    the larger part of the work.
    """

    starting_at_once = Integer(
        help="Kernels starting (and running their notebook) at the same time "
        "(default: the number of CPU cores available)."
    ).tag(config=True)
    quiet_seconds = Float(
        0.5, help="Seconds without kernel activity after which a kernel has finished starting."
    ).tag(config=True)
    start_timeout = Float(
        60, help="Seconds after which a kernel that is still busy no longer holds back others."
    ).tag(config=True)

    @default("starting_at_once")
    def _starting_at_once_default(self) -> int:
        return max(1, len(os.sched_getaffinity(0)))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._starting = asyncio.Semaphore(self.starting_at_once)
        self._watchers: set[asyncio.Task[None]] = set()

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        await self._starting.acquire()
        try:
            kernel_id: str = await super().start_kernel(*args, **kwargs)
        except BaseException:
            self._starting.release()
            raise
        watcher = asyncio.ensure_future(self._release_when_quiet(kernel_id))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return kernel_id

    async def _release_when_quiet(self, kernel_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        try:
            while loop.time() < deadline:
                await asyncio.sleep(0.1)
                kernel = self._kernels.get(kernel_id)
                if kernel is None:
                    return
                silent = (datetime.now(UTC) - kernel.last_activity).total_seconds()
                if kernel.execution_state == "idle" and silent >= self.quiet_seconds:
                    return
        finally:
            self._starting.release()
