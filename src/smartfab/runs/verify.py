"""Execute stored runs again and check that their metrics reproduce."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartfab.canonicaljson import canonical_json
from smartfab.runs.models import RunRecord, RunTask
from smartfab.runs.provenance import sha256_file


@dataclass
class Verification:
    """One stored run executed again."""

    run: RunRecord
    reproduced: bool
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.run.index,
            "run_id": self.run.run_id,
            "parameters": self.run.parameters,
            "reproduced": self.reproduced,
            "problems": self.problems,
        }

    def render(self) -> str:
        head = f"#{self.run.index:<3} {'reproduced' if self.reproduced else 'DIFFERS':<10}"
        detail = "; ".join(self.problems)
        return f"{head} {self.run.run_id[:12]}" + (f"  {detail}" if detail else "")


def verify_runs(
    runs: list[RunRecord], tolerance: dict[str, float], *, timeout_s: float
) -> list[Verification]:
    """Execute each run's notebook again with the same parameters (local executor, warm
    kernels) and compare the metrics with the stored ones within ``tolerance``."""
    from smartfab.runs.executors import LocalExecutor
    from smartfab.runs.report.compare import compare_batches

    results: dict[str, Verification] = {}
    tasks: list[RunTask] = []
    current: dict[str, str | None] = {}  # the batch's runs share one notebook: hash it once
    for run in runs:
        if run.notebook not in current:
            path = Path(run.notebook)
            current[run.notebook] = sha256_file(path) if path.is_file() else None
        if current[run.notebook] != run.notebook_sha256:
            results[run.run_id] = Verification(
                run, False, [f"{run.notebook}: the program is missing or changed since this run"]
            )
            continue
        tasks.append(RunTask.again(run, timeout_s))
    executor = LocalExecutor()
    try:
        futures = [(task, executor.submit(task)) for task in tasks]
        by_key = {run.input_key: run for run in runs}
        for task, future in futures:
            run = by_key[task.input_key]
            outcome = future.result()
            problems = []
            if outcome.error is not None:
                problems.append(f"error: {outcome.error.ename}: {outcome.error.evalue}")
            # the same data, by content: a file rebuilt with other bytes is no difference
            before = {(u.id, canonical_json(u.parameters), u.identity) for u in run.datasets}
            after = {(u.id, canonical_json(u.parameters), u.identity) for u in outcome.datasets}
            changed_data = {key[0] for key in before ^ after}
            if changed_data:
                problems.append(f"datasets differ: {', '.join(sorted(changed_data))}")
            again = run.model_copy(update={"metrics": outcome.metrics})
            comparison = compare_batches([run], [again], rtol=tolerance)
            for change in comparison.changed:
                for diff in change.metrics:
                    problems.append(f"{diff.name}: {diff.a!r} -> {diff.b!r}")
            results[run.run_id] = Verification(run, not problems, problems)
    finally:
        executor.close()
    return [results[run.run_id] for run in runs]
