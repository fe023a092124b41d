"""The DDL lock retry schedule and loop, with a fake sleep (no database)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from migration_job.engines.blocking import Blocker
from migration_job.errors import Blocked, DdlLockTimedOut, MigrationFailed
from migration_job.run.lock_retries import retry_delays, retrying
from migration_job.settings import Settings
from migration_job.settings.load import load_settings

BLOCKER = Blocker(pid=4242, application_name="reporting", client_addr="10.0.0.7",
                  transaction_age_s=93.0, query="SELECT * FROM busy")


class FakeWatch:
    """Always saw the same blocker."""

    def take(self) -> tuple[Blocker, ...]:
        """The blocker."""
        return (BLOCKER,)


def settings(retries: int) -> Settings:
    """Settings with a retry budget."""
    return load_settings({"ddl_lock_retries": str(retries)},
                         {"DATABASE_URL": "postgresql://u@h/d"})


def blocked_times(count: int) -> tuple[list[int], Callable[[], str]]:
    """An attempt that times out `count` times, then succeeds; and its call log."""
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= count:
            raise DdlLockTimedOut("revision 0006 waited too long", "0006")
        return "done"

    return calls, attempt


class TestSchedule:
    """Sleeps double from 1 s up to 30 s, each jittered between half and all of that."""

    def test_sleeps_grow_and_are_capped(self) -> None:
        assert list(retry_delays(7, jitter=lambda: 1.0)) == [1, 2, 4, 8, 16, 30, 30]

    def test_jitter_takes_at_most_half(self) -> None:
        assert list(retry_delays(3, jitter=lambda: 0.0)) == [0.5, 1, 2]

    def test_no_retries_no_sleeps(self) -> None:
        assert list(retry_delays(0)) == []


class TestRetrying:
    """Only lock timeouts are retried, through the given sleep, until the budget runs out."""

    def test_retried_until_it_goes_through(self) -> None:
        calls, attempt = blocked_times(2)
        slept: list[float] = []
        assert retrying(attempt, settings(5), FakeWatch(), slept.append) == "done"
        assert len(calls) == 3
        assert len(slept) == 2
        assert slept[1] > 0.5 * 2 - 1e-9

    def test_blocked_after_the_last_retry_names_revision_and_blocker(self) -> None:
        _, attempt = blocked_times(10)
        slept: list[float] = []
        with pytest.raises(Blocked) as raised:
            retrying(attempt, settings(2), FakeWatch(), slept.append)
        assert len(slept) == 2
        assert raised.value.exit_code == 9
        assert "0006" in str(raised.value)
        assert "pid 4242 (reporting)" in str(raised.value)

    def test_other_failures_are_not_retried(self) -> None:
        slept: list[float] = []

        def attempt() -> str:
            raise MigrationFailed("revision 0006 failed")

        with pytest.raises(MigrationFailed):
            retrying(attempt, settings(5), FakeWatch(), slept.append)
        assert slept == []


class TestHowOftenTheWatchLooks:
    """Four looks per DDL lock timeout, at most one a second, and never faster than InnoDB
    refreshes INNODB_TRX (0.1 s without a reader), which names MySQL's blockers."""

    @pytest.mark.parametrize(("timeout", "every"), [("2s", 0.5), ("60s", 1.0), ("0", 1.0),
                                                    ("200ms", 0.25), ("40ms", 0.25)])
    def test_interval(self, timeout: str, every: float) -> None:
        from migration_job.run.blocker_watch import BlockerWatch

        configured = load_settings({}, {"DATABASE_URL": "mysql+pymysql://u@h/d",
                                        "MIGRATE_DDL_LOCK_TIMEOUT": timeout})
        assert BlockerWatch(configured).every == every
