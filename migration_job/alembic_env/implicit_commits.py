"""Whether a running revision committed part of itself yet.

A revision that timed out waiting for a lock may run again only if nothing of it had been
committed. MySQL and MariaDB commit each DDL statement at once, and a DDL statement commits
the transaction before it even waits for its table (the tests show a revision's INSERT
committed by the ALTER TABLE that then timed out), so only a revision that had run nothing
but reads before the timeout is safe to retry; any other is possibly partly applied and needs
a repair (exit 10).

On PostgreSQL a revision's transaction rolls back whole, except around Alembic's
`autocommit_block` (CREATE INDEX CONCURRENTLY, say). Each statement inside the block commits
on its own (or leaves its trace, an invalid index, when it fails), whatever its first word:
`SELECT backfill()` may write. And entering the block commits what the revision ran before it
(Alembic commits the open transaction). Either counts as soon as it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from migration_job.engines.sqlalchemy_events import listening

if TYPE_CHECKING:
    from migration_job.alembic_env.progress import Progress
    from migration_job.engines import Engine

# Statements that change nothing; any other (a data change that a later DDL statement would
# commit, DDL, LOCK TABLES, a CALL that may run DDL, ...) may leave part of a revision applied.
READS = frozenset(("select", "set", "show", "values", "table", "explain", "describe"))
# The execution option that marks the job's own statements in a revision's transaction (the
# revision gate): they are not the revision's work.
JOB_OWN = "migration_job_own"


def writes(statement: str) -> bool:
    """Whether a statement may change the database, by its first word (conservatively)."""
    words = statement.lstrip(" \t\r\n(").split(None, 1)
    return not words or words[0].lower() not in READS


@contextmanager
def implicit_commits(engine: Engine, progress: Progress,
                     own_table: str | None = None) -> Iterator[None]:
    """Within the block, the running revision's work marks it `progress.committed` (or soon
    to be): on an engine without transactional DDL a statement that may write, once it
    completes; on one with it any statement outside a transaction (autocommit_block) once it
    starts, and any statement of its transaction once that transaction commits before the
    revision ends (entering an autocommit_block). The job's own rows in `own_table` (the
    applied-history table, written before a revision and closed after it failed) and its own
    statements (JOB_OWN) are not the revision's."""
    uncommitted = [False]  # the revision ran statements in the transaction now open
    # progress.committed as it was before the COMMIT now running, which a failed COMMIT
    # restores: it committed nothing (SQLite on a volume turned read-only, a deferred
    # constraint on PostgreSQL).
    before_commit: list[bool | None] = [None]

    def revisions(statement: str, context: Any) -> bool:
        return (progress.running is not None
                and (own_table is None or own_table not in statement)
                and not (context is not None and context.execution_options.get(JOB_OWN)))

    def completed(connection: Any, cursor: Any, statement: str, parameters: Any,
                  context: Any, *rest: Any) -> None:
        if revisions(statement, context) and writes(statement):
            progress.committed = True

    def started(connection: Any, cursor: Any, statement: str, parameters: Any,
                context: Any, *rest: Any) -> None:
        before_commit[0] = None
        if not revisions(statement, context):
            return
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            progress.committed = True
        else:
            uncommitted[0] = True

    def committed(connection: Any) -> None:
        if uncommitted[0] and progress.running is not None:
            before_commit[0] = progress.committed
            progress.committed = True
        uncommitted[0] = False

    def rolled_back(connection: Any) -> None:
        before_commit[0] = None
        uncommitted[0] = False

    def failed(context: Any) -> None:
        if context.statement is None and before_commit[0] is not None:  # the COMMIT failed
            progress.committed = before_commit[0]
        before_commit[0] = None

    listeners: list[tuple[str, Any]] = (
        [("before_cursor_execute", started), ("commit", committed), ("rollback", rolled_back),
         ("handle_error", failed)]
        if engine.transactional_ddl else [("after_cursor_execute", completed)])
    with listening(listeners):
        yield
