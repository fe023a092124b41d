"""Copies of the example Alembic project with extra revisions or a generic env.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import alembic

from tests.support.job import REPO

GENERIC_ENV = Path(alembic.__file__).parent / "templates" / "generic" / "env.py"


# Proves that a revision a revision gate let in runs alone: a row lock taken NOWAIT on the
# one row of ALONE_GUARD (the test creates it). An advisory lock would not do: a transaction
# that ends releases the gate's advisory lock and another one after the other, and the runner
# the gate woke may try the second in between; a row lock is free as soon as that
# transaction has ended, which comes first.
ALONE_GUARD = "CREATE TABLE alone_guard (id int); INSERT INTO alone_guard VALUES (1)"
ALONE_BEHIND_A_GATE = ("DO $$ BEGIN PERFORM 1 FROM alone_guard FOR UPDATE NOWAIT; "
                       "EXCEPTION WHEN lock_not_available THEN "
                       "RAISE EXCEPTION 'two runners at once'; END $$")


def revision(rev: str, down: str | None, upgrade: str, downgrade: str = "pass") -> str:
    """Source of a revision file whose bodies are the given Python statements."""
    def indent(body: str) -> str:
        return "\n".join("    " + line for line in body.strip().splitlines())
    return (f'"""Test revision {rev}."""\nfrom alembic import op\n\n'
            f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\n"
            f"depends_on = None\n\n\ndef upgrade() -> None:\n{indent(upgrade)}\n\n\n"
            f"def downgrade() -> None:\n{indent(downgrade)}\n")


# Sleeps as long as the session's migration_test.sleep says (set through PGOPTIONS), so the
# same file is slow for the run a test interrupts and instant for the run after it.
SLOW = revision("0006", "0005", '''
op.execute("CREATE TABLE slow_marker (id int)")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
op.execute("SELECT pg_sleep(coalesce(nullif("
           "current_setting('migration_test.sleep', true), ''), '0')::float)")
''', 'op.execute("DROP TABLE slow_marker")')
FAILING = revision("0006", "0005", '''
op.execute("CREATE TABLE half_done (id int)")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
op.execute("SELECT * FROM table_that_does_not_exist")
''')
BRANCH_A = revision("0006a", "0005", 'op.execute("CREATE TABLE branch_a (id int)")')
BRANCH_B = revision("0006b", "0005", 'op.execute("CREATE TABLE branch_b (id int)")')
# Revision files that cannot be loaded: the history is broken before anything can run.
SYNTAX_ERROR = revision("0006", "0005", 'op.execute("CREATE TABLE never_created (id int)"')
NAME_ERROR_ON_IMPORT = revision("0006", "0005", "pass") + "\nTIMEOUT = UNDEFINED_SETTING\n"


def make_project(root: Path, *, generic_env: bool = False, extra: dict[str, str] | None = None,
                 versions: bool = True) -> Path:
    """Copy the example project (its models too) under `root`; return its alembic.ini."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "alembic.ini", root / "alembic.ini")
    shutil.copytree(REPO / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    migrations = root / "migrations"
    migrations.mkdir()
    shutil.copy(GENERIC_ENV if generic_env else REPO / "migrations" / "env.py",
                migrations / "env.py")
    shutil.copy(REPO / "migrations" / "script.py.mako", migrations / "script.py.mako")
    if versions:
        shutil.copytree(REPO / "migrations" / "versions", migrations / "versions",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name, source in (extra or {}).items():
            (migrations / "versions" / f"{name}.py").write_text(source)
    return root / "alembic.ini"


# Revisions whose SQL SQLite, MySQL and MariaDB share: 0002 adds a column, 0003 changes data
# only; each writes an audit row, so a test can prove it ran exactly once.
PORTABLE_REVISIONS = {
    "0002_items_price": revision("0002", "0001", '''
op.execute("ALTER TABLE items ADD COLUMN price integer NOT NULL DEFAULT 0")
op.execute("INSERT INTO migration_audit VALUES ('0002', 'upgrade')")
'''),
    "0003_seed_items": revision("0003", "0002", '''
op.execute("INSERT INTO items (name, price) VALUES ('widget', 3), ('gadget', 5)")
op.execute("INSERT INTO migration_audit VALUES ('0003', 'upgrade')")
'''),
}
# A project that runs on SQLite: the example's revisions use PostgreSQL-only SQL. Each revision
# writes an audit row, so a test can prove it ran exactly once; 0003 changes data only.
SQLITE_REVISIONS = {
    "0001_items": revision("0001", None, '''
op.execute("CREATE TABLE migration_audit (revision text, direction text)")
op.execute("CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL)")
op.execute("INSERT INTO migration_audit VALUES ('0001', 'upgrade')")
'''),
    **PORTABLE_REVISIONS,
}
# Counts to SLOW_COUNT (from the job's environment) in one long statement, after DDL and an
# audit row that a rollback must undo: slow for the run a test interrupts, instant after it.
SQLITE_SLOW = revision("0004", "0003", '''
import os
op.execute("CREATE TABLE slow_marker (id integer)")
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
op.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
           + str(int(os.environ.get("SLOW_COUNT", "0"))) + ") SELECT count(*) FROM c")
''')


def make_sqlite_project(root: Path, *, extra: dict[str, str] | None = None) -> Path:
    """A SQLite project under `root` with Alembic's generic env.py; return its alembic.ini."""
    return _make_engine_project(root, {**SQLITE_REVISIONS, **(extra or {})}, generic_env=True)


# A project that runs on MySQL and MariaDB: InnoDB tables, MySQL's SQL. As on SQLite, each
# revision writes an audit row (so a test can prove it ran exactly once) and 0003 changes data
# only. MySQL commits every DDL statement at once: a revision's audit row, written after its
# DDL, is the part a failure or a cancel rolls back.
MYSQL_REVISIONS = {
    "0001_items": revision("0001", None, '''
op.execute("CREATE TABLE migration_audit (revision varchar(32) NOT NULL, "
           "direction varchar(16) NOT NULL) ENGINE=InnoDB")
op.execute("CREATE TABLE items (id integer AUTO_INCREMENT PRIMARY KEY, "
           "name varchar(100) NOT NULL) ENGINE=InnoDB")
op.execute("INSERT INTO migration_audit VALUES ('0001', 'upgrade')")
'''),
    **PORTABLE_REVISIONS,
}
# Sleeps SLOW_SECONDS (from the job's environment) in one statement, after DDL (committed at
# once on MySQL) and an audit row (rolled back by a cancel): slow for the run a test
# interrupts, instant for the run after it.
MYSQL_SLOW = revision("0004", "0003", '''
import os
op.execute("CREATE TABLE slow_marker (id integer) ENGINE=InnoDB")
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
op.execute("SELECT SLEEP(" + str(float(os.environ.get("SLOW_SECONDS", "0"))) + ")")
''')
# Fails after its DDL: the table stays (MySQL committed it), the audit row does not.
MYSQL_FAILING = revision("0004", "0003", '''
op.execute("CREATE TABLE half_done (id integer) ENGINE=InnoDB")
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
op.execute("SELECT * FROM table_that_does_not_exist")
''')
# What MYSQL_FAILING becomes once fixed.
MYSQL_FIXED = revision("0004", "0003", '''
op.execute("CREATE TABLE half_done (id integer) ENGINE=InnoDB")
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
''')
# Waits until the test lets go of the named lock MYSQL_GATE (which it holds): the test decides
# when the revision ends, with no timing involved.
MYSQL_GATE = "migration-test-gate"
MYSQL_GATED = revision("0004", "0003", f'''
op.execute("SELECT GET_LOCK('{MYSQL_GATE}', 600)")
op.execute("SELECT RELEASE_LOCK('{MYSQL_GATE}')")
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
''')
MYSQL_AFTER_0004 = revision("0005", "0004", '''
op.execute("INSERT INTO migration_audit VALUES ('0005', 'upgrade')")
''')


def make_mysql_project(root: Path, *, extra: dict[str, str] | None = None,
                       generic_env: bool = True) -> Path:
    """A MySQL/MariaDB project under `root`; return its alembic.ini.

    Its env.py is Alembic's generic one (it builds an engine of its own from sqlalchemy.url),
    or with generic_env=False the example's (it runs on the connection the job hands it, and
    imports the example's models).
    """
    return _make_engine_project(root, {**MYSQL_REVISIONS, **(extra or {})}, generic_env)


def _make_engine_project(root: Path, revisions: dict[str, str], generic_env: bool) -> Path:
    """The example's alembic.ini over the given revisions, with Alembic's generic env.py or
    the example's own (and its models)."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    if generic_env:
        shutil.copy(GENERIC_ENV, root / "migrations" / "env.py")
    else:
        shutil.copy(REPO / "migrations" / "env.py", root / "migrations" / "env.py")
        shutil.copytree(REPO / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "migrations" / "script.py.mako", root / "migrations" / "script.py.mako")
    for name, source in revisions.items():
        (versions / f"{name}.py").write_text(source)
    shutil.copy(REPO / "alembic.ini", root / "alembic.ini")
    return root / "alembic.ini"
