"""MySQL and MariaDB commit each DDL statement at once: whether a revision committed yet.

A revision that timed out waiting for a lock may run again only if nothing of it had been
committed before (its first DDL statement timed out, or only data changes ran, which its
rollback undid); otherwise part of it is applied and it needs a repair (exit 10).
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

# Statements that do not commit the transaction they run in; MySQL commits before and after
# everything else (DDL, LOCK TABLES, CALL of a procedure that may run DDL, ...).
TRANSACTIONAL = frozenset(("select", "insert", "update", "delete", "replace", "with", "set",
                           "do", "show", "values", "table", "explain", "describe"))


def commits(statement: str) -> bool:
    """Whether a statement commits on its own, by its first word (conservatively)."""
    words = statement.lstrip(" \t\r\n(").split(None, 1)
    return not words or words[0].lower() not in TRANSACTIONAL


@contextmanager
def implicit_commits(engine: Engine, progress: Progress) -> Iterator[None]:
    """Within the block, on an engine without transactional DDL, a statement that commits
    on its own and completes marks the running revision `progress.committed`."""
    if engine.transactional_ddl:
        yield
        return

    def completed(connection: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if progress.running is not None and commits(statement):
            progress.committed = True

    event.listen(SqlalchemyEngine, "after_cursor_execute", completed)
    try:
        yield
    finally:
        event.remove(SqlalchemyEngine, "after_cursor_execute", completed)
