"""One run, executed wherever an executor puts it: notebook in, outcome out.

This function is what a local thread or a Dask worker calls. It writes nothing: the outcome
(including the output notebook) travels back to the runner, the only writer of the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from smartfab.record import RUN_ENV
from smartfab.runs.collect import collect
from smartfab.runs.execute import execute_notebook
from smartfab.runs.models import RunError, RunOutcome, RunTask
from smartfab.runs.provenance import host


def execute_task(task: RunTask) -> RunOutcome:
    """Execute ``task``'s notebook with its parameters and collect what it recorded."""
    execution = execute_notebook(
        Path(task.notebook),
        task.parameters,
        kernel_name=task.kernel,
        cwd=Path(task.cwd),
        env={RUN_ENV: task.input_key},
        timeout_s=task.timeout_s,
    )
    collected = collect(execution.nb)
    error: RunError | None = None
    if execution.error_kind == "exception" and collected.error is not None:
        error = collected.error
    elif execution.error_kind is not None:
        error = RunError(
            kind=execution.error_kind,
            cell_index=_last_executed_cell(execution.nb),
            ename=execution.error_kind,
            evalue=execution.error,
        )
    return RunOutcome(
        input_key=task.input_key,
        status_ok=error is None,
        error=error,
        metrics=collected.metrics,
        datasets=collected.datasets,
        output_notebook=_writes(execution.nb),
        started=execution.started,
        ended=execution.ended,
        host=host(),
        attempts=task.attempt,
    )


def _writes(nb: Any) -> str:
    writes: Any = nbformat.writes
    return str(writes(nb))


def _last_executed_cell(nb: nbformat.NotebookNode) -> int | None:
    """Index of the last code cell that started executing (where a timeout or death struck)."""
    last = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (
            cell.get("execution_count") is not None
            or cell.get("metadata", {}).get("papermill", {}).get("status") == "running"
        ):
            last = index
    return last
