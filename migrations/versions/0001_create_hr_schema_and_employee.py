"""Create the hr schema, its employee sequence and table, and the migration audit table.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """A schema, a sequence, and a table whose key defaults to nextval() of it."""
    op.execute("CREATE SCHEMA hr")
    op.execute("CREATE SEQUENCE hr.employee_id_seq")
    op.execute(
        """
        CREATE TABLE hr.employee (
            id bigint PRIMARY KEY DEFAULT nextval('hr.employee_id_seq'),
            name text NOT NULL,
            hired_on date NOT NULL DEFAULT current_date
        )
        """
    )
    # The table owns the sequence, so dropping the table drops it too.
    op.execute("ALTER SEQUENCE hr.employee_id_seq OWNED BY hr.employee.id")
    # One row per applied revision: proof that concurrent runners applied each exactly once.
    op.execute(
        """
        CREATE TABLE migration_audit (
            id bigserial PRIMARY KEY,
            revision text NOT NULL,
            direction text NOT NULL,
            applied_by text NOT NULL DEFAULT current_setting('application_name'),
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0001', 'upgrade')")


def downgrade() -> None:
    """Drop everything revision 0001 created."""
    op.execute("DROP TABLE migration_audit")
    op.execute("DROP TABLE hr.employee")
    op.execute("DROP SCHEMA hr")
