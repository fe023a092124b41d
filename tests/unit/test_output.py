"""Lock keys, secret scrubbing and the termination message."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from migration_job.engines.locking import derive_lock_key
from migration_job.log import EventLog
from migration_job.run.report import TERMINATION_LOG_LIMIT, write_termination_log


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


# Passwords with each kind of character that JSON escapes (or that is plain ASCII).
AWKWARD_PASSWORDS = {
    "ascii": "Plain2Secret",
    "quote": 'pa"ss',
    "backslash": "pa\\ss",
    "tab": "pa\tss",
    "newline": "pa\nss",
    "control": "pa\x01ss",
    "non-ascii": "pässwörd",
    "outside-bmp": "pa\U0001f511ss",
    "everything": 'pä"ss\\wörd\t',
}


def strings_in(value: object) -> Iterator[str]:
    """Every string in a decoded JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


class Shown:
    """An object that JSON cannot hold: the log prints its str()."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


@pytest.mark.parametrize("password", AWKWARD_PASSWORDS.values(), ids=AWKWARD_PASSWORDS.keys())
class TestScrubbedBeforeEncoding:
    """Secrets are masked in the message and in every field value before JSON escapes them."""

    def emit(self, log_format: str, password: str) -> str:
        log, stream = EventLog(), io.StringIO()
        log.stream = stream
        log.configure(log_format=log_format, level="INFO", secrets=(password,))
        log.error("failed", f"boom {password}!", error=f"auth {password}",
                  nested={"list": [1, f"x{password}x", (password,)], password: "as a key"},
                  exception=Shown(f"shown {password}"),
                  traceback=f"Traceback: {password}")
        return stream.getvalue()

    def test_json(self, password: str) -> None:
        line = self.emit("json", password)
        record = json.loads(line)
        assert not [text for text in strings_in(record) if password in text]
        assert password not in line
        assert json.dumps(password)[1:-1] not in line
        assert record["message"] == "boom ***!"
        assert record["nested"]["list"] == [1, "x***x", ["***"]]
        assert record["exception"] == "shown ***"

    def test_text(self, password: str) -> None:
        output = self.emit("text", password)
        assert password not in output
        assert "boom ***!" in output
        assert "Traceback: ***" in output


@pytest.mark.parametrize("password", ["a", "aaaa", "ab", "x1x1"])
class TestTrivialPasswords:
    """A password that text holds by chance (shorter than 4 characters, or fewer than 3
    different ones) is masked where it stands as a password, not in every word."""

    def emit(self, password: str, message: str) -> str:
        log, stream = EventLog(), io.StringIO()
        log.stream = stream
        log.configure(log_format="json", level="INFO", secrets=(password,))
        log.info("database_ready", message, url=f"postgresql://app:{password}@db/app")
        return stream.getvalue()

    def test_other_text_is_left_alone(self, password: str) -> None:
        text = "connected to 127.0.0.1:5432/app as app: a database aaaa ab x1x1 abab"
        record = json.loads(self.emit(password, text))
        assert record["event"] == "database_ready"
        assert record["message"] == text

    @pytest.mark.parametrize("shown", [
        "postgresql://app:{}@db/app", "mysql+pymysql://:{}@db:3306/app",
        "host=db password={} sslmode=require", "PGPASSWORD={}", "password: '{}'",
        '{{"password": "{}"}}', "Access denied for user 'app' using '{}'",
        'invalid value "{}"'])
    def test_masked_where_it_stands_as_the_password(self, password: str, shown: str) -> None:
        record = json.loads(self.emit(password, shown.format(password)))
        assert record["message"] == shown.format("***")
        assert record["url"] == "postgresql://app:***@db/app"


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
