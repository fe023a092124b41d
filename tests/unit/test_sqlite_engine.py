"""The SQLite engine's URL forms and its verdict on errors, without a migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from migration_job.engines.sqlite import ENGINE, DirectoryMissing, connect, database_path
from migration_job.errors import ConfigError


class TestUrls:
    """SQLAlchemy's forms name a file; an in-memory database is refused."""

    def test_relative_and_absolute_paths(self, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        assert database_path("sqlite+pysqlite:///data/app.db") == str(tmp_path / "data/app.db")
        assert database_path("sqlite+pysqlite:////srv/app.db?timeout=5") == "/srv/app.db"

    @pytest.mark.parametrize("url", ["sqlite+pysqlite://", "sqlite+pysqlite:///:memory:",
                                     "sqlite+pysqlite:///file:x?mode=memory&uri=true"])
    def test_in_memory_is_a_configuration_error(self, url: str) -> None:
        with pytest.raises(ConfigError, match="in-memory"):
            ENGINE.check_url(url)


class TestErrors:
    """A directory not there yet is waited for; one that cannot be written fails at once."""

    def test_missing_directory_is_transient(self, tmp_path: Path) -> None:
        with pytest.raises(DirectoryMissing) as missing:
            connect(str(tmp_path / "not-mounted" / "app.db"), 1.0)
        assert ENGINE.is_transient(missing.value)

    def test_unwritable_directory_is_permanent(self, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        # Tests may run as root, who may write anywhere: the permission check is stubbed.
        monkeypatch.setattr("migration_job.engines.sqlite.os.access", lambda *_: False)
        with pytest.raises(sqlite3.OperationalError) as refused:
            connect(str(tmp_path / "app.db"), 1.0)
        assert not ENGINE.is_transient(refused.value)
        assert "write to the database's directory" in ENGINE.rejection_advice(refused.value)

    def test_busy_database_advice(self) -> None:
        advice = ENGINE.failure_advice(sqlite3.OperationalError("database is locked"))
        assert advice is not None
        assert "MIGRATE_LOCK_TIMEOUT" in advice
        assert ENGINE.failure_advice(sqlite3.OperationalError("no such table: x")) is None
