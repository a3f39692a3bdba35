"""How ``store/`` was made: a run store written by smartfab before its index had migrations.

Run once, with the smartfab of commit a67203c (run index version 1, no alembic revision)::

    python tests/runs/data/store-v1/make_store.py tests/runs/data/store-v1

It writes ``store/`` (the index and the files) and ``expected.json`` (what the store holds, as
that smartfab read it back). Do not run it again with a newer smartfab: the point of the fixture
is that an older smartfab wrote it. ``tests/runs/test_store_migrations.py`` opens copies of it.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from smartfab.runs.models import (
    BatchRecord,
    DatasetUse,
    Environment,
    RuleResult,
    RunError,
    RunRecord,
    RunStatus,
)
from smartfab.runs.provenance import input_key, run_id
from smartfab.runs.store import RunStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ENVIRONMENT = Environment(
    python="3.11.2", platform="linux-x86_64", packages={"numpy": "2.1.0", "smartfab": "0.1.0"}
)
NOTEBOOK_SHA256 = "ab" * 32


def notebook(marker: str) -> str:
    """A tiny valid notebook (nbformat 4) whose one output names the run."""
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "id": "cell-1",
        "metadata": {},
        "outputs": [{"name": "stdout", "output_type": "stream", "text": [marker]}],
        "source": [f"print({marker!r})"],
    }
    document = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(document, indent=1)


def batch(batch_id: str, name: str, created: datetime) -> BatchRecord:
    """A batch of three runs over x = 1, 2, 3."""
    return BatchRecord(
        batch_id=batch_id,
        name=name,
        spec_path=f"/specs/{name}.yaml",
        spec={"name": name, "grid": {"x": [1, 2, 3]}},
        created=created,
        runs=3,
    )


def run(batch_id: str, index: int, x: int, status: RunStatus, ended: datetime) -> RunRecord:
    """A run of ``batch_id`` whose inputs are ``x``; it read one dataset."""
    parameters = {"x": x}
    key = input_key(NOTEBOOK_SHA256, parameters, "python3", ENVIRONMENT.key())
    uses = [
        DatasetUse(
            id="milling-tool-wear", parameters={"seed": x}, sha256="ef" * 32, fingerprint="cd" * 32
        )
    ]
    return RunRecord(
        run_id=run_id(key, uses),
        input_key=key,
        batch_id=batch_id,
        index=index,
        parameters=parameters,
        notebook="/programs/tool-wear.ipynb",
        notebook_sha256=NOTEBOOK_SHA256,
        kernel="python3",
        environment=ENVIRONMENT,
        datasets=uses,
        metrics={"score": 10.5 * x, "label": f"x={x}"},
        rules=[RuleResult(metric="score", rule="< 30", value=10.5 * x, ok=10.5 * x < 30)],
        status=status,
        error=RunError(kind="timeout") if status is RunStatus.error else None,
        started=ended - timedelta(seconds=3),
        ended=ended,
        duration_s=3.0,
        attempts=1,
        host="node-1",
        output_notebook="",
    )


def main(folder: Path) -> None:
    """Two batches: b1 executes x = 1, 2, 3; b2 executes x = 3 (now failing) and x = 4 and
    reuses b1's x = 2 (a link that lives in the index only)."""
    root = folder / "store"
    expected: dict[str, list[str]] = {}
    with RunStore.open(root) as store:
        b1 = batch("tool-wear-20260301-aaaa", "tool-wear", T0)
        store.add_batch(b1)
        for index, (x, status) in enumerate([(1, "passed"), (2, "passed"), (3, "failed")]):
            ended = T0 + timedelta(minutes=index + 1)
            store.put_run(run(b1.batch_id, index, x, RunStatus(status), ended), notebook(f"b1-{x}"))
        b2 = batch("tool-wear-20260302-bbbb", "tool-wear", T0 + timedelta(days=1))
        store.add_batch(b2)
        reused = store.runs(b1.batch_id)[1]
        store.attach(b2.batch_id, 0, reused.run_id)
        later = T0 + timedelta(days=1, minutes=1)
        store.put_run(run(b2.batch_id, 1, 4, RunStatus.passed, later), notebook("b2-4"))
        store.put_run(run(b2.batch_id, 2, 5, RunStatus.error, later), notebook("b2-5"))
        for b in store.batches():
            expected[b.batch_id] = [r.run_id for r in store.runs(b.batch_id)]
    text = json.dumps({"batches": expected}, indent=1, sort_keys=True) + "\n"
    (folder / "expected.json").write_text(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
