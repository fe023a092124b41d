"""Add employee.active, NOT NULL with a constant default.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Since PostgreSQL 11 a constant default needs no table rewrite."""
    op.add_column(
        "employee",
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        schema="hr",
    )
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0005', 'upgrade')")


def downgrade() -> None:
    """Drop the column."""
    op.drop_column("employee", "active", schema="hr")
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0005', 'downgrade')")
