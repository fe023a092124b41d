"""An applied-history table the job cannot use: a privilege its role lacks (exit 4), or a
table altered by hand, a column renamed or dropped (exit 7). A lost session stays what it is.

Every read and write of the table goes through `using_history`, so every command meets the
same one line. Where the history is not needed to keep a guarantee, the job goes on without it
and warns (`history_unreadable`): status always, check unless MIGRATE_VERIFY=fail, an upgrade
that records nothing (MIGRATE_HISTORY=off) and does not fail on changed files. A run that
would record its revisions refuses before it changes anything: it would leave a gap in the
history, which later runs verify against.

No SQLAlchemy here: check reads the table on the job's own session on its fast path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from migration_job.errors import HistoryDenied, HistoryUnreadable, JobError, first_line
from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.engines import Engine, Session
    from migration_job.project import Project
    from migration_job.settings import Settings

# The table's columns (applied_history.history_table defines them), all read by every reader
# but the checksums' (the check at head reads only what it compares): a table altered anywhere
# is noticed before a run that writes to it relies on it.
COLUMNS = ("id", "revision", "parents", "direction", "started_at", "finished_at", "duration_ms",
           "outcome", "runner_host", "runner_pid", "job_version", "deploy_ref", "checksum")
DENIED_ADVICE = ("grant the job's role SELECT, INSERT and UPDATE on it, or set MIGRATE_HISTORY"
                 "=off and MIGRATE_VERIFY=off to run without it")
ALTERED_ADVICE = ("it is not the table the job created (altered by hand?): restore its columns "
                  "(README, Applied history), or set MIGRATE_HISTORY_TABLE to a new table")


def table_name(settings: Settings, project: Project) -> str:
    """The table's name as messages show it (with its schema, when the project names one)."""
    name = project.history_table(settings.history_table)
    schema = project.version_table_schema
    return f"{schema}.{name}" if schema else name


@contextmanager
def using_history(settings: Settings, table: str, doing: str = "read") -> Iterator[None]:
    """Turn a database error about the table into HistoryDenied or HistoryUnreadable; any
    other error goes through unchanged (see `about_the_table`)."""
    try:
        yield
    except JobError:
        raise
    except Exception as error:
        engine = settings.engine
        cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
        if not isinstance(cause, engine.errors) or not about_the_table(engine, cause, doing):
            raise
        what = f"cannot {doing} the applied-history table {table} ({first_line(cause)})"
        if engine.is_permission_denied(cause):
            raise HistoryDenied(f"{what}; {DENIED_ADVICE}") from None
        raise HistoryUnreadable(f"{what}; {ALTERED_ADVICE}") from None


def about_the_table(engine: Engine, error: BaseException, doing: str) -> bool:
    """Whether a database error is the table's: a privilege the role lacks; or, for a read
    (a SELECT of the table's own columns), anything but a lost session, a lock, a busy
    database or a timeout, which say nothing about the table. A write's other failures keep
    the job's usual reading (the read before it already found a renamed or dropped column)."""
    if engine.is_permission_denied(error):
        return True
    return doing == "read" and not (
        engine.is_connection_lost(error) or engine.is_lock_timeout(error)
        or engine.is_statement_timeout(error) or engine.failure_advice(error) is not None)


def recorded_rows(session: Session, settings: Settings, project: Project,
                  columns: tuple[str, ...] = COLUMNS) -> list[dict[str, object]]:
    """Every row, oldest first, as column -> value (`columns`, id among them), on the job's
    own session; none when the table does not exist."""
    with using_history(settings, table_name(settings, project)):
        rows = session.table_rows(project.version_table_schema,
                                  project.history_table(settings.history_table), columns)
    found = [dict(zip(columns, row, strict=True)) for row in rows]
    return sorted(found, key=lambda row: int(str(row["id"])))


def refuse_or_go_on(error: HistoryUnreadable, strict: bool, refusal: str = "") -> None:
    """Warn that the job goes on without the history; or, when `strict` (the run needs it),
    refuse with the error, `refusal` saying what did not happen."""
    if strict:
        raise type(error)(f"{error}{'; ' if refusal else ''}{refusal}")
    log.warning("history_unreadable", f"{error}; going on without it: unfinished rows, changed "
                "revision files and a database ahead of this image cannot be told from it")


def read_before_changing(session: Session, settings: Settings, project: Project,
                         verifying: bool) -> list[dict[str, object]] | None:
    """Under the lock, before a run changes anything: the rows, for the checksums (when
    `verifying`); None when the run needs no history. A table the run would record in, or
    verify against under MIGRATE_VERIFY=fail, that cannot be read refuses the run."""
    verifying = verifying and settings.verify != "off"
    if not settings.record_history and not verifying:
        return None
    try:
        return recorded_rows(session, settings, project)
    except HistoryUnreadable as error:
        strict = settings.record_history or (verifying and settings.verify == "fail")
        refuse_or_go_on(error, strict, "nothing was changed")
        return None
