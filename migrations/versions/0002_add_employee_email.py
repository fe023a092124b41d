"""Add employee.email, nullable first so existing rows stay valid.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """A nullable column is a catalog-only change: no table rewrite, no long lock."""
    op.add_column("employee", sa.Column("email", sa.Text(), nullable=True), schema="hr")
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0002', 'upgrade')")


def downgrade() -> None:
    """Drop the column."""
    op.drop_column("employee", "email", schema="hr")
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0002', 'downgrade')")
