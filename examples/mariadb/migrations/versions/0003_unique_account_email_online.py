"""Make account.email unique, without blocking writes (online DDL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """ALGORITHM=INPLACE, LOCK=NONE: the server refuses the statement rather than silently
    copying the table under a write lock (MariaDB and MySQL alike)."""
    op.execute("ALTER TABLE account ADD UNIQUE INDEX uq_account_email (email), "
               "ALGORITHM=INPLACE, LOCK=NONE")


def downgrade() -> None:
    """Downgrade schema."""
    op.execute("ALTER TABLE account DROP INDEX uq_account_email, ALGORITHM=INPLACE, LOCK=NONE")
