"""What every engine's harness offers the fault matrix: a database and a project for one
cell, its state as the invariants read it, the gates, and what a fault needs to act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.faults.shapes import Effect, Point, Shape, revisions
from tests.support.job import REPO, RunningJob, job_env, wait_until
from tests.support.projects import GENERIC_ENV

# How long the harness waits for the job to reach a point, or for the server to drop what a
# finished job left (a killed client's session): generous, since the machine is shared.
REACH_S = 90.0


class Target:
    """One cell's database (a subclass per engine) and its Alembic project."""

    engine = ""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gate_dir = root / "gate"
        self.gate_dir.mkdir(parents=True)
        self.config = root / "project" / "alembic.ini"
        self.port_override: int | None = None
        # What a fault set up around this database (a namespace, a standby, a proxy).
        self.extras: dict[str, Any] = {}

    # -- the project ------------------------------------------------------------------------

    def write_project(self, shape: Shape, gated: Point | None) -> None:
        """The generic env.py (it knows nothing of the job) over the matrix's revisions."""
        versions = self.config.parent / "migrations" / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        (versions.parent / "env.py").write_text(GENERIC_ENV.read_text())
        (versions.parent / "script.py.mako").write_text(
            (REPO / "migrations" / "script.py.mako").read_text())
        self.config.write_text((REPO / "alembic.ini").read_text())
        for name, source in revisions(shape, self.engine, gated).items():
            (versions / f"{name}.py").write_text(source)

    def url(self) -> str:
        """The job's DATABASE_URL."""
        raise NotImplementedError

    def env(self, **overrides: str) -> dict[str, str]:
        """The job's environment: a short wait, a bounded lock wait, JSON logs."""
        return job_env(**{"DATABASE_URL": self.url(), "ALEMBIC_CONFIG": str(self.config),
                          "MIGRATE_WAIT_TIMEOUT": "10", "MIGRATE_LOCK_TIMEOUT": "60",
                          **overrides})

    # -- state ------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """What the version table says (empty when it does not exist)."""
        raise NotImplementedError

    def count(self, effect: Effect) -> int:
        """How many times an effect is present (audit rows can be more than one)."""
        raise NotImplementedError

    def undo(self, effect: Effect) -> None:
        """Remove an effect, as an operator repairing a half-applied revision would."""
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """The job's sessions and locks still present on the server (none once it ended)."""
        raise NotImplementedError

    # -- gates ------------------------------------------------------------------------------

    def hold_gate(self) -> None:
        """Close the gate before the job starts (the server gate: the test takes its lock)."""

    def open_gate(self) -> None:
        """Let the revision go on past its gate (both kinds)."""
        (self.gate_dir / "open").touch()

    def python_gate_reached(self, point: Point) -> bool:
        """Whether the revision's Python gate marked `point` reached."""
        return (self.gate_dir / f"{point.value.replace(' ', '_')}.reached").exists()

    def at_server_gate(self) -> bool:
        """Whether the job's session waits for the test's gate lock."""
        raise NotImplementedError

    def wait_at_gate(self, job: RunningJob, point: Point, python: bool) -> None:
        """Block until the job is held at `point` (fails if it exits first)."""
        def reached() -> bool:
            if job.process.poll() is not None:
                raise AssertionError(f"the job exited ({job.process.returncode}) before the "
                                     f"{point.value} point:\n{''.join(job.lines[-30:])}")
            return self.python_gate_reached(point) if python else self.at_server_gate()
        assert wait_until(reached, timeout=REACH_S, interval=0.05), \
            f"the job never reached the {point.value} point:\n{''.join(job.lines[-30:])}"

    # -- what faults act on ---------------------------------------------------------------

    def terminate_job_session(self) -> None:
        """End the session that holds the migration lock, from the server's side."""
        raise NotImplementedError

    def restart_server(self) -> None:
        """Kill the server (SIGKILL, as a node loss) and start it again."""
        raise NotImplementedError

    def hold_blocker(self, kind: str) -> Any:
        """Open a transaction of the test's that blocks the revision's DDL; return it."""
        raise NotImplementedError

    def release_blockers(self) -> None:
        """End the transactions hold_blocker opened."""

    def set_read_only(self, on: bool) -> None:
        """Turn the database read-only for the job's sessions (and back)."""
        raise NotImplementedError

    def close(self) -> None:
        """Drop the harness's own connections."""
