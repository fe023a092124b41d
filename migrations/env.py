"""Alembic environment for the example project.

Run by migration-job, it uses the connection the job hands over in
config.attributes["connection"] (Alembic's cookbook pattern), so the job's lock, timeouts
and cancellation cover it. Run by the plain `alembic` CLI, it builds its own engine from
sqlalchemy.url or, when that is empty, from DATABASE_URL. Either way target_metadata is
the example's models (app/models.py, importable through alembic.ini's prepend_sys_path), so
`alembic revision --autogenerate` and `alembic check` compare them with the database.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from alembic.runtime.environment import NameFilterParentNames, NameFilterType
from sqlalchemy import Connection, Engine, create_engine, pool

from app.models import Base

config = context.config
target_metadata = Base.metadata
# Autogenerate looks only at the schemas the models live in: anything else in the database
# (another application's schema, a custom version table's) is not the models' business.
MODEL_SCHEMAS = {table.schema for table in target_metadata.tables.values()}
# migration_audit is the example's bookkeeping, not application data: every revision writes a
# row so the tests can prove it ran once. No model maps it, so autogenerate must not see it
# (it would offer to drop it, and `alembic check` would always report drift). The same goes
# for migration-job's applied-history table (MIGRATE_HISTORY_TABLE, default below).
BOOKKEEPING_TABLES = {"migration_audit", "alembic_version_history"}


def include_name(name: str | None, type_: NameFilterType,
                 parent_names: NameFilterParentNames) -> bool:
    """Alembic's include_name hook: what autogenerate reflects from the database."""
    if type_ == "schema":
        return name in MODEL_SCHEMAS
    if type_ == "table":
        return name not in BOOKKEEPING_TABLES
    return True


def database_url() -> str:
    """sqlalchemy.url, else DATABASE_URL; postgres:// and postgresql:// mean psycopg2."""
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("set DATABASE_URL (or sqlalchemy.url in alembic.ini)")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url.removeprefix(prefix)
    return url


def run_on(connection: Connection) -> None:
    """Each revision in its own transaction: a failure rolls back only that revision."""
    context.configure(connection=connection, target_metadata=target_metadata,
                      include_schemas=True, include_name=include_name,
                      compare_server_default=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL instead of running it (`alembic upgrade head --sql`)."""
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"}, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use the connection (or engine, as pytest-alembic passes) handed over, else our own."""
    handed_over = config.attributes.get("connection")
    if isinstance(handed_over, Connection):
        run_on(handed_over)
        return
    if isinstance(handed_over, Engine):
        with handed_over.connect() as connection:
            run_on(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_on(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
