"""Run a batch: expand the grid, skip what is already done, execute the rest, store each run.

The execution template (as in jupyter-scheduler): for every grid point, *before start* the
inputs are hashed and looked up in the store (identical inputs whose datasets are unchanged are
not executed again unless ``force``); *execute* hands a :class:`RunTask` to the executor;
*on failure* an errored run is retried up to ``retries`` times; *on complete* the acceptance
rules are applied and the run is written to the store at once, so killing the runner at any
moment loses no finished run and starting the same spec again finishes only what is missing.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from smartfab.runs.executors import Executor
from smartfab.runs.models import (
    BatchRecord,
    DatasetUse,
    Environment,
    RuleResult,
    RunError,
    RunOutcome,
    RunRecord,
    RunStatus,
    RunTask,
)
from smartfab.runs.provenance import environment, input_key, run_id
from smartfab.runs.rules import parse_rule
from smartfab.runs.spec import LoadedSpec
from smartfab.runs.store import RunStore


@dataclass
class BatchResult:
    """What a call of :meth:`BatchRunner.run` did."""

    batch: BatchRecord
    executed: int = 0
    reused: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def all_passed(self) -> bool:
        return self.counts[RunStatus.passed.value] == self.batch.runs


def evaluate(
    metrics: dict[str, Any], wanted: Iterable[str], acceptance: dict[str, str]
) -> list[RuleResult]:
    """The acceptance rules applied to ``metrics``; a wanted metric that was never recorded
    fails a ``recorded`` rule."""
    results = [
        RuleResult(metric=name, rule="recorded", value=None, ok=False)
        for name in wanted
        if name not in metrics
    ]
    for name, text in acceptance.items():
        value = metrics.get(name)
        results.append(
            RuleResult(metric=name, rule=text, value=value, ok=parse_rule(text).check(value))
        )
    return results


def status_of(error: RunError | None, rules: list[RuleResult]) -> RunStatus:
    if error is not None:
        return RunStatus.error
    return RunStatus.passed if all(r.ok for r in rules) else RunStatus.failed


def datasets_unchanged(uses: Iterable[DatasetUse]) -> bool:
    """Whether every dataset a stored run opened still has the content it had then (for runs
    recorded before content fingerprints: the same file bytes)."""
    uses = list(uses)
    if not uses:
        return True
    from smartfab.datasets.api import default_catalog

    catalog = default_catalog()
    for use in uses:
        now = catalog.current_identity(use.id, use.parameters)
        if now is None:
            return False
        if (now.fingerprint if use.fingerprint else now.sha256) != use.identity:
            return False
    return True


class BatchRunner:
    """Executes one loaded spec into a store with an executor."""

    def __init__(
        self,
        loaded: LoadedSpec,
        store: RunStore,
        executor: Executor,
        *,
        force: bool = False,
        on_progress: Callable[[BatchResult, int], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.store = store
        self.executor = executor
        self.force = force
        self.on_progress = on_progress
        self.environment: Environment = environment()

    def batch_record(self) -> BatchRecord:
        return BatchRecord(
            batch_id=self.loaded.batch_id,
            name=self.spec.name,
            spec_path=str(self.loaded.source),
            spec=self.spec.content(),
            created=datetime.now(UTC),
            runs=len(self.loaded.runs()),
        )

    def tasks(self) -> list[RunTask]:
        """One task per grid point, in grid order."""
        env_key = self.environment.key()
        cwd = str(self.loaded.notebook.parent)
        return [
            RunTask(
                batch_id=self.loaded.batch_id,
                index=index,
                input_key=input_key(
                    self.loaded.notebook_sha256, parameters, self.spec.kernel, env_key
                ),
                notebook=str(self.loaded.notebook),
                notebook_sha256=self.loaded.notebook_sha256,
                kernel=self.spec.kernel,
                parameters=parameters,
                cwd=cwd,
                timeout_s=float(self.spec.timeout),
            )
            for index, parameters in enumerate(self.loaded.runs())
        ]

    def run(self) -> BatchResult:
        """Execute what is missing; return the batch's final counts."""
        batch = self.batch_record()
        self.store.add_batch(batch)
        batch = self.store.batch(batch.batch_id)
        result = BatchResult(batch)
        done = {r.index: r for r in self.store.runs(batch.batch_id)}
        todo: list[RunTask] = []
        for task in self.tasks():
            reusable = None if self.force else self._reusable(task, done.get(task.index))
            if reusable is None:
                todo.append(task)
                continue
            if task.index not in done or done[task.index].run_id != reusable.run_id:
                self.store.attach(batch.batch_id, task.index, reusable.run_id)
            result.reused += 1
            result.counts[reusable.status.value] += 1
        self._progress(result, len(todo))
        self._execute(todo, result)
        return result

    def _reusable(self, task: RunTask, current: RunRecord | None) -> RunRecord | None:
        candidates = [current] if current and current.input_key == task.input_key else []
        candidates += self.store.find_by_input(task.input_key)
        for record in candidates:
            if datasets_unchanged(record.datasets):
                return record
        return None

    def _execute(self, todo: list[RunTask], result: BatchResult) -> None:
        pending: dict[Future[RunOutcome], RunTask] = {}
        queue = list(reversed(todo))
        try:
            while queue or pending:
                while queue and len(pending) < max(1, self.executor.workers):
                    task = queue.pop()
                    pending[self.executor.submit(task)] = task
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    task = pending.pop(future)
                    outcome = self._outcome(future, task)
                    if not outcome.status_ok and task.attempt <= self.spec.retries:
                        queue.append(task.model_copy(update={"attempt": task.attempt + 1}))
                        continue
                    record = self._store(task, outcome)
                    result.executed += 1
                    result.counts[record.status.value] += 1
                    self._progress(result, len(queue) + len(pending))
        finally:
            for future in pending:
                future.cancel()

    def _outcome(self, future: Future[RunOutcome], task: RunTask) -> RunOutcome:
        """The run's outcome; an executor failure (a lost worker) becomes an errored run."""
        try:
            return future.result()
        except Exception as exc:  # any executor failure (a lost worker) is this run's error
            now = datetime.now(UTC)
            return RunOutcome(
                input_key=task.input_key,
                status_ok=False,
                error=RunError(kind="executor", ename=type(exc).__name__, evalue=str(exc)),
                output_notebook=_empty_notebook(),
                started=now,
                ended=now,
                host="",
                attempts=task.attempt,
            )

    def _store(self, task: RunTask, outcome: RunOutcome) -> RunRecord:
        rules = evaluate(outcome.metrics, self.spec.metrics, self.spec.acceptance)
        identity = run_id(task.input_key, outcome.datasets)
        record = RunRecord(
            run_id=identity,
            input_key=task.input_key,
            batch_id=task.batch_id,
            index=task.index,
            parameters=task.parameters,
            notebook=task.notebook,
            notebook_sha256=task.notebook_sha256,
            kernel=task.kernel,
            environment=self.environment,
            datasets=outcome.datasets,
            metrics=outcome.metrics,
            rules=rules,
            status=status_of(outcome.error, rules),
            error=outcome.error,
            started=outcome.started,
            ended=outcome.ended,
            duration_s=(outcome.ended - outcome.started).total_seconds(),
            attempts=outcome.attempts,
            host=outcome.host,
            output_notebook=f"runs/{identity}/output.ipynb",
        )
        self.store.put_run(record, outcome.output_notebook)
        return record

    def _progress(self, result: BatchResult, remaining: int) -> None:
        if self.on_progress is not None:
            self.on_progress(result, remaining)


def _empty_notebook() -> str:
    import nbformat

    writes: Any = nbformat.writes
    blank: Any = nbformat.v4.new_notebook
    return str(writes(blank()))


def progress_bar(total: int, name: str) -> Callable[[BatchResult, int], None]:
    """A tqdm bar on stderr with live passed/failed/error counts."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=name, unit="run", file=sys.stderr, delay=0.5)

    def update(result: BatchResult, remaining: int) -> None:
        bar.n = total - remaining
        bar.set_postfix(
            passed=result.counts["passed"],
            failed=result.counts["failed"],
            error=result.counts["error"],
            refresh=False,
        )
        bar.refresh()
        if remaining == 0:
            bar.close()

    return update
