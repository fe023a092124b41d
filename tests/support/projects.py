"""Copies of the example Alembic project with extra revisions or a generic env.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import alembic

from tests.support.job import REPO

GENERIC_ENV = Path(alembic.__file__).parent / "templates" / "generic" / "env.py"


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
