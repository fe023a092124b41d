"""The application's tables: what its code queries, and what autogenerate compares against."""

from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, Table, Text, func

# Named constraints, so autogenerate and later revisions can refer to them by name.
metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

account = Table(
    "account", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

note = Table(
    "note", metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("account.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("body", Text, nullable=False),
)
