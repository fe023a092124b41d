"""Every bad configuration input: exit 2, exactly one line, no traceback, no password."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.job import job_env, run_job

URL = "postgresql://app:TopSecret%21@127.0.0.1:1/app"
GOOD = {"DATABASE_URL": URL}


def bad_inputs(tmp: Path) -> list[tuple[str, list[str], dict[str, str], str]]:
    """(id, args, environment, expected words) for each configuration mistake."""
    empty = tmp / "empty"
    if tmp.is_dir():
        empty.write_text("  \n")
    return [
        ("no-url", [], {}, "no database configured"),
        ("malformed-url", [], {"DATABASE_URL": "not a url"}, "malformed"),
        ("bad-port", [], {"DATABASE_URL": "postgresql://u:TopSecret%21@h:99x/d"}, "malformed"),
        ("other-database", [], {"DATABASE_URL": "mssql://u:TopSecret%21@h/d"}, "PostgreSQL"),
        ("url-file-missing", [], {"DATABASE_URL_FILE": str(tmp / "nope")}, "cannot be read"),
        ("url-file-empty", [], {"DATABASE_URL_FILE": str(empty)}, "is empty"),
        ("url-and-file", [], {**GOOD, "DATABASE_URL_FILE": str(empty)}, "both set"),
        ("wait-timeout", [], {**GOOD, "MIGRATE_WAIT_TIMEOUT": "soon"}, "MIGRATE_WAIT_TIMEOUT"),
        ("lock-timeout", ["--lock-timeout", "-5"], GOOD, "MIGRATE_LOCK_TIMEOUT"),
        ("ddl-lock-timeout", ["--ddl-lock-timeout", "2 seconds"], GOOD,
         "MIGRATE_DDL_LOCK_TIMEOUT"),
        ("ddl-lock-retries", [], {**GOOD, "MIGRATE_DDL_LOCK_RETRIES": "-1"},
         "MIGRATE_DDL_LOCK_RETRIES"),
        ("statement-timeout", [], {**GOOD, "MIGRATE_STATEMENT_TIMEOUT": "forever"},
         "MIGRATE_STATEMENT_TIMEOUT"),
        ("progress-interval", ["--progress-interval", "often"], GOOD,
         "MIGRATE_PROGRESS_INTERVAL"),
        ("lock-key", [], {**GOOD, "MIGRATE_LOCK_KEY": "abc"}, "MIGRATE_LOCK_KEY"),
        ("lock-key-range", [], {**GOOD, "MIGRATE_LOCK_KEY": str(2**64)}, "64-bit"),
        ("log-format", [], {**GOOD, "MIGRATE_LOG_FORMAT": "xml"}, "MIGRATE_LOG_FORMAT"),
        ("log-level", [], {**GOOD, "MIGRATE_LOG_LEVEL": "LOUD"}, "MIGRATE_LOG_LEVEL"),
        ("config-missing", [], {**GOOD, "ALEMBIC_CONFIG": str(tmp / "x.ini")}, "ALEMBIC_CONFIG"),
        ("config-not-ini", [], {**GOOD, "ALEMBIC_CONFIG": str(empty)}, "alembic.ini"),
        ("unknown-flag", ["--frobnicate"], GOOD, "--frobnicate"),
        ("unknown-command", ["migrate-everything"], GOOD, "migrate-everything"),
        ("downgrade-no-target", ["downgrade"], GOOD, "target"),
        ("flag-of-another-command", ["upgrade", "--json"], GOOD, "--json"),
        ("extra-argument", ["status", "0003"], GOOD, "'0003'"),
        ("empty-target", [], {**GOOD, "MIGRATE_TARGET": " "}, "MIGRATE_TARGET"),
    ]


CASES = [case[0] for case in bad_inputs(Path("/nonexistent"))]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_bad_input_exits_2_with_one_line(case: str, log_format: str, tmp_path: Path) -> None:
    """Each mistake is named in one line; nothing else is printed."""
    _, args, env, words = next(c for c in bad_inputs(tmp_path) if c[0] == case)
    env = {"MIGRATE_LOG_FORMAT": log_format, **env}
    result = run_job(*args, env=job_env(**env))
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert "TopSecret" not in result.stderr


def test_help_lists_every_command() -> None:
    """--help exits 0 and names each command of the contract."""
    result = run_job("--help", env=job_env())
    assert result.code == 0
    for command in ("upgrade", "downgrade", "wait", "status", "check", "sql", "manifest"):
        assert command in result.stdout


class TestConfigurationErrorReport:
    """A configuration error is reported like every other failure: in the chosen format, and
    in the termination message."""

    def test_termination_message_written(self, tmp_path: Path) -> None:
        message_file = tmp_path / "termination-log"
        result = run_job(env=job_env(MIGRATE_TERMINATION_LOG=str(message_file),
                                     DATABASE_URL="mssql://u:TopSecret@h/db"))
        assert result.code == 2, result.stderr
        written = message_file.read_text()
        assert written.startswith("exit 2: configuration error:")
        assert "TopSecret" not in written

    def test_json_line_when_json_is_asked(self) -> None:
        result = run_job(env=job_env(MIGRATE_LOG_FORMAT="json", MIGRATE_TARGET=" "))
        assert result.code == 2
        assert [e["event"] for e in result.events] == ["configuration_error"]
        assert result.events[0]["exit_code"] == 2
