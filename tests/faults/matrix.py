"""The cells the fault matrix runs, chosen rather than crossed (see README.md, "Failure
matrix", for why the others are implied).

Each fault runs at least once on every engine it applies to; each shape at least once; the
points where different things are committed (before, inside, between, before commit) each
at least once per engine. A cell that fails today because of a defect issue 19 lists names
it: the test marks it xfail(strict) until the fix lands.
"""

from __future__ import annotations

from tests.faults.cells import KILLED, Cell, Expect, Recovery
from tests.faults.faults import FAULTS
from tests.faults.network_faults import Blackhole, BlackholeAtConnect, Failover, SilentServer
from tests.faults.shapes import AUDIT, SHAPES, Effect, Point

PG, MARIADB, SQLITE = "postgresql", "mariadb", "sqlite"
DDL, DATA, PYTHON = SHAPES["ddl"], SHAPES["data"], SHAPES["python"]
PYTHON_AUTOCOMMIT = SHAPES["python autocommit"]
AC_INSERT, AC_FUNCTION = SHAPES["autocommit insert"], SHAPES["autocommit function"]
CIC, SEVERAL = SHAPES["concurrent index"], SHAPES["several DDL"]
SEVERAL_PYTHON = SHAPES["several DDL, Python"]
SIGTERM, SIGKILL = FAULTS["SIGTERM"], FAULTS["SIGKILL"]
RESTART, TERMINATED = FAULTS["server restart"], FAULTS["session terminated"]
LOCK_TIMEOUT, SNAPSHOT = FAULTS["DDL lock timeout"], FAULTS["old snapshot"]
SIGTERM_IN_A_WAIT = FAULTS["SIGTERM in a wait"]
WRITER, STATEMENT_TIMEOUT = FAULTS["other writer"], FAULTS["statement timeout"]
READ_ONLY = FAULTS["read-only"]
BLACKHOLE, BLACKHOLE_AT_CONNECT = Blackhole(), BlackholeAtConnect()
SILENT, FAILOVER = SilentServer(), Failover()
BEFORE, INSIDE, BETWEEN = Point.BEFORE, Point.INSIDE, Point.BETWEEN
BEFORE_COMMIT, CONNECT = Point.BEFORE_COMMIT, Point.CONNECT

INTERRUPTED = Expect((143,), "interrupted", "0001")
KILLED_CLEAN = Expect((KILLED,), None, "0001")
LOCK_LOST = Expect((3,), "lock_lost", "0001")
UNREACHABLE = Expect((3,), "database_unreachable", None)
SHAPE_A = Effect("table", "shape_a")
ALL_OF_SEVERAL = (SHAPE_A, Effect("column", "items.md_note"), Effect("table", "shape_b"))

CELLS = [
    # PostgreSQL: a revision is one transaction, but what an autocommit_block ran stays.
    Cell(PG, DDL, SIGTERM, INSIDE, INTERRUPTED),
    Cell(PG, DATA, SIGTERM, BEFORE_COMMIT, INTERRUPTED),
    Cell(PG, PYTHON, SIGTERM, BETWEEN, INTERRUPTED),
    Cell(PG, PYTHON_AUTOCOMMIT, SIGTERM, BETWEEN, INTERRUPTED),
    Cell(PG, DATA, SIGKILL, BETWEEN, KILLED_CLEAN),
    Cell(PG, DDL, TERMINATED, BEFORE, LOCK_LOST),
    Cell(PG, PYTHON, TERMINATED, BETWEEN, LOCK_LOST),
    Cell(PG, DDL, RESTART, BETWEEN, LOCK_LOST),
    Cell(PG, DDL, LOCK_TIMEOUT, INSIDE, Expect((9,), "ddl_blocked", "0001")),
    Cell(PG, DATA, STATEMENT_TIMEOUT, INSIDE, Expect((6,), "migration_failed", "0001")),
    Cell(PG, AC_INSERT, LOCK_TIMEOUT, INSIDE,
         Expect((6,), "migration_failed", "0001", (AUDIT,), Recovery.UNDO)),
    Cell(PG, AC_FUNCTION, LOCK_TIMEOUT, INSIDE,
         Expect((6,), "migration_failed", "0001", (AUDIT,), Recovery.UNDO)),
    Cell(PG, AC_INSERT, TERMINATED, BETWEEN,
         Expect((3,), "lock_lost", "0001", (AUDIT,), Recovery.UNDO)),
    Cell(PG, AC_INSERT, SIGTERM, BETWEEN,
         Expect((143,), "interrupted", "0001", (AUDIT,), Recovery.UNDO)),
    Cell(PG, AC_INSERT, STATEMENT_TIMEOUT, BETWEEN,
         Expect((6,), "migration_failed", "0001", (AUDIT,), Recovery.UNDO)),
    Cell(PG, CIC, SNAPSHOT, INSIDE, Expect((0,), None, "0003")),
    Cell(PG, CIC, SIGTERM_IN_A_WAIT, INSIDE, INTERRUPTED),
    Cell(PG, DDL, BLACKHOLE, INSIDE, LOCK_LOST),
    Cell(PG, DDL, BLACKHOLE_AT_CONNECT, CONNECT, UNREACHABLE),
    Cell(PG, DDL, SILENT, CONNECT, UNREACHABLE),
    Cell(PG, DDL, FAILOVER, BETWEEN, LOCK_LOST),
    Cell(PG, DATA, READ_ONLY, BETWEEN, Expect((4,), "read_only_database", "0002")),
    # MariaDB: each DDL statement commits; a revision cut short awaits a repair (exit 10).
    Cell(MARIADB, SEVERAL, SIGTERM, BETWEEN,
         Expect((143,), "interrupted", "0001", (SHAPE_A,), Recovery.REPAIR)),
    Cell(MARIADB, SEVERAL, SIGKILL, BEFORE,
         Expect((KILLED,), None, "0001", (), Recovery.REPAIR)),
    Cell(MARIADB, SEVERAL, TERMINATED, BEFORE_COMMIT,
         Expect((10,), "revision_unfinished", "0001", ALL_OF_SEVERAL, Recovery.REPAIR)),
    Cell(MARIADB, SEVERAL, RESTART, INSIDE,
         Expect((10,), "revision_unfinished", "0001", ALL_OF_SEVERAL, Recovery.REPAIR)),
    Cell(MARIADB, DDL, LOCK_TIMEOUT, INSIDE, Expect((9,), "ddl_blocked", "0001")),
    Cell(MARIADB, SEVERAL, LOCK_TIMEOUT, INSIDE,
         Expect((10,), "revision_unfinished", "0001", (SHAPE_A,), Recovery.REPAIR)),
    Cell(MARIADB, SEVERAL, STATEMENT_TIMEOUT, INSIDE,
         Expect((10,), "revision_unfinished", "0001", ALL_OF_SEVERAL, Recovery.REPAIR)),
    Cell(MARIADB, DDL, SILENT, CONNECT, UNREACHABLE),
    Cell(MARIADB, SEVERAL_PYTHON, READ_ONLY, BETWEEN,
         Expect((10,), "revision_unfinished", "0001", (SHAPE_A,), Recovery.REPAIR)),
    # SQLite: one transaction per revision (the job issues BEGIN), a file lock, no server.
    Cell(SQLITE, DDL, SIGTERM, INSIDE, INTERRUPTED),
    Cell(SQLITE, DATA, SIGTERM, BEFORE_COMMIT, INTERRUPTED),
    Cell(SQLITE, PYTHON, SIGTERM, BETWEEN, INTERRUPTED),
    Cell(SQLITE, DDL, SIGKILL, BEFORE, KILLED_CLEAN),
    Cell(SQLITE, DATA, WRITER, BEFORE, Expect((6,), "migration_failed", None)),
    Cell(SQLITE, DDL, READ_ONLY, BETWEEN, Expect((4,), "read_only_database", "0001")),
]
