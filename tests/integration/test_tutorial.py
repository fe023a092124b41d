"""The README's walk-through: the plain `alembic` CLI in a copy of the project, URL from the env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Database
from tests.support.job import OUTPUTS, job_env
from tests.support.projects import make_project

# The venv's console script, as the README runs it.
ALEMBIC = Path(sys.executable).with_name("alembic")
# The last line of the Employee model; the autogenerate test adds a column after it.
LAST_MODEL_LINE = "    active: Mapped[bool] = mapped_column(server_default=true())\n"


class Alembic:
    """`alembic ...` run from a project's directory, as the tutorial runs it."""

    def __init__(self, project: Path, url: str) -> None:
        self.project = project
        self.env = job_env(DATABASE_URL=url)

    def __call__(self, *args: str) -> str:
        """Run one command; fail the test on a non-zero exit; return stdout."""
        done = subprocess.run([str(ALEMBIC), *args], cwd=self.project,
                              env=self.env, text=True, capture_output=True, check=False,
                              timeout=120)
        OUTPUTS.extend([done.stdout, done.stderr])
        assert done.returncode == 0, f"alembic {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def new_revisions(self) -> list[Path]:
        """Revision files added to the copy after 0005."""
        return [path for path in (self.project / "migrations" / "versions").glob("*.py")
                if not path.name.startswith("000")]


@pytest.fixture
def alembic(database: Database, tmp_path: Path) -> Alembic:
    """The CLI in a copy of the repo's project, DATABASE_URL set to the test's database."""
    make_project(tmp_path)
    return Alembic(tmp_path, database.url)


class TestMigrating:
    """upgrade head, current, history and downgrade -1 move the database and report it."""

    def test_upgrade_current_history_downgrade(self, alembic: Alembic,
                                               database: Database) -> None:
        alembic("upgrade", "head")
        assert database.revisions() == ["0005"]
        assert database.applications() == dict.fromkeys(["0001", "0002", "0003", "0004",
                                                          "0005"], 1)
        assert alembic("current").strip() == "0005 (head)"
        history = [line.split(",")[0] for line in alembic("history").splitlines()]
        assert history == ["0004 -> 0005 (head)", "0003 -> 0004", "0002 -> 0003",
                           "0001 -> 0002", "<base> -> 0001"]
        alembic("downgrade", "-1")
        assert database.revisions() == ["0004"]
        alembic("upgrade", "head")
        assert database.revisions() == ["0005"]


class TestCheck:
    """After upgrade head, `alembic check` finds the models and the database alike."""

    def test_no_drift_after_upgrade(self, alembic: Alembic) -> None:
        alembic("upgrade", "head")
        assert "No new upgrade operations detected" in alembic("check")


class TestOfflineSql:
    """upgrade head --sql prints the whole history's SQL without connecting to a database."""

    def test_sql_without_a_database(self, tmp_path: Path) -> None:
        make_project(tmp_path)
        # Nothing listens on port 1: a command that tried to connect would fail.
        offline = Alembic(tmp_path, "postgresql://nobody@127.0.0.1:1/nowhere")
        sql = offline("upgrade", "head", "--sql")
        assert "CREATE SEQUENCE hr.employee_id_seq;" in sql
        assert "DEFAULT nextval('hr.employee_id_seq'::regclass)" in sql
        assert "CREATE INDEX CONCURRENTLY ix_employee_email ON hr.employee (email);" in sql
        assert "ALTER TABLE hr.employee ADD COLUMN active BOOLEAN DEFAULT true NOT NULL;" in sql
        assert "UPDATE alembic_version SET version_num='0005'" in sql


class TestWritingRevisions:
    """revision --autogenerate turns a model change into a revision; revision -m writes one."""

    def test_autogenerate_after_a_model_change(self, alembic: Alembic,
                                               database: Database) -> None:
        alembic("upgrade", "head")
        models = alembic.project / "app" / "models.py"
        text = models.read_text()
        assert LAST_MODEL_LINE in text
        models.write_text(text.replace(
            LAST_MODEL_LINE,
            LAST_MODEL_LINE + "    phone: Mapped[str | None] = mapped_column(Text)\n"))
        alembic("revision", "--autogenerate", "-m", "add employee phone")
        [created] = alembic.new_revisions()
        assert created.name.endswith("_add_employee_phone.py")
        source = created.read_text()
        assert "down_revision: str | Sequence[str] | None = '0005'" in source
        operations = [line.strip() for line in source.splitlines()
                      if line.strip().startswith("op.")]
        assert operations == [
            "op.add_column('employee', sa.Column('phone', sa.Text(), nullable=True), "
            "schema='hr')",
            "op.drop_column('employee', 'phone', schema='hr')"]
        alembic("upgrade", "head")
        assert database.query("SELECT count(*) FROM information_schema.columns WHERE "
                              "table_schema = 'hr' AND column_name = 'phone'") == [(1,)]

    def test_revision_with_a_message(self, alembic: Alembic) -> None:
        alembic("revision", "-m", "add a table")
        [created] = alembic.new_revisions()
        assert created.name.endswith("_add_a_table.py")
        source = created.read_text()
        assert "down_revision: str | Sequence[str] | None = '0005'" in source
        assert "def upgrade() -> None:" in source
