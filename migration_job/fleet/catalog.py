"""The fleet's catalog database: the tenant names that MIGRATE_TARGET_NAMES_QUERY returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migration_job.engines import sqlalchemy_url
from migration_job.errors import ConfigError, first_line
from migration_job.log import log
from migration_job.run.wait import wait_for_database

if TYPE_CHECKING:
    from migration_job.settings import Settings

NO_RESULT_SET = ("MIGRATE_TARGET_NAMES_QUERY returned no result set (it is empty, or a "
                 "statement such as UPDATE that returns no rows): write a SELECT whose first "
                 "column holds the tenant names")


def query_names(settings: Settings, query: str) -> list[str]:
    """The query's first column as text, NULLs and blanks left out.

    Waits for the catalog as the job waits for any database (exit 3 or 4), and closes its
    connection before any target is migrated: it never counts against the fleet's budget.
    """
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    wait_for_database(settings).close()
    engine = sqlalchemy.create_engine(sqlalchemy_url(settings.database_url),
                                      poolclass=NullPool,
                                      connect_args=settings.engine.sqlalchemy_connect_args())
    try:
        # no_parameters: the driver gets the query alone, so a '%' in it (LIKE 'a%') is SQL's,
        # not the start of a placeholder of psycopg2's or PyMySQL's paramstyle.
        with engine.connect().execution_options(no_parameters=True) as connection:
            result = connection.exec_driver_sql(query)
            if not result.returns_rows:  # an empty statement, a write (rolled back at close)
                raise ConfigError(NO_RESULT_SET)
            rows = result.fetchall()
    except sqlalchemy.exc.DBAPIError as error:
        raise ConfigError(f"MIGRATE_TARGET_NAMES_QUERY failed on the catalog database: "
                          f"{first_line(error.orig or error)}") from None
    finally:
        engine.dispose()
    names = [str(row[0]).strip() for row in rows if row and row[0] is not None]
    names = [name for name in names if name]
    log.info("fleet_names_read", f"MIGRATE_TARGET_NAMES_QUERY returned {len(names)} name(s)",
             count=len(names))
    return names
