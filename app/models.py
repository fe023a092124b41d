"""The example's tables as SQLAlchemy models: `migrations/env.py` compares them to the database.

`alembic revision --autogenerate` writes a revision for what changed here, and `alembic check`
fails while a model and the migrated database disagree.
"""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, MetaData, Sequence, Text, text, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# PostgreSQL's own names for constraints (employee_pkey, ...), so a constraint that raw SQL
# created and one that a model created are named alike; indexes carry an ix_ prefix.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    """Every model's base; its metadata is env.py's target_metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


EMPLOYEE_ID_SEQ = Sequence("employee_id_seq", schema="hr", metadata=Base.metadata)


class Employee(Base):
    """hr.employee: one row per person."""

    __tablename__ = "employee"
    __table_args__ = {"schema": "hr"}  # noqa: RUF012 (SQLAlchemy reads a plain dict here)

    # The server default lets plain INSERTs (psql, other services) number rows too. Alembic
    # reads the default of a sequence the column owns as SERIAL's; autoincrement=True tells it
    # the model means the same, so `alembic check` sees no difference.
    id: Mapped[int] = mapped_column(
        BigInteger, EMPLOYEE_ID_SEQ, primary_key=True, autoincrement=True,
        server_default=text("nextval('hr.employee_id_seq'::regclass)"))
    name: Mapped[str] = mapped_column(Text)
    hired_on: Mapped[datetime.date] = mapped_column(server_default=text("CURRENT_DATE"))
    email: Mapped[str | None] = mapped_column(Text, index=True)
    active: Mapped[bool] = mapped_column(server_default=true())
