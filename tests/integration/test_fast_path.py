"""The no-op fast path: skips Alembic only when a fresh manifest proves the database is at head."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import Database
from tests.support.job import imported_modules, job_env, run_job
from tests.support.projects import SLOW, make_project


def manifest(config: Path) -> None:
    """Run the job's `manifest` command for a project."""
    result = run_job("manifest", env=job_env(ALEMBIC_CONFIG=str(config)))
    assert result.code == 0, result.stderr


class TestManifestFastPath:
    """A fresh manifest and a database at head: exit 0 without importing Alembic."""

    def test_no_alembic_import_at_head(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path)
        manifest(config)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        assert run_job(env=env).code == 0
        done, imported = imported_modules(env)
        assert done.code == 0, done.stderr
        assert "psycopg2" in imported
        assert not [m for m in imported if m.split(".")[0] in
                    ("alembic", "sqlalchemy", "asyncpg", "psycopg", "greenlet")]
        assert '"via": "manifest"' in done.stderr

    def test_stale_manifest_still_applies_new_revision(self, database: Database,
                                                       tmp_path: Path) -> None:
        config = make_project(tmp_path)
        manifest(config)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        assert run_job(env=env).code == 0
        (tmp_path / "migrations" / "versions" / "0006_slow.py").write_text(SLOW)
        result = run_job(env=env)
        assert result.code == 0, result.stderr
        assert "upgrade_finished" in result.names()
        assert database.revisions() == ["0006"]
        assert database.applications()["0006"] == 1

    def test_without_manifest_the_full_path_decides(self, database: Database,
                                                    tmp_path: Path) -> None:
        config = make_project(tmp_path)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        assert run_job(env=env).code == 0
        again = run_job(env=env)
        assert again.code == 0
        assert "via" not in again.event("already_at_target")

    def test_manifest_never_hides_an_unknown_revision(self, database: Database,
                                                      tmp_path: Path) -> None:
        config = make_project(tmp_path)
        manifest(config)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        assert run_job(env=env).code == 0
        database.query("UPDATE alembic_version SET version_num = 'abc999'")
        assert run_job(env=env).code == 7


class TestCheckByManifest:
    """`check` (readiness probes) answers from a fresh manifest too, and never wrongly."""

    def test_check_at_head_and_behind(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path)
        manifest(config)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        assert run_job("check", env=env).code == 8
        assert run_job(env=env).code == 0
        at_head = run_job("check", env=env)
        assert at_head.code == 0
        assert at_head.event("already_at_target")["via"] == "manifest"
        (tmp_path / "migrations" / "versions" / "0006_slow.py").write_text(SLOW)
        assert run_job("check", env=env).code == 8
