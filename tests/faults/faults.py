"""The faults the matrix injects, each with where it holds the revision, what it does at that
point, how long the job may take to end after it (the "no hang" bound, from the timeouts the
fault configures), and how it puts the database back for the reruns."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from migration_job.run.worker import SHUTDOWN_GRACE_S
from tests.faults.shapes import Point
from tests.faults.target import REACH_S, Target
from tests.support.job import RunningJob, wait_until

if TYPE_CHECKING:
    from tests.faults.servers import Servers

# Added to every bound: the machine is shared, and only a hang (for ever) must fail.
MARGIN_S = 30.0
DDL_LOCK_TIMEOUT_S = 1.0
STATEMENT_TIMEOUT_S = 1.0
WAIT_TIMEOUT_S = 3.0
# libpq's and PyMySQL's connect timeouts are whole seconds, at least 2: a last try that began
# just before the wait timeout ends may take that long.
CONNECT_TIMEOUT_S = 3.0
# How long a dead peer may take to be noticed mid-statement (TCP keepalives): the job's
# documented bound for a connection that goes silent.
DEAD_PEER_S = 30.0


@dataclass
class Run:
    """One cell's run in progress: its database, what to clean up after it, the job, and
    whether the revision waits at a Python gate (rather than in a statement)."""

    target: Target
    cleanup: ExitStack
    job: RunningJob | None = None
    python_gate: bool = False


class Fault:
    """A fault (a subclass each): the defaults suit one injected while the revision waits at
    the cell's point, on the suite's shared servers."""

    name: ClassVar[str]
    label: ClassVar[str]  # the README's words
    engines: ClassVar[tuple[str, ...]] = ("postgresql", "mariadb", "sqlite")
    # The job waits at the gate before the fault strikes (False: the fault is there from the
    # start, or strikes on its own).
    waits_at_point: ClassVar[bool] = True

    def env(self) -> dict[str, str]:
        """The job's settings for the faulted run."""
        return {}

    def gate_at(self, point: Point) -> Point | None:
        """Where the revision is held while the test arranges the fault."""
        return point

    def target(self, engine: str, servers: Servers, root: Path, cleanup: ExitStack) -> Target:
        """The cell's database: on the suite's shared server of its engine."""
        return servers.target(engine, root)

    def before_start(self, run: Run) -> None:
        """Prepare what must be in place before the job starts."""

    def inject(self, run: Run) -> None:
        """Strike, the job held at the point."""

    def release(self, run: Run) -> None:
        """After the strike: Python code at a gate ends on its own, as real code would (it
        cannot be cancelled), and the job must still not commit what the fault broke."""
        if run.python_gate:
            run.target.open_gate()

    def bound(self) -> float:
        """Seconds the job may take to exit after inject() began."""
        return MARGIN_S

    def settle(self, run: Run) -> None:
        """The job has exited: give the reruns a usable database again."""


class Sigterm(Fault):
    name, label = "SIGTERM", "SIGTERM"

    def inject(self, run: Run) -> None:
        assert run.job is not None
        run.job.process.send_signal(signal.SIGTERM)
        if run.python_gate:  # the gate opens once the job knows of the signal
            run.job.wait_for_event("signal_received")

    def bound(self) -> float:
        return SHUTDOWN_GRACE_S + MARGIN_S


class Sigkill(Fault):
    name, label = "SIGKILL", "SIGKILL (the job's node lost)"

    def inject(self, run: Run) -> None:
        assert run.job is not None
        run.job.process.send_signal(signal.SIGKILL)


class ServerRestart(Fault):
    name, label = "server restart", "the server killed (SIGKILL) and restarted"
    engines = ("postgresql", "mariadb")

    def inject(self, run: Run) -> None:
        run.target.restart_server()

    def bound(self) -> float:
        return 60.0 + MARGIN_S  # the restart is part of it


class SessionTerminated(Fault):
    name, label = "session terminated", "the job's session terminated on the server"
    engines = ("postgresql", "mariadb")

    def inject(self, run: Run) -> None:
        run.target.terminate_job_session()


class DdlLockTimeout(Fault):
    """A transaction of the test's holds what the revision's DDL needs, from before it."""

    name, label = "DDL lock timeout", "a blocker (row lock) outlasting the DDL lock timeout"
    engines: ClassVar[tuple[str, ...]] = ("postgresql", "mariadb")
    blocker = "row lock"

    def env(self) -> dict[str, str]:
        return {"MIGRATE_DDL_LOCK_TIMEOUT": f"{DDL_LOCK_TIMEOUT_S}s",
                "MIGRATE_DDL_LOCK_RETRIES": "1"}

    def gate_at(self, point: Point) -> Point | None:
        return Point.BEFORE  # the blocker is placed while the revision waits to start

    def inject(self, run: Run) -> None:
        run.target.hold_blocker(self.blocker)
        run.target.open_gate()

    def bound(self) -> float:
        # Two tries of one timeout each and a retry sleep of at most a second.
        return 3 * DDL_LOCK_TIMEOUT_S + 1 + MARGIN_S

    def settle(self, run: Run) -> None:
        run.target.release_blockers()


class OldSnapshot(DdlLockTimeout):
    """A long report's old snapshot, which CREATE INDEX CONCURRENTLY must wait out (it blocks
    no query meanwhile): it lasts longer than the DDL lock timeout, then ends."""

    name, label = "old snapshot", "an old snapshot outlasting the DDL lock timeout, then ending"
    engines = ("postgresql",)
    blocker = "snapshot"

    def inject(self, run: Run) -> None:
        super().inject(run)
        _wait_in_concurrent_index(run, longer_than=DDL_LOCK_TIMEOUT_S + 1)
        run.target.release_blockers()

    def bound(self) -> float:
        return DDL_LOCK_TIMEOUT_S + 1 + MARGIN_S


class SigtermWaitingOnSnapshot(OldSnapshot):
    """SIGTERM while CREATE INDEX CONCURRENTLY waits out an old snapshot."""

    name, label = "SIGTERM in a wait", "SIGTERM while waiting out an old snapshot"

    def env(self) -> dict[str, str]:
        return {"MIGRATE_DDL_LOCK_TIMEOUT": "0"}  # the wait is the server's, unbounded

    def inject(self, run: Run) -> None:
        DdlLockTimeout.inject(self, run)
        _wait_in_concurrent_index(run, longer_than=0)
        assert run.job is not None
        run.job.process.send_signal(signal.SIGTERM)

    def bound(self) -> float:
        return SHUTDOWN_GRACE_S + MARGIN_S


def _wait_in_concurrent_index(run: Run, longer_than: float) -> None:
    """Until the job's CREATE INDEX CONCURRENTLY has waited for the old snapshot that long,
    or the job ended (its outcome then says why)."""
    assert run.job is not None
    job = run.job

    def waited() -> bool:
        return job.process.poll() is not None or \
            run.target.waits_for_snapshot(longer_than)  # type: ignore[attr-defined]

    assert wait_until(waited, timeout=REACH_S, interval=0.1), \
        "CREATE INDEX CONCURRENTLY never waited for the old snapshot"


class OtherWriter(Fault):
    """Another connection (an application) holds SQLite's write lock from before the job
    starts, for longer than the job waits for it (MIGRATE_LOCK_TIMEOUT)."""

    name, label = "other writer", "another connection holding SQLite's write lock"
    engines = ("sqlite",)
    waits_at_point = False

    def env(self) -> dict[str, str]:
        return {"MIGRATE_LOCK_TIMEOUT": "1"}  # SQLite's busy timeout

    def gate_at(self, point: Point) -> Point | None:
        return None

    def before_start(self, run: Run) -> None:
        run.target.hold_blocker("writer")

    def settle(self, run: Run) -> None:
        run.target.release_blockers()


class StatementTimeout(Fault):
    name, label = "statement timeout", "a statement outlasting the statement timeout"
    engines = ("postgresql", "mariadb")
    waits_at_point = False  # the timeout strikes on its own, maybe before the test looks

    def env(self) -> dict[str, str]:
        return {"MIGRATE_STATEMENT_TIMEOUT": f"{STATEMENT_TIMEOUT_S}s"}

    def bound(self) -> float:
        return STATEMENT_TIMEOUT_S + MARGIN_S


class ReadOnly(Fault):
    name, label = "read-only", "the database turned read-only (a primary demoted, a volume)"

    def inject(self, run: Run) -> None:
        run.target.set_read_only(True)
        probe = getattr(run.target, "read_only_in_new_sessions", None)
        if probe is not None:  # PostgreSQL: the reload reached the server's processes
            assert wait_until(probe, timeout=30), "the server never turned read-only"
        run.target.open_gate()

    def settle(self, run: Run) -> None:
        run.target.set_read_only(False)
        probe = getattr(run.target, "read_only_in_new_sessions", None)
        if probe is not None:
            assert wait_until(lambda: not probe(), timeout=30)


FAULTS = {f.name: f for f in (Sigterm(), Sigkill(), ServerRestart(), SessionTerminated(),
                              DdlLockTimeout(), OldSnapshot(), SigtermWaitingOnSnapshot(),
                              OtherWriter(),
                              StatementTimeout(), ReadOnly())}
