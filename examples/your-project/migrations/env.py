"""Alembic environment of the application.

Run by migration-job, it migrates on the connection the job hands over in
config.attributes["connection"] (Alembic's cookbook recipe), so the job's lock and cancellation
cover every statement. Run by the plain `alembic` CLI, it builds its own engine from
sqlalchemy.url or, when that is empty, from DATABASE_URL.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from models import metadata
from sqlalchemy import URL, Connection, create_engine, make_url, pool

config = context.config
# migration-job's applied-history table (MIGRATE_HISTORY_TABLE; this is its default name) is
# the job's record, not the application's: autogenerate must not offer to drop it.
JOB_TABLES = {"alembic_version_history"}


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's include_name hook: what autogenerate reflects from the database."""
    return type_ != "table" or name not in JOB_TABLES


def database_url() -> URL:
    """sqlalchemy.url, else DATABASE_URL; through psycopg2, the driver the job's image ships
    (SQLAlchemy 2.1 reads a plain postgresql:// as psycopg 3)."""
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("set DATABASE_URL (or sqlalchemy.url in alembic.ini)")
    return make_url(url).set(drivername="postgresql+psycopg2")


def run_on(connection: Connection) -> None:
    """Each revision in its own transaction: a failure rolls back only that revision."""
    context.configure(connection=connection, target_metadata=metadata,
                      include_name=include_name, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=metadata, literal_binds=True,
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
elif isinstance(handed_over := config.attributes.get("connection"), Connection):
    run_on(handed_over)
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    with create_engine(database_url(), poolclass=pool.NullPool).connect() as connection:
        run_on(connection)
