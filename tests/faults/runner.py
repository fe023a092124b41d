"""Runs one cell of the fault matrix: the job as a process, held at the cell's point, the fault
injected there; then the invariants, then reruns until the database converges (checked again
after each)."""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

from tests.faults.cells import Cell, Recovery
from tests.faults.faults import MARGIN_S, Run
from tests.faults.invariants import (
    Verdict,
    check_claims,
    check_leftovers,
    check_run,
    check_state,
)
from tests.faults.servers import Servers
from tests.faults.shapes import Point
from tests.faults.target import Target
from tests.support.job import Result, RunningJob, run_job

# A rerun applies two small revisions: anything near this long is a hang.
RERUN_BOUND_S = 60.0 + MARGIN_S
# The SQLite revision's long statement for the INSIDE point: far longer than any cell.
SPIN = str(10**12)


def finish_within(job: RunningJob, bound: float, began: float) -> tuple[Result, float]:
    """The job's result and how long after `began` it ended (killed once past `bound`)."""
    try:
        job.process.wait(timeout=max(0.0, began + bound - time.monotonic()))
        elapsed = time.monotonic() - began
    except subprocess.TimeoutExpired:
        job.process.kill()
        elapsed = float("inf")
    return job.finish(timeout=30), elapsed


def _kill_if_running(job: RunningJob) -> None:
    if job.process.poll() is None:
        job.process.kill()
        job.process.wait(30)


def run_cell(cell: Cell, servers: Servers, root: Path) -> None:
    """Run the cell; raise AssertionError naming every invariant it violated."""
    verdict = Verdict(cell.id)
    with ExitStack() as cleanup:
        target = cell.fault.target(cell.engine, servers, root, cleanup)
        cleanup.callback(target.close)
        gate = cell.fault.gate_at(cell.point)
        target.write_project(cell.shape, gate)
        run = Run(target, cleanup, python_gate=gate is not None
                  and (cell.engine == "sqlite" or (cell.shape.python_between
                                                   and gate is Point.BETWEEN)))
        if gate is not None and not run.python_gate:
            target.hold_gate()
        cell.fault.before_start(run)
        run.job = RunningJob(env=target.env(**cell.fault.env(), FAULT_SPIN=SPIN,
                                            FAULT_GATE_DIR=str(target.gate_dir)))
        cleanup.callback(_kill_if_running, run.job)
        try:
            if gate is not None and cell.fault.waits_at_point:
                target.wait_at_gate(run.job, gate, run.python_gate)
            began = time.monotonic()
            cell.fault.inject(run)
            cell.fault.release(run)
            result, elapsed = finish_within(run.job, cell.fault.bound(), began)
        finally:
            cell.fault.settle(run)
            target.open_gate()
        stage = "faulted run"
        check_run(verdict, stage, result, cell.expect.codes, cell.expect.event, elapsed,
                  cell.fault.bound())
        check_leftovers(verdict, stage, target)
        kept = check_state(verdict, stage, target, cell.shape, cell.expect.applied,
                           cell.expect.kept)
        check_claims(verdict, stage, result, kept)
        converge(verdict, cell, target)
    verdict.raise_if_any()


def rerun(verdict: Verdict, stage: str, target: Target, *args: str, code: int = 0,
          event: str | None = None) -> Result:
    """Run the job to its end and check the run's invariants."""
    began = time.monotonic()
    result = run_job(*args, env=target.env(), timeout=RERUN_BOUND_S)
    check_run(verdict, stage, result, (code,), event, time.monotonic() - began, RERUN_BOUND_S)
    check_leftovers(verdict, stage, target)
    return result


def converge(verdict: Verdict, cell: Cell, target: Target) -> None:
    """Reruns (and the repair the cell's outcome calls for) until the database is at head
    with every revision's effects exactly once."""
    recovery = cell.expect.recovery
    if recovery is Recovery.REPAIR:
        rerun(verdict, "rerun before the repair", target, code=10, event="revision_unfinished")
    if recovery in (Recovery.REPAIR, Recovery.UNDO):
        for effect in (*cell.shape.effects, *cell.shape.traces):
            if target.count(effect):
                target.undo(effect)
    if recovery is Recovery.REPAIR:
        rerun(verdict, "mark-repaired", target, "mark-repaired", "0002",
              event="revision_marked_repaired")
    rerun(verdict, "rerun", target)
    check_state(verdict, "after convergence", target, cell.shape, "0003", ())
