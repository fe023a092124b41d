"""When env.py cannot use the driver it got: a configuration error, not a traceback.

The job gives env.py the driver the URL names, or for a bare URL one that fits env.py as its
source reads (history.env_runs_asyncio). An env.py that runs asyncio through a synchronous
driver, or a synchronous one through an async driver, fails in SQLAlchemy before any
revision: that is the URL's (or the project's) to fix, exit 2.
"""

from __future__ import annotations

from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError, MissingGreenlet

from migration_job.engines import ASYNC_DRIVERS, SYNC_DRIVERS
from migration_job.errors import ConfigError, first_line

# The drivers SQLAlchemy runs through asyncio, of those env.py can get (engines.SCHEMES).
ASYNC_ONLY = ("asyncpg", "psycopg_async")


def driver_mismatch(error: BaseException, config: Config) -> ConfigError | None:
    """The configuration error when `error` says env.py could not use its driver; else None."""
    driver = _env_driver(config)
    if isinstance(error, InvalidRequestError) and "requires an async driver" in str(error):
        return ConfigError(f"env.py runs asyncio, but the driver it got ({driver}) is not "
                           f"async; {ASYNC_DRIVERS}")
    if isinstance(error, MissingGreenlet) and driver in ASYNC_ONLY:
        return ConfigError(f"env.py is synchronous, but the driver it got ({driver}) runs "
                           f"through asyncio ({first_line(error)}); {SYNC_DRIVERS}")
    return None


def _env_driver(config: Config) -> str:
    """The driver named in the sqlalchemy.url env.py got."""
    try:
        return make_url(config.get_main_option("sqlalchemy.url") or "").get_driver_name()
    except ArgumentError:
        return "unknown"
