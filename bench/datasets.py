"""Benchmark: a vibration record stored by the catalog vs the same data as CSV.

Firms exchange vibration records as CSV today. This measures, in one run and on the same data
(1e8 samples by default):

* generation throughput of the bearing generator (samples per second);
* open + RMS per one-second window through ``smartfab.datasets.open``, with the default verify
  policy: every byte read is checked against the sha256 recorded at build time (segment by
  segment, as dask reads the chunks);
* ``pandas.read_csv`` + the same RMS computation (the same numpy function on both paths: the
  catalog's chunks hold whole seconds, so it runs chunk by chunk with ``map_blocks``);

each path once untimed (imports, page cache), then the median of three timed runs;

and prints the ratio against the targets: catalog >= 20x faster than CSV, generation >= 10 M
samples/s. Both paths must give the same RMS values, or the benchmark fails.

Usage, from the project root:

    python -m bench.datasets [--samples 1e8] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DATASET = "bearing-run-to-failure"
RATE_HZ = 12_000.0
SNAPSHOT_S = 50.0
TARGET_SPEEDUP = 20.0
TARGET_GENERATION = 10e6
#: timed runs per path, after one untimed warm-up run (imports, page cache): the median counts
REPEATS = 3


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parameters_for(samples: float) -> dict[str, Any]:
    """Bearing generator parameters giving at least ``samples`` samples."""
    per_snapshot = SNAPSHOT_S * RATE_HZ
    return {
        "sampling_rate": RATE_HZ,
        "snapshot_duration": SNAPSHOT_S,
        "n_snapshots": max(2, math.ceil(samples / per_snapshot)),
    }


def rms_per_second(values: np.ndarray, rate: float) -> np.ndarray:
    """RMS over consecutive one-second windows of each snapshot (rows)."""
    window = int(rate)
    usable = values.shape[-1] // window * window
    shaped = values[..., :usable].reshape(*values.shape[:-1], -1, window)
    return np.sqrt(np.einsum("...i,...i->...", shaped, shaped) / window)


def catalog_path(params: dict[str, Any], policy: str = "always") -> tuple[float, np.ndarray]:
    """Open through the public API; RMS per window with the same function, chunk by chunk.

    ``policy`` is the catalog's verify policy: "always" (the default) checks every byte read;
    "changed" hashes a file only when it changed since this process last hashed it.
    """
    import smartfab.datasets as sd

    sd.default_catalog().verify_policy = policy  # type: ignore[assignment]
    start = time.perf_counter()
    ds = sd.open(DATASET, **params)
    data = ds["acceleration"].data
    rate = params["sampling_rate"]
    window = int(rate)
    windows = (data.chunks[0], tuple(size // window for size in data.chunks[1]))
    rms = data.map_blocks(rms_per_second, rate, chunks=windows, dtype=data.dtype).compute()
    return time.perf_counter() - start, rms


def catalog_coarsen_path(params: dict[str, Any]) -> tuple[float, np.ndarray]:
    """The same through xarray's ``coarsen`` (for information: more passes over memory)."""
    import smartfab.datasets as sd

    sd.default_catalog().verify_policy = "always"
    start = time.perf_counter()
    accel = sd.open(DATASET, **params)["acceleration"]
    window = int(params["sampling_rate"])
    rms = np.sqrt((accel**2).coarsen(time=window, boundary="trim").mean()).values
    return time.perf_counter() - start, rms


def csv_path(csv: Path, snapshots: int, per_snapshot: int, rate: float) -> tuple[float, Any]:
    """What a firm does today: read the CSV with pandas, then the same computation."""
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_csv(csv)
    values = frame["acceleration_m_s2"].to_numpy().reshape(snapshots, per_snapshot)
    rms = rms_per_second(values, rate)
    return time.perf_counter() - start, rms


def repeat(path: Callable[[], tuple[float, np.ndarray]]) -> tuple[list[float], np.ndarray]:
    """One untimed warm-up, then REPEATS timed runs; the timings and the last result."""
    _, result = path()
    runs = []
    for _ in range(REPEATS):
        seconds, result = path()
        runs.append(seconds)
    return runs, result


def write_csv(ds: Any, csv: Path) -> None:
    """The same record as CSV (snapshot, time, acceleration), written snapshot by snapshot."""
    import pandas as pd

    time_s = ds["time"].values
    with csv.open("w") as handle:
        handle.write("snapshot,time_s,acceleration_m_s2\n")
        for index in range(ds.sizes["snapshot"]):
            accel = ds["acceleration"].isel(snapshot=index).values
            frame = pd.DataFrame({"snapshot": index, "time_s": time_s, "acceleration_m_s2": accel})
            frame.to_csv(handle, header=False, index=False, float_format="%.7g")


def run(samples: float, workdir: Path) -> dict[str, Any]:
    os.environ["SMARTFAB_DATA_DIR"] = str(workdir / "data")
    from smartfab.datasets.catalog import Catalog
    from smartfab.datasets.generators.bearing import GENERATOR

    params = parameters_for(samples)
    note(f"generating {DATASET} with {params} (throughput run)")
    start = time.perf_counter()
    generated = GENERATOR(seed=0, **params)
    generation_s = time.perf_counter() - start
    n_samples = int(generated["acceleration"].size)
    del generated

    note("building it through the catalog (generate, write netCDF, sha256)")
    catalog = Catalog(data_dir=workdir / "data")
    start = time.perf_counter()
    path = catalog.build(DATASET, progress=True, **params)
    build_s = time.perf_counter() - start

    note("writing the same record as CSV")
    import xarray as xr

    csv = workdir / "record.csv"
    with xr.open_dataset(path, engine="h5netcdf") as stored:
        write_csv(stored, csv)
        snapshots, per_snapshot = stored["acceleration"].shape

    note(f"timing: catalog open + RMS per second (warm-up + {REPEATS} runs)")
    ours_runs, ours_rms = repeat(lambda: catalog_path(params))
    note(f"timing: pandas.read_csv + RMS per second (warm-up + {REPEATS} runs)")
    theirs_runs, theirs_rms = repeat(
        lambda: csv_path(csv, snapshots, per_snapshot, params["sampling_rate"])
    )
    note(f"timing: the same with verify policy 'changed' (warm-up + {REPEATS} runs)")
    changed_runs, _ = repeat(lambda: catalog_path(params, "changed"))
    note(f"timing: catalog open + RMS with xarray coarsen (warm-up + {REPEATS} runs)")
    coarsen_runs, coarsen_rms = repeat(lambda: catalog_coarsen_path(params))
    ours_s, theirs_s = statistics.median(ours_runs), statistics.median(theirs_runs)
    changed_s = statistics.median(changed_runs)
    same = bool(
        np.allclose(ours_rms, theirs_rms, rtol=1e-5, atol=1e-6)
        and np.allclose(coarsen_rms, theirs_rms, rtol=1e-5, atol=1e-6)
    )
    speedup = theirs_s / ours_s
    from smartfab.datasets.checksums import sha256_of

    hash_runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        sha256_of(path)
        hash_runs.append(time.perf_counter() - start)
    hash_s = statistics.median(hash_runs)
    throughput = n_samples / generation_s
    return {
        "samples": n_samples,
        "netcdf_bytes": path.stat().st_size,
        "csv_bytes": csv.stat().st_size,
        "generation_s": generation_s,
        "generation_samples_per_s": throughput,
        "catalog_build_s": build_s,
        "catalog_open_rms_s": ours_s,
        "csv_read_rms_s": theirs_s,
        "catalog_open_rms_runs_s": ours_runs,
        "sha256_only_s": hash_s,
        "catalog_open_rms_changed_policy_s": changed_s,
        "catalog_open_coarsen_s": statistics.median(coarsen_runs),
        "catalog_open_coarsen_runs_s": coarsen_runs,
        "catalog_open_rms_changed_policy_runs_s": changed_runs,
        "speedup_changed_policy": theirs_s / changed_s,
        "csv_read_rms_runs_s": theirs_runs,
        "speedup": speedup,
        "rms_windows": int(np.size(ours_rms)),
        "same_rms": same,
        "targets": {
            "speedup": TARGET_SPEEDUP,
            "generation_samples_per_s": TARGET_GENERATION,
            "speedup_met": speedup >= TARGET_SPEEDUP,
            "generation_met": throughput >= TARGET_GENERATION,
        },
    }


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def report(f: dict[str, Any]) -> str:
    t = f["targets"]
    return "\n".join(
        [
            f"datasets benchmark: {f['samples']:,} samples of {DATASET}",
            f"  files            netCDF {f['netcdf_bytes'] / 1e6:,.0f} MB, "
            f"CSV {f['csv_bytes'] / 1e6:,.0f} MB",
            f"  generation       {f['generation_s']:.2f} s = "
            f"{f['generation_samples_per_s'] / 1e6:.1f} M samples/s "
            f"(target >= {TARGET_GENERATION / 1e6:.0f} M/s: "
            f"{'PASS' if t['generation_met'] else 'FAIL'})",
            f"  catalog build    {f['catalog_build_s']:.2f} s (generate + write + sha256)",
            f"  smartfab.datasets.open + RMS/1 s   {f['catalog_open_rms_s']:.3f} s median "
            f"(runs {_runs(f['catalog_open_rms_runs_s'])}; every byte read checked by sha256)",
            f"    for comparison, one whole-file sha256 alone: {f['sha256_only_s']:.3f} s "
            f"(= CSV time / {f['csv_read_rms_s'] / f['sha256_only_s']:.1f})",
            f"    the same RMS via xarray coarsen: {f['catalog_open_coarsen_s']:.3f} s median "
            f"(runs {_runs(f['catalog_open_coarsen_runs_s'])}) = "
            f"{f['csv_read_rms_s'] / f['catalog_open_coarsen_s']:.1f}x",
            f"  pandas.read_csv + RMS/1 s          {f['csv_read_rms_s']:.3f} s median "
            f"(runs {_runs(f['csv_read_rms_runs_s'])})",
            f"  ratio CSV/catalog {f['speedup']:.1f}x (target >= {TARGET_SPEEDUP:.0f}x: "
            f"{'PASS' if t['speedup_met'] else 'FAIL'}); "
            f"{f['rms_windows']:,} windows, same RMS: {f['same_rms']}",
            f"  with SMARTFAB_VERIFY=changed (hash again only files changed since this process "
            f"hashed them): {f['catalog_open_rms_changed_policy_s']:.3f} s median "
            f"(runs {_runs(f['catalog_open_rms_changed_policy_runs_s'])}) = "
            f"{f['speedup_changed_policy']:.1f}x (for information; the default is 'always')",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.datasets", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--samples", type=float, default=1e8, help="record length (1e8)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="smartfab-bench-datasets-"))
    try:
        figures = run(args.samples, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    ok = figures["same_rms"] and all(
        figures["targets"][k] for k in ("speedup_met", "generation_met")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
