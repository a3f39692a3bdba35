"""The run store on real SQLite and real files: round trips, resume queries, crashes, damage."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from smartfab.errors import RunStoreError
from smartfab.runs.models import (
    BatchRecord,
    DatasetUse,
    RuleResult,
    RunError,
    RunRecord,
    RunStatus,
)
from smartfab.runs.provenance import environment, input_key, run_id
from smartfab.runs.store import RunStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def notebook_text(marker: str, size: int = 0) -> str:
    """A small valid notebook; ``size`` pads one output to about that many characters."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f"print({marker!r})", id="cell-1")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=marker + "x" * size)]
    nb.cells = [cell]
    return str(nbformat.writes(nb))


def make_batch(batch_id: str, name: str = "regression", created: datetime = T0) -> BatchRecord:
    return BatchRecord(
        batch_id=batch_id,
        name=name,
        spec_path=f"/specs/{name}.yaml",
        spec={"name": name, "grid": {"x": [1, 2, 3]}},
        created=created,
        runs=3,
    )


def make_run(
    batch_id: str,
    index: int,
    *,
    x: Any = None,
    status: RunStatus = RunStatus.passed,
    ended: datetime | None = None,
    datasets: list[DatasetUse] | None = None,
    metrics: dict[str, Any] | None = None,
) -> RunRecord:
    """A record whose inputs are the parameter ``x`` (default: the index)."""
    parameters = {"x": index if x is None else x}
    key = input_key("0" * 64, parameters, "python3", environment().key())
    uses = datasets or []
    ended = ended or T0 + timedelta(minutes=index + 1)
    return RunRecord(
        run_id=run_id(key, uses),
        input_key=key,
        batch_id=batch_id,
        index=index,
        parameters=parameters,
        notebook="/programs/tool-wear.ipynb",
        notebook_sha256="0" * 64,
        kernel="python3",
        environment=environment(),
        datasets=uses,
        metrics=metrics if metrics is not None else {"score": 10 * index},
        rules=[RuleResult(metric="score", rule="< 50", value=10 * index, ok=True)],
        status=status,
        error=RunError(kind="timeout") if status is RunStatus.error else None,
        started=ended - timedelta(seconds=3),
        ended=ended,
        duration_s=3.0,
        attempts=1,
        host="node-1",
        output_notebook="",
    )


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def sf_store(tmp_path: Path) -> Iterator[RunStore]:
    store = RunStore.open(tmp_path / "store")
    yield store
    store.close()


# -- round trips -----------------------------------------------------------------------------------


def test_a_run_and_its_batch_round_trip_through_files_and_index(tmp_path: Path) -> None:
    root = tmp_path / "store"
    image = {"kind": "image", "mimetype": "image/png", "data": "iVBORw0KGgo="}
    metrics = {
        "rmse": 0.25,
        "label": "ok-1",
        "curve": [[0, 1, 2], [3, 4, 5]],
        "plot": image,
        "flag": True,
        "missing": None,
        "diverged": math.nan,
        "bound": -math.inf,
    }
    uses = [DatasetUse(id="bearing-run-to-failure", parameters={"n": 4}, sha256="a" * 64)]
    record = make_run("b-1", 0, metrics=metrics, datasets=uses)
    notebook = notebook_text("first run")
    with RunStore.open(root) as store:
        store.add_batch(make_batch("b-1"))
        stored = store.put_run(record, notebook)
    assert stored.output_notebook == f"runs/{record.run_id}/output.ipynb"

    with RunStore.open(root, create=False) as store:
        again = store.run(record.run_id)
        assert store.runs("b-1") == [again]
        assert store.batch("b-1") == make_batch("b-1")
        assert store.output_path(record.run_id).read_text() == notebook
        assert (root / again.output_notebook).read_text() == notebook
    finite = {k: v for k, v in metrics.items() if k not in ("diverged", "bound")}
    assert {k: again.metrics[k] for k in finite} == finite
    assert math.isnan(again.metrics["diverged"]) and again.metrics["bound"] == -math.inf
    expected = stored.model_copy(update={"metrics": finite})
    assert again.model_copy(update={"metrics": finite}) == expected
    assert again.started.tzinfo is not None and again.ended == record.ended
    on_disk = json.loads((root / "runs" / record.run_id / "record.json").read_text())
    assert on_disk["run_id"] == record.run_id and on_disk["status"] == "passed"
    assert json.loads((root / "batches" / "b-1" / "batch.json").read_text())["name"] == "regression"


def test_resume_queries_find_finished_runs_by_inputs_newest_first(sf_store: RunStore) -> None:
    sf_store.add_batch(make_batch("b-1"))
    passed, failed = make_run("b-1", 0), make_run("b-1", 1, status=RunStatus.failed)
    errored = make_run("b-1", 2, status=RunStatus.error)
    for record in (errored, passed, failed):  # stored out of grid order
        sf_store.put_run(record, notebook_text(record.run_id))
    assert [r.index for r in sf_store.runs("b-1")] == [0, 1, 2]
    assert sf_store.counts("b-1") == {"passed": 1, "failed": 1, "error": 1, "total": 3}
    assert [r.run_id for r in sf_store.find_by_input(passed.input_key)] == [passed.run_id]
    assert [r.run_id for r in sf_store.find_by_input(failed.input_key)] == [failed.run_id]
    assert sf_store.find_by_input(errored.input_key) == []  # errors are executed again
    assert sf_store.find_by_input("f" * 64) == []

    # the same inputs with another dataset checksum: another run, found first when newer
    newer = make_run(
        "b-2",
        0,
        x=0,
        ended=T0 + timedelta(days=1),
        datasets=[DatasetUse(id="d", sha256="b" * 64)],
    )
    sf_store.add_batch(make_batch("b-2", created=T0 + timedelta(days=1)))
    sf_store.put_run(newer, notebook_text("newer"))
    assert newer.input_key == passed.input_key and newer.run_id != passed.run_id
    found = sf_store.find_by_input(passed.input_key)
    assert [r.run_id for r in found] == [newer.run_id, passed.run_id]


def test_a_reused_run_belongs_to_several_batches(sf_store: RunStore) -> None:
    sf_store.add_batch(make_batch("b-1"))
    sf_store.add_batch(make_batch("b-2", created=T0 + timedelta(hours=1)))
    first = make_run("b-1", 2)
    sf_store.put_run(first, notebook_text("first"))
    sf_store.attach("b-2", 0, first.run_id)
    sf_store.put_run(make_run("b-2", 1, x=7), notebook_text("second"))

    seen = sf_store.runs("b-2")
    assert [(r.batch_id, r.index) for r in seen] == [("b-2", 0), ("b-2", 1)]
    assert seen[0].run_id == first.run_id and seen[0].metrics == first.metrics
    assert sf_store.run(first.run_id).batch_id == "b-1"  # as stored
    assert [r.index for r in sf_store.runs("b-1")] == [2]
    assert sf_store.counts("b-2")["total"] == 2 and sf_store.counts("b-1")["total"] == 1
    with pytest.raises(RunStoreError, match="no run 'nope'"):
        sf_store.attach("b-2", 2, "nope")


def test_a_run_stored_again_replaces_the_earlier_outcome(sf_store: RunStore) -> None:
    sf_store.add_batch(make_batch("b-1"))
    errored = make_run("b-1", 0, status=RunStatus.error)
    sf_store.put_run(errored, notebook_text("timed out"))
    retried = make_run("b-1", 0, ended=errored.ended + timedelta(minutes=5))
    assert retried.run_id == errored.run_id
    sf_store.put_run(retried, notebook_text("passed"))
    assert sf_store.counts("b-1") == {"passed": 1, "failed": 0, "error": 0, "total": 1}
    assert sf_store.run(retried.run_id).status is RunStatus.passed
    assert "passed" in sf_store.output_path(retried.run_id).read_text()
    assert [r.run_id for r in sf_store.find_by_input(retried.input_key)] == [retried.run_id]


def test_add_batch_is_idempotent_and_batches_are_listed_newest_first(sf_store: RunStore) -> None:
    sf_store.add_batch(make_batch("b-1"))
    sf_store.add_batch(make_batch("b-1", created=T0 + timedelta(days=3)))  # the first one stays
    sf_store.add_batch(make_batch("b-2", created=T0 + timedelta(days=1)))
    assert sf_store.batch("b-1").created == T0
    assert [b.batch_id for b in sf_store.batches()] == ["b-2", "b-1"]
    assert sf_store.counts("b-1") == {"passed": 0, "failed": 0, "error": 0, "total": 0}
    assert sf_store.runs("b-1") == []


def test_batches_are_found_by_id_prefix_or_name(sf_store: RunStore) -> None:
    for batch_id, name, day in [
        ("20260301-aaaa11", "tool-wear", 1),
        ("20260301-aaab22", "tool-wear", 2),
        ("20260302-bbbb33", "spindle", 3),
        ("cafe0001", "cafe", 4),
        ("cafe0002", "other", 5),
    ]:
        sf_store.add_batch(make_batch(batch_id, name, T0 + timedelta(days=day)))
    assert sf_store.batch("20260301-aaaa11").batch_id == "20260301-aaaa11"
    assert sf_store.batch("20260301-aaaa").batch_id == "20260301-aaaa11"
    assert sf_store.batch("tool-wear").batch_id == "20260301-aaab22"  # the newest of that name
    assert sf_store.batch("spindle").batch_id == "20260302-bbbb33"
    assert sf_store.batch("cafe").batch_id == "cafe0001"  # a whole name before a prefix

    with pytest.raises(RunStoreError) as ambiguous:
        sf_store.batch("20260301-aaa")
    assert "20260301-aaaa11 (tool-wear)" in str(ambiguous.value)
    assert "20260301-aaab22 (tool-wear)" in str(ambiguous.value)
    with pytest.raises(RunStoreError) as unknown:
        sf_store.batch("milling")
    message = str(unknown.value)
    assert "'milling'" in message and "cafe0002 (other)" in message and "spindle" in message
    with pytest.raises(RunStoreError):
        sf_store.batch("")


def test_unknown_runs_and_batches_and_unsafe_ids_are_errors(sf_store: RunStore) -> None:
    with pytest.raises(RunStoreError, match="no batches yet"):
        sf_store.batch("anything")
    for call in (sf_store.run, sf_store.output_path):
        with pytest.raises(RunStoreError, match="no run 'nope'"):
            call("nope")
    for call in (sf_store.runs, sf_store.counts):
        with pytest.raises(RunStoreError, match="no batch 'nope'"):
            call("nope")
    escaping = make_run("b-1", 0).model_copy(update={"run_id": "../../escaped"})
    with pytest.raises(RunStoreError, match="run id"):
        sf_store.put_run(escaping, notebook_text("x"))
    with pytest.raises(RunStoreError, match="batch id"):
        sf_store.add_batch(make_batch(".hidden"))
    assert not list(sf_store.root.parent.glob("escaped*"))


def test_threads_write_and_read_one_store_at_once(sf_store: RunStore) -> None:
    sf_store.add_batch(make_batch("b-1"))
    errors: list[BaseException] = []
    per_thread, threads = 15, 4

    def write(offset: int) -> None:
        try:
            for i in range(per_thread):
                index = offset * per_thread + i
                sf_store.put_run(make_run("b-1", index), notebook_text(str(index)))
                sf_store.counts("b-1")
                sf_store.runs("b-1")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors, errors
    assert [r.index for r in sf_store.runs("b-1")] == list(range(per_thread * threads))
    assert sf_store.counts("b-1")["total"] == per_thread * threads


# -- files without index rows ----------------------------------------------------------------------


def test_runs_and_batches_found_without_index_rows_are_indexed_at_open(tmp_path: Path) -> None:
    source = tmp_path / "source"
    with RunStore.open(source) as store:
        store.add_batch(make_batch("b-1"))
        records = [make_run("b-1", i) for i in range(3)]
        for record in records:
            store.put_run(record, notebook_text(str(record.index)))
    # the state a process killed between writing the files and the index leaves behind
    target = tmp_path / "target"
    RunStore.open(target).close()
    shutil.copytree(source / "batches" / "b-1", target / "batches" / "b-1")
    for record in records[1:]:
        shutil.copytree(source / "runs" / record.run_id, target / "runs" / record.run_id)
    broken = target / "runs" / "broken"
    broken.mkdir()
    (broken / "record.json").write_text('{"run_id": "bro')  # not ours to index or remove
    half = target / "runs" / "half"
    half.mkdir()
    (half / "output.ipynb").write_text(notebook_text("no record yet"))

    with RunStore.open(target, create=False) as store:
        assert [b.batch_id for b in store.batches()] == ["b-1"]
        assert [r.index for r in store.runs("b-1")] == [1, 2]
        assert store.counts("b-1")["total"] == 2
        assert store.output_path(records[2].run_id).read_text() == notebook_text("2")
        for name in ("broken", "half"):
            with pytest.raises(RunStoreError):
                store.run(name)
    assert (broken / "record.json").read_text() == '{"run_id": "bro'
    assert (half / "output.ipynb").exists()


def test_a_run_whose_files_were_being_replaced_is_read_again_at_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with RunStore.open(root) as store:
        store.add_batch(make_batch("b-1"))
        first = make_run("b-1", 0, status=RunStatus.error)
        store.put_run(first, notebook_text("error"))
    # killed after the new record.json replaced the old one, before the index was updated:
    # put_run had marked the row, and the file holds the new outcome
    replaced = first.model_copy(update={"status": RunStatus.passed, "error": None})
    replaced = replaced.model_copy(update={"output_notebook": f"runs/{first.run_id}/output.ipynb"})
    record_file = root / "runs" / first.run_id / "record.json"
    record_file.write_text(replaced.model_dump_json())
    with sqlite3.connect(root / "index.sqlite") as db:
        db.execute("UPDATE runs SET dirty = 1 WHERE run_id = ?", (first.run_id,))
    with RunStore.open(root) as store:
        assert store.counts("b-1") == {"passed": 1, "failed": 0, "error": 0, "total": 1}
        assert [r.run_id for r in store.find_by_input(first.input_key)] == [first.run_id]


# -- crashes ---------------------------------------------------------------------------------------


def say(kind: str, value: object) -> None:
    """One line to stdout in a single write(2): a kill never leaves half a line (print writes
    its pieces one by one when Python runs unbuffered)."""
    os.write(1, f"{kind} {value}\n".encode())


def write_runs_forever(root: str, round_: str) -> None:
    """Store runs (and now and then replace one) until killed; say each finished run."""
    store = RunStore.open(Path(root))
    batch = f"b-{round_}"
    store.add_batch(make_batch(batch))
    previous = None
    for index in range(1_000_000):
        record = make_run(batch, index, x=f"{batch}-{index}")
        store.put_run(record, notebook_text(record.run_id, size=20_000))
        say("run", record.run_id)
        if previous is not None and index % 3 == 0:  # the same run again, another outcome
            again = previous.model_copy(update={"status": RunStatus.failed})
            store.put_run(again, notebook_text(f"again {again.run_id}", size=20_000))
            say("run", again.run_id)
        previous = record


#: the project root: the zygote runs there, where ``tests`` is a package it can import from
ROOT = Path(__file__).resolve().parents[2]

#: imports once, then forks one writer per line read: many kills in little time
ZYGOTE = textwrap.dedent(
    """
    import os, sys
    from tests.runs.test_runs_store import say, write_runs_forever

    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                write_runs_forever(sys.argv[1], line.strip())
            finally:
                os._exit(1)
        say("pid", pid)
        say("dead", os.waitpid(pid, 0)[1])
    """
)


def check_store_after_crash(root: Path, finished: set[str], touched: set[str]) -> set[str]:
    """Open the store as the next process would; check that it holds every finished run and
    that the runs in ``touched`` folders are whole. Return the run ids it indexes."""
    with RunStore.open(root, create=False):
        pass  # indexes what the killed writer left without an index row
    with sqlite3.connect(f"file:{root / 'index.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        rows = db.execute("SELECT run_id, status, dirty FROM runs").fetchall()
        links = {r for (r,) in db.execute("SELECT run_id FROM batch_runs")}
    db.close()
    indexed = {run_id: status for run_id, status, _ in rows}
    assert finished <= indexed.keys(), "a finished run was lost"
    assert not [r for r, _, dirty in rows if dirty], "a row was left marked after open"
    assert set(indexed) <= links
    for name in touched:
        folder = root / "runs" / name
        for path in folder.iterdir():  # complete under every final name, temp files hidden
            assert path.name in ("record.json", "output.ipynb") or (
                path.name.startswith(".") and path.name.endswith(".tmp")
            )
        if name not in indexed:
            assert not (folder / "record.json").exists()  # killed before its record was in
            continue
        record = RunRecord.model_validate_json((folder / "record.json").read_bytes())
        assert record.run_id == name and record.status.value == indexed[name]
        notebook = nbformat.reads((folder / "output.ipynb").read_text(), as_version=4)
        assert name in notebook.cells[0].outputs[0].text
    return set(indexed)


def test_a_writer_killed_at_random_moments_loses_no_finished_run(tmp_path: Path) -> None:
    root = tmp_path / "store"
    RunStore.open(root).close()  # a kill may come before the first writer has opened it
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, str(root)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    rng = random.Random()
    finished: set[str] = set()
    seen: set[str] = set()
    try:
        for round_ in range(40):
            zygote.stdin.write(f"{round_}\n")
            zygote.stdin.flush()
            wanted, done, pid, status, killed = rng.randint(0, 6), [], 0, None, False
            while status is None:
                line = zygote.stdout.readline()
                assert line, "the writer process ended"
                parts = line.split()
                assert len(parts) == 2, f"unexpected line from the writer: {line!r}"
                kind, value = parts
                if kind == "pid":
                    pid = int(value)
                elif kind == "run":
                    done.append(value)
                else:
                    status = int(value)
                    break
                if pid and len(done) >= wanted and not killed:
                    # chooses the moment of the kill inside the next write; nothing waits on it
                    time.sleep(rng.uniform(0, 0.01))
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            assert status is not None and os.WIFSIGNALED(status), "the writer was not killed"
            assert os.WTERMSIG(status) == signal.SIGKILL
            finished.update(done)
            # run folders only: a writer killed while opening the store leaves its hidden
            # write probe (a file) beside them
            folders = {p.name for p in (root / "runs").iterdir() if p.is_dir()}
            indexed = check_store_after_crash(root, finished, (folders - seen) | set(done))
            seen = folders
    finally:
        zygote.kill()
        zygote.wait(timeout=30)
    assert len(indexed) >= len(finished) >= 20


# -- unusable roots --------------------------------------------------------------------------------


def test_a_missing_store_is_an_error_without_create(tmp_path: Path) -> None:
    with pytest.raises(RunStoreError, match=str(tmp_path / "nowhere")):
        RunStore.open(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_a_root_under_a_regular_file_is_refused_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunStoreError) as caught:
        RunStore.open(blocker / "store")
    assert str(blocker / "store") in str(caught.value)
    assert "Not a directory" in str(caught.value)
    assert blocker.read_text() == "not a folder"


OPEN_AS_OTHER_USER = textwrap.dedent(
    """
    import os, sys
    from smartfab.errors import RunStoreError
    from smartfab.runs.store import RunStore

    try:
        RunStore.open(sys.argv[1]).close()
    except RunStoreError as err:
        print(f"{os.getuid()}: {err}")
        sys.exit(7)
    print(f"{os.getuid()}: opened")
    """
)


@pytest.mark.parametrize("existing", [False, True], ids=["empty-folder", "existing-store"])
def test_a_root_another_user_cannot_write_is_refused_up_front(
    sf_public_tmp: Path, existing: bool
) -> None:
    root = sf_public_tmp / f"root-owned-{existing}"
    root.mkdir(mode=0o755)
    root.chmod(0o755)  # whatever the umask: others may read and enter, not write
    if existing:
        RunStore.open(root).close()
    before = snapshot(root)
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-c", OPEN_AS_OTHER_USER, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert result.returncode == 7, result.stdout + result.stderr
    assert result.stdout.startswith("65534: ")  # really another user
    assert str(root) in result.stdout and "Permission denied" in result.stdout
    assert snapshot(root) == before


# -- damaged index ---------------------------------------------------------------------------------


@pytest.fixture
def sf_filled_store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    with RunStore.open(root) as store:
        store.add_batch(make_batch("b-1"))
        for index in range(20):
            store.put_run(make_run("b-1", index), notebook_text(str(index)))
    assert not (root / "index.sqlite-wal").exists()  # checkpointed at close: one file
    return root


def garbage(size: int) -> bytes:
    return random.Random(7).randbytes(size)


@pytest.mark.parametrize("where", ["header", "pages"])
def test_a_damaged_index_is_reported_and_nothing_is_touched(
    sf_filled_store: Path, where: str
) -> None:
    index = sf_filled_store / "index.sqlite"
    data = bytearray(index.read_bytes())
    page = 4096
    assert len(data) >= 4 * page
    if where == "header":
        data[:100] = garbage(100)
    else:  # every page after the first: the schema is readable, the tables are not
        data[page:] = garbage(len(data) - page)
    index.write_bytes(bytes(data))
    before = snapshot(sf_filled_store)
    with pytest.raises(RunStoreError) as caught:
        RunStore.open(sf_filled_store)
    message = str(caught.value)
    assert str(index) in message and "damaged" in message
    assert "Nothing was removed or changed" in message
    assert snapshot(sf_filled_store) == before
    with pytest.raises(RunStoreError, match="damaged"):
        RunStore.open(sf_filled_store, create=False)
    assert snapshot(sf_filled_store) == before


def test_an_index_of_another_program_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    with sqlite3.connect(root / "index.sqlite") as db:
        db.execute("CREATE TABLE inventory (part TEXT)")
    db.close()
    before = snapshot(root)
    with pytest.raises(RunStoreError) as caught:
        RunStore.open(root)
    assert str(root / "index.sqlite") in str(caught.value)
    assert "not a smartfab run index" in str(caught.value) and "inventory" in str(caught.value)
    assert snapshot(root) == before


def test_an_index_of_another_version_is_refused(sf_filled_store: Path) -> None:
    with sqlite3.connect(sf_filled_store / "index.sqlite") as db:
        db.execute("UPDATE smartfab_schema SET version = 99")
    db.close()
    before = snapshot(sf_filled_store)
    with pytest.raises(RunStoreError, match="version 99"):
        RunStore.open(sf_filled_store)
    assert snapshot(sf_filled_store) == before
