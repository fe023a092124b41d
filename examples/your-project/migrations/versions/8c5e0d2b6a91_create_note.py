"""Create note, owned by an account.

Revision ID: 8c5e0d2b6a91
Revises: 3f2a9c1e7b4d
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c5e0d2b6a91"
down_revision: str | Sequence[str] | None = "3f2a9c1e7b4d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"],
                                name=op.f("fk_note_account_id_account"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_note")),
    )
    op.create_index(op.f("ix_note_account_id"), "note", ["account_id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_note_account_id"), table_name="note")
    op.drop_table("note")
