"""Execute one parameterized notebook in a fresh kernel: the call the batch runner makes.

The notebook is parameterized exactly as papermill does it (``injected-parameters`` cell,
``metadata.papermill``), executed with papermill's notebook client in a kernel of the
process-wide :class:`~smartfab.runs.kernels.pool.KernelPool`, and returned in every case,
executed or partial, with what went wrong.

>>> run = execute_notebook(Path("program.ipynb"), {"feed": 0.2}, cwd=Path("."), timeout_s=600)
... # doctest: +SKIP
>>> run.error_kind, run.nb.cells[1].outputs  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient.exceptions import DeadKernelError
from papermill.engines import NotebookExecutionManager
from papermill.exceptions import PapermillExecutionError
from papermill.execute import (
    prepare_notebook_metadata,
    raise_for_execution_errors,
    remove_error_markers,
)
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from smartfab.errors import KernelStartError
from smartfab.runs.engine import execute_in_kernel
from smartfab.runs.kernels.pool import DEFAULT_KERNEL, KernelPool
from smartfab.runs.kernels.shared import close_shared_pool, shared_pool

__all__ = ["Execution", "close_pool", "execute_notebook", "open_pool"]

log = logging.getLogger(__name__)

#: once the kernel is killed at the deadline, nbclient notices within seconds; past this
#: margin the run is abandoned anyway
_ABANDON_AFTER_S = 30.0


@dataclass
class Execution:
    """What executing one notebook produced.

    Attributes
    ----------
    nb:
        The executed notebook, or as far as it ran (outputs of the cells that ran are kept).
    error_kind:
        ``None``; ``"exception"`` (a cell raised); ``"timeout"`` (the run exceeded its
        ``timeout_s``, its kernel was killed); ``"dead-kernel"`` (the kernel died mid-run);
        ``"start"`` (no kernel could be started).
    error:
        One line saying what went wrong (empty when nothing did).
    started, ended:
        Timezone-aware (UTC) times of the whole call.
    cell_index:
        0-based index in ``nb`` of the cell that failed or was running, if any.
    ename, evalue, traceback:
        The exception a cell raised (``"exception"`` only).
    """

    nb: Any
    error_kind: str | None
    error: str
    started: datetime
    ended: datetime
    cell_index: int | None = None
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_kind is None


@dataclass
class _Failure:
    kind: str
    message: str


def open_pool(size: int | None = None) -> KernelPool:
    """Open the process-wide kernel pool now (or resize it), ``size`` kernels kept ready.

    Default size: ``$SMARTFAB_KERNEL_POOL``, else the number of cores. Calling it before a
    batch lets the first runs find their kernels started; :func:`execute_notebook` opens the
    pool itself otherwise.
    """
    return shared_pool(size)


def close_pool() -> None:
    """Kill the pool's kernels and stop its fork server (the next run opens a new pool)."""
    close_shared_pool()


def execute_notebook(
    notebook: Path,
    parameters: dict[str, Any],
    *,
    kernel_name: str = DEFAULT_KERNEL,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout_s: float,
    pool: KernelPool | None = None,
) -> Execution:
    """Execute ``notebook`` with ``parameters`` in a fresh kernel working in ``cwd``.

    Safe to call from several threads at once.

    Parameters
    ----------
    notebook:
        The program notebook; it is not modified.
    parameters:
        Injected as papermill does (an empty dict injects nothing).
    kernel_name:
        Kernelspec to run; this interpreter's IPython kernel comes warm from the pool.
    cwd:
        Working directory of the kernel.
    env:
        Variables added to the kernel's environment (e.g. ``SMARTFAB_RUN``).
    timeout_s:
        Bound on the whole run, kernel start included; past it the kernel is killed.
    pool:
        The pool to take the kernel from (default: the process-wide one).

    Returns
    -------
    Execution
        Never raises for a failing run: see ``error_kind``.

    Raises
    ------
    OSError, nbformat.ValidationError, papermill.PapermillException
        The notebook cannot be read or parameterized (no run took place).

    See Also
    --------
    smartfab.runs.kernels.pool.KernelPool
    """
    started = datetime.now(UTC)
    nb = load_notebook_node(str(notebook))
    if parameters:
        nb = parameterize_notebook(
            nb,
            parameters,
            report_mode=False,
            kernel_name=kernel_name,
            language=_language(nb, kernel_name),
            engine_name="smartfab",
        )
    nb = prepare_notebook_metadata(nb, str(notebook), None)
    nb = remove_error_markers(nb)
    nb_man = NotebookExecutionManager(nb, progress_bar=False, autosave_cell_every=0)
    nb_man.notebook_start()
    pool = pool or shared_pool()
    failure: _Failure | None
    try:
        failure = pool.run(
            _run(pool, nb_man, kernel_name, Path(cwd), dict(env or {}), float(timeout_s))
        )
    except (concurrent.futures.CancelledError, asyncio.CancelledError):
        failure = _Failure("dead-kernel", "the kernel pool was closed during the run")
    except KernelStartError as err:  # the pool was closed before the run
        failure = _Failure("start", str(err))
    finally:
        nb_man.cleanup_pbar()
        nb_man.notebook_complete()
    return _execution(nb_man.nb, failure, started)


def _language(nb: Any, kernel_name: str) -> str | None:
    """The notebook's language; for a notebook that names none, its kernel's."""
    metadata = nb.metadata
    language = metadata.get("language_info", {}).get("name") or metadata.get("kernelspec", {}).get(
        "language"
    )
    if language:
        return str(language)
    try:
        return str(KernelSpecManager().get_kernel_spec(kernel_name).language) or None
    except NoSuchKernel:
        return None  # papermill says which information is missing


async def _run(
    pool: KernelPool,
    nb_man: Any,
    kernel_name: str,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
) -> _Failure | None:
    """Acquire, execute against the deadline, release; on the pool's loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        kernel = await pool.acquire(
            kernel_name, cwd=cwd, env=env, timeout=min(pool.start_timeout, timeout_s)
        )
    except KernelStartError as err:
        return _Failure("start", str(err))
    except Exception as err:  # e.g. the kernelspec's program cannot be executed
        return _Failure("start", f"{type(err).__name__}: {err}")
    killing: list[asyncio.Task[None]] = []

    def expire() -> None:
        # nbclient finds the kernel dead and stops, keeping what the cells printed so far
        killing.append(loop.create_task(pool.kill(kernel)))

    timer = loop.call_at(deadline, expire)
    try:
        await asyncio.wait_for(
            execute_in_kernel(nb_man, kernel, timeout=None, log=log),
            timeout_s + _ABANDON_AFTER_S,
        )
        return None
    except Exception as err:
        if killing:
            return _Failure("timeout", f"the run exceeded its timeout of {timeout_s:g} s")
        if isinstance(err, DeadKernelError) or not kernel.alive:
            return _Failure("dead-kernel", f"the kernel {kernel.exit_description()}")
        # e.g. nbclient's timeout waiting for a cell's output after its reply
        return _Failure("exception", f"{type(err).__name__}: {err}")
    finally:
        timer.cancel()
        await pool.release(kernel)


def _execution(nb: Any, failure: _Failure | None, started: datetime) -> Execution:
    """The outcome, with papermill's error markers added when a cell raised."""
    if failure is not None:
        index = _failed_cell(nb)
        where = f" (in cell {index})" if index is not None else ""
        return Execution(
            nb, failure.kind, failure.message + where, started, datetime.now(UTC), index
        )
    try:
        raise_for_execution_errors(nb, None)
    except PapermillExecutionError as err:
        # papermill put a marker cell at the top and an anchor just before the failing cell
        index = err.cell_index + 2
        evalue = str(err.evalue)
        line = f"{err.ename}: {evalue.splitlines()[0] if evalue else ''}".rstrip(": ")
        return Execution(
            nb,
            "exception",
            f"{line} (in cell {index})",
            started,
            datetime.now(UTC),
            index,
            str(err.ename),
            evalue,
            list(err.traceback),
        )
    return Execution(nb, None, "", started, datetime.now(UTC))


def _failed_cell(nb: Any) -> int | None:
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get("papermill", {}).get("status") in ("failed", "running"):
            return index
    return None
