"""Benchmark: a 40-run grid of a light program, three ways, in one run.

The program imports numpy and xarray, opens a small curated dataset (spindle thermal drift),
fits a thermal-compensation regression on a bootstrap sample chosen by ``seed`` and records two
metrics. The grid is ``seed`` = 0..39.

(A) a shell loop of the ``papermill`` CLI (one process and one kernel per run);
(B) ``papermill.execute_notebook`` in ``ProcessPoolExecutor(2)``;
(C) ``smartfab runs start`` with the local executor (warm forked kernels), the whole command.

Prints the three wall times, the ratios against the targets (C >= 10x faster than A, >= 4x
faster than B) and the per-run overhead of C above the notebook's own compute: the run's wall
time (kernel acquired to notebook written) minus the time its cells took in the kernel.

Usage, from the project root (it imports the test helpers of ``tests.support``):

    python -m bench.runs [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from tests.support.jupyterdirs import isolated_jupyter_dirs

TARGET_VS_CLI = 10.0
TARGET_VS_POOL = 4.0
TARGET_OVERHEAD_S = 0.1
WORKERS = 2
BIN = Path(sys.executable).parent

PROGRAM = """\
import numpy as np
import xarray as xr
import smartfab
import smartfab.datasets as sd

ds = sd.open("spindle-thermal")
temperatures = ["temperature_front_bearing", "temperature_rear_bearing", "temperature_motor"]
rng = np.random.default_rng(seed)
pick = rng.integers(0, ds.sizes["time"], ds.sizes["time"])
X = np.column_stack([ds[name].values[pick] for name in temperatures] + [np.ones(pick.size)])
y = ds["displacement_z"].values[pick]
coef, *_ = np.linalg.lstsq(X, y, rcond=None)
fit = xr.DataArray(X @ coef, dims="sample")
residual = y - fit.values
smartfab.record("rmse_um", float(np.sqrt(np.mean(residual**2))))
smartfab.record("r2", float(1 - residual.var() / y.var()))
"""


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_program(folder: Path, runs: int) -> tuple[Path, Path]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("seed: int = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(PROGRAM),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    program = folder / "thermal_fit.ipynb"
    nbformat.write(nb, program)
    spec = folder / "thermal_fit.yaml"
    spec.write_text(
        json.dumps(
            {
                "name": "thermal-fit",
                "program": program.name,
                "grid": {"seed": list(range(runs))},
                "metrics": ["rmse_um", "r2"],
                "acceptance": {"r2": ">= 0.5"},
                "executor": "local",
                "workers": WORKERS,
            }
        )
    )
    return program, spec


def papermill_cli_loop(program: Path, out: Path, runs: int) -> float:
    """(A): one ``papermill`` process per run, in a shell loop."""
    script = (
        f'for seed in $(seq 0 {runs - 1}); do "{BIN / "papermill"}" --no-progress-bar '
        f'--log-level ERROR "{program}" "{out}/a-$seed.ipynb" -p seed $seed 2>/dev/null '
        "|| exit 1; done"
    )
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True, cwd=program.parent)
    return time.perf_counter() - start


def _execute_one(args: tuple[str, str, int]) -> None:
    import papermill

    program, output, seed = args
    papermill.execute_notebook(
        program,
        output,
        parameters={"seed": seed},
        progress_bar=False,
        cwd=str(Path(program).parent),
    )


def papermill_pool(program: Path, out: Path, runs: int) -> float:
    """(B): ``papermill.execute_notebook`` in a pool of two processes."""
    jobs = [(str(program), str(out / f"b-{seed}.ipynb"), seed) for seed in range(runs)]
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_execute_one, jobs))
    return time.perf_counter() - start


def smartfab_runs(spec: Path, store: Path) -> tuple[float, dict[str, Any]]:
    """(C): the whole ``smartfab runs start`` command, local executor."""
    start = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "smartfab"), "runs", "start", str(spec), "--store", str(store), "--json"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise RuntimeError(f"smartfab runs start failed:\n{result.stderr}")
    summary: dict[str, Any] = json.loads(result.stdout)
    return seconds, summary


def overheads(store: Path, batch: str) -> list[float]:
    """Per run, in the order the runs started: wall time minus the time the notebook's cells
    took in the kernel."""
    from smartfab.runs.store import RunStore

    found = []
    runs = RunStore.open(store, create=False).runs(batch)
    for run in sorted(runs, key=lambda r: r.started):
        nb = nbformat.read(store / run.output_notebook, as_version=4)
        compute = 0.0
        for cell in nb.cells:
            timing = cell.get("metadata", {}).get("execution", {})
            began, done = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
            if began and done:
                compute += (_time(done) - _time(began)).total_seconds()
        found.append(run.duration_s - compute)
    return found


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.runs", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=40, help="grid size (40)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="smartfab-bench-runs-"))
    saved = dict(os.environ)
    try:
        os.environ.update(isolated_jupyter_dirs(work))
        os.environ["SMARTFAB_DATA_DIR"] = str(work / "data")
        out = work / "out"
        out.mkdir()
        program, spec = write_program(work, args.runs)
        import smartfab.datasets as sd

        sd.default_catalog().build("spindle-thermal")  # every path opens the same cached build
        note(f"(C) smartfab runs start, {args.runs} runs")
        ours_s, summary = smartfab_runs(spec, work / "store")
        extra = overheads(work / "store", summary["batch"])
        note(f"(B) papermill.execute_notebook in ProcessPoolExecutor(2), {args.runs} runs")
        pool_s = papermill_pool(program, out, args.runs)
        note(f"(A) shell loop of the papermill CLI, {args.runs} runs")
        cli_s = papermill_cli_loop(program, out, args.runs)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(work, ignore_errors=True)
    vs_cli, vs_pool = cli_s / ours_s, pool_s / ours_s
    # the first run of each worker also waits for the pool's fork server to preload the stack:
    # a start-up cost of the batch (inside C's wall time), not a per-run one
    first, warm = extra[:WORKERS], extra[WORKERS:]
    mean_overhead = statistics.mean(warm)
    ok = (
        vs_cli >= TARGET_VS_CLI
        and vs_pool >= TARGET_VS_POOL
        and mean_overhead <= TARGET_OVERHEAD_S
        and summary["error"] == 0
    )
    n = args.runs
    print(f"program test runs benchmark: {n} runs of a light program (numpy + xarray + dataset)")
    print(f"  (A) papermill CLI loop              {cli_s:7.2f} s  ({cli_s / n:.3f} s/run)")
    print(f"  (B) execute_notebook, 2 processes   {pool_s:7.2f} s  ({pool_s / n:.3f} s/run)")
    print(
        f"  (C) smartfab runs start (local)     {ours_s:7.2f} s  ({ours_s / n:.3f} s/run, "
        f"whole command incl. start-up; {summary['passed']} passed, {summary['error']} error)"
    )
    print(
        f"  C vs A {vs_cli:.1f}x (target >= {TARGET_VS_CLI:.0f}x: "
        f"{'PASS' if vs_cli >= TARGET_VS_CLI else 'FAIL'}); "
        f"C vs B {vs_pool:.1f}x (target >= {TARGET_VS_POOL:.0f}x: "
        f"{'PASS' if vs_pool >= TARGET_VS_POOL else 'FAIL'})"
    )
    print(
        f"  per-run overhead of C above the notebook's compute: mean {mean_overhead:.3f} s, "
        f"median {statistics.median(warm):.3f} s, max {max(warm):.3f} s; the first "
        f"{WORKERS} runs also waited for the pool to start: {_runs(first)} s "
        f"(target <= {TARGET_OVERHEAD_S} s: "
        f"{'PASS' if mean_overhead <= TARGET_OVERHEAD_S else 'FAIL'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
