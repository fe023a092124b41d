"""MySQL and MariaDB: how long a revision's statements may wait for a lock or run, and who
may block them.

lock_wait_timeout bounds the wait for a table's metadata lock (whole seconds, at least 1),
which an ALTER TABLE takes; InnoDB's row lock waits keep innodb_lock_wait_timeout. Only
MariaDB's max_statement_time bounds every statement: MySQL's max_execution_time covers
SELECT only, so the statement timeout does not apply on MySQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql

from migration_job.engines.blocking import Blocker, query_line
from migration_job.engines.mysql.connection import CONNECTION_ID, OPEN, LendableConnection

WAITING_FOR_TABLE = "Waiting for table metadata lock"


def revision_settings(lock_timeout: float, statement_timeout: float,
                      mariadb: bool) -> dict[str, float]:
    """The session variables that bound a revision's statements; 0 leaves the server's."""
    settings: dict[str, float] = {}
    if lock_timeout > 0:
        settings["lock_wait_timeout"] = max(1, math.ceil(lock_timeout))
    if statement_timeout > 0 and mariadb:
        settings["max_statement_time"] = statement_timeout
    return settings


@contextmanager
def bounded_waits(connection: LendableConnection, settings: dict[str, float]) -> Iterator[None]:
    """Within the block, the session's statements are bounded by `settings`; afterwards the
    session's own values are back."""
    if not settings:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"@@session.{name}" for name in settings))
        before = cursor.fetchone()
        cursor.execute("SET " + ", ".join(f"SESSION {name} = %s" for name in settings),
                       tuple(settings.values()))
    try:
        yield
    finally:
        _restore(connection, dict(zip(settings, before or (), strict=True)))


def _restore(connection: LendableConnection, settings: dict[str, float]) -> None:
    if not connection.open:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET " + ", ".join(f"SESSION {name} = %s" for name in settings),
                           tuple(settings.values()))
    except pymysql.err.MySQLError:
        pass  # the session broke: whoever uses it next reports that


def blockers(connection: LendableConnection) -> tuple[Blocker, ...]:
    """While one of this process's sessions waits for a table's metadata lock: the other
    sessions with an open transaction (the server does not say which one holds the lock
    without performance_schema, which MariaDB leaves off)."""
    ours = tuple(sorted(int(c.thread_id()) for c in list(OPEN)  # type: ignore[no-untyped-call]
                        if c.open))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.ID, p.USER, p.HOST, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), "
            "COALESCE(p.INFO, '') FROM information_schema.INNODB_TRX t "
            "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
            "WHERE p.ID NOT IN %s AND EXISTS (SELECT 1 FROM information_schema.PROCESSLIST w "
            "WHERE w.ID IN %s AND w.STATE = %s) ORDER BY p.ID", (ours, ours, WAITING_FOR_TABLE))
        rows = cursor.fetchall()
    return tuple(Blocker(pid=int(row[0]), application_name=f"user {row[1]}",
                         client_addr=str(row[2]).rsplit(":", 1)[0] or None,
                         transaction_age_s=float(row[3]), query=query_line(row[4]),
                         id_label=CONNECTION_ID)
                 for row in rows)
