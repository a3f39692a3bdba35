"""Break-glass: an alliance admin's logged, time-limited entry into one team's results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "testbench_break_glass",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("admin", sa.String(100), nullable=False),
        sa.Column("team", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("opened_at", sa.Float, nullable=False),
        sa.Column("until", sa.Float, nullable=False),
    )
    op.create_index("break_glass_by_team", "testbench_break_glass", ["team", "opened_at"])
