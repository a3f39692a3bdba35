"""Where runs execute: ``local`` (threads of this process, warm kernels) or ``dask``.

Each executor maps a :class:`~smartfab.runs.models.RunTask` to a ``concurrent.futures.Future``
of its :class:`~smartfab.runs.models.RunOutcome` (:func:`make_executor` makes one by name; a
batch spec names one of these two). The task function is
:func:`smartfab.runs.task.execute_task`, the same in every executor, so a Dask worker runs a run
exactly as the local executor does (with its own pool of warm kernels).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from smartfab.errors import RunsError
from smartfab.runs.models import RunOutcome, RunTask


class Executor(Protocol):
    """Runs tasks somewhere; ``workers`` is how many run at once."""

    workers: int

    def submit(self, task: RunTask) -> Future[RunOutcome]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs in threads of this process, one warm kernel each (default: one per core)."""

    def __init__(self, workers: int | None = None, **_: Any) -> None:
        from smartfab.runs.execute import open_pool

        self.workers = workers or os.cpu_count() or 1
        open_pool(self.workers)  # one warm kernel per worker thread, started now
        self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="smartfab-run")

    def submit(self, task: RunTask) -> Future[RunOutcome]:
        from smartfab.runs.task import execute_task

        return self._threads.submit(execute_task, task)

    def close(self) -> None:
        from smartfab.runs.execute import close_pool

        self._threads.shutdown(wait=True, cancel_futures=True)
        close_pool()


class DaskExecutor:
    """Runs on a Dask distributed cluster (``tcp://HOST:PORT``, or a dask-gateway cluster's
    scheduler address): each task executes on a worker with that worker's warm kernels."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None, **_: Any) -> None:
        if not scheduler:
            raise RunsError("the dask executor needs a scheduler: --scheduler tcp://HOST:PORT")
        try:
            import distributed
        except ImportError as exc:  # pragma: no cover - distributed is a dependency
            raise RunsError("the dask executor needs: pip install distributed") from exc
        try:
            client_type: Any = distributed.Client
            self.client: Any = client_type(scheduler, timeout="10s", set_as_default=False)
        except OSError as exc:
            raise RunsError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        threads = sum(self.client.nthreads().values())
        if threads == 0:
            self.client.close()
            raise RunsError(f"the Dask scheduler at {scheduler} has no workers")
        self.workers = workers or threads

    def submit(self, task: RunTask) -> Future[RunOutcome]:
        from smartfab.runs.task import execute_task

        remote: Any = self.client.submit(
            execute_task,
            task,
            pure=False,
            key=f"smartfab-run-{task.input_key[:20]}-{task.attempt}",
        )
        local: Future[RunOutcome] = Future()
        local.set_running_or_notify_cancel()

        def done(finished: Any) -> None:
            try:
                local.set_result(finished.result())
            except BaseException as exc:  # the worker died or the task raised
                local.set_exception(exc)

        remote.add_done_callback(done)
        return local

    def close(self) -> None:
        self.client.close()


BUILTIN: dict[str, type[LocalExecutor] | type[DaskExecutor]] = {
    "local": LocalExecutor,
    "dask": DaskExecutor,
}


def make_executor(name: str, **options: Any) -> Executor:
    """The executor ``name`` (``local`` or ``dask``) with its ``options``."""
    factory: Any = BUILTIN.get(name)
    if factory is None:
        raise RunsError(f"unknown executor {name!r}; known: {', '.join(sorted(BUILTIN))}")
    executor: Executor = factory(**options)
    return executor
