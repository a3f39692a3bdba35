"""Benchmark: the test bench's throughput and latency against ``smartfab runs start``.

Five teams of the demo alliance submit 200 runs of the light program of ``bench/runs.py`` at
once through the test bench's API (40 runs each, distinct seeds), on a real hub with the
deployment's defaults (two runs at once per team, one per core on the bench). The baseline is
the same 200 runs through ``smartfab runs start`` in one process (local executor, two workers).

Prints:

* throughput, runs per second: the bench (first submit to last batch ended) against the
  baseline (the whole command); target >= 0.8x;
* submit-to-first-run latency with a free slot, p50 and p95 over single-run batches submitted
  one after another (the time from the POST to the moment the run's kernel started executing,
  as its record has it); target p95 <= 1 s.

Before timing, each team runs one batch, so every run account has built the program's dataset
once (as a team would have), and the baseline runs once into a store it then discards.

Usage, from the project root as root (it starts a hub with system accounts):

    python -m bench.testbench [--runs 200] [--latency-samples 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.runs import BIN, write_program
from tests.support.hubtools import DEMO_ALLIANCE, RunningHub
from tests.testbench.benchtools import BenchClient

TARGET_THROUGHPUT = 0.8
TARGET_LATENCY_P95_S = 1.0
#: who submits for each of the five teams
SUBMITTERS = {
    "anna": "acme-machining",
    "vera": "voltronic",
    "sam": "tu-wear-lab",
    "mia": "iot-lab",
    "lena": "spindle-health",
}
PROGRAM = "thermal-fit"


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def account_prefix() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "sfb" + "".join(secrets.choice(alphabet) for _ in range(3)) + "-"


def bench_alliance(folder: Path) -> Path:
    """The demo alliance with the light program granted to every team but its owner's."""
    lines = []
    for line in DEMO_ALLIANCE.read_text().splitlines():
        if line.strip().startswith("programs:"):
            continue
        lines.append(line)
        if line.startswith("    grants:"):
            lines.append(f"      programs: [{PROGRAM}]")
    alliance = folder / "alliance.yaml"
    alliance.write_text("\n".join(lines) + "\n")
    return alliance


def baseline(spec: Path, store: Path, runs: int) -> float:
    """Seconds of ``smartfab runs start`` over ``runs`` seeds in one process."""
    data = json.loads(spec.read_text())
    data["grid"] = {"seed": list(range(runs))}
    spec.write_text(json.dumps(data))
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "smartfab"), "runs", "start", str(spec), "--store", str(store)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"smartfab runs start failed:\n{done.stderr}")
    return seconds


def run_started(client: BenchClient, batch_id: str) -> float:
    """When the batch's first run started, from its report."""
    runs = client.page(f"batches/{batch_id}/report/runs.json").json()["runs"]
    return min(datetime.fromisoformat(r["started"]).timestamp() for r in runs)


def submit_and_wait(client: BenchClient, team: str, seeds: list[int]) -> dict[str, Any]:
    reply = client.submit(program=PROGRAM, team=team, set={"seed": seeds})
    if reply.status_code != 201:
        raise RuntimeError(f"submit refused: {reply.text}")
    return client.wait(reply.json()["id"], timeout=1800)


def measure(hub: RunningHub, runs: int, samples: int) -> dict[str, Any]:
    clients = {name: BenchClient(hub.url, hub.client(name)) for name in SUBMITTERS}
    note("warming: one batch per team")
    for n, (name, team) in enumerate(SUBMITTERS.items()):
        submit_and_wait(clients[name], team, [100_000 + n])
    note(f"latency: {samples} single-run batches, one after another")
    latencies = []
    anna = clients["anna"]
    for n in range(samples):
        before = time.time()
        done = submit_and_wait(anna, "acme-machining", [200_000 + n])
        latencies.append(run_started(anna, done["id"]) - before)
    note(f"throughput: {runs} runs from five teams at once")
    per_team = runs // len(SUBMITTERS)
    ended: list[dict[str, Any]] = []
    threads = []
    start = time.time()
    for n, (name, team) in enumerate(SUBMITTERS.items()):
        seeds = list(range(n * per_team, (n + 1) * per_team))

        def work(name: str = name, team: str = team, seeds: list[int] = seeds) -> None:
            ended.append(submit_and_wait(clients[name], team, seeds))

        threads.append(threading.Thread(target=work))
        threads[-1].start()
    for thread in threads:
        thread.join()
    last = max(b["ended_at"] for b in ended)
    executed = sum(b["progress"]["executed"] for b in ended)
    return {
        "bench_seconds": last - start,
        "bench_runs": executed,
        "states": sorted({b["state"] for b in ended}),
        "latencies": latencies,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.testbench", description=__doc__)
    parser.add_argument("--runs", type=int, default=200, help="runs submitted at once")
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="smartfab-bench-tb-", dir="/tmp"))
    base.chmod(0o755)
    prefix = account_prefix()
    project = base / "project"
    project.mkdir()
    _, spec = write_program(project, runs=1)
    alliance = bench_alliance(project)
    hub = RunningHub(alliance=alliance, state_dir=base / "state", home_root=base / "home",
                     prefix=prefix, spawn_mode="system")  # fmt: skip
    try:
        note("baseline: smartfab runs start (warm-up, then timed)")
        baseline(spec, base / "warm-store", 4)
        base_seconds = baseline(spec, base / "store", args.runs)
        registered = subprocess.run(
            [str(BIN / "smartfab"), "programs", "register", str(spec), "--team",
             "acme-machining", "--config", str(alliance), "--state-dir", str(hub.state_dir)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if registered.returncode != 0:
            raise RuntimeError(registered.stderr)
        hub.start()
        found = measure(hub, args.runs, args.latency_samples)
    finally:
        if hub.proc is not None:
            hub.stop()
        from smartfab.host.accounts import remove_prefixed

        remove_prefixed(prefix)
        shutil.rmtree(base, ignore_errors=True)
    ours = found["bench_runs"] / found["bench_seconds"]
    theirs = args.runs / base_seconds
    latencies = sorted(found["latencies"])
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18]
    result = {
        "runs": args.runs,
        "bench": {"seconds": round(found["bench_seconds"], 2), "runs_per_s": round(ours, 3),
                  "states": found["states"]},
        "baseline_runs_start": {"seconds": round(base_seconds, 2), "runs_per_s": round(theirs, 3)},
        "throughput_ratio": round(ours / theirs, 3),
        "latency_s": {"p50": round(p50, 3), "p95": round(p95, 3), "samples": len(latencies)},
        "targets": {"throughput_met": ours / theirs >= TARGET_THROUGHPUT,
                    "latency_p95_met": p95 <= TARGET_LATENCY_P95_S},
    }  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"200 runs of the light program, five teams at once through the API: "
            f"{found['bench_seconds']:.1f} s ({ours:.2f} runs/s)"
        )
        print(
            f"the same runs through smartfab runs start in one process: {base_seconds:.1f} s "
            f"({theirs:.2f} runs/s)"
        )
        print(f"throughput ratio {ours / theirs:.2f}x (target >= {TARGET_THROUGHPUT}x)")
        print(f"submit-to-first-run latency with a free slot: p50 {p50:.3f} s, p95 {p95:.3f} s "
              f"(target p95 <= {TARGET_LATENCY_P95_S} s)")  # fmt: skip
    return 0 if all(result["targets"].values()) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
