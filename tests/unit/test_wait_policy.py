"""The retry policy: what is retried, how long it sleeps (sleep injected, never real)."""

from __future__ import annotations

import psycopg2
import pytest

from migration_job.engines.postgres.errors import is_transient
from migration_job.errors import DatabaseUnreachable
from migration_job.run.wait import BACKOFF_INITIAL_S, BACKOFF_MAX_S, wait_for_database
from migration_job.settings.load import load_settings
from tests.support.pgserver import free_port

# Messages as libpq and the server word them.
TRANSIENT = [
    'connection to server at "127.0.0.1", port 5 failed: Connection refused',
    'could not translate host name "db" to address: Name or service not known',
    "connection to server failed: FATAL:  the database system is starting up",
    "FATAL:  sorry, too many clients already",
    "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
    "server closed the connection unexpectedly",
    "timeout expired",
]
PERMANENT = [
    'FATAL:  password authentication failed for user "app"',
    'FATAL:  database "app" does not exist',
    'FATAL:  role "app" does not exist',
    'FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "app", database "app"',
    "FATAL:  permission denied for database app",
    "fe_sendauth: no password supplied",
]


class TestClassification:
    """Transient errors are retried; authentication, missing databases and grants are not."""

    @pytest.mark.parametrize("message", TRANSIENT)
    def test_transient(self, message: str) -> None:
        assert is_transient(psycopg2.OperationalError(message))

    @pytest.mark.parametrize("message", PERMANENT)
    def test_permanent(self, message: str) -> None:
        assert not is_transient(psycopg2.OperationalError(message))

    def test_programming_errors_are_not_retried(self) -> None:
        assert not is_transient(psycopg2.ProgrammingError("invalid dsn"))


class TestBackoff:
    """Against a closed port: jittered exponential sleeps, capped at about a second."""

    def test_sleeps_are_capped_and_grow(self) -> None:
        settings = load_settings({}, {"DATABASE_URL": f"postgresql://u@127.0.0.1:{free_port()}/d",
                                      "MIGRATE_WAIT_TIMEOUT": "1"})
        sleeps: list[float] = []
        with pytest.raises(DatabaseUnreachable, match="not reachable after 1s"):
            wait_for_database(settings, sleep=sleeps.append)
        assert len(sleeps) >= 10
        assert all(0 <= s <= BACKOFF_MAX_S for s in sleeps)
        assert BACKOFF_MAX_S <= 1.0  # a ready database is noticed within a second
        assert sleeps[0] == BACKOFF_INITIAL_S  # starts small: the first retries come quickly
        assert max(sleeps[:2]) < BACKOFF_MAX_S
