"""Alembic environment of the MariaDB example (Alembic's generic template, plus the handover).

Run by migration-job, it migrates on the connection the job hands over in
config.attributes["connection"] (Alembic's cookbook recipe), so the job's lock covers every
statement. Run by the plain `alembic` CLI, it builds its own engine from sqlalchemy.url or,
when that is empty, from DATABASE_URL, through PyMySQL (the driver the job's image ships).
No models: the revisions are written by hand, in MySQL's SQL.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import URL, Connection, create_engine, make_url, pool

config = context.config


def database_url() -> URL:
    """sqlalchemy.url, else DATABASE_URL; a mysql:// or mariadb:// without a driver means
    PyMySQL (SQLAlchemy's default would be mysqlclient, which the image does not have)."""
    url = make_url(config.get_main_option("sqlalchemy.url")
                   or os.environ.get("DATABASE_URL", "")
                   or "mysql://")
    if "+" not in url.drivername:
        url = url.set(drivername=f"{url.drivername}+pymysql")
    return url


def run_on(connection: Connection) -> None:
    """Each revision in its own transaction (MySQL commits DDL at once all the same: hence one
    DDL statement per revision, so that a failed revision left nothing half done)."""
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=database_url(), literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
elif isinstance(handed_over := config.attributes.get("connection"), Connection):
    run_on(handed_over)
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    with create_engine(database_url(), poolclass=pool.NullPool).connect() as connection:
        run_on(connection)
