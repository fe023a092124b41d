"""The keepalives the job adds to a PostgreSQL connection, and those it leaves to the URL."""

from __future__ import annotations

import pytest

from migration_job.engines.postgres.partitions import (
    CLIENT_KEEPALIVES,
    keepalive_defaults,
    with_keepalives,
)


class TestJobConnections:
    """The job's own connections: every keepalive parameter the URL does not set."""

    def test_all_for_a_plain_url(self) -> None:
        assert keepalive_defaults("postgresql://app@db/app") == CLIENT_KEEPALIVES

    def test_the_url_keeps_its_own(self) -> None:
        added = keepalive_defaults("postgresql://app@db/app?tcp_user_timeout=60000"
                                   "&keepalives_idle=42")
        assert "tcp_user_timeout" not in added
        assert "keepalives_idle" not in added
        assert added["keepalives_interval"] == CLIENT_KEEPALIVES["keepalives_interval"]

    def test_libpq_variables_get_them_all(self) -> None:
        assert keepalive_defaults("") == CLIENT_KEEPALIVES


class TestEnvPyConnections:
    """Connections env.py opens itself: libpq drivers get them and a connect timeout."""

    @pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
    def test_libpq_drivers(self, driver: str) -> None:
        cparams: dict[str, object] = {"host": "db", "keepalives_idle": "42"}
        with_keepalives(driver, cparams)
        assert cparams["keepalives_idle"] == "42"
        assert cparams["tcp_user_timeout"] == CLIENT_KEEPALIVES["tcp_user_timeout"]
        assert "connect_timeout" in cparams

    def test_asyncpg_has_no_such_settings(self) -> None:
        cparams: dict[str, object] = {"host": "db"}
        with_keepalives("asyncpg", cparams)
        assert cparams == {"host": "db"}
