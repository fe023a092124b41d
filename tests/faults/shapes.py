"""The fault matrix's revisions: a base (0001), the shape under test (0002) with a gate at the
chosen point, and one after it (0003). Every revision writes an audit row, so a checker can
count how often each ran; each shape lists the effects its revision leaves when it completes.

A gate is where the test holds the running revision still: a statement that waits for a lock
the test holds (the job is then inside a statement, as a revision mostly is), or, in Python
code and on SQLite, a loop waiting for a file the test creates (FAULT_GATE_DIR; runs without
it never wait).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tests.support.projects import revision


class Point(Enum):
    """Where in the revision the fault strikes."""

    BEFORE = "before"  # the revision's transaction began; none of its statements ran
    INSIDE = "inside"  # a statement of the revision is running (a write, or its DDL)
    BETWEEN = "between"  # its first write ran, its audit row not yet
    BEFORE_COMMIT = "before commit"  # every statement ran; the commit has not
    CONNECT = "connect"  # the job is connecting: no revision runs yet


@dataclass(frozen=True)
class Effect:
    """One thing a revision leaves in the database: kind is audit, column, table, row,
    index (a valid one) or invalid_index; name is what the engine harness looks for."""

    kind: str
    name: str

    @property
    def label(self) -> str:
        """How the README names it."""
        return {"audit": f"audit row {self.name}", "column": f"column {self.name}",
                "table": f"table {self.name}", "row": f"row {self.name}",
                "index": f"index {self.name}",
                "invalid_index": f"invalid index {self.name}"}[self.kind]


AUDIT = Effect("audit", "0002")
AUDIT_INSERT = 'op.execute("INSERT INTO migration_audit (revision) VALUES (\'0002\')")'


@dataclass(frozen=True)
class Shape:
    """A kind of revision 0002: its body per engine (a template whose {before}, {between},
    {before_commit} and {audit} are filled per cell) and what it leaves once applied."""

    name: str
    description: str
    bodies: dict[str, str]
    effects: tuple[Effect, ...]
    # Its body waits at a Python gate between two statements (the point is then `between`).
    python_between: bool = False
    # What a failed run of it may leave that a completed one never does (an invalid index).
    traces: tuple[Effect, ...] = ()




DDL = Shape("ddl", "transactional DDL (ALTER TABLE), then its audit row", {
    "postgresql": '{before}\nop.execute("ALTER TABLE items ADD COLUMN ddl_note text")\n'
                  '{between}\n{audit}\n{before_commit}',
    "sqlite": '{before}\nop.execute("ALTER TABLE items ADD COLUMN ddl_note text")\n'
              '{between}\n{audit}\n{before_commit}',
    "mariadb": '{before}\nop.execute("ALTER TABLE items ADD COLUMN ddl_note varchar(10)")\n'
               '{between}\n{audit}\n{before_commit}',
}, (Effect("column", "items.ddl_note"), AUDIT))
DATA = Shape("data", "a data write (INSERT), then its audit row", {
    engine: '{before}\nop.execute("INSERT INTO items (id, name) VALUES (2, \'data\')")\n'
            '{between}\n{audit}\n{before_commit}'
    for engine in ("postgresql", "sqlite", "mariadb")
}, (Effect("row", "items.2"), AUDIT))
PYTHON = Shape("python", "a write, Python code, then its audit row", {
    engine: '{before}\nop.execute("INSERT INTO items (id, name) VALUES (2, \'python\')")\n'
            'rows = op.get_bind().exec_driver_sql("SELECT count(*) FROM items").scalar()\n'
            '_gate("between")\nassert rows == 2\n{audit}\n{before_commit}'
    for engine in ("postgresql", "sqlite", "mariadb")
}, (Effect("row", "items.2"), AUDIT), python_between=True)
# After a signal, what follows the Python code must not run: here its autocommit_block would
# commit the revision's first write and its own.
PYTHON_AUTOCOMMIT = Shape(
    "python autocommit", "a write, Python code, then its audit row in an autocommit_block", {
        "postgresql": '{before}\nop.execute("INSERT INTO items (id, name) VALUES (2, \'py\')")\n'
                      '_gate("between")\nwith op.get_context().autocommit_block():\n'
                      f'    {AUDIT_INSERT}\n{{before_commit}}',
    }, (Effect("row", "items.2"), AUDIT), python_between=True)
AUTOCOMMIT_INSERT = Shape(
    "autocommit insert", "its audit row written in an autocommit_block, then ALTER TABLE", {
        "postgresql": '{before}\nwith op.get_context().autocommit_block():\n'
                      '    op.execute("INSERT INTO migration_audit (revision) VALUES (\'0002\')")\n'
                      '{between}\nop.execute("ALTER TABLE items ADD COLUMN ac_note text")\n'
                      '{before_commit}',
    }, (AUDIT, Effect("column", "items.ac_note")))
AUTOCOMMIT_FUNCTION = Shape(
    "autocommit function", "SELECT record_audit() (a function that writes its audit row) "
    "in an autocommit_block, then ALTER TABLE", {
        "postgresql": '{before}\nwith op.get_context().autocommit_block():\n'
                      '    op.execute("SELECT record_audit(\'0002\')")\n'
                      '{between}\nop.execute("ALTER TABLE items ADD COLUMN af_note text")\n'
                      '{before_commit}',
    }, (AUDIT, Effect("column", "items.af_note")))
CONCURRENT_INDEX = Shape(
    "concurrent index", "CREATE INDEX CONCURRENTLY in an autocommit_block, then its audit row", {
        "postgresql": '{before}\nwith op.get_context().autocommit_block():\n'
                      '    op.execute("CREATE INDEX CONCURRENTLY ix_items_name ON items (name)")\n'
                      '{between}\n{audit}\n{before_commit}',
    }, (Effect("index", "ix_items_name"), AUDIT),
    traces=(Effect("invalid_index", "ix_items_name"),))
SEVERAL_DDL = Shape(
    "several DDL", "CREATE TABLE, ALTER TABLE, CREATE TABLE (each commits on MySQL), then its "
    "audit row", {
        "mariadb": '{before}\nop.execute("CREATE TABLE shape_a (id integer) ENGINE=InnoDB")\n'
                   '{between}\nop.execute("ALTER TABLE items ADD COLUMN md_note varchar(10)")\n'
                   'op.execute("CREATE TABLE shape_b (id integer) ENGINE=InnoDB")\n'
                   '{audit}\n{before_commit}',
    }, (Effect("table", "shape_a"), Effect("column", "items.md_note"),
        Effect("table", "shape_b"), AUDIT))
# Python code between its first DDL statement and the rest: no transaction of the revision
# is open there (the DDL committed it), as when a failover turns a server read-only.
SEVERAL_DDL_PYTHON = Shape(
    "several DDL, Python", "CREATE TABLE, Python code, ALTER TABLE, CREATE TABLE, then its "
    "audit row", {
        "mariadb": SEVERAL_DDL.bodies["mariadb"].replace("{between}", '_gate("between")'),
    }, SEVERAL_DDL.effects, python_between=True)
SHAPES = {s.name: s for s in (DDL, DATA, PYTHON, PYTHON_AUTOCOMMIT, AUTOCOMMIT_INSERT,
                              AUTOCOMMIT_FUNCTION, CONCURRENT_INDEX, SEVERAL_DDL,
                              SEVERAL_DDL_PYTHON)}

# Waits in Python while FAULT_GATE_DIR is set, until the test creates `open` there (at most
# five minutes: a test that died must not leave a job behind for ever).
PYTHON_GATE = '''
def _gate(point, wait=True):
    import os, time
    folder = os.environ.get("FAULT_GATE_DIR")
    if not folder:
        return
    open(os.path.join(folder, point.replace(" ", "_") + ".reached"), "w").close()
    deadline = time.monotonic() + 300
    while wait and not os.path.exists(os.path.join(folder, "open")):
        if time.monotonic() > deadline:
            raise RuntimeError("the test never opened the gate")
        time.sleep(0.01)
'''
PG_GATE = "SELECT pg_advisory_xact_lock(91919, 1)"
# A row the test holds locked (the harness creates fault_gate): unlike GET_LOCK or SLEEP,
# whose wait a KILL QUERY or max_statement_time ends without an error, a row lock wait fails
# as a real statement would.
MARIADB_GATE = "SELECT id FROM fault_gate WHERE id = 1 FOR UPDATE"
# SQLite's long statement: counts to FAULT_SPIN (set for the faulted run only).
SQLITE_SPIN = ("INSERT INTO migration_audit (revision) SELECT '0002' FROM (WITH RECURSIVE "
               "c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < \" + "
               "os.environ.get('FAULT_SPIN', '0') + \") SELECT count(*) FROM c)")


def gate_code(engine: str, point: Point) -> str:
    """Python lines that hold the revision at `point` (not INSIDE: see blocking_audit)."""
    if engine == "postgresql":
        return f'op.execute("{PG_GATE}")'
    if engine == "mariadb":
        return f'op.execute("{MARIADB_GATE}")'
    return f'_gate("{point.value}")'


def blocking_audit(engine: str) -> str:
    """The audit row's INSERT, held inside the statement until the test lets it go."""
    if engine == "postgresql":
        return ('op.execute("INSERT INTO migration_audit (revision) '
                'SELECT \'0002\' FROM pg_advisory_xact_lock(91919, 1)")')
    if engine == "mariadb":
        return ('op.execute("INSERT INTO migration_audit (revision) SELECT \'0002\' FROM '
                'fault_gate WHERE id = 1 FOR UPDATE")')
    return f'import os\n_gate("inside", wait=False)\nop.execute("{SQLITE_SPIN}")'


def shape_revision(shape: Shape, engine: str, gated: Point | None) -> str:
    """Revision 0002's source: the shape's body with a gate at `gated` (None: no gate, the
    fault needs none, as a blocker's lock)."""
    fills = {p.name.lower(): "" for p in Point}
    fills["audit"] = AUDIT_INSERT
    if gated is Point.INSIDE:
        fills["audit"] = blocking_audit(engine)
    elif gated is not None and gated is not Point.CONNECT:
        fills[gated.name.lower()] = gate_code(engine, gated)
    body = shape.bodies[engine].format(**fills)
    lines = [line for line in (PYTHON_GATE + body).splitlines() if line.strip()]
    return revision("0002", "0001", "\n".join(lines))


BASE = {
    "postgresql": '''
op.execute("CREATE TABLE migration_audit (revision text NOT NULL)")
op.execute("CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL)")
op.execute("INSERT INTO items VALUES (1, 'base')")
op.execute("CREATE FUNCTION record_audit(rev text) RETURNS void LANGUAGE sql AS "
           "$$ INSERT INTO migration_audit (revision) VALUES (rev) $$")
op.execute("INSERT INTO migration_audit (revision) VALUES ('0001')")
''',
    "mariadb": '''
op.execute("CREATE TABLE migration_audit (revision varchar(32) NOT NULL) ENGINE=InnoDB")
op.execute("CREATE TABLE items (id integer PRIMARY KEY, name varchar(100) NOT NULL) "
           "ENGINE=InnoDB")
op.execute("INSERT INTO items VALUES (1, 'base')")
op.execute("INSERT INTO migration_audit (revision) VALUES ('0001')")
''',
    "sqlite": '''
op.execute("CREATE TABLE migration_audit (revision text NOT NULL)")
op.execute("CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL)")
op.execute("INSERT INTO items VALUES (1, 'base')")
op.execute("INSERT INTO migration_audit (revision) VALUES ('0001')")
''',
}
AFTER = revision("0003", "0002", '''
op.execute("INSERT INTO migration_audit (revision) VALUES ('0003')")
''')
# What 0001 and 0003 leave once applied (0002's effects are its shape's).
BASE_EFFECTS = (Effect("audit", "0001"),)
AFTER_EFFECTS = (Effect("audit", "0003"),)


def revisions(shape: Shape, engine: str, gated: Point | None) -> dict[str, str]:
    """The project's revision files (name -> source)."""
    return {"0001_base": revision("0001", None, BASE[engine]),
            "0002_shape": shape_revision(shape, engine, gated),
            "0003_after": AFTER}
