"""``store_info``: facts about the store itself, such as the team that owns it.

Revision ID: 0002
Revises: 0001

Additive: a smartfab from before migrations would read this index correctly, but refuses it
all the same (``smartfab_schema`` version 2), as every smartfab refuses an index newer than it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """One row per fact; none is required."""
    op.create_table(
        "store_info",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.execute("UPDATE smartfab_schema SET version = 2 WHERE component = 'runstore'")


def downgrade() -> None:
    """Back to version 1, losing the facts."""
    op.drop_table("store_info")
    op.execute("UPDATE smartfab_schema SET version = 1 WHERE component = 'runstore'")
