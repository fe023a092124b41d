"""The invariants every cell of the fault matrix checks, after the faulted run and after each
rerun; a violation names the cell, the stage, the invariant and the job's last lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

from tests.faults.shapes import AFTER_EFFECTS, BASE_EFFECTS, Effect, Shape
from tests.faults.target import REACH_S, Target
from tests.support.job import Result, wait_until
from tests.support.pgserver import PASSWORD

ORDER = ("0001", "0002", "0003")
# An outcome claimed ("rolled back", "rolled that revision back", "rolls it back"); not an
# intent ("rolling back").
ROLLED_BACK = re.compile(r"\brol(?:led|ls)\b(?:\s+[\w-]+){0,3}?\s+back\b", re.IGNORECASE)
# Words by which a message owns up to what stays committed.
OWNS_UP = ("stays committed", "stay committed", "may be applied", "part of it", "left behind",
           "remains", "partly applied")


@dataclass
class Verdict:
    """The violations found for one cell, raised together at the end."""

    cell: str
    violations: list[str] = field(default_factory=list)
    last_lines: str = ""

    def check(self, holds: bool, stage: str, invariant: str, detail: str) -> None:
        """Record a violation unless `holds`."""
        if not holds:
            self.violations.append(f"[{stage}] {invariant}: {detail}")

    def raise_if_any(self) -> None:
        """Fail the test, saying everything that went wrong."""
        if self.violations:
            raise AssertionError(f"cell {self.cell}: {len(self.violations)} invariant(s) "
                                 "violated\n  " + "\n  ".join(self.violations)
                                 + f"\nthe job's last lines:\n{self.last_lines}")


def last_lines(result: Result, count: int = 12) -> str:
    """The end of what the job printed."""
    return "\n".join((result.stdout + result.stderr).splitlines()[-count:])


def check_run(verdict: Verdict, stage: str, result: Result, codes: tuple[int, ...],
              event: str | None, elapsed: float, bound: float) -> None:
    """Exit code, final line, no traceback, no secret, no hang."""
    verdict.last_lines = last_lines(result)
    printed = result.stdout + result.stderr
    verdict.check(elapsed <= bound, stage, "no hang",
                  f"still running {elapsed:.1f}s after the fault (bound {bound:.0f}s): killed")
    verdict.check(result.code != 1, stage, "never exit 1", "exited 1 (an internal error)")
    verdict.check(result.code in codes, stage, "documented exit code",
                  f"exited {result.code}, expected {' or '.join(map(str, codes))}")
    verdict.check("Traceback" not in printed, stage, "no traceback", "a traceback was printed")
    verdict.check(PASSWORD not in printed and quote(PASSWORD, safe="") not in printed, stage,
                  "no secret", "the password was printed")
    if result.code > 0:
        final = result.events[-1] if result.events else {}
        verdict.check(bool(final.get("event")) and bool(final.get("message")), stage,
                      "one readable final line", "the last line is not the job's summary")
        if event is not None:
            verdict.check(final.get("event") == event, stage, "final event",
                          f"{final.get('event')!r}, expected {event!r}")
    elif result.code == 0:
        wanted = {event} if event else {"upgrade_finished", "already_at_target"}
        verdict.check(bool(wanted & set(result.names())), stage, "success reported",
                      f"no {' or '.join(sorted(wanted))} event")


def check_claims(verdict: Verdict, stage: str, result: Result, kept: list[Effect]) -> None:
    """When part of the revision stays committed, the last line says so, and no line says
    "rolled back" without owning up to it."""
    if not kept:
        return
    if result.code > 0 and result.events:
        last = str(result.events[-1].get("message") or "")
        verdict.check(any(w in last.lower() for w in OWNS_UP), stage, "says what stays",
                      f"{', '.join(e.label for e in kept)} stay(s) committed, and the last "
                      f"line does not say so: {last!r}")
    for event in result.events:
        message = str(event.get("message") or event.get("line") or "")
        if ROLLED_BACK.search(message) and not any(w in message.lower() for w in OWNS_UP):
            verdict.check(False, stage, "no false 'rolled back'",
                          f"{event.get('event')!r} says {message!r}, but "
                          f"{', '.join(e.label for e in kept)} stay(s) committed")


def expected_counts(shape: Shape, applied: str | None,
                    kept: tuple[Effect, ...]) -> dict[Effect, int]:
    """How often each effect must be present when the version table says `applied`."""
    reached = ORDER.index(applied) + 1 if applied else 0
    counts = {e: int(reached >= 1) for e in BASE_EFFECTS}
    counts.update({e: int(reached >= 2 or e in kept) for e in shape.effects})
    counts.update({e: int(reached < 2 and e in kept) for e in shape.traces})
    counts.update({e: int(reached >= 3) for e in AFTER_EFFECTS})
    return counts


def check_state(verdict: Verdict, stage: str, target: Target, shape: Shape,
                applied: str | None, kept: tuple[Effect, ...]) -> list[Effect]:
    """The version table and every revision's effects, exactly as expected; returns the
    effects of 0002 present while 0002 is not applied (what stays of it)."""
    versions = target.versions()
    verdict.check(versions == ([applied] if applied else []), stage, "version table",
                  f"{versions}, expected {[applied] if applied else []}")
    found = {}
    for effect, wanted in expected_counts(shape, applied, kept).items():
        found[effect] = target.count(effect)
        verdict.check(found[effect] == wanted, stage, "side effects exactly as applied",
                      f"{effect.label}: {found[effect]}, expected {wanted}")
    if versions and versions[-1] >= "0002":
        return []
    return [e for e in (*shape.effects, *shape.traces) if found[e]]


def check_leftovers(verdict: Verdict, stage: str, target: Target) -> None:
    """No session or lock of the job's left on the server, once it had time to notice."""
    remaining: list[str] = []

    def gone() -> bool:
        remaining[:] = target.leftovers()
        return not remaining

    verdict.check(wait_until(gone, timeout=REACH_S, interval=0.2), stage,
                  "nothing left behind", "; ".join(remaining))
