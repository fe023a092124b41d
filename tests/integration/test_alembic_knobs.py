"""Alembic's command-line knobs that env.py code relies on: -x KEY=VALUE and -n SECTION.

On SQLite files (the same code path on every engine): the real job as a subprocess.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.support.job import Result, job_env, run_job
from tests.support.projects import make_sqlite_project, revision

# An env.py that keeps one version table per tenant (-x tenant=NAME), as multi-tenant
# projects do, and writes the tenant into each revision's audit row.
TENANT_ENV = '''
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
tenant = context.get_x_argument(as_dictionary=True).get("tenant")


def run_migrations_online():
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                     prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=None,
                          version_table=f"alembic_version_{tenant}" if tenant else
                          "alembic_version")
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
'''


class Project:
    """A SQLite database and a project whose env.py is the one a test gives."""

    def __init__(self, root: Path) -> None:
        self.config = make_sqlite_project(root / "project")
        self.path = root / "app.db"

    def run(self, *args: str, **env: str) -> Result:
        return run_job(*args, env=job_env(DATABASE_URL=f"sqlite:///{self.path}",
                                          ALEMBIC_CONFIG=str(self.config), **env))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path)) as connection:
            return connection.execute(sql).fetchall()


# Revisions that create each tenant's own tables (a schema per tenant, on a real server).
TENANT_PREFIX = ('from alembic import context\n'
                 't = context.get_x_argument(as_dictionary=True).get("tenant", "main")\n')
TENANT_REVISIONS = {
    "0001_items": revision("0001", None, TENANT_PREFIX
                           + 'op.execute(f"CREATE TABLE {t}_items (id integer PRIMARY KEY)")'),
    "0002_notes": revision("0002", "0001", TENANT_PREFIX
                           + 'op.execute(f"CREATE TABLE {t}_notes (id integer PRIMARY KEY)")'),
}


@pytest.fixture
def tenants(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    migrations = project.config.parent / "migrations"
    (migrations / "env.py").write_text(TENANT_ENV)
    for old in (migrations / "versions").glob("*.py"):
        old.unlink()
    for name, source in TENANT_REVISIONS.items():
        (migrations / "versions" / f"{name}.py").write_text(source)
    return project


class TestXArguments:
    """-x reaches env.py's get_x_argument(); the job reads the version table env.py picks."""

    def test_each_tenant_is_migrated_in_its_own_version_table(self, tenants: Project) -> None:
        assert tenants.run().code == 0  # the default table reaches head first
        flagged = tenants.run("-x", "tenant=acme")
        assert flagged.code == 0, flagged.stderr
        assert flagged.event("upgrade_finished")["applied"] == ["0001", "0002"]
        assert tenants.query("SELECT version_num FROM alembic_version_acme") == [("0002",)]
        assert tenants.query("SELECT count(*) FROM acme_notes") == [(0,)]

    def test_environment_variable_and_rerun(self, tenants: Project) -> None:
        first = tenants.run(MIGRATE_X_ARGS="tenant=globex other=1")
        assert first.code == 0, first.stderr
        assert tenants.query("SELECT version_num FROM alembic_version_globex") == [("0002",)]
        again = tenants.run(MIGRATE_X_ARGS="tenant=globex")
        assert again.code == 0, again.stderr
        assert "already at target (read through env.py" in again.event("already_at_target")[
            "message"]

    def test_status_and_check_read_the_tenants_table(self, tenants: Project) -> None:
        assert tenants.run().code == 0
        assert tenants.run("check", "-x", "tenant=initech").code == 8
        assert tenants.run("-x", "tenant=initech").code == 0
        assert tenants.run("check", "-x", "tenant=initech").code == 0

    def test_an_empty_argument_is_a_configuration_error(self, tenants: Project) -> None:
        result = tenants.run("-x", "=oops")
        assert result.code == 2, result.stderr
        assert "-x '=oops'" in result.stderr


class TestIniSection:
    """-n (MIGRATE_INI_SECTION) picks the alembic.ini section that holds the project."""

    @pytest.fixture
    def two_projects(self, tmp_path: Path) -> Project:
        project = Project(tmp_path)
        other = make_sqlite_project(tmp_path / "other")
        versions = other.parent / "migrations"
        project.config.write_text(project.config.read_text()
                                  + f"\n[reporting]\nscript_location = {versions}\n")
        for source in (versions / "versions").glob("*.py"):
            source.write_text(source.read_text().replace("items", "report_items"))
        return project

    def test_section_by_flag_and_by_environment(self, two_projects: Project) -> None:
        by_flag = two_projects.run("-n", "reporting")
        assert by_flag.code == 0, by_flag.stderr
        assert two_projects.query("SELECT count(*) FROM report_items") == [(2,)]
        tables = {r[0] for r in two_projects.query("SELECT name FROM sqlite_master")}
        assert "items" not in tables
        by_env = two_projects.run("check", MIGRATE_INI_SECTION="reporting")
        assert by_env.code == 0, by_env.stderr

    def test_missing_section_is_a_configuration_error(self, two_projects: Project) -> None:
        result = two_projects.run("--name", "nope")
        assert result.code == 2, result.stderr
        assert "has no [nope] section" in result.stderr
