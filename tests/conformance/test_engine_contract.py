"""The engine interface's contract, checked on every engine against a real server."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from migration_job.alembic_env.migrate import job_engine
from migration_job.applied_history.recorder import history_table
from migration_job.engines.statement_progress import StatementProgress
from migration_job.errors import LockLost, LockTimeout
from migration_job.project import Project
from tests.conformance.conftest import Target, settings_for
from tests.support.job import REPO
from tests.support.slow_statements import MARIADB_COPYING, PG_SCANNING

PROJECT = Project(REPO / "alembic.ini", REPO / "migrations")


def no_sleep_longer_than(seconds: float) -> None:
    """The lock's sleep between tries, kept short so that the suite stays fast."""
    time.sleep(min(seconds, 0.05))


class TestLock:
    """One session at a time holds the migration lock; its session's end frees it."""

    def test_acquired_when_free(self, target: Target) -> None:
        lock = target.session().lock(None, PROJECT, no_sleep_longer_than)
        assert lock.acquire(timeout=1)
        lock.verify()
        assert lock.holder() is not None

    def test_second_session_waits_then_times_out_naming_the_holder(self, target: Target) -> None:
        first = target.session().lock(None, PROJECT, no_sleep_longer_than)
        assert first.acquire(timeout=1)
        second = target.session().lock(None, PROJECT, no_sleep_longer_than)
        started = time.monotonic()
        with pytest.raises(LockTimeout) as timed_out:
            second.acquire(timeout=0.5)
        assert time.monotonic() - started >= 0.5
        holder = second.holder()
        assert holder is not None
        assert f"held by {holder.id_label} {holder.pid} " in str(timed_out.value)

    def test_release_frees_it(self, target: Target) -> None:
        first = target.session().lock(None, PROJECT, no_sleep_longer_than)
        assert first.acquire(timeout=1)
        first.release()
        second = target.session().lock(None, PROJECT, no_sleep_longer_than)
        assert second.acquire(timeout=0)
        assert first.holder() is not None

    def test_holder_session_ending_frees_it(self, target: Target) -> None:
        holding = target.session()
        assert holding.lock(None, PROJECT, no_sleep_longer_than).acquire(timeout=1)
        target.terminate(holding)
        second = target.session().lock(None, PROJECT, no_sleep_longer_than)
        assert second.acquire(timeout=5)

    def test_verify_fails_once_the_session_is_gone(self, target: Target) -> None:
        holding = target.session()
        lock = holding.lock(None, PROJECT, no_sleep_longer_than)
        assert lock.acquire(timeout=1)
        target.terminate(holding)
        with pytest.raises((LockLost, *target.engine.errors)) as failed:
            lock.verify()
        assert (isinstance(failed.value, LockLost)
                or target.engine.is_connection_lost(failed.value))

    def test_needless_returns_without_the_lock(self, target: Target) -> None:
        holding = target.session().lock(None, PROJECT, no_sleep_longer_than)
        assert holding.acquire(timeout=1)
        waiting = target.session().lock(None, PROJECT, no_sleep_longer_than)
        calls = iter([False, False, True])
        assert waiting.acquire(timeout=5, needless=lambda: next(calls)) is False


class TestConnectionErrors:
    """Refusals for good fail at once (exit 4); a server not there yet is waited for."""

    def test_wrong_password_is_permanent(self, target: Target) -> None:
        engine = target.engine
        with pytest.raises(engine.errors) as refused:
            engine.connect(settings_for(target.rejected_url), timeout=5)
        assert not engine.is_transient(refused.value)
        assert engine.rejection_advice(refused.value)

    def test_nothing_listening_is_transient(self, target: Target) -> None:
        engine = target.engine
        with pytest.raises(engine.errors) as refused:
            engine.connect(settings_for(target.unreachable_url), timeout=2)
        assert engine.is_transient(refused.value)


class TestSever:
    """sever() from another thread: where it cuts (True), the session is lost, as after a
    network cut; where it does not (False), the session goes on as before."""

    def test_cut_session_is_lost_or_untouched(self, target: Target) -> None:
        session = target.session()
        engine = target.engine
        cut = session.sever()
        # A revision cut short without transactional DDL needs a repair: never on an alarm.
        assert engine.transactional_ddl or not cut
        if cut:
            with pytest.raises(engine.errors) as lost:
                session.ping()
            assert engine.is_connection_lost(lost.value)
        else:
            session.ping()


class TestVersionTable:
    """Revisions are read without creating anything."""

    def test_empty_database_has_no_revisions(self, target: Target) -> None:
        assert target.session().revisions(PROJECT) == ()

    def test_table_rows_of_the_history_table(self, target: Target) -> None:
        """table_rows reads a job table (none when missing): the applied-history table's
        definition, created on each engine, through SQLAlchemy."""
        settings = target.settings._replace(history_table="conformance_history")
        session = target.session()
        assert session.table_rows(None, "conformance_history", ("revision",)) == []
        table = history_table(settings, PROJECT)
        engine = job_engine(settings)
        try:
            with engine.begin() as connection:
                table.create(connection)
                connection.execute(table.insert().values(
                    revision="0002", parents="0001", direction="upgrade",
                    started_at=datetime(2026, 1, 1), runner_host="h", runner_pid=1,
                    job_version="0"))
            rows = session.table_rows(None, "conformance_history", ("revision", "parents"))
            assert [tuple(map(str, row)) for row in rows] == [("0002", "0001")]
        finally:
            table.drop(engine, checkfirst=True)
            engine.dispose()


class TestStatementProgress:
    """The server's own figures of a statement that runs on another of this process's
    sessions; none where the server reports none."""

    def test_figures_of_a_running_statement(self, target: Target) -> None:
        asking = target.session()
        if target.long_statement is None:
            assert not target.engine.reports_progress
            assert asking.statement_progress() == ()
            return
        assert target.engine.reports_progress
        assert asking.statement_progress() == ()  # nothing of this process's runs yet
        found: list[StatementProgress] = []
        with target.long_statement(target.session()) as still_running:
            deadline = time.monotonic() + 60
            while not found and still_running() and time.monotonic() < deadline:
                found = [f for f in asking.statement_progress() if f.percent is not None]
                time.sleep(0.01)
        assert found, "the statement ended before the server reported its progress"
        figures = found[0]
        assert figures.phase in (PG_SCANNING, MARIADB_COPYING)
        assert figures.percent is not None
        assert 0 < figures.percent < 100
        assert asking.statement_progress() == ()  # it has ended
