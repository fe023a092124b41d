"""MySQL and MariaDB: how far this process's running statements got.

MariaDB reports the progress of ALTER TABLE (copying), LOAD DATA and the table maintenance
statements in its process list: the stage, how many stages, and a percentage of the whole
statement. MySQL 8 reports the stages of InnoDB's ALTER TABLE in performance_schema, with
units of work done and estimated, once the stage instruments and the events_stages_current
consumer are on (they are off by default: then it reports nothing). This process's statements
are those of its own sessions, by connection id.
"""

from __future__ import annotations

from migration_job.engines.mysql.connection import OPEN, LendableConnection
from migration_job.engines.statement_progress import StatementProgress, counted

MARIADB = (
    "SELECT STATE, STAGE, MAX_STAGE, PROGRESS FROM information_schema.PROCESSLIST "
    "WHERE ID IN %s AND ID <> CONNECTION_ID() AND MAX_STAGE > 0 ORDER BY ID")
MYSQL = (
    "SELECT s.EVENT_NAME, s.WORK_COMPLETED, s.WORK_ESTIMATED "
    "FROM performance_schema.events_stages_current s "
    "JOIN performance_schema.threads t ON t.THREAD_ID = s.THREAD_ID "
    "WHERE t.PROCESSLIST_ID IN %s AND t.PROCESSLIST_ID <> CONNECTION_ID() "
    "ORDER BY t.PROCESSLIST_ID")


def statement_progress(connection: LendableConnection,
                       mariadb: bool) -> tuple[StatementProgress, ...]:
    """The figures of every statement of this process's sessions that the server reports
    progress for, asked from `connection` (not one of them)."""
    ours = tuple(sorted(int(c.thread_id()) for c in list(OPEN)  # type: ignore[no-untyped-call]
                        if c.open))
    if not ours:
        return ()
    with connection.cursor() as cursor:
        cursor.execute(MARIADB if mariadb else MYSQL, (ours,))
        rows = cursor.fetchall()
    if mariadb:
        return tuple(_mariadb_stage(*row) for row in rows)
    return tuple(counted(_stage_name(str(name)), done, total, "units of work")
                 for name, done, total in rows)


def _mariadb_stage(state: object, stage: object, stages: object,
                   progress: object) -> StatementProgress:
    """'stage 1 of 2: copy to tmp table', with the server's percentage of the statement (0
    counts as none: a stage such as 'Enabling keys' reports no progress at all)."""
    percent = float(progress) if progress else None  # type: ignore[arg-type]
    return StatementProgress(f"stage {stage} of {stages}: {state or 'running'}",
                             server_percent=percent)


def _stage_name(event: str) -> str:
    """'stage/innodb/alter table (read PK and internal sort)' without its instrument path."""
    return event.rsplit("/", 1)[-1]
