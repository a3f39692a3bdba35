"""The run store: an SQLite index over plain files, the embedded default for program test runs.

Layout under the store's root folder::

    index.sqlite                    the index (WAL): batches, runs, which runs each batch holds
    runs/<run_id>/record.json       one finished run (:class:`RunRecord`)
    runs/<run_id>/output.ipynb      its executed notebook
    batches/<batch_id>/batch.json   one batch (:class:`BatchRecord`)

The files are the truth and the index is how they are found. Every file is written to a hidden
temp file in its final folder, flushed to disk and renamed over its final name, so a file under
its final name is always complete; a run's files are written before its index row, so a process
killed at any moment loses no finished run: a run (or batch) whose files exist without an index
row is indexed again by the next :meth:`RunStore.open`. A damaged or foreign index is reported,
never repaired or removed.

A run reused by a later batch (identical inputs, unchanged datasets) is linked to that batch by
:meth:`RunStore.attach`; these links live in the index only. An index built afresh from the files
holds each run in the batch that executed it; the runner links reused runs again when such a
batch is started again.

The index's tables have revisions (:mod:`smartfab.runs.migrations`, applied with alembic): a new
index is created at the newest, and :meth:`RunStore.open` upgrades an older index in place, one
process at a time (``.migrate.lock``), in one transaction; the files are never touched. An index
written by a newer smartfab is refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from smartfab.atomicfile import fsync_folder, write_atomic
from smartfab.canonicaljson import jsonable
from smartfab.errors import RunStoreError
from smartfab.runs.migrations import HEAD, LEGACY, IndexRevision, IndexUpgrade, bring_to_head
from smartfab.runs.models import BatchRecord, RunRecord, RunStatus

log = logging.getLogger(__name__)

INDEX = "index.sqlite"
RUNS = "runs"
BATCHES = "batches"
RECORD = "record.json"
OUTPUT = "output.ipynb"
BATCH = "batch.json"
#: ``smartfab_schema.version`` at :data:`~smartfab.runs.migrations.HEAD`: each revision sets
#: its number, so a smartfab from before migrations (which reads version 1 only) refuses an
#: upgraded index
SCHEMA_VERSION = 2
#: run and batch ids become folder names: no separators, no leading dot
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
#: batches named in an "unknown batch" error
LISTED = 10

Model = TypeVar("Model", bound=BaseModel)


class RunStore:
    """Finished runs and their batches under one root folder; see the module docstring.

    Open one with :meth:`RunStore.open`. Safe for several threads of one process (one writer at
    a time); other processes may read while one writes.

    Examples
    --------
    >>> store = RunStore.open(Path("smartfab-runs"))  # doctest: +SKIP
    >>> batch = store.batch("tool-wear-regression")  # doctest: +SKIP
    >>> [run.status for run in store.runs(batch.batch_id)]  # doctest: +SKIP
    """

    def __init__(
        self, root: Path, connection: sqlite3.Connection, index_upgrade: IndexUpgrade
    ) -> None:
        """Use :meth:`RunStore.open`, which checks the folder and the index first."""
        self.root = root
        self.index = root / INDEX
        #: what opening did to the index: created, upgraded, or left at its revision
        self.index_upgrade = index_upgrade
        self._db = connection
        self._db_lock = threading.Lock()  # one statement or transaction at a time
        self._writer = threading.Lock()  # one put/attach/add at a time, files included

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path | str, create: bool = True) -> RunStore:
        """Open the store at ``root``, checking first that it is writable and its index sound,
        and bringing an index of an older smartfab to the newest revision (in place, one process
        at a time; :attr:`index_upgrade` says what was done).

        Parameters
        ----------
        root:
            The store's folder.
        create:
            Create the folder and an empty index when missing; otherwise a missing store is an
            error.

        Raises
        ------
        RunStoreError
            The folder cannot be created or written (naming it and the reason), there is no
            store (``create=False``), or the index is damaged, foreign or written by a newer
            smartfab (naming it and its revision; nothing is removed or changed).
        """
        root = Path(root)
        index = root / INDEX
        if not create and not _is_file(index):
            raise RunStoreError(f"{root}: no run store here (no {INDEX})")
        for folder in (root, root / RUNS, root / BATCHES):
            _ensure_writable_folder(folder)
        store = cls(root, *_connect(index))
        try:
            store._reindex()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Close the index; the store cannot be used afterwards."""
        with self._db_lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- batches --------------------------------------------------------------------------------

    def add_batch(self, batch: BatchRecord) -> None:
        """Store ``batch``; a batch already stored under its id is kept as it is."""
        _check_id(batch.batch_id, "batch id")
        with self._writer:
            if self._query("SELECT 1 FROM batches WHERE batch_id = ?", (batch.batch_id,)):
                return
            path = self._batch_file(batch.batch_id)
            stored = _read_model(path, BatchRecord) if _is_file(path) else None
            if stored is None:
                _write_atomic(path, _dump(batch))
                stored = batch
            with self._transaction() as db:
                _insert_batch(db, stored)

    def batch(self, ref: str) -> BatchRecord:
        """The batch ``ref`` names: its exact id, else a batch name (its newest batch), else a
        unique prefix of an id.

        Raises
        ------
        RunStoreError
            No batch, or several, match; the message lists candidates.
        """
        if not ref:
            raise RunStoreError(f"{self.root}: name a batch by id, id prefix or name")
        rows = self._query("SELECT batch_id, name FROM batches ORDER BY created DESC, rowid DESC")
        ids = [batch_id for batch_id, _ in rows]
        if ref in ids:
            return self._read_batch(ref)
        named = [batch_id for batch_id, name in rows if name == ref]
        if named:
            return self._read_batch(named[0])
        prefixed = [(batch_id, name) for batch_id, name in rows if batch_id.startswith(ref)]
        if len(prefixed) == 1:
            return self._read_batch(prefixed[0][0])
        if prefixed:
            raise RunStoreError(
                f"{self.root}: {ref!r} is the start of {len(prefixed)} batch ids: "
                f"{_list_batches(prefixed)}; give more of the id"
            )
        known = f"newest batches: {_list_batches(rows[:LISTED])}" if rows else "no batches yet"
        raise RunStoreError(f"{self.root}: no batch with id, id prefix or name {ref!r}; {known}")

    def batches(self) -> list[BatchRecord]:
        """Every batch, newest first."""
        rows = self._query("SELECT batch_id FROM batches ORDER BY created DESC, rowid DESC")
        return [self._read_batch(batch_id) for (batch_id,) in rows]

    # -- the store itself -------------------------------------------------------------------------

    def info(self) -> dict[str, str]:
        """Facts recorded about the store (e.g. ``team``: the team that owns it); none are
        required."""
        return {
            str(key): str(value) for key, value in self._query("SELECT key, value FROM store_info")
        }

    def set_info(self, key: str, value: str) -> None:
        """Record ``value`` under ``key`` in :meth:`info`, replacing what was there."""
        if not key:
            raise RunStoreError(f"{self.index}: store info needs a key (value {value!r})")
        with self._writer:
            self._execute(
                "INSERT OR REPLACE INTO store_info (key, value) VALUES (?, ?)", (key, value)
            )

    # -- runs -----------------------------------------------------------------------------------

    def put_run(self, record: RunRecord, output_notebook: str) -> RunRecord:
        """Store a finished run: its executed notebook (nbformat JSON) and its record.

        Both files are written atomically, then the run is indexed and linked to
        ``record.batch_id`` at ``record.index`` in one transaction. A run already stored under
        the same id (same inputs, same datasets) is replaced. Returns the record as stored,
        whose ``output_notebook`` is the notebook's path relative to the store root.
        """
        _check_id(record.run_id, "run id")
        _check_id(record.batch_id, "batch id")
        relative = f"{RUNS}/{record.run_id}/{OUTPUT}"
        if record.output_notebook != relative:
            record = record.model_copy(update={"output_notebook": relative})
        folder = self.root / RUNS / record.run_id
        with self._writer:
            # a crash while replacing the files of a stored run: the next open reads them again
            self._execute("UPDATE runs SET dirty = 1 WHERE run_id = ?", (record.run_id,))
            _write_atomic(folder / OUTPUT, output_notebook.encode("utf-8"))
            _write_atomic(folder / RECORD, _dump(record))
            with self._transaction() as db:
                _insert_run(db, record)
                db.execute(
                    "INSERT OR REPLACE INTO batch_runs (batch_id, idx, run_id) VALUES (?, ?, ?)",
                    (record.batch_id, record.index, record.run_id),
                )
        return record

    def attach(self, batch_id: str, index: int, run_id: str) -> None:
        """Make the stored run ``run_id`` the run at ``index`` of ``batch_id`` (a run reused
        because its inputs are identical), replacing whatever run was there."""
        _check_id(batch_id, "batch id")
        with self._writer:
            if not self._query("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
                raise RunStoreError(f"{self.root}: no run {run_id!r} to attach to {batch_id}")
            with self._transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO batch_runs (batch_id, idx, run_id) VALUES (?, ?, ?)",
                    (batch_id, index, run_id),
                )

    def find_by_input(self, input_key: str) -> list[RunRecord]:
        """Runs executed to the end (passed or failed) with these inputs, newest first.

        Errored runs are left out: they did not produce a result worth reusing.
        """
        rows = self._query(
            "SELECT run_id FROM runs WHERE input_key = ? AND status != ?"
            " ORDER BY ended DESC, rowid DESC",
            (input_key, RunStatus.error.value),
        )
        return [self._read_run(run_id) for (run_id,) in rows]

    def runs(self, batch_id: str) -> list[RunRecord]:
        """The runs of a batch, ordered by their index in it.

        A run reused from an earlier batch is returned as this batch sees it: ``batch_id`` and
        ``index`` are this batch's (:meth:`run` returns it as stored).
        """
        rows = self._links(batch_id)
        records = []
        for index, run_id in rows:
            record = self._read_run(run_id)
            if (record.batch_id, record.index) != (batch_id, index):
                record = record.model_copy(update={"batch_id": batch_id, "index": index})
            records.append(record)
        return records

    def run(self, run_id: str) -> RunRecord:
        """The run stored under ``run_id``, as its batch executed it."""
        if not self._query("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
            raise RunStoreError(f"{self.root}: no run {run_id!r}")
        return self._read_run(run_id)

    def counts(self, batch_id: str) -> dict[str, int]:
        """How many runs of a batch ``passed``, ``failed`` and ended in ``error``, and their
        ``total`` (the runs stored so far, not the size of the grid)."""
        self._links(batch_id)  # unknown batch: an error
        rows = self._query(
            "SELECT r.status, count(*) FROM batch_runs b JOIN runs r ON r.run_id = b.run_id"
            " WHERE b.batch_id = ? GROUP BY r.status",
            (batch_id,),
        )
        counts = {status.value: 0 for status in RunStatus}
        for status, count in rows:
            counts[status] = count
        counts["total"] = sum(count for _, count in rows)
        return counts

    def output_path(self, run_id: str) -> Path:
        """The executed notebook of a stored run."""
        if not self._query("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
            raise RunStoreError(f"{self.root}: no run {run_id!r}")
        return self.root / RUNS / run_id / OUTPUT

    # -- files ----------------------------------------------------------------------------------

    def _batch_file(self, batch_id: str) -> Path:
        return self.root / BATCHES / batch_id / BATCH

    def _read_batch(self, batch_id: str) -> BatchRecord:
        return _read_model(self._batch_file(batch_id), BatchRecord)

    def _read_run(self, run_id: str) -> RunRecord:
        return _read_model(self.root / RUNS / run_id / RECORD, RunRecord)

    def _links(self, batch_id: str) -> list[tuple[int, str]]:
        rows = self._query(
            "SELECT idx, run_id FROM batch_runs WHERE batch_id = ? ORDER BY idx", (batch_id,)
        )
        if not rows and not self._query("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)):
            raise RunStoreError(f"{self.root}: no batch {batch_id!r}")
        return [(int(index), str(run_id)) for index, run_id in rows]

    def _reindex(self) -> None:
        """Index the runs and batches whose files exist without an index row (a process was
        killed between writing them and indexing them), and re-read runs whose files were
        being replaced."""
        with self._writer:
            batches = {b for (b,) in self._query("SELECT batch_id FROM batches")}
            for folder in _subfolders(self.root / BATCHES):
                path = folder / BATCH
                if folder.name in batches or not _is_file(path):
                    continue
                batch = _read_found(path, BatchRecord, folder.name, "batch_id")
                if batch is not None:
                    with self._transaction() as db:
                        _insert_batch(db, batch)
                    log.info("%s: batch %s indexed from its files", self.root, batch.batch_id)
            clean = {r for (r,) in self._query("SELECT run_id FROM runs WHERE dirty = 0")}
            for folder in _subfolders(self.root / RUNS):
                path = folder / RECORD
                if folder.name in clean or not _is_file(path):
                    continue
                record = _read_found(path, RunRecord, folder.name, "run_id")
                if record is not None:
                    with self._transaction() as db:
                        _insert_run(db, record)
                        db.execute(
                            "INSERT OR IGNORE INTO batch_runs (batch_id, idx, run_id)"
                            " VALUES (?, ?, ?)",
                            (record.batch_id, record.index, record.run_id),
                        )
                    log.info("%s: run %s indexed from its files", self.root, record.run_id)

    # -- index ----------------------------------------------------------------------------------

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        with self._db_lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.Error as err:
                raise RunStoreError(f"{self.index}: {err}") from err

    def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        with self._transaction() as db:
            db.execute(sql, parameters)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._db_lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise RunStoreError(f"{self.index}: {exc}") from exc
                raise


def _insert_batch(db: sqlite3.Connection, batch: BatchRecord) -> None:
    db.execute(
        "INSERT OR IGNORE INTO batches (batch_id, name, created, runs) VALUES (?, ?, ?, ?)",
        (batch.batch_id, batch.name, batch.created.timestamp(), batch.runs),
    )


def _insert_run(db: sqlite3.Connection, record: RunRecord) -> None:
    db.execute(
        "INSERT OR REPLACE INTO runs (run_id, input_key, batch_id, idx, status, started, ended,"
        " dirty) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        (
            record.run_id,
            record.input_key,
            record.batch_id,
            record.index,
            record.status.value,
            record.started.timestamp(),
            record.ended.timestamp(),
        ),
    )


def _list_batches(rows: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{batch_id} ({name})" for batch_id, name in rows)


# -- the index file -------------------------------------------------------------------------------


def _connect(index: Path) -> tuple[sqlite3.Connection, IndexUpgrade]:
    """A connection to a sound index of ours at the newest revision: created when the file is
    new or empty, upgraded when an older smartfab wrote it."""
    try:
        db = sqlite3.connect(index, timeout=30, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as err:
        raise RunStoreError(f"{index}: cannot open the run index: {err}") from err
    try:
        upgrade = bring_to_head(index, lambda: _check_index(db, index))
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # with WAL: no loss when a process dies
    except sqlite3.Error as err:
        db.close()
        raise RunStoreError(f"{index}: cannot use the run index: {err}") from err
    except BaseException:
        db.close()
        raise
    return db, upgrade


def _check_index(db: sqlite3.Connection, index: Path) -> IndexRevision:
    """The revision of the index, reading only; a damaged or foreign index is refused."""
    try:
        problems = [str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall()]
        tables = {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as err:
        raise _damaged(index, str(err)) from err
    if problems != ["ok"]:
        raise _damaged(index, "; ".join(problems[:5]))
    if not tables:
        return IndexRevision(None)  # new: created at the newest revision next
    if "smartfab_schema" not in tables:
        raise RunStoreError(
            f"{index}: not a smartfab run index (it holds {', '.join(sorted(tables))}). "
            "Nothing was removed or changed; use another folder for the run store."
        )
    try:
        query = "SELECT version FROM smartfab_schema WHERE component = 'runstore'"
        row = db.execute(query).fetchone()
        revisions = (
            [str(r[0]) for r in db.execute("SELECT version_num FROM alembic_version")]
            if "alembic_version" in tables
            else None
        )
    except sqlite3.Error as err:
        raise RunStoreError(
            f"{index}: not a smartfab run index ({err}). Nothing was removed or changed."
        ) from err
    version = row[0] if row else None
    if revisions is None and version == 1:
        return IndexRevision(LEGACY, stamped=False)  # written before migrations
    if revisions is None or len(revisions) != 1 or version not in range(1, SCHEMA_VERSION + 1):
        raise RunStoreError(
            f"{index}: run index version {version}, revision "
            f"{', '.join(revisions) if revisions else 'none'}; this smartfab reads versions 1 to "
            f"{SCHEMA_VERSION} (revisions up to {HEAD}). Nothing was removed or changed; use the "
            "smartfab that wrote it."
        )
    return IndexRevision(revisions[0])


def _damaged(index: Path, detail: str) -> RunStoreError:
    return RunStoreError(
        f"{index}: the run index is damaged ({detail}). Nothing was removed or changed. "
        f"The runs themselves are the files under {index.parent / RUNS} and "
        f"{index.parent / BATCHES}: move the damaged index aside to have a new one built from "
        "them at the next open."
    )


# -- files ----------------------------------------------------------------------------------------


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _check_id(value: str, what: str) -> None:
    if not SAFE_ID.match(value):
        raise RunStoreError(
            f"{what} {value!r}: use letters, digits, '.', '_' and '-' (at most 200), "
            "not starting with '.', '_' or '-'"
        )


def _ensure_writable_folder(folder: Path) -> None:
    """Create ``folder`` if needed and prove it writable by creating and removing a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        # mkdir fails on the first missing parent it cannot create: name that one too
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(folder) else ""
        raise RunStoreError(
            f"{folder}: cannot create the run store folder: {_reason(err)}{where}"
        ) from err
    probe = folder / f".write-test-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as err:
        raise RunStoreError(f"{folder}: the run store is not writable: {_reason(err)}") from err


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :mod:`smartfab.atomicfile`), creating the
    folder if needed; a failure is a RunStoreError naming the file."""
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(exist_ok=True)
            fsync_folder(path.parent.parent)  # the new folder's own entry
        write_atomic(path, data)
    except OSError as err:
        raise RunStoreError(f"{path}: cannot write: {_reason(err)}") from err


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir())
    except OSError as err:
        raise RunStoreError(f"{folder}: cannot list: {_reason(err)}") from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    return jsonable(obj)


def _dump(model: BaseModel) -> bytes:
    """The JSON of ``model``; NaN and infinite metrics stay numbers (as Python's json writes
    them) instead of becoming null."""
    data = model.model_dump(mode="python")
    return json.dumps(data, default=_json_default, indent=1, ensure_ascii=False).encode("utf-8")


def _read_model(path: Path, model: type[Model]) -> Model:
    try:
        return model.model_validate(json.loads(path.read_bytes()))
    except FileNotFoundError as err:
        raise RunStoreError(f"{path}: missing from the run store") from err
    except OSError as err:
        raise RunStoreError(f"{path}: cannot read: {_reason(err)}") from err
    except (ValueError, ValidationError) as err:  # JSON or fields
        raise RunStoreError(f"{path}: not a valid {model.__name__}: {err}") from err


def _read_found(path: Path, model: type[Model], name: str, id_field: str) -> Model | None:
    """A file found without an index row; None (and a warning) when it cannot be used."""
    try:
        found = _read_model(path, model)
    except RunStoreError as err:
        log.warning("%s; not indexed", err)
        return None
    if getattr(found, id_field) != name:
        log.warning("%s: %s is not %s; not indexed", path, id_field, name)
        return None
    return found
