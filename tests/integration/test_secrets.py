"""The real job with awkward secrets: special files, unencoded passwords, a password file."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from migration_job.settings.load import URL_FILE_LIMIT
from tests.support.job import Result, job_env, run_job
from tests.support.pgserver import PostgresServer
from tests.support.queries import run_once

# A configuration error takes well under a second; a job that blocks on a FIFO or reads
# /dev/zero forever is stopped here, so a regression fails the test instead of hanging it.
HANG_GUARD_S = 20
HALVES = ("Gx4Kq", "Vb8Tz")


def special_file(kind: str, tmp_path: Path) -> str:
    """A path that is not a sane URL file."""
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        return str(tmp_path / "fifo")
    if kind == "oversized":
        (tmp_path / "url").write_text("postgresql://u@h/d" + " " * URL_FILE_LIMIT)
        return str(tmp_path / "url")
    return {"dev-zero": "/dev/zero", "directory": str(tmp_path)}[kind]


def assert_one_line_exit_2(result: Result, *words: str) -> str:
    """Exit 2 with exactly one line, naming `words`, and no traceback; returns the line."""
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(("kind", "words"), [
    ("fifo", "is a FIFO, not a regular file"),
    ("dev-zero", "is a character device, not a regular file"),
    ("directory", "is a directory, not a regular file"),
    ("oversized", "is larger than 64 KiB"),
])
def test_url_file_must_be_a_small_regular_file(kind: str, words: str, tmp_path: Path) -> None:
    """Checked before reading: nothing blocks, nothing is read without end."""
    env = job_env(DATABASE_URL_FILE=special_file(kind, tmp_path), MIGRATE_WAIT_TIMEOUT="0")
    assert_one_line_exit_2(run_job(env=env, timeout=HANG_GUARD_S), "DATABASE_URL_FILE", words)


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize(("separator", "encoding"), [("/", "%2F"), ("#", "%23"), ("?", "%3F")])
def test_unencoded_password_character(separator: str, encoding: str, log_format: str) -> None:
    """One line says to URL-encode the character; no piece of the password is printed."""
    url = f"postgresql://user:{separator.join(HALVES)}@127.0.0.1:1/app"
    result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_LOG_FORMAT=log_format),
                     timeout=HANG_GUARD_S)
    assert_one_line_exit_2(result, "URL-encode", encoding)
    output = result.stdout + result.stderr
    assert not [half for half in HALVES if half in output]


def pgpass_line(server: PostgresServer, password: str) -> str:
    """A ~/.pgpass line for the server's superuser; ':' and '\\' escaped as libpq wants."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"127.0.0.1:{server.port}:*:postgres:{escaped}\n"


@pytest.mark.parametrize("right", [True, False], ids=["right-password", "wrong-password"])
def test_password_from_pgpassfile(pg: PostgresServer, tmp_path: Path, right: bool) -> None:
    """libpq reads PGPASSFILE itself; its password shows up nowhere, right or wrong."""
    password = pg.password if right else 'Wr0ng-pä"ss:wörd'
    passfile = tmp_path / "pgpass"
    passfile.write_text(pgpass_line(pg, password))
    passfile.chmod(0o600)
    env = job_env(PGHOST="127.0.0.1", PGPORT=str(pg.port), PGUSER="postgres",
                  PGDATABASE="postgres", PGPASSFILE=str(passfile), MIGRATE_WAIT_TIMEOUT="0")
    result = run_job("wait", env=env, timeout=HANG_GUARD_S)
    assert result.code == (0 if right else 4), result.stderr
    assert password not in result.stdout + result.stderr


@pytest.mark.parametrize("password", ["a", "aaaa"])
def test_a_trivial_password_leaves_the_output_readable(pg: PostgresServer, tmp_path: Path,
                                                       password: str) -> None:
    """A role whose password is one character, or one character repeated: every 'a' of the
    output is not masked, only the password where it stands as one."""
    role = f"trivial_{os.getpid()}_{len(password)}"
    run_once(pg.connect(), f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        termination = tmp_path / "termination"
        right = run_job("wait", env=job_env(
            DATABASE_URL=pg.url().replace("//postgres:" + quote(pg.password, safe=""),
                                          f"//{role}:{password}", 1),
            MIGRATE_TERMINATION_LOG=str(termination)), timeout=HANG_GUARD_S)
        assert right.code == 0, right.stderr
        assert right.names() == ["database_ready"], right.stderr
        assert f"/postgres as {role}" in right.event("database_ready")["message"]
        assert termination.read_text() == "exit 0: database reachable\n"
        wrong = run_job("wait", env=job_env(
            DATABASE_URL=f"postgresql://{role}:{password}{password}@127.0.0.1:{pg.port}/app",
            MIGRATE_WAIT_TIMEOUT="0"), timeout=HANG_GUARD_S)
        assert wrong.code == 4, wrong.stderr
        assert wrong.events[-1]["event"] == "connection_rejected", wrong.stderr
        assert f'password authentication failed for user "{role}"' in wrong.events[-1]["message"]
    finally:
        run_once(pg.connect(), f"DROP ROLE {role}")
