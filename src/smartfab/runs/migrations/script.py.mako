"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Keep it additive where possible, and set smartfab_schema.version to this revision's number
(see smartfab.runs.migrations).
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | None = ${repr(branch_labels)}
depends_on: str | None = ${repr(depends_on)}


def upgrade() -> None:
    """What this revision adds to the run index."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Take it away again."""
    ${downgrades if downgrades else "pass"}
