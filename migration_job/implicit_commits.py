"""Whether a running revision committed part of itself yet.

A revision that timed out waiting for a lock may run again only if nothing of it had been
committed. MySQL and MariaDB commit each DDL statement at once, and a DDL statement commits
the transaction before it even waits for its table (the tests show a revision's INSERT
committed by the ALTER TABLE that then timed out), so only a revision that had run nothing
but reads before the timeout is safe to retry; any other is possibly partly applied and needs
a repair (exit 10). On PostgreSQL a revision's transaction rolls back whole, except what it
ran in Alembic's `autocommit_block` (CREATE INDEX CONCURRENTLY, say): each such statement
commits, or leaves its trace (an invalid index) when it fails, so it counts once it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine as SqlalchemyEngine

if TYPE_CHECKING:
    from migration_job.engines import Engine
    from migration_job.migrate import Progress

# Statements that change nothing; any other (a data change that a later DDL statement would
# commit, DDL, LOCK TABLES, a CALL that may run DDL, ...) may leave part of a revision applied.
READS = frozenset(("select", "set", "show", "values", "table", "explain", "describe"))


def writes(statement: str) -> bool:
    """Whether a statement may change the database, by its first word (conservatively)."""
    words = statement.lstrip(" \t\r\n(").split(None, 1)
    return not words or words[0].lower() not in READS


@contextmanager
def implicit_commits(engine: Engine, progress: Progress,
                     own_table: str | None = None) -> Iterator[None]:
    """Within the block, a statement that may write marks the running revision
    `progress.committed` (or soon to be): on an engine without transactional DDL once it
    completes, on one with it once it starts outside a transaction (autocommit_block); the
    job's own rows in `own_table` (the applied-history table, written before a revision and
    closed after it failed) are not the revision's."""
    def marks(statement: str) -> bool:
        return (progress.running is not None and writes(statement)
                and (own_table is None or own_table not in statement))

    def completed(connection: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if marks(statement):
            progress.committed = True

    def started_outside_a_transaction(connection: Any, cursor: Any, statement: str,
                                      *rest: Any) -> None:
        if (connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
                and marks(statement)):
            progress.committed = True

    name, listener = (("before_cursor_execute", started_outside_a_transaction)
                      if engine.transactional_ddl else ("after_cursor_execute", completed))
    event.listen(SqlalchemyEngine, name, listener)
    try:
        yield
    finally:
        event.remove(SqlalchemyEngine, name, listener)
