"""The upgrade path on a real server: fresh, idempotent, concurrent, failing, reversible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Database
from tests.support.job import ENTRYPOINT, OUTPUTS, job_env, parse_events, run_job
from tests.support.projects import FAILING, make_project, revision

ALL = ["0001", "0002", "0003", "0004", "0005"]
# Its audit row is committed by Alembic on entering the autocommit_block; then it fails.
FAILING_AFTER_A_BLOCK = revision("0006", "0005", '''
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
with op.get_context().autocommit_block():
    pass
op.execute("CREATE TABLE half_done (id int)")
op.execute("SELECT * FROM table_that_does_not_exist")
''')


class TestFreshAndRepeated:
    """An empty database reaches head; a second run finds nothing to do and takes no lock."""

    def test_fresh_upgrade_then_fast_path(self, database: Database) -> None:
        first = run_job(env=job_env(DATABASE_URL=database.url))
        assert first.code == 0, first.stderr
        assert database.revisions() == ["0005"]
        assert database.applications() == dict.fromkeys(ALL, 1)
        applied = [e["revision"] for e in first.events if e["event"] == "revision_applied"]
        assert applied == ALL
        assert all(e["duration_ms"] >= 0 for e in first.events if e["event"] == "revision_applied")
        assert first.event("upgrade_finished")["applied"] == ALL
        assert database.exists("hr.ix_employee_email")
        assert database.query("SELECT column_default FROM information_schema.columns "
                              "WHERE table_schema = 'hr' AND table_name = 'employee' "
                              "AND column_name = 'id'")[0][0].startswith("nextval(")

        second = run_job(env=job_env(DATABASE_URL=database.url))
        assert second.code == 0, second.stderr
        assert "already_at_target" in second.names()
        assert "lock_acquired" not in second.names()
        assert database.applications() == dict.fromkeys(ALL, 1)

    def test_every_log_line_is_json_with_the_contract_fields(self, database: Database) -> None:
        result = run_job(env=job_env(DATABASE_URL=database.url))
        assert result.code == 0
        assert result.events, "no log lines"
        for event in result.events:
            assert event["event"], f"not a JSON event line: {event}"
            assert {"ts", "level", "event", "message"} <= event.keys()
            assert event["event"].replace("_", "").isalpha()
            assert event["event"].islower()

    def test_text_logs_are_one_line_per_event(self, database: Database) -> None:
        result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_LOG_FORMAT="text"))
        assert result.code == 0
        assert any("upgrade 0004: done in" in line for line in result.stderr.splitlines())
        assert not any(line.startswith("{") for line in result.stderr.splitlines())

    def test_postgres_scheme_and_url_file(self, database: Database, tmp_path: Path) -> None:
        secret = tmp_path / "url"
        secret.write_text("  " + database.url.replace("postgresql://", "postgres://") + "\n")
        result = run_job(env=job_env(DATABASE_URL_FILE=str(secret)))
        assert result.code == 0, result.stderr
        assert database.revisions() == ["0005"]

    def test_libpq_variables_when_no_url(self, database: Database) -> None:
        server = database.server
        result = run_job(env=job_env(PGHOST="127.0.0.1", PGPORT=str(server.port),
                                     PGUSER="postgres", PGPASSWORD=server.password,
                                     PGDATABASE=database.name))
        assert result.code == 0, result.stderr
        assert database.revisions() == ["0005"]

    def test_target_revision(self, database: Database) -> None:
        result = run_job("--target", "0002", env=job_env(DATABASE_URL=database.url))
        assert result.code == 0, result.stderr
        assert database.revisions() == ["0002"]
        assert database.applications() == {"0001": 1, "0002": 1}

    def test_termination_message(self, database: Database, tmp_path: Path) -> None:
        message = tmp_path / "termination-log"
        result = run_job(env=job_env(DATABASE_URL=database.url,
                                     MIGRATE_TERMINATION_LOG=str(message)))
        assert result.code == 0
        text = message.read_text()
        OUTPUTS.append(text)
        assert text.startswith("exit 0: upgraded base -> 0005: 5 revision(s)")
        assert len(text.encode()) <= 4096


class TestConcurrentRunners:
    """Twenty runners at once on an empty database: all succeed, each revision applied once."""

    def run_twenty(self, database: Database, config: Path) -> list[list[dict[str, object]]]:
        env = job_env(DATABASE_URL=database.url, MIGRATE_LOCK_TIMEOUT="120",
                      ALEMBIC_CONFIG=str(config))
        runners = [subprocess.Popen([sys.executable, str(ENTRYPOINT)], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for _ in range(20)]
        outcomes = [(r.wait(timeout=300), *r.communicate()) for r in runners]
        for code, stdout, stderr in outcomes:
            OUTPUTS.extend([stdout, stderr])
            assert code == 0, stderr
        assert database.revisions() == ["0005"]
        assert database.applications() == dict.fromkeys(ALL, 1)
        assert database.advisory_locks() == 0
        return [parse_events(stderr) for _, _, stderr in outcomes]

    @pytest.mark.parametrize("generic_env", [False, True], ids=["job-env", "generic-env"])
    def test_twenty_runners(self, database: Database, tmp_path: Path, generic_env: bool) -> None:
        runs = self.run_twenty(database, make_project(tmp_path, generic_env=generic_env))
        upgraded = [r for r in runs if any(e.get("event") == "upgrade_finished" for e in r)]
        assert len(upgraded) == 1

    def test_twenty_runners_with_a_manifest(self, database: Database, tmp_path: Path) -> None:
        """The losers wait for the lock, then see the manifest's head: no Alembic load."""
        config = make_project(tmp_path)
        assert run_job("manifest", env=job_env(ALEMBIC_CONFIG=str(config))).code == 0
        runs = self.run_twenty(database, config)
        finished = [e for r in runs for e in r if e.get("event") == "already_at_target"]
        assert len(finished) == 19
        assert all(e.get("via") == "manifest" for e in finished)


class TestFailingMigration:
    """A failing revision: exit 6, its transaction rolled back, earlier revisions kept."""

    def test_failure_rolls_back_that_revision_only(self, database: Database,
                                                   tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_failing": FAILING})
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert result.code == 6, result.stderr
        last = result.events[-1]
        assert last["event"] == "migration_failed"
        assert "0006" in last["message"]
        assert "table_that_does_not_exist" in last["message"]
        assert "Traceback" not in result.stderr
        assert database.revisions() == ["0005"]
        assert not database.exists("half_done")
        assert "0006" not in database.applications()
        assert database.advisory_locks() == 0

    def test_work_committed_before_an_autocommit_block_is_said_to_stay(
            self, database: Database, tmp_path: Path) -> None:
        """Alembic commits a revision's transaction on entering an autocommit_block: the
        failure's message says that part stays, and that only the rest was rolled back."""
        config = make_project(tmp_path, extra={"0006_failing": FAILING_AFTER_A_BLOCK})
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert result.code == 6, result.stderr
        message = result.events[-1]["message"]
        assert "may stay committed" in message, message
        assert "enters an autocommit_block" in message, message
        assert "Traceback" not in result.stderr
        assert database.applications()["0006"] == 1
        assert not database.exists("half_done")
        assert database.revisions() == ["0005"]
        assert database.advisory_locks() == 0


class TestDowngrade:
    """downgrade needs an explicit target and runs each downgrade() under the lock."""

    def test_downgrade_then_upgrade_again(self, database: Database) -> None:
        assert run_job(env=job_env(DATABASE_URL=database.url)).code == 0
        down = run_job("downgrade", "0003", env=job_env(DATABASE_URL=database.url))
        assert down.code == 0, down.stderr
        assert database.revisions() == ["0003"]
        assert not database.exists("hr.ix_employee_email")
        assert "lock_acquired" in down.names()
        up = run_job(env=job_env(DATABASE_URL=database.url))
        assert up.code == 0
        assert database.revisions() == ["0005"]

    @pytest.mark.parametrize("args", [["downgrade"], ["downgrade", "--target", "0001"]])
    def test_downgrade_without_target_is_refused(self, database: Database,
                                                 args: list[str]) -> None:
        result = run_job(*args, env=job_env(DATABASE_URL=database.url))
        assert result.code == 2
        assert database.revisions() == []


class TestOtherExits:
    """`wait` alone, a broken env.py (exit 1, with the traceback), and failure summaries."""

    def test_wait_command(self, database: Database) -> None:
        result = run_job("wait", env=job_env(DATABASE_URL=database.url))
        assert result.code == 0, result.stderr
        assert "database_ready" in result.names()
        assert database.revisions() == []

    def test_broken_env_py_is_a_bug_with_a_traceback(self, database: Database,
                                                     tmp_path: Path) -> None:
        config = make_project(tmp_path)
        env_py = tmp_path / "migrations" / "env.py"
        broken = "config = context.config\nraise RuntimeError('env.py is broken')"
        env_py.write_text(env_py.read_text().replace("config = context.config", broken))
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                                     MIGRATE_LOG_FORMAT="text"))
        assert result.code == 1, result.stderr
        assert "Traceback" in result.stderr
        assert "env.py is broken" in result.stderr
        assert database.revisions() == []
        assert database.advisory_locks() == 0

    def test_failure_summary_in_termination_log(self, database: Database,
                                                tmp_path: Path) -> None:
        message = tmp_path / "termination-log"
        url = database.server.url(database.name, password="wr%40ng:pass")
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_TERMINATION_LOG=str(message)))
        assert result.code == 4
        text = message.read_text()
        OUTPUTS.append(text)
        assert text.startswith("exit 4: the database refused the connection")
        assert "wr@ng" not in text
        assert "wr%40ng" not in text
