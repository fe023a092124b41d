"""The applied-history table on PostgreSQL: a row per revision applied or reverted, rows a
killed runner left unfinished reported by status and check, the history command,
checksums (MIGRATE_VERIFY) and a database newer than the image (MIGRATE_ON_NEWER_DATABASE)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from tests.integration.conftest import Database
from tests.integration.test_signals import SLEEP_QUERY, start_slow_job
from tests.support.job import imported_modules, job_env, run_job, wait_until
from tests.support.projects import FAILING, SLOW, make_project, revision

HISTORY = "alembic_version_history"


def history(database: Database, config: Path, **env: str) -> list[dict[str, Any]]:
    """The history command's JSON."""
    shown = run_job("history", "--json", env=job_env(
        DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config), **env))
    assert shown.code == 0, shown.stderr
    rows: list[dict[str, Any]] = json.loads(shown.stdout)
    return rows


def at_head(database: Database, tmp_path: Path, extra: dict[str, str] | None = None,
            **variables: str) -> tuple[Path, dict[str, str]]:
    """A project under tmp_path, its job environment, and the database upgraded to head."""
    config = make_project(tmp_path, extra=extra)
    env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config), **variables)
    assert run_job(env=env).code == 0
    return config, env


class TestRecorded:
    """Each revision applied or reverted is one finished row, with who, when and what."""

    def test_upgrade_then_downgrade(self, database: Database, tmp_path: Path) -> None:
        config, env = at_head(database, tmp_path, MIGRATE_DEPLOY_REF="sha-abc123")
        assert run_job("downgrade", "0004", env=env).code == 0
        rows = history(database, config)
        assert [(r["revision"], r["direction"], r["outcome"]) for r in rows] == [
            ("0001", "upgrade", "applied"), ("0002", "upgrade", "applied"),
            ("0003", "upgrade", "applied"), ("0004", "upgrade", "applied"),
            ("0005", "upgrade", "applied"), ("0005", "downgrade", "reverted")]
        first, last = rows[0], rows[-1]
        assert first["parents"] == []
        assert last["parents"] == ["0004"]
        assert {r["deploy_ref"] for r in rows} == {"sha-abc123"}
        assert all(r["finished_at"] and r["duration_ms"] is not None for r in rows)
        assert all(len(r["checksum"]) == 64 and r["job_version"] for r in rows)
        assert first["runner_pid"] != last["runner_pid"]
        text = run_job("history", env=env)
        assert text.code == 0
        assert "0005" in text.stdout
        assert "reverted" in text.stdout

    def test_failed_revision_recorded_as_failed(self, database: Database,
                                                tmp_path: Path) -> None:
        """From empty: a finished row per revision applied, then one for the revision that
        failed and rolled back (its row rolled back with it, and was written again, failed)."""
        config = make_project(tmp_path, extra={"0006_failing": FAILING})
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        assert run_job(env=env).code == 6
        rows = history(database, config)
        assert [(r["revision"], r["outcome"]) for r in rows] == [
            ("0001", "applied"), ("0002", "applied"), ("0003", "applied"),
            ("0004", "applied"), ("0005", "applied"), ("0006", "failed")]
        assert all(r["finished_at"] and r["duration_ms"] is not None and len(r["checksum"]) == 64
                   for r in rows)
        assert [r["parents"] for r in rows] == [[], ["0001"], ["0002"], ["0003"], ["0004"],
                                                ["0005"]]
        assert not database.exists("half_done")
        assert database.revisions() == ["0005"]

    def test_interrupted_revision_recorded_as_interrupted(self, database: Database,
                                                          tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_slow": SLOW})
        job = start_slow_job(database, config)
        job.process.send_signal(signal.SIGTERM)
        assert job.finish(timeout=60).code == 143
        rows = history(database, config)
        assert [(r["revision"], r["outcome"]) for r in rows][-2:] == [
            ("0005", "applied"), ("0006", "interrupted")]
        assert rows[-1]["finished_at"] is not None
        assert not database.exists("slow_marker")

    def test_off_writes_nothing_and_name_is_configurable(self, database: Database,
                                                         tmp_path: Path) -> None:
        config = make_project(tmp_path)
        base = {"DATABASE_URL": database.url, "ALEMBIC_CONFIG": str(config)}
        assert run_job("--target", "0001", env=job_env(**base, MIGRATE_HISTORY="off")).code == 0
        assert not database.exists(HISTORY)
        named = job_env(**base, MIGRATE_HISTORY_TABLE="deploy_audit")
        assert run_job(env=named).code == 0
        assert not database.exists(HISTORY)
        assert [r[0] for r in database.query("SELECT revision FROM deploy_audit ORDER BY id")] \
            == ["0002", "0003", "0004", "0005"]

    def test_fast_path_reads_no_history(self, database: Database, tmp_path: Path) -> None:
        _, env = at_head(database, tmp_path)
        database.query(f"DROP TABLE {HISTORY}")
        again = run_job(env=env)
        assert again.code == 0
        assert "already_at_target" in again.names()
        assert not database.exists(HISTORY)  # at head: no lock, and nothing written


# Like SLOW, but it sleeps inside an autocommit_block, which commits what ran before it.
SLOW_IN_AUTOCOMMIT = revision("0006", "0005", '''
op.execute("CREATE TABLE IF NOT EXISTS slow_marker (id int)")
with op.get_context().autocommit_block():
    op.execute("SELECT pg_sleep(coalesce(nullif("
               "current_setting('migration_test.sleep', true), ''), '0')::float)")
''', 'op.execute("DROP TABLE slow_marker")')


class TestKilledRunner:
    """A runner killed mid-revision: on PostgreSQL the revision rolls back whole, its history
    row with it (it rides in the revision's transaction), so nothing is left to explain; a
    revision that committed part of itself (an autocommit_block) leaves a row that never
    finished: status and check say so, and the next run records it as abandoned."""

    def test_rolled_back_with_its_row(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_slow": SLOW})
        job = start_slow_job(database, config)
        job.process.send_signal(signal.SIGKILL)
        assert job.finish(timeout=10).code == -signal.SIGKILL
        assert wait_until(lambda: database.running_statements(SLEEP_QUERY) == 0, timeout=60)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        status = run_job("status", "--json", env=env)
        assert status.code == 0, status.stderr
        assert json.loads(status.stdout)["history_unfinished"] == []
        assert "0006" not in [r["revision"] for r in history(database, config)]
        upgraded = run_job(env=env)
        assert upgraded.code == 0, upgraded.stderr
        assert "history_abandoned" not in upgraded.names()
        assert [(r["revision"], r["outcome"]) for r in history(database, config)][-2:] == [
            ("0005", "applied"), ("0006", "applied")]

    def test_reported_then_abandoned(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_slow": SLOW_IN_AUTOCOMMIT})
        job = start_slow_job(database, config)
        job.process.send_signal(signal.SIGKILL)
        assert job.finish(timeout=10).code == -signal.SIGKILL
        assert wait_until(lambda: database.running_statements(SLEEP_QUERY) == 0, timeout=60)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        status = run_job("status", "--json", env=env)
        assert status.code == 0, status.stderr
        stale = json.loads(status.stdout)["history_unfinished"]
        assert [(r["revision"], r["outcome"]) for r in stale] == [("0006", None)]
        assert "0006 (upgrade) started" in run_job("status", env=env).stdout
        check = run_job("check", env=env)
        assert check.code == 8
        assert check.event("history_unfinished")["revision"] == "0006"
        upgraded = run_job(env=env)
        assert upgraded.code == 0, upgraded.stderr
        assert upgraded.event("history_abandoned")["revision"] == "0006"
        assert [(r["revision"], r["outcome"]) for r in history(database, config)[-2:]] == [
            ("0006", "abandoned"), ("0006", "applied")]
        assert json.loads(run_job("status", "--json", env=env).stdout)[
            "history_unfinished"] == []


class TestStamp:
    """stamp REV adopts a database created without migrations, under the lock, and is
    recorded; a revision already there is replaced only when told, an unknown REV is exit 7."""

    def test_baseline_then_upgrade_runs_only_what_follows(self, database: Database,
                                                          tmp_path: Path) -> None:
        config = make_project(tmp_path)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        # A database whose schema is at 0003 but that no migration tool ever recorded.
        assert run_job("--target", "0003", env={**env, "MIGRATE_HISTORY": "off"}).code == 0
        database.query("DROP TABLE alembic_version")
        stamped = run_job("stamp", "0003", env=env)
        assert stamped.code == 0, stamped.stderr
        assert "lock_acquired" in stamped.names()
        assert stamped.event("stamped")["revision"] == "0003"
        assert database.revisions() == ["0003"]
        upgraded = run_job(env=env)
        assert upgraded.code == 0, upgraded.stderr
        assert database.applications() == {"0001": 1, "0002": 1, "0003": 1, "0004": 1,
                                           "0005": 1}
        assert [(r["revision"], r["direction"], r["outcome"])
                for r in history(database, config)] == [
            ("0003", "stamp", "stamped"), ("0004", "upgrade", "applied"),
            ("0005", "upgrade", "applied")]

    def test_refuses_a_database_with_a_revision_unless_replace(self, database: Database,
                                                               tmp_path: Path) -> None:
        config, env = at_head(database, tmp_path)
        refused = run_job("stamp", "0002", env=env)
        assert refused.code == 7
        assert refused.events[-1]["event"] == "history_error"
        assert "already at 0005" in refused.events[-1]["message"]
        assert "--replace" in refused.events[-1]["message"]
        assert database.revisions() == ["0005"]
        replaced = run_job("stamp", "0002", "--replace", env=env)
        assert replaced.code == 0, replaced.stderr
        assert replaced.event("stamped")["replaced"] == ["0005"]
        assert database.revisions() == ["0002"]
        assert history(database, config)[-1]["direction"] == "stamp"

    def test_stamping_back_records_the_revisions_it_removes(self, database: Database,
                                                            tmp_path: Path) -> None:
        """stamp --replace to an earlier revision (the later one undone by hand) records the
        revisions it takes out of the version table: their files may change before they run
        again, and MIGRATE_VERIFY=fail does not hold that against them."""
        config = make_project(tmp_path)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        assert run_job("--target", "0002", env=env).code == 0
        # The operator undoes 0002 by hand, then says so, the flag first.
        database.query("ALTER TABLE hr.employee DROP COLUMN email")
        database.query("DELETE FROM migration_audit WHERE revision = '0002'")
        stamped = run_job("stamp", "--replace", "0001", env=env)
        assert stamped.code == 0, stamped.stderr
        assert database.revisions() == ["0001"]
        assert [(r["revision"], r["direction"], r["outcome"])
                for r in history(database, config)][-2:] == [
            ("0001", "stamp", "stamped"), ("0002", "stamp", "removed")]
        edit(config, next((tmp_path / "migrations" / "versions").glob("0002_*.py")).name)
        upgraded = run_job(env={**env, "MIGRATE_VERIFY": "fail"})
        assert upgraded.code == 0, upgraded.stderr
        assert database.revisions() == ["0005"]
        assert database.applications() == dict.fromkeys(["0001", "0002", "0003", "0004",
                                                          "0005"], 1)

    def test_unknown_revision_is_exit_7_before_any_change(self, database: Database,
                                                           tmp_path: Path) -> None:
        config = make_project(tmp_path)
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        result = run_job("stamp", "cafe0001", env=env)
        assert result.code == 7
        assert "cafe0001" in result.events[-1]["message"]
        assert "lock_acquired" not in result.names()
        assert not database.exists("alembic_version")


def edit(config: Path, name: str) -> None:
    """Change an applied revision's file (a comment is enough to change its checksum)."""
    path = config.parent / "migrations" / "versions" / name
    path.write_text(path.read_text() + "\n# edited after it ran\n")


class TestChecksums:
    """An applied revision whose file changed since it ran: warned about by default, exit 11
    under MIGRATE_VERIFY=fail (check, and upgrade before applying), silent when off."""

    def test_changed_file_reported_then_refused(self, database: Database,
                                                tmp_path: Path) -> None:
        config, env = at_head(database, tmp_path)
        changed_file = next((tmp_path / "migrations" / "versions").glob("0002_*.py"))
        edit(config, changed_file.name)
        status = json.loads(run_job("status", "--json", env=env).stdout)
        assert status["changed"] == [{"revision": "0002", "file": str(changed_file)}]
        warned = run_job("check", env=env)
        assert warned.code == 0, warned.stderr
        assert warned.event("revision_file_changed")["revisions"] == ["0002"]
        failing = {**env, "MIGRATE_VERIFY": "fail"}
        refused = run_job("check", env=failing)
        assert refused.code == 11
        assert refused.events[-1]["event"] == "verification_failed"
        assert "0002" in refused.events[-1]["message"]
        noop = run_job(env=failing)  # a run with nothing to do verifies too (at head)
        assert noop.code == 11
        assert noop.events[-1]["event"] == "verification_failed"
        (tmp_path / "migrations" / "versions" / "0006_slow.py").write_text(SLOW)
        blocked = run_job(env=failing)
        assert blocked.code == 11
        assert "revision_started" not in blocked.names()
        assert database.revisions() == ["0005"]
        silent = run_job("check", env={**env, "MIGRATE_VERIFY": "off"})
        assert "revision_file_changed" not in silent.names()
        applied = run_job(env=env)
        assert applied.code == 0, applied.stderr
        assert applied.event("revision_file_changed")["revisions"] == ["0002"]
        assert database.revisions() == ["0006"]

    def test_check_at_head_verifies_without_alembic(self, database: Database,
                                                     tmp_path: Path) -> None:
        """A readiness probe's check at head reads the files and the history table itself,
        with the head read from the revision files or from a manifest."""
        config, env = at_head(database, tmp_path, MIGRATE_VERIFY="fail")
        edit(config, next((tmp_path / "migrations" / "versions").glob("0003_*.py")).name)
        for via in ("revision files", "manifest"):
            if via == "manifest":
                assert run_job("manifest", env=env).code == 0
            refused, imported = imported_modules(env, "check")
            assert refused.code == 11, refused.stderr
            assert refused.events[-1]["event"] == "verification_failed"
            assert "0003" in refused.events[-1]["message"]
            assert not [m for m in imported if m.split(".")[0] in ("alembic", "sqlalchemy")]
            warned = run_job("check", env={**env, "MIGRATE_VERIFY": "warn"})
            assert warned.code == 0, warned.stderr
            assert warned.event("already_at_target")["via"] == via
            assert warned.event("revision_file_changed")["revisions"] == ["0003"]

    def test_upgrade_at_head_verifies_without_alembic(self, database: Database,
                                                       tmp_path: Path) -> None:
        """An upgrade with nothing to do verifies the applied files as check does: exit 11
        under MIGRATE_VERIFY=fail, a warning under warn, nothing when off or unchanged; the
        checksums come with the heads (revision files with the heads cache warm and cold, or
        the manifest), the table's in one query, and neither Alembic nor the lock is used."""
        config, env = at_head(database, tmp_path, MIGRATE_VERIFY="fail")  # no heads cache
        warm = {**env, "MIGRATE_CACHE_DIR": str(tmp_path / "cache")}
        for via in ("revision files", "manifest"):
            if via == "manifest":
                assert run_job("manifest", env=env).code == 0
            for variables in (env, warm):
                passed, imported = imported_modules(variables, "upgrade")
                assert passed.code == 0, passed.stderr
                assert passed.event("already_at_target")["via"] == via
                assert "revision_file_changed" not in passed.names()
                assert not [m for m in imported if m.split(".")[0] in ("alembic", "sqlalchemy")]
        (tmp_path / "migrations" / "heads.manifest.json").unlink()
        edit(config, next((tmp_path / "migrations" / "versions").glob("0003_*.py")).name)
        for via in ("revision files", "manifest"):
            if via == "manifest":
                assert run_job("manifest", env=env).code == 0
            for variables in (env, warm):
                refused, imported = imported_modules(variables, "upgrade")
                assert refused.code == 11, refused.stderr
                assert refused.events[-1]["event"] == "verification_failed"
                assert "0003" in refused.events[-1]["message"]
                assert "lock_acquired" not in refused.names()
                assert not [m for m in imported if m.split(".")[0] in ("alembic", "sqlalchemy")]
                warned = run_job(env={**variables, "MIGRATE_VERIFY": "warn"})
                assert warned.code == 0, warned.stderr
                assert warned.event("already_at_target")["via"] == via
                assert warned.event("revision_file_changed")["revisions"] == ["0003"]
                silent = run_job(env={**variables, "MIGRATE_VERIFY": "off"})
                assert silent.code == 0, silent.stderr
                assert "revision_file_changed" not in silent.names()
        assert database.revisions() == ["0005"]

    def test_reverted_revision_is_not_compared(self, database: Database,
                                               tmp_path: Path) -> None:
        config, env = at_head(database, tmp_path, MIGRATE_VERIFY="fail")
        assert run_job("downgrade", "0004", env=env).code == 0
        edit(config, next((tmp_path / "migrations" / "versions").glob("0005_*.py")).name)
        checked = run_job("check", env=env)
        assert checked.code == 8, checked.stderr  # 0005 pending, its new text not yet run
        assert run_job(env=env).code == 0


class TestNewerDatabase:
    """A database ahead of this image (rolled back) is told apart from an unknown revision:
    MIGRATE_ON_NEWER_DATABASE decides, without the lock; an unrelated revision is exit 7."""

    @staticmethod
    def roll_back_image(tmp_path: Path) -> None:
        """The older image: the project without the revision the newer one applied."""
        (tmp_path / "migrations" / "versions" / "0006_slow.py").unlink()

    def test_fail_by_default_then_accept(self, database: Database, tmp_path: Path) -> None:
        _, env = at_head(database, tmp_path, extra={"0006_slow": SLOW})
        self.roll_back_image(tmp_path)
        refused = run_job(env=env)
        assert refused.code == 7
        assert refused.events[-1]["event"] == "newer_database"
        message = refused.events[-1]["message"]
        assert "1 revision(s) ahead" in message
        assert "MIGRATE_ON_NEWER_DATABASE=accept" in message
        assert "lock_acquired" not in refused.names()
        accepted = run_job(env={**env, "MIGRATE_ON_NEWER_DATABASE": "accept"})
        assert accepted.code == 0, accepted.stderr
        assert accepted.event("newer_database_accepted")["revisions_ahead"] == 1
        assert "lock_acquired" not in accepted.names()
        assert database.revisions() == ["0006"]
        gate = run_job("check", env=env)
        assert gate.code == 7
        assert gate.events[-1]["event"] == "newer_database"
        passed = run_job("check", env={**env, "MIGRATE_ON_NEWER_DATABASE": "accept"})
        assert passed.code == 0, passed.stderr
        assert passed.event("newer_database_accepted")["revisions_ahead"] == 1

    def test_accepted_with_a_manifest_too(self, database: Database, tmp_path: Path) -> None:
        _, env = at_head(database, tmp_path, extra={"0006_slow": SLOW},
                         MIGRATE_ON_NEWER_DATABASE="accept")
        self.roll_back_image(tmp_path)
        assert run_job("manifest", env=env).code == 0
        accepted = run_job(env=env)
        assert accepted.code == 0, accepted.stderr
        assert accepted.event("newer_database_accepted")["revisions_ahead"] == 1
        assert "lock_acquired" not in accepted.names()

    def test_unrelated_revision_is_still_exit_7(self, database: Database,
                                                tmp_path: Path) -> None:
        _, env = at_head(database, tmp_path, MIGRATE_ON_NEWER_DATABASE="accept")
        database.query("UPDATE alembic_version SET version_num = 'cafe0001'")
        result = run_job(env=env)
        assert result.code == 7
        assert result.events[-1]["event"] == "history_error"
        assert "cafe0001" in result.events[-1]["message"]
        gate = run_job("check", env=env)
        assert gate.code == 7
        assert gate.events[-1]["event"] == "history_error"
