"""revision_progress without a database: the estimate, the text line, the statement shown, and
when the events are due (on a clock the tests set)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from migration_job.alembic_env.running_statement import shown
from migration_job.engines.statement_progress import StatementProgress
from migration_job.log import log
from migration_job.run.progress_report import Estimate, Shown, duration, progress_line
from migration_job.run.progress_watch import ProgressWatch, Running
from migration_job.settings.load import load_settings

SCANNING = "building index: scanning table"


def blocks(done: int, total: int, phase: str = SCANNING) -> StatementProgress:
    """A PostgreSQL index build's figures."""
    return StatementProgress(phase, done, total, "blocks")


class TestEstimate:
    """Within a phase the percentage never goes down and the time left follows the rate; a
    new phase starts both afresh."""

    def test_no_time_left_from_one_sample(self) -> None:
        first = Estimate().update(blocks(100, 1000), now=10.0)
        assert (first.percent, first.eta_s) == (10.0, None)

    def test_time_left_at_the_rate_so_far(self) -> None:
        estimate = Estimate()
        estimate.update(blocks(100, 1000), now=10.0)
        second = estimate.update(blocks(300, 1000), now=12.0)
        # 20 points in 2 s: the 70 left take 7 s.
        assert second.percent == 30.0
        assert second.eta_s == pytest.approx(7.0)

    def test_no_time_left_while_nothing_moves(self) -> None:
        estimate = Estimate()
        estimate.update(blocks(100, 1000), now=10.0)
        assert estimate.update(blocks(100, 1000), now=12.0).eta_s is None

    def test_never_lower_within_a_phase(self) -> None:
        """The server's total grew (an estimate): the percentage shown stays."""
        estimate = Estimate()
        estimate.update(blocks(500, 1000), now=10.0)
        assert estimate.update(blocks(510, 2000), now=11.0).percent == 50.0
        assert estimate.update(blocks(1800, 2000), now=12.0).percent == 90.0

    def test_a_new_phase_starts_afresh(self) -> None:
        estimate = Estimate()
        estimate.update(blocks(900, 1000), now=10.0)
        estimate.update(blocks(950, 1000), now=11.0)
        loading = estimate.update(StatementProgress("building index: loading tuples in tree",
                                                    10, 1000, "tuples"), now=12.0)
        assert (loading.percent, loading.eta_s) == (1.0, None)

    def test_a_phase_without_figures(self) -> None:
        sorting = Estimate().update(StatementProgress("building index: sorting live tuples"),
                                    now=10.0)
        assert (sorting.percent, sorting.eta_s) == (None, None)

    def test_the_server_s_own_percentage(self) -> None:
        """MariaDB gives a percentage, not counts."""
        estimate = Estimate()
        estimate.update(StatementProgress("stage 1 of 2: copy to tmp table",
                                          server_percent=10.0), now=10.0)
        copied = estimate.update(StatementProgress("stage 1 of 2: copy to tmp table",
                                                   server_percent=20.0), now=11.0)
        assert copied.percent == 20.0
        assert copied.eta_s == pytest.approx(8.0)


class TestLine:
    """The text line of each kind of event."""

    def test_the_issue_s_example(self) -> None:
        figures = blocks(11_473, 28_038)
        assert progress_line("upgrade 0004", 6.2, "CREATE INDEX ...",
                             Shown(figures, figures.percent, 8.7)) == (
            "upgrade 0004: 40% (building index: scanning table, 11,473 of 28,038 blocks), "
            "6 s elapsed, about 9 s left")

    def test_a_heartbeat_names_the_statement(self) -> None:
        assert progress_line("upgrade 0004", 61, "SELECT pg_sleep(600)", None) == (
            "upgrade 0004: 61 s elapsed, running SELECT pg_sleep(600)")
        assert progress_line("downgrade 0004", 3, None, None) == "downgrade 0004: 3 s elapsed"

    def test_a_phase_without_a_percentage(self) -> None:
        sorting = StatementProgress("building index: sorting live tuples")
        assert progress_line("upgrade 0004", 12, "CREATE INDEX ...",
                             Shown(sorting, None, None)) == (
            "upgrade 0004: building index: sorting live tuples, 12 s elapsed")
        writing = StatementProgress("writing new heap", 12_000, None, "tuples")
        assert progress_line("upgrade 0004", 12, None, Shown(writing, None, None)) == (
            "upgrade 0004: writing new heap, 12,000 tuples, 12 s elapsed")

    def test_never_100_before_the_end(self) -> None:
        figures = blocks(999, 1000)
        assert progress_line("upgrade 1", 5, None, Shown(figures, 99.9, None)).startswith(
            "upgrade 1: 99% (")

    @pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (119, "119 s"),
                                                   (725, "12 min 5 s"), (7500, "2 h 05 min")])
    def test_durations(self, seconds: float, text: str) -> None:
        assert duration(seconds) == text


class TestStatementShown:
    """The statement's first line, shortened, with any password literal masked."""

    def test_first_line(self) -> None:
        assert shown("\n  CREATE INDEX i ON t (c)\n  WHERE c > 0") == "CREATE INDEX i ON t (c)"

    @pytest.mark.parametrize("statement", [
        "CREATE ROLE app LOGIN PASSWORD 'hunter2'",
        "ALTER USER app WITH ENCRYPTED PASSWORD 'hun''ter2'",
        "CREATE USER 'app'@'%' IDENTIFIED BY 'hunter2'",
        "SET PASSWORD FOR app = 'hunter2'",
    ])
    def test_password_literals_are_masked(self, statement: str) -> None:
        line = shown(statement)
        assert "hunter2" not in line
        assert "ter2" not in line
        assert "'***'" in line


@pytest.fixture
def events() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The events logged meanwhile."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def collect(event: str, fields: dict[str, Any]) -> None:
        seen.append((event, fields))

    log.observers.append(collect)
    yield seen
    log.observers.remove(collect)


def watch(interval: str) -> ProgressWatch:
    """A progress watch with this interval."""
    return ProgressWatch(load_settings({"progress_interval": interval}, {
        "DATABASE_URL": "postgresql://u@h/d", "MIGRATE_TERMINATION_LOG": ""}))


class TestWhenDue:
    """An event once a revision has run an interval, then one per interval; a late look logs
    once; a new revision starts the count again."""

    def test_one_per_interval(self) -> None:
        progress = watch("10s")
        progress.running = Running("0004", "upgrade", since=100.0)
        assert progress.due(105.0) is None
        assert progress.next_due(105.0) == 110.0
        assert progress.due(110.1) is progress.running
        assert progress.due(112.0) is None
        assert progress.next_due(112.0) == 120.0

    def test_a_late_look_logs_once(self) -> None:
        progress = watch("10s")
        progress.running = Running("0004", "upgrade", since=100.0)
        assert progress.due(135.0) is not None
        assert progress.due(136.0) is None
        assert progress.next_due(136.0) == 140.0

    def test_nothing_between_revisions(self) -> None:
        progress = watch("10s")
        assert progress.due(1000.0) is None
        assert progress.next_due(1000.0) == 1000.5

    def test_a_new_revision_starts_again(self) -> None:
        progress = watch("10s")
        progress.running = Running("0004", "upgrade", since=100.0)
        assert progress.due(121.0) is not None
        progress.running = Running("0005", "upgrade", since=122.0)
        assert progress.due(125.0) is None
        assert progress.next_due(125.0) == 132.0

    def test_a_failed_try_ends_the_revision(self) -> None:
        progress = watch("10s")

        def failing() -> None:
            progress.running = Running("0004", "upgrade", since=100.0)
            raise RuntimeError("the revision failed")

        with pytest.raises(RuntimeError):
            progress.attempts(failing)()
        assert progress.running is None

    def test_the_event(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        progress = watch("1s")
        running = Running("0004", "upgrade", since=time.monotonic() - 6)
        progress.report(running, (blocks(250, 1000),))
        progress.report(running, None)
        (first_name, first), (_, heartbeat) = events
        assert first_name == "revision_progress"
        assert first["phase"] == SCANNING
        assert (first["done"], first["total"], first["unit"], first["percent"]) == (
            250, 1000, "blocks", 25.0)
        assert first["elapsed_s"] >= 6
        assert "eta_s" not in first
        assert set(heartbeat) == {"revision", "direction", "elapsed_s"}
