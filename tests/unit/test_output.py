"""Lock keys, secret scrubbing and the termination message."""

from __future__ import annotations

import io
import json
from pathlib import Path

from migration_job.locks import derive_lock_key
from migration_job.log import EventLog
from migration_job.report import TERMINATION_LOG_LIMIT, write_termination_log


class TestLockKey:
    """The key is stable across releases and namespaced by database, schema and table."""

    def test_stable_across_releases(self) -> None:
        # Runners of two releases must agree on the key during a rolling deploy: pinned.
        assert derive_lock_key("app", "public", "alembic_version") == -1141523157068145542

    def test_namespaced_and_in_range(self) -> None:
        keys = {derive_lock_key(d, s, t) for d in ("a", "b") for s in ("public", "x")
                for t in ("alembic_version", "other")}
        assert len(keys) == 8
        assert all(-(2**63) <= k < 2**63 for k in keys)


class TestEventLog:
    """JSON lines carry the contract's fields; secrets never reach the stream."""

    def make(self, log_format: str) -> tuple[EventLog, io.StringIO]:
        log, stream = EventLog(), io.StringIO()
        log.stream = stream
        log.configure(log_format=log_format, level="INFO", secrets=("hunter2", "hunter%32"))
        return log, stream

    def test_json_fields_and_scrubbing(self) -> None:
        log, stream = self.make("json")
        log.info("lock_acquired", "got it with hunter2", attempt=3, url="x:hunter%32@y")
        log.debug("hidden", "below the threshold")
        record = json.loads(stream.getvalue())
        assert {"ts", "level", "event", "message", "attempt"} <= record.keys()
        assert record["event"] == "lock_acquired"
        assert record["level"] == "info"
        assert "hunter" not in stream.getvalue()

    def test_text(self) -> None:
        log, stream = self.make("text")
        log.error("failed", "boom hunter2")
        assert stream.getvalue().endswith("ERROR   boom ***\n")


class TestTerminationLog:
    """Kubernetes reads at most 4 KiB: longer summaries are cut, secrets are masked."""

    def test_truncated_and_scrubbed(self, tmp_path: Path) -> None:
        target = tmp_path / "termination-log"
        write_termination_log(target, 6, "x" * 10_000)
        assert len(target.read_bytes()) == TERMINATION_LOG_LIMIT
        assert target.read_text().startswith("exit 6: xxx")

    def test_none_writes_nothing(self, tmp_path: Path) -> None:
        write_termination_log(None, 0, "done")
        assert list(tmp_path.iterdir()) == []
