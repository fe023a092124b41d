"""fleet's report: outcomes, the summary, and the failed targets within the termination message."""

from __future__ import annotations

from migration_job.fleet.report import incomplete_message, summarise
from migration_job.fleet.targets import Target
from migration_job.fleet.workers import TenantResult
from migration_job.run.report import TERMINATION_LOG_LIMIT


def result(n: int, code: int | None, applied: tuple[str, ...] = ()) -> TenantResult:
    """Tenant n's result."""
    url = f"postgresql://app:secret{n}@db:5432/tenant_{n:04d}"
    return TenantResult(Target(url, url, (f"secret{n}",)), code, "summary", applied, 12.0)


class TestOutcomes:
    """Each exit code reads as one outcome."""

    def test_outcomes(self) -> None:
        found = [result(0, 0, ("0001",)), result(1, 0), result(2, 4), result(3, 143),
                 result(4, None)]
        assert [r.outcome for r in found] == ["migrated", "at_target", "failed", "interrupted",
                                              "not_started"]
        assert summarise("shard 2/4", found, 1.25) == (
            "shard 2/4: 5 target(s) in 1.2 s: 1 migrated, 1 at target, 1 failed, "
            "1 interrupted, 1 not started")


class TestTerminationMessage:
    """The failed targets are listed, masked, within the termination message's 4 KiB."""

    def test_many_failures_fit_and_the_rest_are_counted(self) -> None:
        failed = [result(n, 6) for n in range(500)]
        message = incomplete_message("shard 1/1: 500 target(s)", [result(999, 0), *failed])
        assert len(f"exit 13: {message}\n".encode()) <= TERMINATION_LOG_LIMIT
        assert "postgresql://app:***@db:5432/tenant_0000 (exit 6)" in message
        listed = message.count("(exit 6)")
        assert f"and {500 - listed} more" in message
        assert "secret" not in message
        assert "tenant_0999" not in message
