"""The run index as smartfab wrote it before migrations: ``smartfab_schema`` version 1.

Revision ID: 0001
Revises:

An index made by that smartfab has exactly these tables and no ``alembic_version``: it is
stamped with this revision, then upgraded.
"""

from __future__ import annotations

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# the statements of smartfab.runs.store before migrations, unchanged: never edit them
STATEMENTS = (
    "CREATE TABLE smartfab_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    "CREATE TABLE batches (batch_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " created REAL NOT NULL, runs INTEGER NOT NULL)",
    "CREATE INDEX batches_by_name ON batches (name, created)",
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, input_key TEXT NOT NULL,"
    " batch_id TEXT NOT NULL, idx INTEGER NOT NULL, status TEXT NOT NULL,"
    " started REAL NOT NULL, ended REAL NOT NULL,"
    " dirty INTEGER NOT NULL DEFAULT 0)",  # 1 while its files are being replaced
    "CREATE INDEX runs_by_input ON runs (input_key, ended)",
    "CREATE TABLE batch_runs (batch_id TEXT NOT NULL, idx INTEGER NOT NULL,"
    " run_id TEXT NOT NULL, PRIMARY KEY (batch_id, idx))",
    "CREATE INDEX batch_runs_by_run ON batch_runs (run_id)",
    "INSERT INTO smartfab_schema (component, version) VALUES ('runstore', 1)",
)


def upgrade() -> None:
    """Batches, runs and the links between them."""
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    """Not undone: the first revision is the index itself."""
    raise NotImplementedError("revision 0001 is the run index itself; it is not undone")
