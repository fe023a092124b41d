"""The fleet's output: one result line per target, the summary, the failed targets' list."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from migration_job.fleet.workers import TenantResult
from migration_job.log import log
from migration_job.run.report import TERMINATION_LOG_LIMIT

OUTCOMES = ("migrated", "at_target", "failed", "interrupted", "not_started")
# Room left in the termination message for the list of failed targets.
FAILED_LIST_LIMIT = TERMINATION_LOG_LIMIT - 600


def report_result(result: TenantResult) -> None:
    """The target's result line (ERROR when it did not reach the target)."""
    shown, outcome = result.target.shown, result.outcome
    message = (f"{shown}: {outcome.replace('_', ' ')}, {len(result.applied)} revision(s) "
               f"in {result.duration_ms:.0f} ms")
    if result.exit_code not in (0, None):
        message += f" (exit {result.exit_code}: {result.summary})"
    log.emit("INFO" if result.exit_code in (0, None) else "ERROR", "target_finished", message,
             target=shown, outcome=outcome, applied=list(result.applied),
             duration_ms=result.duration_ms, exit_code=result.exit_code)


def counts(results: Sequence[TenantResult]) -> dict[str, int]:
    """How many targets ended each way."""
    found = Counter(result.outcome for result in results)
    return {outcome: found[outcome] for outcome in OUTCOMES}


def summarise(shard: str, results: Sequence[TenantResult], seconds: float) -> str:
    """'shard 1/4: 25 target(s) in 3.1 s: 20 migrated, 4 at target, 1 failed, ...'."""
    parts = ", ".join(f"{n} {outcome.replace('_', ' ')}"
                      for outcome, n in counts(results).items() if n)
    return f"{shard}: {len(results)} target(s) in {seconds:.1f} s" + (f": {parts}" if parts else "")


def incomplete_message(summary: str, results: Sequence[TenantResult]) -> str:
    """The summary and the targets that did not reach the target, within the termination
    message's 4 KiB (the rest counted)."""
    missed = [r for r in results if r.exit_code != 0]
    listed: list[str] = []
    size = 0
    for result in missed:
        entry = (f"{result.target.shown} (exit {result.exit_code})" if result.exit_code
                 else f"{result.target.shown} (not started)")
        if size + len(entry) > FAILED_LIST_LIMIT:
            listed.append(f"and {len(missed) - len(listed)} more")
            break
        listed.append(entry)
        size += len(entry) + 2
    return (f"{summary}; did not reach the target: {', '.join(listed)}; a rerun retries "
            "only these (the others exit at once through the fast path)")
