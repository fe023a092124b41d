"""Projects made by Alembic's own templates run unmodified: configuration in alembic.ini, in
pyproject.toml's [tool.alembic], or split between the two (issue 10, point 2).

Projects are made with the pinned Alembic's `alembic init -t TEMPLATE` and `alembic revision`
(real files, as a user's checkout has them) and migrated on SQLite files.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.job import Result, job_env, run_job

ALEMBIC = [sys.executable, "-m", "alembic"]


def alembic(cwd: Path, *args: str) -> None:
    """The alembic command, as a developer runs it in the project's folder."""
    subprocess.run([*ALEMBIC, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make(tmp_path: Path, template: str) -> Path:
    """A project from `alembic init -t TEMPLATE` with two revisions; returns its folder."""
    root = tmp_path / template
    root.mkdir()
    alembic(root, "init", "-t", template, "migrations")
    alembic(root, "revision", "--rev-id", "0001", "-m", "first")
    alembic(root, "revision", "--rev-id", "0002", "-m", "second")
    return root


class Database:
    """A SQLite file the job migrates."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, *args: str, cwd: Path | None = None, **env: str) -> Result:
        return run_job(*args, env=job_env(DATABASE_URL=f"sqlite:///{self.path}", **env),
                       cwd=cwd)

    def revisions(self) -> list[str]:
        with closing(sqlite3.connect(self.path)) as connection:
            return [r[0] for r in connection.execute("SELECT version_num FROM alembic_version")]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "app.db")


class TestPyproject:
    """`alembic init -t pyproject`: [tool.alembic] in pyproject.toml, logging in alembic.ini."""

    @pytest.fixture
    def project(self, tmp_path: Path) -> Path:
        return make(tmp_path, "pyproject")

    def test_alembic_config_names_the_pyproject(self, project: Path, db: Database) -> None:
        first = db.run(ALEMBIC_CONFIG=str(project / "pyproject.toml"))
        assert first.code == 0, first.stderr
        assert db.revisions() == ["0002"]
        again = db.run(ALEMBIC_CONFIG=str(project / "pyproject.toml"))
        assert again.code == 0, again.stderr
        assert "lock_acquired" not in again.names()

    def test_alembic_config_names_the_ini_whose_section_lives_in_pyproject(
            self, project: Path, db: Database) -> None:
        result = db.run(ALEMBIC_CONFIG=str(project / "alembic.ini"))
        assert result.code == 0, result.stderr
        assert db.revisions() == ["0002"]

    def test_without_alembic_config_the_job_looks_where_alembic_does(
            self, project: Path, db: Database) -> None:
        result = db.run(cwd=project)
        assert result.code == 0, result.stderr
        assert db.revisions() == ["0002"]

    def test_pyproject_alone(self, project: Path, db: Database) -> None:
        (project / "alembic.ini").unlink()
        result = db.run(cwd=project)
        assert result.code == 0, result.stderr
        assert db.revisions() == ["0002"]

    def test_manifest_fast_path_covers_the_pyproject(self, project: Path, db: Database) -> None:
        config = str(project / "pyproject.toml")
        assert db.run("manifest", ALEMBIC_CONFIG=config).code == 0
        assert db.run(ALEMBIC_CONFIG=config).code == 0
        fast = db.run(ALEMBIC_CONFIG=config)
        assert fast.event("already_at_target")["via"] == "manifest"
        # A change to [tool.alembic] (here: where the revisions live) makes the manifest stale:
        # the head then comes from the revision files where [tool.alembic] now points.
        shutil.copytree(project / "migrations", project / "elsewhere")
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace("%(here)s/migrations",
                                                           "%(here)s/elsewhere"))
        stale = db.run(ALEMBIC_CONFIG=config)
        assert stale.code == 0, stale.stderr
        assert stale.event("already_at_target")["via"] == "revision files"

    def test_pyproject_without_tool_alembic_is_a_configuration_error(
            self, tmp_path: Path, db: Database) -> None:
        other = tmp_path / "pyproject.toml"
        other.write_text('[project]\nname = "app"\n')
        result = db.run(ALEMBIC_CONFIG=str(other))
        assert result.code == 2, result.stderr
        assert "has no [tool.alembic] table" in result.stderr


class TestGeneric:
    """`alembic init -t generic` (alembic.ini only), found in the working directory."""

    def test_found_in_the_working_directory(self, tmp_path: Path, db: Database) -> None:
        project = make(tmp_path, "generic")
        result = db.run(cwd=project)
        assert result.code == 0, result.stderr
        assert db.revisions() == ["0002"]


class TestMultiDatabase:
    """`alembic init -t multidb`: refused at once (exit 2), nothing touched."""

    def test_refused_with_one_line(self, tmp_path: Path, db: Database) -> None:
        project = make(tmp_path, "multidb")
        result = db.run(ALEMBIC_CONFIG=str(project / "alembic.ini"))
        assert result.code == 2, result.stderr
        assert "is a multi-database project (`databases = engine1, engine2`" in result.stderr
        assert len([e for e in result.events if e["event"]]) == 1
        assert not db.path.exists()
