"""The wait's first try starts before the project is read (`connecting`), so that the
connection overlaps that work; a session nobody takes is closed, one taken stays open."""

from __future__ import annotations

import pytest

from migration_job.errors import ConfigError
from migration_job.run.wait import connecting, wait_for_database
from migration_job.settings.load import load_settings
from tests.integration.conftest import Database


class TestConnecting:
    def test_a_session_nobody_took_is_closed(self, database: Database) -> None:
        """The project could not be read (any error before `connected`): the try's session,
        whenever it arrives, is closed, not left open for the rest of the run."""
        settings = load_settings({}, {"DATABASE_URL": database.url,
                                      "MIGRATE_TERMINATION_LOG": ""})
        with pytest.raises(ConfigError), connecting(settings) as first:
            raise ConfigError("the project could not be read")
        assert first.ended.wait(30)  # the try hands over its outcome, then it is closed
        session = first.outcome[0]
        assert not isinstance(session, BaseException)
        assert session.connection.closed  # type: ignore[attr-defined]

    def test_the_session_taken_stays_open(self, database: Database) -> None:
        settings = load_settings({}, {"DATABASE_URL": database.url,
                                      "MIGRATE_TERMINATION_LOG": ""})
        with connecting(settings) as first:
            session = wait_for_database(settings, first=first)
        try:
            assert not session.connection.closed  # type: ignore[attr-defined]
            session.ping()
        finally:
            session.close()

