"""A cell of the fault matrix, as data: engine, revision shape, fault, injection point, and
the outcome the job documents for it (exit codes, final event, what the version table says,
what of the revision stays committed, how reruns converge)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tests.faults.faults import Fault
from tests.faults.shapes import Effect, Point, Shape

KILLED = -9  # SIGKILL: no exit code of the job's own


class Recovery(Enum):
    """How reruns bring the database to head."""

    RERUN = "rerun: exit 0"
    UNDO = "undo what stays, rerun: exit 0"
    REPAIR = "rerun: exit 10; undo what stays, mark-repaired 0002, rerun: exit 0"


@dataclass(frozen=True)
class Expect:
    """The documented outcome of a faulted run."""

    codes: tuple[int, ...]
    event: str | None  # the final line's event (None: killed, or exit 0)
    applied: str | None  # what the version table says after it ("0001": 0002 did not apply)
    kept: tuple[Effect, ...] = ()  # what of 0002 stays committed though 0002 did not apply
    recovery: Recovery = Recovery.RERUN


@dataclass(frozen=True)
class Cell:
    """One engine x shape x fault x point, its expected outcome, and (while an issue-19 fix
    is pending) the defect that makes it fail today."""

    engine: str
    shape: Shape
    fault: Fault
    point: Point
    expect: Expect
    defect: str | None = None

    @property
    def id(self) -> str:
        """engine-shape-fault-point, for pytest and the README."""
        return "-".join(part.replace(" ", "_") for part in (
            self.engine, self.shape.name, self.fault.name, self.point.value))
