"""Index employee.email without blocking writes (CREATE INDEX CONCURRENTLY).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """CONCURRENTLY cannot run in a transaction, hence the autocommit block."""
    with op.get_context().autocommit_block():
        # An interrupted CONCURRENTLY build leaves an INVALID index behind; drop it first so
        # that a retry builds a valid one instead of skipping it.
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS hr.ix_employee_email")
        op.execute("CREATE INDEX CONCURRENTLY ix_employee_email ON hr.employee (email)")
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0004', 'upgrade')")


def downgrade() -> None:
    """Drop the index, also without blocking writes."""
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS hr.ix_employee_email")
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0004', 'downgrade')")
