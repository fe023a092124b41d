"""PostgreSQL: statements that run CONCURRENTLY (CREATE INDEX CONCURRENTLY, say) in a revision's
autocommit_block.

Such a statement waits for transactions older than it to end (CREATE INDEX CONCURRENTLY waits
for every older snapshot, on any table), holding only SHARE UPDATE EXCLUSIVE, which blocks no
application query. The DDL lock timeout, which keeps an ALTER TABLE from stalling the
application, protects nothing there: it would fail the build whenever a report runs long, and
retrying would not help while that report runs. So such a statement waits without it, bounded
by the statement timeout only, while the blocker watch names the transactions it waits for.

A CREATE INDEX CONCURRENTLY that fails leaves an INVALID index behind, which makes the next
try fail with "already exists" (or, with IF NOT EXISTS, keeps an index that no query uses).
The job drops it when the build fails, and before a build drops one of that name that an
earlier run left (one killed mid-build). An unnamed build's index is not looked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from migration_job.engines.sqlalchemy_events import listening
from migration_job.errors import first_line
from migration_job.log import log

if TYPE_CHECKING:
    pass

CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)
NAMED_BUILD = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r'(?P<index>"(?:[^"]|"")+"|[^\s"(]+)\s+ON\s+(?:ONLY\s+)?(?P<table>[^\s(]+)', re.IGNORECASE)
# The INVALID index of that name on that table, schema-qualified.
INVALID_INDEX = (
    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE i.indrelid = to_regclass({table}) AND c.relname = {index} AND NOT i.indisvalid")


@contextmanager
def concurrent_statements(lock_timeout: str | None) -> Iterator[None]:
    """Within the block, a statement that runs CONCURRENTLY outside a transaction waits
    without `lock_timeout` (the job's DDL lock timeout; None: the job set none), and a
    CREATE INDEX CONCURRENTLY leaves no INVALID index behind."""

    def before(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if not _concurrently(conn, statement):
            return
        build = NAMED_BUILD.match(statement)
        if build is not None:
            _drop_invalid(conn, build, "an earlier run left (its build never finished)")
        if lock_timeout is not None:
            _run(conn, "SET lock_timeout = 0")

    def after(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if lock_timeout is not None and _concurrently(conn, statement):
            _run(conn, f"SET lock_timeout = {_literal(lock_timeout)}")

    def failed(context: Any) -> None:
        conn, statement = context.connection, context.statement
        if conn is None or statement is None or context.is_disconnect:
            return
        if not _concurrently(conn, statement):
            return
        try:
            after(conn, None, statement)
        except Exception:  # noqa: BLE001  (the failure itself is the news)
            return
        build = NAMED_BUILD.match(statement)
        if build is not None:
            _drop_invalid(conn, build, "the failed build left")

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", before), ("after_cursor_execute", after),
        ("handle_error", failed)]
    with listening(listeners):
        yield


def _concurrently(conn: Any, statement: str) -> bool:
    """Whether a PostgreSQL statement runs CONCURRENTLY outside a transaction."""
    return (conn.dialect.name == "postgresql"
            and conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
            and CONCURRENTLY.search(statement) is not None)


def _drop_invalid(conn: Any, build: re.Match[str], which: str) -> None:
    """Drop the INVALID index a CREATE INDEX CONCURRENTLY names, if there is one."""
    index = build["index"]
    name = index[1:-1].replace('""', '"') if index.startswith('"') else index.lower()
    try:
        found = _run(conn, INVALID_INDEX.format(table=_literal(build["table"]),
                                                index=_literal(name)))
        for (qualified,) in found:
            _run(conn, f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}")
            log.warning("invalid_index_dropped", f"dropped the INVALID index {qualified} that "
                        f"{which}, so that it can be built again", index=qualified)
    except Exception as error:  # noqa: BLE001  (any PostgreSQL driver's error)
        log.warning("invalid_index_left", f"could not drop an INVALID index {name} that "
                    f"{which} ({first_line(error)}): the next run drops it before building it",
                    index=name)


def _run(conn: Any, statement: str) -> list[tuple[Any, ...]]:
    """Run a statement of the job's own on the connection's driver connection (in autocommit
    mode there), outside SQLAlchemy's events."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(statement)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings, PostgreSQL's default since 9.1)."""
    return "'" + text.replace("'", "''") + "'"
