"""smartfab's papermill engine (registered as ``smartfab`` under ``papermill.engine``).

Executes like papermill's nbclient engine, but in a fresh kernel taken from the process-wide
:class:`~smartfab.runs.kernels.pool.KernelPool` (warm, forked ahead of need) and killed
afterwards::

    papermill in.ipynb out.ipynb -p x 1 --engine smartfab

Cell errors end as ``PapermillExecutionError`` with the error in the output notebook, and
``execution_timeout`` bounds each cell, as with the nbclient engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbclient.exceptions import CellExecutionError, DeadKernelError

from smartfab.runs.kernels.pool import KernelPool, PooledKernel
from smartfab.runs.kernels.shared import shared_pool

# papermill registers the engines of every installed package while it is itself being imported,
# this one included. When importing this module is what imports papermill, papermill looks the
# engine up before it is defined: it finds this placeholder, and the engine is registered below.
globals().setdefault("SmartfabEngine", None)

from papermill.clientwrap import PapermillNotebookClient  # noqa: E402
from papermill.engines import NBClientEngine, papermill_engines  # noqa: E402
from papermill.log import logger  # noqa: E402
from papermill.utils import merge_kwargs, remove_args  # noqa: E402


class SmartfabNotebookClient(PapermillNotebookClient):  # type: ignore[misc]
    """papermill's notebook client, run as a coroutine with a kernel that is already running.

    :meth:`async_papermill_execute` is ``PapermillNotebookClient.execute`` awaited cell by
    cell on the caller's event loop (papermill's own runs a private loop per cell), so one
    loop can drive several notebooks at once.
    """

    async def async_papermill_execute(self) -> Any:
        """Execute every cell as papermill does; return the notebook."""
        self.reset_execution_trackers()
        async with self.async_setup_kernel():
            self.log.info(f"Executing notebook with kernel: {self.kernel_name}")
            for index, cell in enumerate(self.nb.cells):
                try:
                    self.nb_man.cell_start(cell, index)
                    await self.async_execute_cell(cell, index)
                except CellExecutionError as ex:
                    self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                    break
                except (DeadKernelError, TimeoutError) as ex:
                    # the notebook records where the kernel was lost, not a completed cell
                    self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                    raise
                finally:
                    self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)
            info_msg = await self.async_wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            self.set_widgets_metadata()
        return self.nb


async def execute_in_kernel(nb_man: Any, kernel: PooledKernel, **client_kwargs: Any) -> Any:
    """Execute ``nb_man``'s notebook in ``kernel`` (on the pool's loop); return the notebook.

    ``client_kwargs`` are traits of papermill's notebook client (``timeout``, ``log_output``,
    ...). The kernel is left running: release it to the pool.
    """
    client = SmartfabNotebookClient(nb_man, km=kernel.manager, **client_kwargs)
    client.kc = kernel.client
    client.kc.allow_stdin = False
    return await client.async_papermill_execute()


class SmartfabEngine(NBClientEngine):  # type: ignore[misc]
    """papermill engine: each notebook runs in its own fresh kernel from the shared pool."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: float = 60,
        execution_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Execute the parameterized notebook in a kernel of the process-wide pool.

        The kernel works in the current directory (papermill's ``cwd`` option changes it
        around this call).
        """
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        pool = shared_pool()
        return pool.run(
            _execute(pool, nb_man, kernel_name, Path.cwd(), float(start_timeout), final_kwargs)
        )


papermill_engines.register("smartfab", SmartfabEngine)


async def _execute(
    pool: KernelPool,
    nb_man: Any,
    kernel_name: str,
    cwd: Path,
    start_timeout: float,
    client_kwargs: dict[str, Any],
) -> Any:
    kernel = await pool.acquire(kernel_name, cwd=cwd, timeout=start_timeout)
    try:
        return await execute_in_kernel(nb_man, kernel, **client_kwargs)
    finally:
        await pool.release(kernel)
