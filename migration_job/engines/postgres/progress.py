"""PostgreSQL: how far this process's running statements got, from the pg_stat_progress_* views.

Each view reports one kind of command (an index build, CLUSTER or VACUUM FULL, ANALYZE, COPY,
VACUUM) with columns of its own; each is read here into a phase and, where the phase counts
something towards a known end, its figures. Statements of this process are found by its
application_name (env.py's own asyncpg or psycopg 3 connections carry it too). An ALTER TABLE
that rewrites its table reports nothing: PostgreSQL has no view for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from migration_job.engines.naming import application_name
from migration_job.engines.postgres.connection import LendableConnection
from migration_job.engines.postgres.partitions import answered_within
from migration_job.engines.postgres.waits import BLOCKERS_WITHIN_S
from migration_job.engines.statement_progress import StatementProgress, counted

Row = Mapping[str, Any]


def _create_index(row: Row) -> StatementProgress:
    """CREATE INDEX and REINDEX: blocks while scanning, then tuples, or the lockers waited for.
    A sort counts nothing (its tuples_done stays 0 until the sort ends)."""
    phase = str(row["phase"])
    if "sorting" in phase:
        return StatementProgress(phase)
    for unit, done, total in (("blocks", "blocks_done", "blocks_total"),
                              ("tuples", "tuples_done", "tuples_total"),
                              ("lockers", "lockers_done", "lockers_total"),
                              ("partitions", "partitions_done", "partitions_total")):
        if (row.get(total) or 0) > 0:
            return counted(phase, row[done], row[total], unit)
    return StatementProgress(phase)


def _cluster(row: Row) -> StatementProgress:
    """CLUSTER and VACUUM FULL: the heap's blocks while scanning it, then tuples written."""
    phase = str(row["phase"])
    if phase == "seq scanning heap":
        return counted(phase, row["heap_blks_scanned"], row["heap_blks_total"], "blocks")
    if phase == "writing new heap":
        return StatementProgress(phase, row["heap_tuples_written"], None, "tuples")
    return StatementProgress(phase)


def _analyze(row: Row) -> StatementProgress:
    """ANALYZE: sample blocks, child tables, extended statistics."""
    phase = str(row["phase"])
    if phase == "acquiring sample rows":
        return counted(phase, row["sample_blks_scanned"], row["sample_blks_total"], "blocks")
    if phase == "acquiring inherited sample rows":
        return counted(phase, row["child_tables_done"], row["child_tables_total"],
                       "child tables")
    if phase == "computing extended statistics":
        return counted(phase, row["ext_stats_computed"], row["ext_stats_total"], "statistics")
    return StatementProgress(phase)


def _copy(row: Row) -> StatementProgress:
    """COPY: bytes of a file whose size is known, else the tuples so far."""
    phase = str(row["command"])
    if (row.get("bytes_total") or 0) > 0:
        return counted(phase, row["bytes_processed"], row["bytes_total"], "bytes")
    return StatementProgress(phase, row["tuples_processed"], None, "tuples")


def _vacuum(row: Row) -> StatementProgress:
    """VACUUM (in an autocommit_block): the heap's blocks scanned, then vacuumed."""
    phase = str(row["phase"])
    if phase == "scanning heap":
        return counted(phase, row["heap_blks_scanned"], row["heap_blks_total"], "blocks")
    if phase == "vacuuming heap":
        return counted(phase, row["heap_blks_vacuumed"], row["heap_blks_total"], "blocks")
    return StatementProgress(phase)


# Each view, the server version that has it, and how its row reads.
VIEWS: tuple[tuple[str, int, Callable[[Row], StatementProgress]], ...] = (
    ("pg_stat_progress_create_index", 120000, _create_index),
    ("pg_stat_progress_cluster", 120000, _cluster),
    ("pg_stat_progress_analyze", 130000, _analyze),
    ("pg_stat_progress_copy", 140000, _copy),
    ("pg_stat_progress_vacuum", 90600, _vacuum),
)


def statement_progress(connection: LendableConnection) -> tuple[StatementProgress, ...]:
    """The figures of every statement of this process that a progress view reports, asked
    from `connection` (not one of them)."""
    views = [(view, read) for view, since, read in VIEWS
             if connection.server_version >= since]
    if not views:
        return ()
    query = " UNION ALL ".join(
        f"SELECT {number}, p.pid, row_to_json(p) FROM {view} p "
        "JOIN pg_stat_activity a ON a.pid = p.pid "
        "WHERE a.application_name = %(name)s AND p.pid <> pg_backend_pid()"
        for number, (view, _) in enumerate(views))
    with answered_within(connection, BLOCKERS_WITHIN_S), connection.cursor() as cursor:
        cursor.execute(f"{query} ORDER BY 2", {"name": application_name()})
        rows = cursor.fetchall()
    return tuple(views[number][1](row) for number, _, row in rows)
