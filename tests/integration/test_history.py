"""History problems caught before any change, and the read-only commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from pytest_alembic import tests as alembic_tests
from pytest_alembic.config import Config as PytestAlembicConfig

from tests.integration.conftest import Database
from tests.support.job import REPO, job_env, run_job
from tests.support.projects import BRANCH_A, BRANCH_B, make_project


class TestHistoryProblems:
    """Multiple heads, unknown revisions and a missing versions folder: exit 7, no change."""

    def test_multiple_heads(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006a": BRANCH_A, "0006b": BRANCH_B})
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert result.code == 7, result.stderr
        message = result.events[-1]["message"]
        assert "0006a" in message
        assert "0006b" in message
        assert "merge" in message
        assert database.revisions() == []
        assert not database.exists("migration_audit")

    def test_unknown_database_revision(self, database: Database) -> None:
        assert run_job(env=job_env(DATABASE_URL=database.url)).code == 0
        database.query("UPDATE alembic_version SET version_num = 'deadbeef1234'")
        result = run_job(env=job_env(DATABASE_URL=database.url))
        assert result.code == 7, result.stderr
        assert "deadbeef1234" in result.events[-1]["message"]
        assert "Traceback" not in result.stderr
        assert database.revisions() == ["deadbeef1234"]

    def test_missing_versions_folder(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, versions=False)
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert result.code == 7, result.stderr
        assert "versions" in result.events[-1]["message"]
        assert database.revisions() == []

    def test_unknown_target(self, database: Database) -> None:
        result = run_job("--target", "nope", env=job_env(DATABASE_URL=database.url))
        assert result.code == 7, result.stderr
        assert "nope" in result.events[-1]["message"]


class TestReadOnlyCommands:
    """check, status and sql report without changing anything."""

    def test_check(self, database: Database) -> None:
        pending = run_job("check", env=job_env(DATABASE_URL=database.url))
        assert pending.code == 8
        assert "5 revision(s) pending" in pending.events[-1]["message"]
        assert database.revisions() == []
        assert run_job(env=job_env(DATABASE_URL=database.url)).code == 0
        assert run_job("check", env=job_env(DATABASE_URL=database.url)).code == 0

    def test_status_json(self, database: Database) -> None:
        run_job("--target", "0003", env=job_env(DATABASE_URL=database.url))
        result = run_job("status", "--json", env=job_env(DATABASE_URL=database.url))
        assert result.code == 0, result.stderr
        status = json.loads(result.stdout)
        assert status == {"current": ["0003"], "heads": ["0005"], "pending": ["0004", "0005"],
                          "at_target": False, "target": "head", "problem": None,
                          "unfinished": None, "history_unfinished": [], "changed": [],
                          "history_error": None}

    def test_status_reports_unknown_revision_and_exits_0(self, database: Database) -> None:
        run_job(env=job_env(DATABASE_URL=database.url))
        database.query("UPDATE alembic_version SET version_num = 'feedface'")
        result = run_job("status", env=job_env(DATABASE_URL=database.url))
        assert result.code == 0
        assert "current: feedface" in result.stdout
        assert "problem:" in result.stdout

    def test_sql_from_database_revision(self, database: Database) -> None:
        run_job("--target", "0003", env=job_env(DATABASE_URL=database.url))
        result = run_job("sql", env=job_env(DATABASE_URL=database.url))
        assert result.code == 0, result.stderr
        assert "CREATE INDEX CONCURRENTLY ix_employee_email" in result.stdout
        assert "ADD COLUMN active" in result.stdout
        assert "CREATE SCHEMA hr" not in result.stdout
        assert database.revisions() == ["0003"]

    def test_sql_from_flag_needs_no_database(self) -> None:
        result = run_job("sql", "--from", "0004",
                         env=job_env(DATABASE_URL="postgresql://u:pw@127.0.0.1:1/none"))
        assert result.code == 0, result.stderr
        assert "ADD COLUMN active" in result.stdout
        assert "ix_employee_email" not in result.stdout


@pytest.fixture
def alembic_engine(database: Database) -> Iterator[sqlalchemy.Engine]:
    """pytest-alembic's engine: the test's database."""
    engine = sqlalchemy.create_engine(
        database.url.replace("postgresql://", "postgresql+psycopg2://"),
        poolclass=sqlalchemy.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def alembic_config() -> PytestAlembicConfig:
    """pytest-alembic's view of the repo's project."""
    return PytestAlembicConfig(config_options={"file": str(REPO / "alembic.ini")})


# pytest-alembic's built-in history tests, run on the real server.
test_single_head_revision = alembic_tests.test_single_head_revision
test_upgrade = alembic_tests.test_upgrade
test_up_down_consistency = alembic_tests.test_up_down_consistency
test_model_definitions_match_ddl = alembic_tests.test_model_definitions_match_ddl


class TestCustomVersionTable:
    """A project that keeps its versions elsewhere says so in alembic.ini; the job follows."""

    def test_version_table_and_schema_from_alembic_ini(self, database: Database,
                                                       tmp_path: Path) -> None:
        config = make_project(tmp_path)
        env_py = tmp_path / "migrations" / "env.py"
        env_py.write_text(env_py.read_text().replace(
            "transaction_per_migration=True)",
            "transaction_per_migration=True, version_table='schema_versions',\n"
            "                      version_table_schema='meta')"))
        config.write_text(config.read_text().replace(
            "[alembic]\n", "[alembic]\nversion_table = schema_versions\n"
                           "version_table_schema = meta\n"))
        database.query("CREATE SCHEMA meta")
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        assert run_job(env=env).code == 0
        assert database.query("SELECT version_num FROM meta.schema_versions") == [("0005",)]
        assert not database.exists("alembic_version")
        again = run_job(env=env)
        assert again.code == 0
        assert "lock_acquired" not in again.names()
        assert json.loads(run_job("status", "--json", env=env).stdout)["current"] == ["0005"]
