"""Statements the servers report progress for, long enough to be seen doing it.

PostgreSQL: an index built on `progress_table` through `gated(id)`, a function that stops at
chosen rows until the test lets go of an advisory lock: the build is held at known points of
its scan, whatever the machine's speed. MariaDB has no such hook in a table copy (a column's
expression may call no function that waits), so its ALTER TABLE is made long by its work: a
persistent column whose every row costs a SHA-512 of a few kilobytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2

PG_BUILD = "CREATE INDEX progress_gated ON progress_table (gated(id))"
MARIADB_COPY = ("ALTER TABLE progress_table ADD COLUMN digest varchar(128) "
                "AS (SHA2(REPEAT(payload, 100), 512)) PERSISTENT, ALGORITHM=COPY")
# The phase of a PostgreSQL index build while the gates hold it, and of MariaDB's copy.
PG_SCANNING = "building index: scanning table"
MARIADB_COPYING = "stage 1 of 2: copy to tmp table"


def gate_ids(rows: int, gates: int) -> list[int]:
    """The rows at which the build stops: evenly spread (the advisory lock keys)."""
    step = rows // (gates + 1)
    return [step * (n + 1) for n in range(gates)]


def pg_gated_table(rows: int, gates: int) -> list[str]:
    """The table and the gate function: at each gate row the build waits for that row's
    advisory lock (lock_timeout off inside, so the job's DDL lock timeout does not end it)."""
    step = rows // (gates + 1)
    return [
        "CREATE TABLE progress_table (id bigint)",
        f"INSERT INTO progress_table SELECT g FROM generate_series(1, {rows}) g",
        "CREATE FUNCTION gated(id bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql "
        "SET lock_timeout = 0 AS $$ BEGIN "
        f"IF id % {step} = 0 AND id <= {step * gates} THEN "
        "PERFORM pg_advisory_xact_lock_shared(id); END IF; RETURN id; END $$",
    ]


def mariadb_table(rows: int) -> list[str]:
    """The table MARIADB_COPY copies."""
    return ["CREATE TABLE progress_table (id bigint PRIMARY KEY, payload varchar(64)) "
            "ENGINE=InnoDB",
            f"INSERT INTO progress_table SELECT seq, md5(seq) FROM seq_1_to_{rows}"]


class Gates:
    """The advisory locks that hold a gated build, taken on a connection of the test's."""

    def __init__(self, connection: Any, ids: list[int]) -> None:
        self.connection = connection
        self.closed = list(ids)
        with connection.cursor() as cursor:
            for key in ids:
                cursor.execute("SELECT pg_advisory_lock(%s)", (key,))

    def open_next(self) -> None:
        """Let the build go on to the next gate (or to its end)."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (self.closed.pop(0),))

    def open_all(self) -> None:
        """Let the build run to its end."""
        while self.closed:
            self.open_next()


@contextmanager
def gates_on(connection: psycopg2.extensions.connection, ids: list[int]) -> Iterator[Gates]:
    """The gates closed for the block, all open afterwards (and the connection closed)."""
    connection.autocommit = True
    try:
        gates = Gates(connection, ids)
        try:
            yield gates
        finally:
            gates.open_all()
    finally:
        connection.close()
