"""Generated migration histories: one schema, written as an Alembic project and as dbmate SQL.

Revision k (1-based) of a history of N:
  - k = 1 creates the audit table `bench_audit(revision)` and the first small table;
  - odd k creates a small table `t{k}`; even k adds a column to the table of revision k - 1;
  - every revision inserts one row into `bench_audit`, so a benchmark can prove that each
    revision was applied exactly once (one row per revision).

The Alembic revisions run exactly these SQL strings through `op.execute`, the dbmate files
contain the same strings, and `all.sql` (for `psql -1 -f`) holds every revision's statements
plus the `alembic_version` bookkeeping that Alembic itself would do.

A history is written for one SQL dialect: PostgreSQL (the default), SQLite or MySQL/MariaDB.
Only the audit table's timestamp column differs between them; every other statement is the
same text on all three.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

VERSION_TABLE_DDL = (
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));"
)

REVISION_TEMPLATE = '''"""Benchmark step {k} of {n}.

Revision ID: {rev}
Revises: {down}
Create Date: 2026-01-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401  (as Alembic's template writes it)
from alembic import op

revision: str = {rev!r}
down_revision: str | Sequence[str] | None = {down_repr}
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
{up_calls}


def downgrade() -> None:
    """Downgrade schema."""
{down_calls}
'''


# The audit table per dialect: only the type and default of `applied_at` differ.
AUDIT_DDL = {
    "postgresql": "CREATE TABLE bench_audit (revision TEXT NOT NULL, "
                  "applied_at TIMESTAMPTZ NOT NULL DEFAULT now());",
    "sqlite": "CREATE TABLE bench_audit (revision TEXT NOT NULL, "
              "applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);",
    "mysql": "CREATE TABLE bench_audit (revision TEXT NOT NULL, "
             "applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);",
}
DIALECTS = tuple(AUDIT_DDL)


@dataclass(frozen=True)
class Revision:
    """One step of a generated history."""

    number: int
    revision: str
    down_revision: str | None
    up: tuple[str, ...]
    down: tuple[str, ...]


@dataclass(frozen=True)
class History:
    """Where a generated history of `size` revisions lives on disk."""

    size: int
    root: Path
    head: str
    dialect: str = "postgresql"

    @property
    def alembic_ini(self) -> Path:
        """The Alembic project's config (a copy of the repo's alembic.ini)."""
        return self.root / "alembic" / "alembic.ini"

    @property
    def versions(self) -> Path:
        """The Alembic project's versions folder."""
        return self.root / "alembic" / "migrations" / "versions"

    @property
    def dbmate_dir(self) -> Path:
        """The same schema as dbmate migration files."""
        return self.root / "dbmate"

    @property
    def all_sql(self) -> Path:
        """Every revision's SQL plus alembic_version bookkeeping, for `psql -1 -f`."""
        return self.root / "all.sql"


def revision_id(number: int) -> str:
    """A 12-hex-digit id, like `alembic revision` makes, but stable across runs."""
    return hashlib.sha1(f"bench-revision-{number}".encode(), usedforsecurity=False).hexdigest()[:12]


def make_revisions(size: int, dialect: str = "postgresql") -> list[Revision]:
    """The linear chain of `size` revisions, in `dialect`'s SQL."""
    revisions: list[Revision] = []
    previous: str | None = None
    for k in range(1, size + 1):
        audit = f"INSERT INTO bench_audit (revision) VALUES ('{k:05d}');"
        unaudit = f"DELETE FROM bench_audit WHERE revision = '{k:05d}';"
        up: tuple[str, ...]
        down: tuple[str, ...]
        if k == 1:
            up = (AUDIT_DDL[dialect],
                  "CREATE TABLE t00001 (id BIGINT PRIMARY KEY, note TEXT);", audit)
            down = ("DROP TABLE t00001;", "DROP TABLE bench_audit;")
        elif k % 2 == 1:
            up = (f"CREATE TABLE t{k:05d} (id BIGINT PRIMARY KEY, note TEXT);", audit)
            down = (unaudit, f"DROP TABLE t{k:05d};")
        else:
            up = (f"ALTER TABLE t{k - 1:05d} ADD COLUMN c{k:05d} INTEGER;", audit)
            down = (unaudit, f"ALTER TABLE t{k - 1:05d} DROP COLUMN c{k:05d};")
        current = revision_id(k)
        revisions.append(Revision(k, current, previous, up, down))
        previous = current
    return revisions


def _calls(statements: tuple[str, ...]) -> str:
    return "\n".join(f"    op.execute({statement!r})" for statement in statements)


def write_history(repo: Path, root: Path, size: int, dialect: str = "postgresql") -> History:
    """(Re)write the Alembic project, the dbmate files and all.sql for `size` revisions.

    The project is the example's alembic.ini, env.py and models with the generated revisions:
    its env.py reads DATABASE_URL, so plain Alembic and the job run it on any of the dialects.
    """
    if root.exists():
        shutil.rmtree(root)
    revisions = make_revisions(size, dialect)
    project = root / "alembic"
    versions = project / "migrations" / "versions"
    versions.mkdir(parents=True)
    shutil.copy(repo / "alembic.ini", project / "alembic.ini")
    # env.py imports the example's models from beside alembic.ini.
    shutil.copytree(repo / "app", project / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo / "migrations" / "env.py", project / "migrations" / "env.py")
    shutil.copy(repo / "migrations" / "script.py.mako", project / "migrations" / "script.py.mako")
    dbmate = root / "dbmate"
    dbmate.mkdir()
    bookkeeping = [VERSION_TABLE_DDL]
    for r in revisions:
        text = REVISION_TEMPLATE.format(
            k=r.number, n=size, rev=r.revision, down=r.down_revision or "",
            down_repr=repr(r.down_revision), up_calls=_calls(r.up), down_calls=_calls(r.down))
        (versions / f"{r.revision}_step_{r.number:05d}.py").write_text(text)
        up_sql = "\n".join(r.up)
        down_sql = "\n".join(r.down)
        (dbmate / f"{r.number:05d}_step.sql").write_text(
            f"-- migrate:up\n{up_sql}\n\n-- migrate:down\n{down_sql}\n")
        bookkeeping.append(f"-- {r.revision} (step {r.number})")
        bookkeeping.extend(r.up)
        if r.down_revision is None:
            bookkeeping.append(
                f"INSERT INTO alembic_version (version_num) VALUES ('{r.revision}');")
        else:
            bookkeeping.append(f"UPDATE alembic_version SET version_num='{r.revision}' "
                               f"WHERE alembic_version.version_num = '{r.down_revision}';")
    (root / "all.sql").write_text("\n".join(bookkeeping) + "\n")
    return History(size=size, root=root, head=revisions[-1].revision, dialect=dialect)


def setup_statements(history: History) -> list[str]:
    """all.sql as single statements (each statement is one line; comments left out)."""
    lines = history.all_sql.read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("--")]
