"""``smartfab runs start | status | report | compare | verify | upgrade-store``: options in, text
or JSON out.

What each command does to the store is in :mod:`smartfab.runs.batch`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from smartfab.runs.models import RunRecord
    from smartfab.runs.store import RunStore

app = typer.Typer(help="Program test runs: notebooks over parameter grids.", no_args_is_help=True)

STORE_ENV = "SMARTFAB_RUNS_DIR"
StoreDir = Annotated[
    Path | None,
    typer.Option("--store", help=f"The run store (default ${STORE_ENV} or ./smartfab-runs)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def lean_imports() -> None:
    """Skip building the RFC 3987 grammar that jsonschema's format extras load at import
    (0.7 s, for an ``iri`` format no notebook or spec uses) in this command's process."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def store_root(store: Path | None) -> Path:
    """``--store``, else ``$SMARTFAB_RUNS_DIR``, else ``./smartfab-runs``."""
    return store or Path(os.environ.get(STORE_ENV) or "smartfab-runs")


def _open_store(store: Path | None) -> RunStore:
    from smartfab.runs.store import RunStore

    return RunStore.open(store_root(store), create=False)


@app.command("start")
def start_command(
    spec: Annotated[Path, typer.Argument(help="The batch spec (YAML).")],
    store: StoreDir = None,
    executor: Annotated[
        str | None, typer.Option(help="local or dask (default: the spec's, else local).")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address, e.g. tcp://127.0.0.1:8786.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Runs at once (local; default: cores).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Execute runs again even with identical inputs.")
    ] = False,
    json_output: Json = False,
) -> None:
    """Run a batch spec over its grid: resume what is missing, store every run, write the report.

    Exit status: 0 when every run passed its acceptance rules, 1 when a run failed or errored.

    Example: smartfab runs start notebooks/programs/tool_wear_regression.yaml
    """
    lean_imports()
    from smartfab.runs.batch import start_batch

    started = start_batch(
        spec,
        store_root(store),
        executor=executor,
        scheduler=scheduler,
        workers=workers,
        force=force,
        progress=not json_output,
    )
    result, files = started.result, started.report
    summary = {
        "batch": result.batch.batch_id,
        "runs": result.batch.runs,
        "executed": result.executed,
        "reused": result.reused,
        **{status: result.counts[status] for status in ("passed", "failed", "error")},
        "report": str(files.html),
    }
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(
            f"{summary['batch']}: {summary['runs']} runs ({result.executed} executed, "
            f"{result.reused} reused): {summary['passed']} passed, {summary['failed']} failed, "
            f"{summary['error']} error\nreport: {files.html}"
        )
    if not result.all_passed:
        raise typer.Exit(1)


@app.command("status")
def status_command(
    batch: Annotated[str | None, typer.Argument(help="Batch id, id prefix or name.")] = None,
    store: StoreDir = None,
    json_output: Json = False,
) -> None:
    """List batches with their counts, or the runs of one batch.

    Example: smartfab runs status tool-wear-regression
    """
    run_store = _open_store(store)
    if batch is None:
        rows: list[dict[str, Any]] = [
            {"batch": b.batch_id, "name": b.name, "created": b.created.isoformat(), "runs": b.runs}
            | run_store.counts(b.batch_id)
            for b in run_store.batches()
        ]
        if json_output:
            typer.echo(json.dumps(rows, indent=2))
            return
        for row in rows:
            typer.echo(
                f"{row['batch']}  {row['created'][:19]}  {row['runs']} runs: "
                f"{row.get('passed', 0)} passed, {row.get('failed', 0)} failed, "
                f"{row.get('error', 0)} error, {row['runs'] - row.get('total', 0)} missing"
            )
        return
    record = run_store.batch(batch)
    runs = run_store.runs(record.batch_id)
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "batch": record.batch_id,
                    "counts": run_store.counts(record.batch_id),
                    "runs": [_run_row(r) for r in runs],
                },
                indent=2,
            )
        )
        return
    counts = run_store.counts(record.batch_id)
    typer.echo(f"{record.batch_id} ({record.runs} runs): {counts}")
    for run in runs:
        row = _run_row(run)
        typer.echo(
            f"  #{row['index']:<3} {row['status']:<6} {row['duration_s']:7.2f} s  "
            f"{json.dumps(row['parameters'], sort_keys=True)}"
        )


def _run_row(run: RunRecord) -> dict[str, Any]:
    scalars = {k: v for k, v in run.metrics.items() if not isinstance(v, dict | list)}
    return {
        "index": run.index,
        "run_id": run.run_id,
        "status": run.status.value,
        "duration_s": run.duration_s,
        "parameters": run.parameters,
        "metrics": scalars,
        "error": run.error.model_dump() if run.error else None,
    }


@app.command("report")
def report_command(
    batch: Annotated[str, typer.Argument(help="Batch id, id prefix or name.")],
    store: StoreDir = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for report.html, runs.csv, runs.json.")
    ] = None,
) -> None:
    """Write the batch report: self-contained HTML, plus CSV and JSON.

    Example: smartfab runs report tool-wear-regression --out report/
    """
    from smartfab.runs.batch import write_batch_report

    run_store = _open_store(store)
    files = write_batch_report(run_store, run_store.batch(batch), out)
    for path in (files.html, files.csv, files.json):
        typer.echo(str(path))


@app.command("compare")
def compare_command(
    a: Annotated[str, typer.Argument(help="The reference batch (e.g. program v1).")],
    b: Annotated[str, typer.Argument(help="The batch to compare (e.g. program v2).")],
    store: StoreDir = None,
    rtol: Annotated[
        float | None,
        typer.Option(help="Relative tolerance for every metric (default: B's spec tolerances)."),
    ] = None,
    atol: Annotated[float, typer.Option(help="Absolute tolerance.")] = 0.0,
    json_output: Json = False,
) -> None:
    """Which runs changed beyond tolerance between two batches (paired by parameters).

    Exit status: 0 when nothing changed, 1 when a run changed or exists in only one batch.

    Example: smartfab runs compare tool-wear-regression-1a2b tool-wear-regression-3c4d
    """
    lean_imports()
    from smartfab.runs.batch import compare_stored

    comparison = compare_stored(_open_store(store), a, b, rtol=rtol, atol=atol)
    typer.echo(comparison.to_json() if json_output else comparison.render_text())
    if comparison.changed or comparison.only_a or comparison.only_b:
        raise typer.Exit(1)


@app.command("verify")
def verify_command(
    batch: Annotated[str, typer.Argument(help="Batch id, id prefix or name.")],
    store: StoreDir = None,
    sample: Annotated[int, typer.Option(min=1, help="How many runs to execute again.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    json_output: Json = False,
) -> None:
    """Execute a random sample of a batch's runs again and check that the metrics reproduce
    (within the spec's tolerances). Nothing is written to the store.

    Exit status: 0 when every sampled run reproduces, 1 otherwise.

    Example: smartfab runs verify tool-wear-regression --sample 5
    """
    lean_imports()
    from smartfab.runs.kernels.shared import warm_shared_pool

    warm_shared_pool(None)  # while this process imports and reads the store
    from smartfab.runs.batch import verify_batch

    results = verify_batch(_open_store(store), batch, sample=sample, seed=seed)
    if json_output:
        typer.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            typer.echo(r.render())
    if not all(r.reproduced for r in results):
        raise typer.Exit(1)


@app.command("upgrade-store")
def upgrade_store_command(
    store: Annotated[Path, typer.Argument(help="The run store's folder.")],
    json_output: Json = False,
) -> None:
    """Bring a run store's index to the newest revision this smartfab knows, in place.

    Every command opens a store this way already; this one does only that and says what it did.
    The runs and batches (files) are not touched; an index written by a newer smartfab is
    refused.

    Example: smartfab runs upgrade-store /srv/smartfab/runs
    """
    from smartfab.runs.store import RunStore

    with RunStore.open(store, create=False) as run_store:
        done = run_store.index_upgrade
    if json_output:
        summary = {"index": str(done.index), "from": done.before, "to": done.after}
        typer.echo(json.dumps(summary | {"changed": done.changed}, indent=2))
    else:
        typer.echo(done.describe())
