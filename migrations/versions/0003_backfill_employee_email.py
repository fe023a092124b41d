"""Backfill employee.email for existing rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Data change in its own revision, so a schema rollback never has to undo data."""
    op.execute(
        """
        UPDATE hr.employee
        SET email = lower(regexp_replace(name, '[^a-zA-Z0-9]+', '.', 'g')) || '@example.com'
        WHERE email IS NULL
        """
    )
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0003', 'upgrade')")


def downgrade() -> None:
    """Backfilled addresses are indistinguishable from real ones: keep the data."""
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0003', 'downgrade')")
