"""MySQL and MariaDB commit each DDL statement at once: whether a revision committed yet.

A revision that timed out waiting for a lock may run again only if nothing of it had been
committed. A DDL statement commits the transaction before it even waits for its table (the
tests show a revision's INSERT committed by the ALTER TABLE that then timed out), so only a
revision that had run nothing but reads before the timeout is safe to retry; any other is
possibly partly applied and needs a repair (exit 10).
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
    """Within the block, on an engine without transactional DDL, a statement that may write
    and completes marks the running revision `progress.committed` (or soon to be); the
    job's own rows in `own_table` (the applied-history table, written before a revision and
    closed after it failed) are not the revision's."""
    if engine.transactional_ddl:
        yield
        return

    def completed(connection: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if own_table is not None and own_table in statement:
            return
        if progress.running is not None and writes(statement):
            progress.committed = True

    event.listen(SqlalchemyEngine, "after_cursor_execute", completed)
    try:
        yield
    finally:
        event.remove(SqlalchemyEngine, "after_cursor_execute", completed)
