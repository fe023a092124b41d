"""Create the hr schema, its employee sequence and table, and the migration audit table.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateSchema, CreateSequence, DropSchema

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """A schema, a sequence, and a table whose key defaults to nextval() of it."""
    op.execute(CreateSchema("hr"))
    op.execute(CreateSequence(sa.Sequence("employee_id_seq", schema="hr")))
    op.create_table(
        "employee",
        sa.Column("id", sa.BigInteger(),
                  server_default=sa.text("nextval('hr.employee_id_seq'::regclass)"),
                  nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("hired_on", sa.Date(), server_default=sa.text("CURRENT_DATE"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("employee_pkey")),
        schema="hr",
    )
    # The table owns the sequence, so dropping the table drops it too.
    op.execute("ALTER SEQUENCE hr.employee_id_seq OWNED BY hr.employee.id")
    # One row per applied revision: proof that concurrent runners applied each exactly once.
    # Bookkeeping of the example, not one of its models: env.py leaves it out of autogenerate.
    op.create_table(
        "migration_audit",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("revision", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("applied_by", sa.Text(), nullable=False,
                  server_default=sa.text("current_setting('application_name')")),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0001', 'upgrade')")


def downgrade() -> None:
    """Drop everything revision 0001 created."""
    op.drop_table("migration_audit")
    op.drop_table("employee", schema="hr")
    op.execute(DropSchema("hr"))
