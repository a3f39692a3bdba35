"""Run index migrations: a store written by smartfab before migrations, opened by this one.

``data/store-v1/store`` was written by the smartfab of commit a67203c (index version 1, no
alembic revision; ``data/store-v1/make_store.py`` made it); ``expected.json`` is what that
smartfab read back from it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from smartfab.errors import RunStoreError
from smartfab.runs.migrations import HEAD, LEGACY, head_revision, known_revisions
from smartfab.runs.models import BatchRecord, RunRecord, RunStatus
from smartfab.runs.store import SCHEMA_VERSION, RunStore
from tests.support.hubtools import SMARTFAB

DATA = Path(__file__).parent / "data" / "store-v1"
V1_STORE = DATA / "store"
#: what opening may change: the index (and its WAL files) and the migration lock
INDEX_FILES = ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", ".migrate.lock")


@pytest.fixture
def sf_v1_store(tmp_path: Path) -> Path:
    """A copy of the store written before migrations."""
    root = tmp_path / "store-v1"
    shutil.copytree(V1_STORE, root)
    return root


def expected_batches() -> dict[str, list[str]]:
    """Batch id -> run ids in batch order, as the smartfab that wrote the store read them."""
    batches: dict[str, list[str]] = json.loads((DATA / "expected.json").read_text())["batches"]
    return batches


def run_files(root: Path) -> dict[str, bytes]:
    """Every file of the store but the index and the lock: the runs and batches themselves."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name not in INDEX_FILES
    }


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def index_state(root: Path) -> tuple[list[str], int]:
    """The alembic revisions and the ``smartfab_schema`` version of the store's index."""
    with sqlite3.connect(root / "index.sqlite") as db:
        revisions = [str(r[0]) for r in db.execute("SELECT version_num FROM alembic_version")]
        (version,) = db.execute("SELECT version FROM smartfab_schema").fetchone()
    db.close()
    return revisions, int(version)


def schema(index: Path) -> list[tuple[str, str, str]]:
    """The tables and indexes of an index, as SQLite records them."""
    with sqlite3.connect(index) as db:
        rows = db.execute(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    db.close()
    return [(str(t), str(n), str(s)) for t, n, s in rows]


def smartfab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SMARTFAB, *map(str, args)], capture_output=True, text=True, timeout=120)


# -- the revisions ---------------------------------------------------------------------------------


def test_the_revision_files_end_at_head_and_set_the_schema_version() -> None:
    assert known_revisions() == ["0001", "0002"]
    assert head_revision() == HEAD == known_revisions()[-1]
    assert known_revisions()[0] == LEGACY
    assert int(HEAD) == SCHEMA_VERSION


def test_the_fixture_is_a_store_from_before_migrations() -> None:
    # immutable: not even the WAL's side files are created next to the fixture
    uri = f"{(V1_STORE / 'index.sqlite').as_uri()}?immutable=1"
    with sqlite3.connect(uri, uri=True) as db:
        tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master")}
        version = db.execute("SELECT version FROM smartfab_schema").fetchone()
    db.close()
    assert "alembic_version" not in tables and "store_info" not in tables
    assert version == (1,)
    assert not (V1_STORE / "index.sqlite-wal").exists()
    assert sum(len(b) for b in snapshot(DATA).values()) < 100_000


# -- upgrading a store written before migrations ---------------------------------------------------


def test_a_store_from_before_migrations_is_upgraded_in_place(sf_v1_store: Path) -> None:
    files = run_files(sf_v1_store)
    expected = expected_batches()
    with RunStore.open(sf_v1_store, create=False) as store:
        assert (store.index_upgrade.before, store.index_upgrade.after) == (LEGACY, HEAD)
        assert store.index_upgrade.changed
        assert [b.batch_id for b in store.batches()] == sorted(expected, reverse=True)
        for batch_id, run_ids in expected.items():
            batch_file = sf_v1_store / "batches" / batch_id / "batch.json"
            assert store.batch(batch_id) == BatchRecord.model_validate_json(batch_file.read_text())
            runs = store.runs(batch_id)
            assert [r.run_id for r in runs] == run_ids
            assert [(r.batch_id, r.index) for r in runs] == [(batch_id, i) for i in range(3)]
            for run_id in run_ids:
                record_file = sf_v1_store / "runs" / run_id / "record.json"
                stored = RunRecord.model_validate_json(record_file.read_text())
                assert store.run(run_id) == stored
                assert (
                    store.output_path(run_id).read_bytes() == files[f"runs/{run_id}/output.ipynb"]
                )
                reusable = [] if stored.status is RunStatus.error else [run_id]
                assert [r.run_id for r in store.find_by_input(stored.input_key)] == reusable
            assert store.counts(batch_id)["total"] == 3
        assert store.info() == {}
        store.set_info("team", "voltronic")
        assert store.info() == {"team": "voltronic"}
    assert index_state(sf_v1_store) == ([HEAD], SCHEMA_VERSION)
    assert run_files(sf_v1_store) == files


def test_an_upgraded_index_has_the_tables_of_a_new_one(sf_v1_store: Path, tmp_path: Path) -> None:
    """Revision 0001 is the schema smartfab wrote before migrations, exactly."""
    RunStore.open(sf_v1_store).close()
    RunStore.open(tmp_path / "new").close()
    assert schema(sf_v1_store / "index.sqlite") == schema(tmp_path / "new" / "index.sqlite")
    assert index_state(tmp_path / "new") == ([HEAD], SCHEMA_VERSION)


def test_opening_an_upgraded_store_again_changes_nothing(sf_v1_store: Path) -> None:
    RunStore.open(sf_v1_store).close()
    before = snapshot(sf_v1_store)
    code = """
        import sys
        from smartfab.runs.store import RunStore
        with RunStore.open(sys.argv[1], create=False) as store:
            done = store.index_upgrade
            print(done.before, done.after, done.changed, len(store.batches()))
        print("alembic" in sys.modules, "sqlalchemy" in sys.modules)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(sf_v1_store)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # at the newest revision: no upgrade, and alembic is not even imported
    assert result.stdout.split("\n")[:2] == [f"{HEAD} {HEAD} False 2", "False False"]
    assert snapshot(sf_v1_store) == before


def test_processes_opening_a_store_from_before_migrations_at_once_all_succeed(
    sf_v1_store: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    code = """
        import sys, time
        from pathlib import Path
        from smartfab.runs.store import RunStore  # most of a second: before the gate
        gate = Path(sys.argv[2])
        deadline = time.monotonic() + 60
        while not gate.exists():  # start together: wait for the gate, with a deadline
            assert time.monotonic() < deadline, "no gate"
        with RunStore.open(sys.argv[1], create=False) as store:
            runs = sum(len(store.runs(b.batch_id)) for b in store.batches())
            print(store.index_upgrade.before, store.index_upgrade.after, runs)
    """
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(sf_v1_store), str(gate)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    gate.touch()
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    lines = sorted(out.strip() for out, _ in outputs)
    # exactly one process upgraded; the others found it done under the lock
    assert lines == [f"{LEGACY} {HEAD} 6"] + [f"{HEAD} {HEAD} 6"] * 3
    assert index_state(sf_v1_store) == ([HEAD], SCHEMA_VERSION)


# -- refusing --------------------------------------------------------------------------------------


def stamp(root: Path, revision: str) -> None:
    with sqlite3.connect(root / "index.sqlite") as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    db.close()


def test_an_index_of_a_newer_smartfab_is_refused_naming_its_revision(sf_v1_store: Path) -> None:
    RunStore.open(sf_v1_store).close()
    stamp(sf_v1_store, "0099")
    before = snapshot(sf_v1_store)
    with pytest.raises(RunStoreError) as caught:
        RunStore.open(sf_v1_store)
    message = str(caught.value)
    assert str(sf_v1_store / "index.sqlite") in message
    assert "revision 0099" in message and f"newest this smartfab knows is {HEAD}" in message
    assert "Nothing was removed or changed" in message
    assert snapshot(sf_v1_store) == before
    result = smartfab("runs", "upgrade-store", sf_v1_store)
    assert result.returncode == RunStoreError.exit_code
    assert "revision 0099" in result.stderr
    assert snapshot(sf_v1_store) == before


def test_a_store_from_before_migrations_of_another_version_is_refused(
    sf_v1_store: Path,
) -> None:
    with sqlite3.connect(sf_v1_store / "index.sqlite") as db:
        db.execute("UPDATE smartfab_schema SET version = 3")
    db.close()
    before = snapshot(sf_v1_store)
    with pytest.raises(RunStoreError, match="version 3, revision none"):
        RunStore.open(sf_v1_store)
    assert snapshot(sf_v1_store) == before


# -- smartfab runs upgrade-store -------------------------------------------------------------------


def test_upgrade_store_prints_both_revisions(sf_v1_store: Path) -> None:
    files = run_files(sf_v1_store)
    result = smartfab("runs", "upgrade-store", sf_v1_store)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == (
        f"{sf_v1_store / 'index.sqlite'}: run index upgraded from revision {LEGACY} to {HEAD}"
    )
    again = smartfab("runs", "upgrade-store", sf_v1_store, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    summary: dict[str, Any] = json.loads(again.stdout)
    assert summary == {
        "index": str(sf_v1_store / "index.sqlite"),
        "from": HEAD,
        "to": HEAD,
        "changed": False,
    }
    assert run_files(sf_v1_store) == files
    status = smartfab("runs", "status", "--store", sf_v1_store, "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert {row["batch"] for row in json.loads(status.stdout)} == set(expected_batches())


def test_upgrade_store_of_a_folder_that_is_not_a_store_fails_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-store"
    folder.mkdir()
    result = smartfab("runs", "upgrade-store", folder)
    assert result.returncode == RunStoreError.exit_code != 0
    assert result.stderr.strip() == f"error: {folder}: no run store here (no index.sqlite)"
    assert list(folder.iterdir()) == []
