"""The run index's schema revisions, applied in place with alembic as JupyterHub does.

This package is alembic's script folder (``env.py``, ``script.py.mako``, ``versions/``), shipped
in the wheel. Revision ``0001`` is the index smartfab wrote before migrations (``smartfab_schema``
version 1, no ``alembic_version`` table: such an index is stamped ``0001``, then upgraded);
``0002`` adds ``store_info``. Every revision also sets ``smartfab_schema.version`` to its number,
so that a smartfab from before migrations refuses an upgraded index instead of misreading it.

:class:`smartfab.runs.store.RunStore` decides when to upgrade (under :func:`migration_lock`) and
calls :func:`upgrade_to_head`; the rest of the store keeps using :mod:`sqlite3`. alembic and
SQLAlchemy take most of a second to import, so they are imported only when an index is created
or upgraded, never to open an index already at :data:`HEAD`.

To add a revision: a file ``versions/rNNNN_<what>.py`` (``script.py.mako`` is its template)
whose ``down_revision`` is the current head, then :data:`HEAD` and
:data:`smartfab.runs.store.SCHEMA_VERSION`; ``tests/runs/test_store_migrations.py`` checks that
they agree with the files.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartfab.errors import RunStoreError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

#: the newest revision this smartfab knows
HEAD = "0002"
#: the revision of an index written before migrations (it carries no revision)
LEGACY = "0001"
#: the file locked while an index is checked and upgraded, in the store's root
LOCK = ".migrate.lock"
#: alembic's script folder, as a package resource
SCRIPT_LOCATION = "smartfab.runs:migrations"
#: seconds a connection waits for another process's write transaction to end
BUSY_TIMEOUT = 30


@dataclass(frozen=True)
class IndexRevision:
    """Where an index stands before an upgrade.

    ``revision`` is None for a new, empty index; ``stamped`` is False for an index written
    before migrations (its revision is then :data:`LEGACY`).
    """

    revision: str | None
    stamped: bool = True


@dataclass(frozen=True)
class IndexUpgrade:
    """What opening an index did to it: from ``before`` (None: it was created) to ``after``."""

    index: Path
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        """Whether the index was created or upgraded."""
        return self.before != self.after

    def describe(self) -> str:
        """One line for people, naming the index and both revisions."""
        if self.before is None:
            return f"{self.index}: new run index created at revision {self.after}"
        if not self.changed:
            return f"{self.index}: run index already at revision {self.after} (the newest)"
        return f"{self.index}: run index upgraded from revision {self.before} to {self.after}"


def bring_to_head(index: Path, check: Callable[[], IndexRevision]) -> IndexUpgrade:
    """Create or upgrade ``index`` unless it is at :data:`HEAD` already.

    ``check`` reads where the index stands, reading only, and refuses a damaged or foreign
    index. It is called first without a lock (an index at the newest revision, the usual case,
    costs no lock and no alembic; a newer one is refused untouched), then again under the
    store's :func:`migration_lock`, since another process may have upgraded it in between.
    """
    found = check()
    if found.revision == HEAD:
        return IndexUpgrade(index, HEAD, HEAD)
    _refuse_unknown(index, found)
    with migration_lock(index.parent):
        found = check()
        if found.revision != HEAD:
            _refuse_unknown(index, found)
            upgrade_to_head(index, found)
            log.info("%s: run index brought from %s to %s", index, found.revision, HEAD)
    return IndexUpgrade(index, found.revision, HEAD)


def _refuse_unknown(index: Path, found: IndexRevision) -> None:
    """Refuse an index whose revision this smartfab does not know: a newer one wrote it."""
    if found.revision is None or found.revision in known_revisions():
        return
    raise RunStoreError(
        f"{index}: run index revision {found.revision} was written by a newer smartfab; the "
        f"newest this smartfab knows is {HEAD}. Nothing was removed or changed; open this store "
        "with that smartfab or a newer one."
    )


def known_revisions() -> list[str]:
    """Every revision of ``versions/``, oldest first (imports alembic)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def head_revision() -> str:
    """The head of ``versions/`` as alembic reads it (imports alembic); equals :data:`HEAD`."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RunStoreError(f"{SCRIPT_LOCATION}: no revisions of the run index")
    return head


@contextmanager
def migration_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive lock of the store at ``root`` (``root/.migrate.lock``) for the block:
    one process at a time checks and upgrades the index; the others wait for it."""
    path = root / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise RunStoreError(f"{path}: cannot open the migration lock: {err.strerror}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def upgrade_to_head(index: Path, found: IndexRevision) -> None:
    """Bring ``index`` from ``found`` to :data:`HEAD` in one transaction: create it, or stamp
    an index from before migrations and upgrade it. Call it under :func:`migration_lock`."""
    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    engine = _engine(index)
    try:
        with engine.begin() as connection:
            config = _config(connection)
            if not found.stamped:
                command.stamp(config, LEGACY)
            command.upgrade(config, "head")
    except (SQLAlchemyError, CommandError) as err:
        before = "a new index" if found.revision is None else f"revision {found.revision}"
        raise RunStoreError(
            f"{index}: cannot bring the run index from {before} to revision {HEAD}: {err}. "
            "Nothing was changed (the upgrade is one transaction)."
        ) from err
    finally:
        engine.dispose()


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def _engine(index: Path) -> Engine:
    """A SQLAlchemy engine on ``index`` whose transactions really are SQLite transactions
    (``BEGIN IMMEDIATE``: the write lock from the start), so DDL is rolled back on failure."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import URL
    from sqlalchemy.pool import NullPool

    engine = create_engine(
        URL.create("sqlite", database=str(index)),
        poolclass=NullPool,
        connect_args={"timeout": BUSY_TIMEOUT},
    )

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite would not begin before DDL

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
