"""Batches in a run store: start one, write its report, compare two, verify one.

What ``smartfab runs start | report | compare | verify`` do, as functions of a store: the
command line (:mod:`smartfab.runs.commands`) parses options, calls these and prints.

The heavy modules (papermill, jupyter_client, the store) are imported inside the functions,
after the pool of warm kernels has started in the background: its fork server then imports the
kernel and the stack while this process imports and reads the rest.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smartfab.errors import RunsError

if TYPE_CHECKING:
    from smartfab.runs.models import BatchRecord
    from smartfab.runs.report.compare import Comparison
    from smartfab.runs.report.files import ReportFiles
    from smartfab.runs.runner import BatchResult
    from smartfab.runs.store import RunStore
    from smartfab.runs.verify import Verification


@dataclass(frozen=True)
class StartedBatch:
    """What :func:`start_batch` did: the batch's final counts and its report."""

    result: BatchResult
    report: ReportFiles


def start_batch(
    spec: Path,
    store: Path,
    *,
    executor: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = False,
    on_progress: Callable[[BatchResult, int], None] | None = None,
) -> StartedBatch:
    """Run a batch spec over its grid into the store at ``store``, then write its report.

    Runs already in the store with identical inputs (and unchanged datasets) are reused, so
    starting a spec again executes only what is missing.

    Parameters
    ----------
    spec:
        The batch spec (YAML).
    store:
        Root folder of the run store (created if needed).
    executor:
        ``local`` or ``dask`` (default: the spec's).
    scheduler:
        Dask scheduler address (default: the spec's); used only by the ``dask`` executor.
    workers:
        Runs at once (local; default: the spec's, else the number of cores).
    force:
        Execute runs again even with identical inputs.
    progress:
        Show a progress bar on stderr.
    on_progress:
        Called after each run with the batch's counts so far and the runs remaining (instead
        of the progress bar).

    Raises
    ------
    RunSpecError
        The spec is invalid (before any run, and before the store is opened).
    RunStoreError
        The store cannot be opened or written (before any run).

    See Also
    --------
    smartfab.runs.runner.BatchRunner : the execution template of one batch.
    """
    from smartfab.runs.kernels.shared import close_shared_pool, warm_shared_pool

    if executor != "dask":
        warm_shared_pool(workers)
    from smartfab.runs.executors import make_executor
    from smartfab.runs.runner import BatchRunner, progress_bar
    from smartfab.runs.spec import load_spec
    from smartfab.runs.store import RunStore

    loaded = load_spec(spec)
    run_store = RunStore.open(store, create=True)  # unwritable store: error before any run
    name = executor or loaded.spec.executor
    address = None
    if name == "dask":  # the spec's executor (its address is checked), or --executor dask
        address = loaded.scheduler_address(scheduler) if executor is None else scheduler
        address = address or loaded.spec.scheduler
    if name != "local":
        close_shared_pool()  # warmed for nothing: runs execute elsewhere
    chosen = make_executor(name, scheduler=address, workers=workers or loaded.spec.workers)
    try:
        total = len(loaded.runs())
        runner = BatchRunner(
            loaded,
            run_store,
            chosen,
            force=force,
            on_progress=progress_bar(total, loaded.spec.name) if progress else on_progress,
        )
        result = runner.run()
    finally:
        chosen.close()
    return StartedBatch(result, write_batch_report(run_store, result.batch))


def report_dir(store: RunStore, batch_id: str) -> Path:
    """Where a batch's report is written by default: beside the batch in the store."""
    return store.root / "batches" / batch_id / "report"


def write_batch_report(store: RunStore, batch: BatchRecord, out: Path | None = None) -> ReportFiles:
    """Write the report of a stored batch into ``out`` (default :func:`report_dir`), with the
    acceptance rules of its spec."""
    from smartfab.runs.report.files import write_report

    runs = store.runs(batch.batch_id)
    acceptance = dict(batch.spec.get("acceptance") or {})
    target = out or report_dir(store, batch.batch_id)
    target.mkdir(parents=True, exist_ok=True)
    return write_report(batch, runs, target, acceptance=acceptance, store_root=store.root)


def compare_stored(
    store: RunStore, a: str, b: str, *, rtol: float | None = None, atol: float = 0.0
) -> Comparison:
    """Compare two stored batches (ids, id prefixes or names); ``rtol`` defaults to the
    tolerances of B's spec."""
    from smartfab.runs.report.compare import compare_batches

    first, second = store.batch(a), store.batch(b)
    tolerance: dict[str, float] | float = (
        rtol if rtol is not None else dict(second.spec.get("tolerance") or {})
    )
    return compare_batches(
        store.runs(first.batch_id), store.runs(second.batch_id), rtol=tolerance, atol=atol
    )


def verify_batch(store: RunStore, batch: str, *, sample: int, seed: int) -> list[Verification]:
    """Execute a random sample (``sample`` runs, drawn with ``seed``) of a stored batch's runs
    that finished without error again, and check that their metrics reproduce within the
    tolerances of its spec. Nothing is written to the store.

    Raises
    ------
    RunsError
        The batch has no run that finished without error.
    """
    from smartfab.runs.verify import verify_runs

    record = store.batch(batch)
    runs = [r for r in store.runs(record.batch_id) if r.error is None]
    if not runs:
        raise RunsError(f"batch {record.batch_id} has no finished run without error to verify")
    chosen = sorted(random.Random(seed).sample(runs, min(sample, len(runs))), key=lambda r: r.index)
    tolerance = dict(record.spec.get("tolerance") or {})
    return verify_runs(chosen, tolerance, timeout_s=float(record.spec.get("timeout") or 600))
