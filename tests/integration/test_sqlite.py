"""The job on SQLite: real database files in tmp_path, the real job as a subprocess."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.audit_checks import changed_file_then_older_image
from tests.support.job import (
    Result,
    RunningJob,
    imported_modules,
    job_env,
    run_job,
    wait_until,
)
from tests.support.projects import SQLITE_SLOW, make_sqlite_project, revision

HEAD = ["0003"]


@dataclass
class SqliteDatabase:
    """A database file a test migrates, and the project that migrates it."""

    path: Path
    config: Path

    @property
    def url(self) -> str:
        """sqlite:////absolute/path.db"""
        return f"sqlite:///{self.path}"

    @property
    def lock_file(self) -> Path:
        """Where the job's file lock lives."""
        return Path(f"{self.path}.migration-lock")

    def env(self, **overrides: str) -> dict[str, str]:
        """The job's environment for this database."""
        return job_env(DATABASE_URL=self.url, ALEMBIC_CONFIG=str(self.config), **overrides)

    def run(self, *args: str, **overrides: str) -> Result:
        """Run the job to completion."""
        return run_job(*args, env=self.env(**overrides))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query, on a connection of the test's own."""
        with closing(sqlite3.connect(self.path)) as connection:
            return connection.execute(sql).fetchall()

    def exists(self, table: str) -> bool:
        """Whether a table exists."""
        return bool(self.query(f"SELECT 1 FROM sqlite_master WHERE name = '{table}'"))

    def revisions(self) -> list[str]:
        """What alembic_version says (empty if it does not exist)."""
        if not self.exists("alembic_version"):
            return []
        return sorted(r[0] for r in self.query("SELECT version_num FROM alembic_version"))

    def applications(self) -> dict[str, int]:
        """How often each revision was applied, from the audit table."""
        rows = self.query("SELECT revision, count(*) FROM migration_audit GROUP BY revision")
        return {r[0]: int(r[1]) for r in rows}

    def lock_is_free(self) -> bool:
        """Whether nobody holds the job's file lock."""
        with held_lock_file(self.lock_file, blocking=False) as taken:
            return taken


@contextmanager
def held_lock_file(path: Path, holder: dict[str, Any] | None = None,
                   blocking: bool = True) -> Iterator[bool]:
    """flock the lock file as another runner would, optionally writing its holder line."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        if holder is not None:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(holder) + "\n").encode())
        yield True
    finally:
        os.close(fd)


@pytest.fixture
def db(tmp_path: Path) -> SqliteDatabase:
    """A database file (not created yet) in an existing directory, and a SQLite project."""
    (tmp_path / "data").mkdir()
    return SqliteDatabase(tmp_path / "data" / "app.db", make_sqlite_project(tmp_path / "project"))


class TestUpgrade:
    """A fresh file is migrated to head once; reruns, status and check read it without Alembic."""

    def test_fresh_upgrade_then_rerun_is_a_noop_without_the_lock(self, db: SqliteDatabase) -> None:
        first = db.run()
        assert first.code == 0, first.stderr
        assert [e["revision"] for e in first.events if e["event"] == "revision_applied"] == \
            ["0001", "0002", "0003"]
        assert db.revisions() == HEAD
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}
        assert db.query("SELECT name, price FROM items ORDER BY id") == [("widget", 3),
                                                                         ("gadget", 5)]
        again = db.run()
        assert again.code == 0, again.stderr
        assert "lock_acquired" not in again.names()
        assert again.event("already_at_target")["revision"] == "0003"
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}

    def test_manifest_fast_path_imports_no_alembic(self, db: SqliteDatabase) -> None:
        assert db.run("manifest").code == 0
        assert db.run().code == 0
        fast, imported = imported_modules(db.env())
        assert fast.code == 0, fast.stderr
        assert fast.event("already_at_target")["via"] == "manifest"
        assert "sqlite3" in imported
        assert not [m for m in imported
                    if m.split(".")[0] in ("alembic", "sqlalchemy", "psycopg2")]

    def test_status_json_and_check(self, db: SqliteDatabase) -> None:
        pending = db.run("status", "--json")
        assert pending.code == 0, pending.stderr
        assert json.loads(pending.stdout)["pending"] == ["0001", "0002", "0003"]
        assert db.run("check").code == 8
        assert db.run().code == 0
        done = json.loads(db.run("status", "--json").stdout)
        assert (done["current"], done["pending"], done["at_target"]) == (HEAD, [], True)
        assert db.run("check").code == 0


class TestAppliedHistory:
    """The applied-history table on SQLite: a row per revision applied or reverted."""

    def test_upgrade_and_downgrade_rows(self, db: SqliteDatabase) -> None:
        assert db.run().code == 0
        assert db.run("downgrade", "0002").code == 0
        shown = db.run("history", "--json")
        assert shown.code == 0, shown.stderr
        assert [(r["revision"], r["direction"], r["outcome"])
                for r in json.loads(shown.stdout)] == [
            ("0001", "upgrade", "applied"), ("0002", "upgrade", "applied"),
            ("0003", "upgrade", "applied"), ("0003", "downgrade", "reverted")]
        assert db.query("SELECT count(*) FROM alembic_version_history "
                        "WHERE finished_at IS NULL") == [(0,)]

    def test_failed_revision_row(self, tmp_path: Path) -> None:
        """A revision that fails rolls back with its row, which the job writes again, failed."""
        (tmp_path / "data").mkdir()
        failing = revision("0004", "0003", '''
op.execute("CREATE TABLE half_done (id integer)")
op.execute("SELECT * FROM table_that_does_not_exist")
''')
        db = SqliteDatabase(tmp_path / "data" / "app.db",
                            make_sqlite_project(tmp_path / "project", extra={"0004": failing}))
        assert db.run().code == 6
        rows = json.loads(db.run("history", "--json").stdout)
        assert [(r["revision"], r["outcome"]) for r in rows] == [
            ("0001", "applied"), ("0002", "applied"), ("0003", "applied"), ("0004", "failed")]
        assert all(r["finished_at"] and len(r["checksum"]) == 64 for r in rows)
        assert not db.exists("half_done")
        assert db.revisions() == ["0003"]


    def test_changed_file_and_a_database_newer_than_the_image(self, db: SqliteDatabase) -> None:
        """Checksums (MIGRATE_VERIFY=fail: exit 11) and skew (MIGRATE_ON_NEWER_DATABASE) read
        the history table on SQLite as on PostgreSQL."""
        changed_file_then_older_image(db.run, db.config.parent / "migrations" / "versions")


class TestHistoryProblems:
    """Several heads and a database at a revision the project does not know: exit 7, and
    nothing changes."""

    def test_multiple_heads_is_exit_7(self, tmp_path: Path) -> None:
        (tmp_path / "data").mkdir()
        branch = revision("0004", "0002", 'op.execute("CREATE TABLE branch (id integer)")')
        db = SqliteDatabase(tmp_path / "data" / "app.db",
                            make_sqlite_project(tmp_path / "project", extra={"0004": branch}))
        result = db.run()
        assert result.code == 7, result.stderr
        assert "2 heads (0003, 0004)" in result.events[-1]["message"]
        assert not db.exists("items")

    def test_unknown_database_revision_is_exit_7(self, db: SqliteDatabase) -> None:
        assert db.run().code == 0
        with closing(sqlite3.connect(db.path)) as connection, connection:
            connection.execute("UPDATE alembic_version SET version_num = 'f00dcafe'")
        result = db.run()
        assert result.code == 7, result.stderr
        assert "f00dcafe" in result.events[-1]["message"]
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}


class TestOfflineSql:
    """`sql` prints what upgrade would run, from the database's revision or --from."""

    def test_sql_from_the_database_and_from_a_revision(self, db: SqliteDatabase) -> None:
        everything = db.run("sql")
        assert everything.code == 0, everything.stderr
        assert "CREATE TABLE items" in everything.stdout
        assert "ALTER TABLE items ADD COLUMN price" in everything.stdout
        assert not db.exists("items")
        later = db.run("sql", "--from", "0002")
        assert later.code == 0, later.stderr
        assert "CREATE TABLE items" not in later.stdout
        assert "INSERT INTO items" in later.stdout


class TestConcurrentRunners:
    """Ten runners started together apply each revision exactly once."""

    def test_each_revision_applied_once(self, db: SqliteDatabase) -> None:
        jobs = [RunningJob(env=db.env()) for _ in range(10)]
        results = [job.finish() for job in jobs]
        assert [r.code for r in results] == [0] * 10, [r.stderr for r in results if r.code]
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}
        assert sum("upgrade_finished" in r.names() for r in results) == 1
        assert db.lock_is_free()


class TestLockHeldElsewhere:
    """A lock file held by another process: exit 5, naming the holder from its line."""

    def test_exit_5_names_the_holder(self, db: SqliteDatabase) -> None:
        holder = {"pid": 4242, "host": "other-host", "application_name": "other-runner",
                  "since": "2026-01-01T00:00:00+00:00"}
        with held_lock_file(db.lock_file, holder):
            result = db.run(MIGRATE_LOCK_TIMEOUT="1")
        assert result.code == 5, result.stderr
        assert "held by pid 4242 (other-runner) from other-host" in result.stderr
        assert db.revisions() == []


def start_slow_job(db: SqliteDatabase) -> RunningJob:
    """Apply up to 0003, then start an upgrade whose revision 0004 counts to 10^9."""
    assert db.run().code == 0
    (db.config.parent / "migrations" / "versions" / "0004_slow.py").write_text(SQLITE_SLOW)
    job = RunningJob(env=db.env(SLOW_COUNT=str(10**9)))
    job.wait_for_event("revision_started", revision="0004")
    # The revision's first write creates the rollback journal; its long count follows it.
    assert wait_until(lambda: Path(f"{db.path}-journal").exists())
    return job


class TestSignals:
    """SIGTERM interrupts the running statement and rolls back; SIGKILL leaves nothing behind."""

    def test_sigterm_rolls_back_and_unlocks(self, db: SqliteDatabase) -> None:
        job = start_slow_job(db)
        job.process.send_signal(signal.SIGTERM)
        result = job.finish(timeout=60)
        assert result.code == 143, result.stderr
        assert result.event("interrupted")
        assert db.revisions() == HEAD
        assert not db.exists("slow_marker")
        assert "0004" not in db.applications()
        assert db.lock_is_free()

    def test_sigkill_then_rerun_completes(self, db: SqliteDatabase) -> None:
        job = start_slow_job(db)
        job.process.kill()
        job.process.wait(timeout=30)
        result = db.run()
        assert result.code == 0, result.stderr
        assert db.revisions() == ["0004"]
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1, "0004": 1}


class TestWaiting:
    """The database's directory is waited for; an unusable path or URL fails at once."""

    def test_directory_appearing_is_waited_for(self, tmp_path: Path) -> None:
        db = SqliteDatabase(tmp_path / "volume" / "app.db",
                            make_sqlite_project(tmp_path / "project"))
        job = RunningJob(env=db.env(MIGRATE_WAIT_TIMEOUT="120"))
        job.wait_for_event("waiting_for_database")
        db.path.parent.mkdir()
        result = job.finish()
        assert result.code == 0, result.stderr
        assert db.revisions() == HEAD

    def test_directory_never_appearing_is_exit_3(self, tmp_path: Path) -> None:
        db = SqliteDatabase(tmp_path / "volume" / "app.db",
                            make_sqlite_project(tmp_path / "project"))
        result = db.run(MIGRATE_WAIT_TIMEOUT="0")
        assert result.code == 3, result.stderr
        assert "does not exist (yet)" in result.stderr

    def test_path_that_cannot_be_opened_is_exit_4(self, db: SqliteDatabase) -> None:
        db.path.mkdir()
        result = db.run(MIGRATE_WAIT_TIMEOUT="60")
        assert result.code == 4, result.stderr
        assert "unable to open database file" in result.stderr

    @pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
    def test_in_memory_database_is_exit_2(self, db: SqliteDatabase, url: str) -> None:
        result = run_job(env=job_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(db.config)))
        assert result.code == 2, result.stderr
        assert "in-memory SQLite database" in result.stderr


class TestAnotherWriter:
    """A revision that finds another connection writing fails with exit 6 and says so."""

    def test_database_locked_during_a_revision_is_exit_6(self, db: SqliteDatabase) -> None:
        assert db.run().code == 0
        (db.config.parent / "migrations" / "versions" / "0004_slow.py").write_text(SQLITE_SLOW)
        with closing(sqlite3.connect(db.path, isolation_level=None)) as writer:
            writer.execute("BEGIN IMMEDIATE")
            result = db.run(MIGRATE_LOCK_TIMEOUT="1")
            writer.execute("ROLLBACK")
        assert result.code == 6, result.stderr
        assert "database is locked" in result.stderr
        assert "another connection held the database's write lock" in result.stderr
        assert db.revisions() == HEAD
        rerun = db.run()
        assert rerun.code == 0, rerun.stderr
        assert db.applications()["0004"] == 1


def slow_revision_added(db: SqliteDatabase) -> None:
    """Put SQLITE_SLOW (revision 0004) into the project."""
    (db.config.parent / "migrations" / "versions" / "0004_slow.py").write_text(SQLITE_SLOW)


class TestOneFile:
    """However DATABASE_URL spells the path, the job, its lock and the revisions use one file:
    the one SQLAlchemy opens."""

    @pytest.mark.parametrize(("spelled", "name"), [
        ("my%20app.db", "my app.db"),
        ("caf%C3%A9+50%25.db", "café+50%.db"),
        ("what%3F.db", "what?.db"),
    ])
    def test_percent_encoded_path_names_one_file(self, tmp_path: Path, spelled: str,
                                                 name: str) -> None:
        data = tmp_path / "data"
        data.mkdir()
        db = SqliteDatabase(data / name, make_sqlite_project(tmp_path / "project"))
        result = run_job(env=job_env(DATABASE_URL=f"sqlite:///{data}/{spelled}",
                                     ALEMBIC_CONFIG=str(db.config)))
        assert result.code == 0, result.stderr
        assert sorted(p.name for p in data.iterdir()) == [name, f"{name}.migration-lock"]
        assert db.revisions() == HEAD
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}

    @pytest.mark.parametrize("query", ["?uri=true", "?mode=rwc&uri=true"])
    def test_sqlite_uri_filename_names_one_file(self, tmp_path: Path, query: str) -> None:
        """sqlite:///file:PATH?uri=true: SQLite reads the path as a URI (%25 is '%' twice
        decoded: by SQLAlchemy, then by SQLite)."""
        data = tmp_path / "data"
        data.mkdir()
        db = SqliteDatabase(data / "my app.db", make_sqlite_project(tmp_path / "project"))
        env = job_env(DATABASE_URL=f"sqlite:///file:{data}/my%2520app.db{query}",
                      ALEMBIC_CONFIG=str(db.config), MIGRATE_WAIT_TIMEOUT="5")
        result = run_job(env=env)
        assert result.code == 0, result.stderr
        assert sorted(p.name for p in data.iterdir()) == ["my app.db",
                                                          "my app.db.migration-lock"]
        assert db.revisions() == HEAD
        status = run_job("status", "--json", env=env)
        assert json.loads(status.stdout)["current"] == HEAD, status.stderr

    def test_relative_encoded_path_from_the_working_directory(self, tmp_path: Path) -> None:
        (tmp_path / "data").mkdir()
        db = SqliteDatabase(tmp_path / "data" / "my app.db",
                            make_sqlite_project(tmp_path / "project"))
        env = job_env(DATABASE_URL="sqlite:///data/my%20app.db", ALEMBIC_CONFIG=str(db.config))
        result = run_job(env=env, cwd=tmp_path)
        assert result.code == 0, result.stderr
        assert sorted(p.name for p in db.path.parent.iterdir()) == ["my app.db",
                                                                    "my app.db.migration-lock"]
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}

    def test_sigkill_mid_revision_leaves_nothing_half_applied(self, tmp_path: Path) -> None:
        """The revision ran in the job's own transaction on the same file: SQLite rolls it
        back, status reports the revision before it, and a rerun applies it once."""
        (tmp_path / "data").mkdir()
        db = SqliteDatabase(tmp_path / "data" / "my app.db",
                            make_sqlite_project(tmp_path / "project"))
        env = job_env(DATABASE_URL=f"sqlite:///{tmp_path}/data/my%20app.db",
                      ALEMBIC_CONFIG=str(db.config))
        assert run_job(env=env).code == 0
        slow_revision_added(db)
        job = RunningJob(env={**env, "SLOW_COUNT": str(10**9)})
        job.wait_for_event("revision_started", revision="0004")
        # The revision's first write creates the rollback journal; its long count follows it.
        assert wait_until(lambda: Path(f"{db.path}-journal").exists())
        job.process.kill()
        job.process.wait(timeout=30)
        status = run_job("status", "--json", env=env)
        assert status.code == 0, status.stderr
        assert json.loads(status.stdout)["current"] == HEAD
        assert not db.exists("slow_marker")
        rerun = run_job(env=env)
        assert rerun.code == 0, rerun.stderr
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1, "0004": 1}
        assert sorted(p.name for p in db.path.parent.iterdir()) == ["my app.db",
                                                                    "my app.db.migration-lock"]


class TestWaitsForAnotherWriter:
    """An application's write transaction makes a revision wait (up to MIGRATE_LOCK_TIMEOUT),
    not fail: the job takes SQLite's write lock before its transaction reads anything."""

    def test_revisions_wait_for_the_application_then_apply_once(self,
                                                                db: SqliteDatabase) -> None:
        with closing(sqlite3.connect(db.path, isolation_level=None)) as application:
            application.execute("BEGIN IMMEDIATE")
            application.execute("CREATE TABLE orders (id integer)")
            application.execute("INSERT INTO orders VALUES (1)")
            job = RunningJob(env=db.env(MIGRATE_LOCK_TIMEOUT="120"))
            waiting = job.wait_for_event("waiting_for_write_lock")
            assert "MIGRATE_LOCK_TIMEOUT" in waiting["message"]
            application.execute("COMMIT")
        result = job.finish()
        assert result.code == 0, result.stderr
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}
        assert db.query("SELECT id FROM orders") == [(1,)]

    def test_revision_after_a_read_waits_too(self, db: SqliteDatabase) -> None:
        """The tester's case: the database at 0003, 0004 pending, the application writing."""
        assert db.run().code == 0
        (db.config.parent / "migrations" / "versions" / "0004_orders.py").write_text(
            revision("0004", "0003", '''
op.execute("SELECT count(*) FROM items")
op.execute("CREATE TABLE shipments (id integer)")
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
'''))
        with closing(sqlite3.connect(db.path, isolation_level=None)) as application:
            application.execute("BEGIN IMMEDIATE")
            application.execute("INSERT INTO items (name) VALUES ('from the app')")
            job = RunningJob(env=db.env(MIGRATE_LOCK_TIMEOUT="120"))
            job.wait_for_event("waiting_for_write_lock")
            application.execute("COMMIT")
        result = job.finish()
        assert result.code == 0, result.stderr
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1, "0004": 1}
        assert db.exists("shipments")
        assert ("from the app",) in db.query("SELECT name FROM items")


class TestReadingCommandsCreateNothing:
    """status, check, plan, sql, history and wait on a file that does not exist yet report an
    empty database and leave the directory as it was; upgrade creates the file."""

    @pytest.mark.parametrize(("args", "code"), [
        (("status", "--json"), 0), (("check",), 8), (("plan", "--json"), 0), (("sql",), 0),
        (("history",), 0), (("wait",), 0), (("status", "-x", "tenant=a"), 0),
    ])
    def test_missing_file_stays_missing(self, db: SqliteDatabase, args: tuple[str, ...],
                                        code: int) -> None:
        result = db.run(*args)
        assert result.code == code, result.stderr
        assert list(db.path.parent.iterdir()) == []

    def test_status_reports_base_and_upgrade_then_creates_it(self, db: SqliteDatabase) -> None:
        shown = db.run("status", "--json")
        assert json.loads(shown.stdout)["current"] == []
        assert json.loads(shown.stdout)["pending"] == ["0001", "0002", "0003"]
        assert "no history recorded yet" in db.run("history").stdout
        assert not db.path.exists()
        assert db.run().code == 0
        assert db.revisions() == HEAD


class TestSignalWhileWaitingForAWriter:
    """SIGTERM while the job waits for an application's write lock ends the job at once
    (SQLite's own busy wait ignores interrupt(): the job polls instead)."""

    def test_sigterm_ends_the_wait(self, db: SqliteDatabase) -> None:
        with closing(sqlite3.connect(db.path, isolation_level=None)) as application:
            application.execute("BEGIN IMMEDIATE")
            application.execute("CREATE TABLE orders (id integer)")
            job = RunningJob(env=db.env(MIGRATE_LOCK_TIMEOUT="600"))
            job.wait_for_event("waiting_for_write_lock")
            job.process.send_signal(signal.SIGTERM)
            # Far below the 600 s the wait would otherwise last.
            result = job.finish(timeout=60)
            application.execute("ROLLBACK")
        assert result.code == 143, result.stderr
        assert result.event("interrupted")
        assert db.revisions() == []
        assert db.lock_is_free()


# Root writes any file: the permission tests run the job as root without the capabilities
# that bypass file permissions, which then stop it as they stop any other user.
AS_ANY_USER = (("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")
               if os.geteuid() == 0 else ())


class TestNotWritable:
    """A file or directory the job's user cannot write: exit 4, saying which and why, before
    the lock; a reading command still reads it."""

    @pytest.fixture
    def data(self, db: SqliteDatabase) -> Iterator[tuple[SqliteDatabase, Path]]:
        """The database, and its directory (writable again afterwards, for the clean-up)."""
        try:
            yield db, db.path.parent
        finally:
            db.path.parent.chmod(0o755)

    def run_unprivileged(self, db: SqliteDatabase, *args: str) -> Result:
        return run_job(*args, env=db.env(MIGRATE_WAIT_TIMEOUT="30"), prefix=AS_ANY_USER)

    def test_control_the_same_user_migrates_a_writable_file(
            self, data: tuple[SqliteDatabase, Path]) -> None:
        db, _ = data
        result = self.run_unprivileged(db)
        assert result.code == 0, result.stderr
        assert db.revisions() == HEAD

    def test_read_only_file_is_exit_4_naming_the_file(self, data: tuple[SqliteDatabase, Path]
                                                      ) -> None:
        db, _ = data
        sqlite3.connect(db.path).close()
        db.path.chmod(0o444)
        result = self.run_unprivileged(db)
        assert result.code == 4, result.stderr
        message = result.events[-1]["message"]
        assert f"cannot write the database file {db.path}" in message
        assert "write permission on the file" in message
        assert "primary" not in message
        assert "lock_acquired" not in result.names()
        assert db.revisions() == []
        status = self.run_unprivileged(db, "status", "--json")
        assert status.code == 0, status.stderr
        assert json.loads(status.stdout)["current"] == []

    def test_read_only_directory_is_exit_4_naming_the_directory(
            self, data: tuple[SqliteDatabase, Path]) -> None:
        db, directory = data
        sqlite3.connect(db.path).close()
        db.path.chmod(0o666)
        directory.chmod(0o555)
        result = self.run_unprivileged(db)
        assert result.code == 4, result.stderr
        message = result.events[-1]["message"]
        assert f"cannot write the database's directory {directory}" in message
        assert "primary" not in message
        assert db.revisions() == []
