"""The durable queue of submitted batches: SQLite in the hub's state directory by default,
PostgreSQL (or any database SQLAlchemy reaches) through a URL, as for the hub's own database.

Its tables carry an alembic revision; :meth:`BatchQueue.open` upgrades an older queue in place
(the migrations are in :mod:`smartfab.testbench.migrations`) and refuses one written by a newer
smartfab. Every change is one transaction: a batch is queued entirely or not at all, and a
service killed at any moment finds each batch in the last state it committed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from smartfab.errors import TestBenchError
from smartfab.host.breakglass import BreakGlass
from smartfab.testbench.models import BatchState, QueuedBatch

MIGRATIONS = Path(__file__).parent / "migrations"

_metadata = sa.MetaData()
BATCHES = sa.Table(
    "testbench_batches",
    _metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("program", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(12), nullable=False),
    sa.Column("spec", sa.String(100), nullable=False),
    sa.Column("team", sa.String(40), nullable=False),
    sa.Column("submitted_by", sa.String(100), nullable=False),
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("workers", sa.Integer, nullable=False),
    sa.Column("batch_id", sa.String(120), nullable=False),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("pid", sa.Integer),
    sa.Column("pid_started", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)


BREAK_GLASS = sa.Table(
    "testbench_break_glass",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("admin", sa.String(100), nullable=False),
    sa.Column("team", sa.String(40), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("until", sa.Float, nullable=False),
)


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision of the queue's tables this smartfab knows."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def upgrade_queue(engine: sa.Engine) -> tuple[str | None, str]:
    """Bring the queue's tables to the newest revision; returns (before, after).

    Raises TestBenchError for a queue written by a newer smartfab (a revision unknown here).
    """
    script = ScriptDirectory(str(MIGRATIONS))
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        known = {rev.revision for rev in script.walk_revisions()}
        if current is not None and current not in known:
            raise TestBenchError(
                f"{engine.url.render_as_string(hide_password=True)}: the test bench queue is at "
                f"revision {current!r}, newer than this smartfab knows "
                f"(newest {head_revision()!r}); upgrade smartfab"
            )
        if current != head_revision():
            command.upgrade(_alembic_config(connection), "head")
    return current, head_revision()


def _row(batch: QueuedBatch) -> dict[str, Any]:
    data = batch.model_dump()
    data["state"] = batch.state.value
    data["parameters"] = json.dumps(batch.parameters, sort_keys=True)
    return data


def _batch(row: sa.Row[Any]) -> QueuedBatch:
    data = dict(row._mapping)
    data["parameters"] = json.loads(data["parameters"] or "{}")
    return QueuedBatch.model_validate(data)


class BatchQueue:
    """Submitted batches, durably; open one with :meth:`open`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> BatchQueue:
        """The queue at database ``url`` (``sqlite:///PATH`` by default), created or upgraded."""
        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as err:
            raise TestBenchError(f"test bench database {url!r}: {err}") from err
        if engine.dialect.name == "sqlite" and engine.url.database:
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            upgrade_queue(engine)
        except sa.exc.SQLAlchemyError as err:
            raise TestBenchError(f"test bench database {url!r}: {err}") from err
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- reading --------------------------------------------------------------------------------

    def get(self, batch_id: str) -> QueuedBatch | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(BATCHES).where(BATCHES.c.id == batch_id)).first()
        return _batch(row) if row is not None else None

    def batches(
        self,
        *,
        teams: Iterable[str] | None = None,
        program: str | None = None,
        states: Iterable[BatchState] | None = None,
        limit: int = 200,
    ) -> list[QueuedBatch]:
        """Batches, newest first, of ``teams`` (None: every team), ``program``, ``states``."""
        query = sa.select(BATCHES)
        if teams is not None:
            query = query.where(BATCHES.c.team.in_(sorted(set(teams))))
        if program is not None:
            query = query.where(BATCHES.c.program == program)
        if states is not None:
            query = query.where(BATCHES.c.state.in_([s.value for s in states]))
        query = query.order_by(BATCHES.c.submitted_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_batch(row) for row in conn.execute(query)]

    def in_state(self, state: BatchState) -> list[QueuedBatch]:
        """Every batch in ``state``, in the order the queue serves them: priority, then age."""
        query = (
            sa.select(BATCHES)
            .where(BATCHES.c.state == state.value)
            .order_by(BATCHES.c.priority, BATCHES.c.submitted_at)
        )
        with self.engine.connect() as conn:
            return [_batch(row) for row in conn.execute(query)]

    # -- writing --------------------------------------------------------------------------------

    def add(self, batch: QueuedBatch) -> None:
        """Queue ``batch`` (one transaction)."""
        with self.engine.begin() as conn:
            conn.execute(sa.insert(BATCHES).values(**_row(batch)))

    def _update(self, batch_id: str, only_in: Sequence[BatchState], **values: Any) -> bool:
        """Change a batch that is in one of ``only_in``; False when it is not (any more)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(BATCHES)
                .where(BATCHES.c.id == batch_id)
                .where(BATCHES.c.state.in_([s.value for s in only_in]))
                .values(**values)
            )
        return bool(done.rowcount)

    def mark_running(self, batch_id: str, *, pid: int, pid_started: float, workers: int) -> bool:
        return self._update(
            batch_id,
            [BatchState.queued],
            state=BatchState.running.value,
            pid=pid,
            pid_started=pid_started,
            workers=workers,
            started_at=time.time(),
            attempts=BATCHES.c.attempts + 1,
        )

    def mark_ended(self, batch_id: str, state: BatchState, message: str = "") -> bool:
        assert state.ended
        return self._update(
            batch_id,
            [BatchState.queued, BatchState.running],
            state=state.value,
            message=message,
            ended_at=time.time(),
        )

    def requeue(self, batch_id: str, message: str) -> bool:
        """A running batch whose process is gone without an outcome: queued again, to resume."""
        return self._update(
            batch_id,
            [BatchState.running],
            state=BatchState.queued.value,
            pid=None,
            pid_started=None,
            message=message,
        )

    def request_cancel(self, batch_id: str) -> QueuedBatch | None:
        """Cancel a queued batch at once; mark a running one for the service to stop.
        Returns the batch as it is now (None when unknown)."""
        cancelled = self._update(
            batch_id,
            [BatchState.queued],
            state=BatchState.cancelled.value,
            message="cancelled before it started",
            ended_at=time.time(),
        )
        if not cancelled:
            self._update(batch_id, [BatchState.running], cancel_requested=True)
        # a batch queued between the two updates is cancelled by the service when it starts
        return self.get(batch_id)

    # -- break-glass ----------------------------------------------------------------------------

    def add_break_glass(self, entry: BreakGlass) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(BREAK_GLASS).values(**entry.model_dump()))

    def break_glass(self, teams: Iterable[str] | None = None, limit: int = 200) -> list[BreakGlass]:
        """Break-glass entries of ``teams`` (None: all), newest first."""
        query = sa.select(BREAK_GLASS).order_by(BREAK_GLASS.c.opened_at.desc()).limit(limit)
        if teams is not None:
            query = query.where(BREAK_GLASS.c.team.in_(sorted(set(teams))))
        with self.engine.connect() as conn:
            return [
                BreakGlass.model_validate({k: v for k, v in row._mapping.items() if k != "id"})
                for row in conn.execute(query)
            ]

    def open_break_glass(self, admin: str, now: float) -> set[str]:
        """Teams ``admin`` has an unexpired break-glass for at ``now``."""
        query = sa.select(BREAK_GLASS.c.team).where(
            BREAK_GLASS.c.admin == admin, BREAK_GLASS.c.until > now
        )
        with self.engine.connect() as conn:
            return {row[0] for row in conn.execute(query)}
