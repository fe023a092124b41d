"""The SQLite engine's URL forms and its verdict on errors, without a migration."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from migration_job.engines.sqlite.connection import DirectoryMissing, connect
from migration_job.engines.sqlite.engine import ENGINE, SqliteSession
from migration_job.engines.sqlite.url import Target, connect_target
from migration_job.errors import ConfigError


class TestUrls:
    """SQLAlchemy's forms name a file; an in-memory database is refused."""

    def test_relative_and_absolute_paths(self, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        assert connect_target("sqlite+pysqlite:///data/app.db").path == \
            str(tmp_path / "data/app.db")
        assert connect_target("sqlite+pysqlite:////srv/app.db?timeout=5").path == "/srv/app.db"
        assert connect_target("sqlite+pysqlite:///d/my%20app.db").path == \
            str(tmp_path / "d/my app.db")
        assert connect_target("sqlite+pysqlite:///file:d/my%2520app.db?mode=rw&uri=true") == \
            Target("file:d/my%20app.db?mode=rw", True)
        assert Target("file:d/my%20app.db?mode=rw", True).path == str(tmp_path / "d/my app.db")

    @pytest.mark.parametrize("url", ["sqlite+pysqlite://", "sqlite+pysqlite:///:memory:",
                                     "sqlite+pysqlite:///file:x?mode=memory&uri=true",
                                     "sqlite+pysqlite:///file::memory:?cache=shared&uri=true",
                                     "sqlite+pysqlite:///?uri=true"])
    def test_in_memory_is_a_configuration_error(self, url: str) -> None:
        with pytest.raises(ConfigError, match="in-memory"):
            ENGINE.check_url(url)

    @pytest.mark.parametrize(("url", "reason"), [
        ("sqlite+pysqlite:///app.db?mode=ro", "without uri=true"),
        ("sqlite+pysqlite:///file:app.db?uri=true&uri=true", "repeats"),
        ("sqlite+pysqlite:///app.db?timeout=soon", "not a valid float"),
        ("sqlite+pysqlite://user@host/app.db", "no user, host or port"),
        ("sqlite+pysqlite:///file://elsewhere/app.db?uri=true", "names the host"),
    ])
    def test_urls_sqlalchemy_would_read_otherwise_are_refused(self, url: str,
                                                              reason: str) -> None:
        with pytest.raises(ConfigError, match=reason):
            ENGINE.check_url(url)


class TestErrors:
    """A directory not there yet is waited for; one that cannot be written fails at once."""

    def test_missing_directory_is_transient(self, tmp_path: Path) -> None:
        with pytest.raises(DirectoryMissing) as missing:
            connect(connect_target(f"sqlite:///{tmp_path}/not-mounted/app.db"), 1.0)
        assert ENGINE.is_transient(missing.value)

    def test_unwritable_directory_is_permanent(self, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        # Tests may run as root, who may write anywhere: the permission check is stubbed.
        monkeypatch.setattr("migration_job.engines.sqlite.connection.os.access",
                            lambda *_, **__: False)
        with pytest.raises(sqlite3.OperationalError) as refused:
            connect(connect_target(f"sqlite:///{tmp_path}/app.db"), 1.0)
        assert not ENGINE.is_transient(refused.value)
        assert "write to the database's directory" in ENGINE.rejection_advice(refused.value)

    def test_busy_database_advice(self) -> None:
        advice = ENGINE.failure_advice(sqlite3.OperationalError("database is locked"))
        assert advice is not None
        assert "MIGRATE_LOCK_TIMEOUT" in advice
        assert ENGINE.failure_advice(sqlite3.OperationalError("no such table: x")) is None


class TestReadOnlyReason:
    """A file that turned unwritable since connect: read-only, with what to do about a file
    (not a primary to point at)."""

    @pytest.fixture
    def session(self, tmp_path: Path) -> Iterator[SqliteSession]:
        path = str(tmp_path / "app.db")
        session = SqliteSession(path, connect(connect_target(f"sqlite:///{path}"), 1.0))
        try:
            yield session
        finally:
            session.close()

    def test_writable(self, session: SqliteSession) -> None:
        assert session.read_only_reason() is None

    def test_volume_remounted_read_only(self, session: SqliteSession,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        statvfs = os.statvfs
        monkeypatch.setattr(
            "migration_job.engines.sqlite.connection.os.statvfs",
            lambda path: SimpleNamespace(f_flag=statvfs(path).f_flag | os.ST_RDONLY))
        reason = session.read_only_reason()
        assert reason is not None
        assert "mounted read-only" in reason
        assert "primary" not in ENGINE.read_only_advice
        assert "read-write" in ENGINE.read_only_advice

    def test_file_no_longer_writable(self, session: SqliteSession,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
        # Tests may run as root, who may write anywhere: the permission check is stubbed.
        monkeypatch.setattr("migration_job.engines.sqlite.connection.os.access",
                            lambda *_, **__: False)
        reason = session.read_only_reason()
        assert reason is not None
        assert f"cannot write the database file {session.path}" in reason
