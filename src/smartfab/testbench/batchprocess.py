"""A test-bench batch as its process runs it: forked warm by the service's fork server as the
team's run account, in the batch's folder, with an environment of its own.

:data:`BATCH_PROCESSES` is the fork server's use. Its children outlive the fork server (and so
the service and the hub): a batch goes on while the service restarts, which finds it again by
its pid. The batch process writes, in its folder:

* ``progress.json`` after each run: runs done, executed, reused, counts by status;
* ``outcome.json`` once, at the end: ``finished`` with the counts and the report's path, or
  ``failed`` with the error; written atomically, so the service reads a whole outcome or none.

A process that ends without an outcome (killed, machine restarted) is queued again by the
service: its finished runs are in the team's store and are not executed again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartfab.atomicfile import write_atomic
from smartfab.host.forkprotocol import ForkUse, Launch, Lifetime

if TYPE_CHECKING:
    from smartfab.host.forkprocess import Launched
    from smartfab.runs.runner import BatchResult

log = logging.getLogger("smartfab.testbench")

PROGRESS_FILE = "progress.json"
OUTCOME_FILE = "outcome.json"
LOG_FILE = "batch.log"

#: test-bench batches as the service's fork server runs them
BATCH_PROCESSES = ForkUse(
    name="test-bench batches",
    preload=(
        "smartfab.runs.batch",
        "smartfab.runs.runner",
        "smartfab.runs.executors",
        "smartfab.runs.spec",
        "smartfab.runs.store",
        "smartfab.runs.task",
        "smartfab.runs.kernels.pool",
        "smartfab.runs.report.html",
        "papermill",
        "nbclient",
        "nbformat",
        "jupyter_client",
    ),
    # matplotlib reads its configuration folder from the account's home at import
    not_preloadable=("matplotlib",),
    entry="smartfab.testbench.batchprocess:run",
    lifetime=Lifetime.outlive_server,
)


def batch_launch(
    folder: Path, store: Path, workers: int, env: dict[str, str], title: str
) -> Launch:
    """The launch of the batch whose spec and notebook are in ``folder``."""
    return Launch(
        argv=["smartfab-testbench-batch", str(folder)],
        title=title,
        env=env,
        cwd=str(folder),
        payload={"folder": str(folder), "store": str(store), "workers": workers},
    )


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or not whole."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"), mode=0o660)


def _progress_writer(folder: Path, total: int) -> Any:
    def update(result: BatchResult, remaining: int) -> None:
        _write(
            folder / PROGRESS_FILE,
            {
                "runs": total,
                "done": total - remaining,
                "executed": result.executed,
                "reused": result.reused,
                "counts": dict(result.counts),
            },
        )

    return update


def run(launched: Launched) -> int:
    """In the forked child: run the batch into the team's store, then write its outcome."""
    payload = launched.request.payload
    folder = Path(payload["folder"])
    os.umask(0o007)  # the team's group reads and writes what the batch writes
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    logging.basicConfig(
        filename=folder / LOG_FILE,
        level=logging.INFO,
        format="%(asctime)s [%(levelname)1.1s %(name)s] %(message)s",
    )
    sys.stderr = sys.stdout = open(folder / LOG_FILE, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    from smartfab.errors import SmartfabError
    from smartfab.runs.batch import start_batch
    from smartfab.runs.spec import load_spec
    from smartfab.testbench.submission import SPEC_FILE

    spec = folder / SPEC_FILE
    try:
        total = len(load_spec(spec).runs())
        started = start_batch(
            spec,
            Path(payload["store"]),
            workers=int(payload["workers"]),
            on_progress=_progress_writer(folder, total),
        )
    except SmartfabError as err:
        log.error("batch failed: %s", err)
        _write(folder / OUTCOME_FILE, {"state": "failed", "message": str(err)})
        return 1
    result = started.result
    _write(
        folder / OUTCOME_FILE,
        {
            "state": "finished",
            "runs": result.batch.runs,
            "executed": result.executed,
            "reused": result.reused,
            "counts": dict(result.counts),
            "all_passed": result.all_passed,
            "report": str(started.report.html),
            "message": f"{result.counts.get('passed', 0)} of {result.batch.runs} runs passed",
        },
    )
    return 0
