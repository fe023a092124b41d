"""When env.py cannot use the driver it got: a configuration error, not a traceback.

The job gives env.py the driver the URL names, or for a bare URL one that fits env.py as its
source reads (history.env_runs_asyncio). An env.py that runs asyncio through a synchronous
driver, or a synchronous one through an async driver, fails in SQLAlchemy before any
revision: that is the URL's (or the project's) to fix, exit 2. So is a driver (or any
module) that env.py needs and the image does not have: an env.py that builds its engine from
a URL of its own may name any driver.
"""

from __future__ import annotations

from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError, MissingGreenlet

from migration_job.engines import ASYNC_DRIVERS, SYNC_DRIVERS
from migration_job.errors import ConfigError, first_line

# The drivers SQLAlchemy runs through asyncio, of those env.py can get (engines.SCHEMES).
ASYNC_ONLY = ("asyncpg", "psycopg_async")
SHIPPED_DRIVERS = ("the image ships psycopg2, psycopg 3 and asyncpg (PostgreSQL), PyMySQL "
                   "(MySQL and MariaDB, also under mysqlclient's name MySQLdb) and sqlite3")


def driver_mismatch(error: BaseException, config: Config) -> ConfigError | None:
    """The configuration error when `error` says env.py could not use its driver; else None."""
    driver = _env_driver(config)
    if isinstance(error, InvalidRequestError) and "requires an async driver" in str(error):
        return ConfigError(f"env.py runs asyncio, but the driver it got ({driver}) is not "
                           f"async; {ASYNC_DRIVERS}")
    if isinstance(error, MissingGreenlet) and driver in ASYNC_ONLY:
        return ConfigError(f"env.py is synchronous, but the driver it got ({driver}) runs "
                           f"through asyncio ({first_line(error)}); {SYNC_DRIVERS}")
    if isinstance(error, ModuleNotFoundError):
        return missing_module(error)
    return None


def missing_module(error: ModuleNotFoundError) -> ConfigError | None:
    """The configuration error for a module env.py needs and cannot import (a database
    driver, named by the URL it loaded it for); None for a module of the job's own (a bug)."""
    if (error.name or "").partition(".")[0] == "migration_job":
        return None
    loading = _dialect_loading(error)
    if loading is not None:
        return ConfigError(f"env.py's engine ({loading}://) needs a driver that is not "
                           f"installed ({first_line(error)}); {SHIPPED_DRIVERS}: use one of "
                           "those in the URL env.py connects with, or install the driver in "
                           "an image built on the job's")
    return ConfigError(f"env.py could not import a module ({first_line(error)}): install it "
                       "in an image built on the job's, or fix env.py's imports (alembic.ini's "
                       "prepend_sys_path)")


def _dialect_loading(error: BaseException) -> str | None:
    """'dialect+driver' when SQLAlchemy raised `error` while importing a dialect's driver."""
    frame = error.__traceback__
    while frame is not None:
        dialect = frame.tb_frame.f_locals.get("cls")
        if frame.tb_frame.f_code.co_name == "import_dbapi" and isinstance(dialect, type):
            return f"{getattr(dialect, 'name', '?')}+{getattr(dialect, 'driver', '?')}"
        frame = frame.tb_next
    return None


def _env_driver(config: Config) -> str:
    """The driver named in the sqlalchemy.url env.py got."""
    try:
        return make_url(config.get_main_option("sqlalchemy.url") or "").get_driver_name()
    except ArgumentError:
        return "unknown"
