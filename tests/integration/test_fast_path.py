"""The no-op fast path: skips Alembic only when a fresh manifest or the revision files prove
the database is at head."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import Database
from tests.support.job import imported_modules, job_env, run_job
from tests.support.projects import BRANCH_A, BRANCH_B, SLOW, make_project, revision

# What watches running revisions: only a run that applies some imports it.
WATCHES = {f"migration_job.{name}" for name in (
    "revision_watch", "blocker_watch", "progress_watch", "progress_report", "running_statement",
    "engines.statement_progress", "engines.postgres_progress")}


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
        assert not [m for m in imported if m in WATCHES]
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

    def test_without_manifest_the_revision_files_decide(self, database: Database,
                                                        tmp_path: Path) -> None:
        config = make_project(tmp_path)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                      MIGRATE_CACHE_DIR=str(tmp_path / "cache"))
        assert run_job(env=env).code == 0
        again = run_job(env=env)
        assert again.code == 0
        assert again.event("already_at_target")["via"] == "revision files"

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


class TestHeadsFromRevisionFiles:
    """Without a manifest the revision files name the head; when unsure, Alembic decides."""

    @staticmethod
    def env(database: Database, config: Path) -> dict[str, str]:
        return job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                       MIGRATE_CACHE_DIR=str(config.parent / "cache"))

    def test_no_alembic_import_at_head(self, database: Database, tmp_path: Path) -> None:
        env = self.env(database, make_project(tmp_path))
        assert run_job(env=env).code == 0
        done, imported = imported_modules(env)
        assert done.code == 0, done.stderr
        assert not [m for m in imported if m.split(".")[0] in ("alembic", "sqlalchemy")]
        assert done.event("already_at_target")["via"] == "revision files"

    def test_computed_id_takes_the_full_path(self, database: Database, tmp_path: Path) -> None:
        computed = revision("0006", "0005", "pass").replace("revision = '0006'",
                                                            "revision = '00' + '06'")
        env = self.env(database, make_project(tmp_path, extra={"0006_computed": computed}))
        assert run_job(env=env).code == 0
        again = run_job(env=env)
        assert again.code == 0, again.stderr
        assert "via" not in again.event("already_at_target")
        assert database.revisions() == ["0006"]

    def test_new_revision_after_a_cached_head_is_applied(self, database: Database,
                                                         tmp_path: Path) -> None:
        config = make_project(tmp_path)
        env = self.env(database, config)
        assert run_job(env=env).code == 0
        assert run_job(env=env).event("already_at_target")["via"] == "revision files"
        assert list((tmp_path / "cache").iterdir())  # the head 0005 is cached
        (tmp_path / "migrations" / "versions" / "0006_slow.py").write_text(SLOW)
        result = run_job(env=env)
        assert result.code == 0, result.stderr
        assert database.revisions() == ["0006"]
        assert database.applications()["0006"] == 1

    def test_several_heads_exit_7(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path)
        env = self.env(database, config)
        assert run_job(env=env).code == 0
        versions = tmp_path / "migrations" / "versions"
        (versions / "0006a.py").write_text(BRANCH_A)
        (versions / "0006b.py").write_text(BRANCH_B)
        result = run_job(env=env)
        assert result.code == 7, result.stderr
        assert "head" in result.events[-1]["message"]
        assert database.revisions() == ["0005"]

    def test_unknown_database_revision_exit_7(self, database: Database,
                                              tmp_path: Path) -> None:
        env = self.env(database, make_project(tmp_path))
        assert run_job(env=env).code == 0
        database.query("UPDATE alembic_version SET version_num = 'abc999'")
        result = run_job(env=env)
        assert result.code == 7, result.stderr
        assert "abc999" in result.events[-1]["message"]
        assert "lock_acquired" not in result.names()
