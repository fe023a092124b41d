"""PostgreSQL drivers that a project's env.py may use besides psycopg2: asyncpg and psycopg 3.

The job's own sessions (wait, lock, fast path) stay psycopg2; these concern only env.py's
connections, which the job cannot lend its session to. Nothing here imports a driver: the
fast path must not pay for them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from migration_job.engines.naming import application_name
from migration_job.engines.urls import authority_end
from migration_job.errors import ConfigError

# libpq's sslmode values; asyncpg takes the same words as `ssl=`.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# asyncpg's own connect arguments in a URL (SQLAlchemy passes the query to asyncpg.connect)
# that libpq does not know: the job's own connection leaves them out.
ASYNCPG_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func",
                "statement_cache_size", "max_cached_statement_lifetime",
                "max_cacheable_statement_size", "command_timeout", "timeout", "direct_tls")


def libpq_query_from_asyncpg(rest: str) -> str:
    """`rest` (the URL after '://') with an asyncpg query turned into libpq's: ssl=MODE is
    sslmode=MODE, and asyncpg's own parameters are left out."""
    base, separator, query = rest.partition("?")
    if not separator:
        return rest
    parameters = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in ASYNCPG_ONLY:
            continue
        if key == "ssl":
            if value not in SSL_MODES:
                raise ConfigError(f"DATABASE_URL's ssl={value!r} is not one of "
                                  f"{', '.join(SSL_MODES)}")
            key = "sslmode"
        parameters.append((key, value))
    return f"{base}?{urlencode(parameters, quote_via=quote)}" if parameters else base


def hosts_in_query(rest: str) -> str:
    """`rest` (a URL after '://') with libpq's several hosts (host1:port1,host2:port2) moved
    into the query, where SQLAlchemy reads them (?host=host1:port1&host=host2:port2)."""
    end = authority_end(rest)
    userinfo, at, hosts = rest[:end].rpartition("@")
    path, _, query = rest[end:].partition("?")
    moved = urlencode([("host", host) for host in hosts.split(",")], quote_via=quote,
                      safe=":[]")
    return f"{userinfo}{at}{path or '/'}?{'&'.join(filter(None, (moved, query)))}"


def name_connection(driver: str, cparams: dict[str, Any]) -> None:
    """Give a connection that env.py opens (through psycopg2, psycopg 3 or asyncpg) the job's
    application_name, so that a signal finds and cancels its statements
    (Engine.cancel_own_statements). libpq reads PGAPPNAME, but a name in the URL wins over
    it; asyncpg reads neither."""
    if driver == "asyncpg":
        cparams["server_settings"] = {**(cparams.get("server_settings") or {}),
                                      "application_name": application_name()}
    elif driver in ("psycopg", "psycopg2"):
        cparams["application_name"] = application_name()



def bounded_connection(dialect: Any, cargs: Any, cparams: dict[str, Any],
                       settings: dict[str, str]) -> Any:
    """Open a connection that env.py asked for with the session settings that bound the
    revisions' statements (lock_timeout, statement_timeout) already set, whatever its driver.

    Set by a statement rather than in the startup packet (asyncpg's server_settings, libpq's
    options), which poolers such as PgBouncer reject. The values are the job's own
    ('2000ms'), so they are written inline: each driver has its own parameter style.
    """
    connection = dialect.connect(*cargs, **cparams)
    cursor = connection.cursor()
    cursor.execute("SELECT " + ", ".join(f"set_config('{name}', '{value}', false)"
                                         for name, value in settings.items()))
    cursor.close()
    connection.commit()
    return connection
