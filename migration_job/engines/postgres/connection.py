"""The job's libpq sessions: opened autocommit, with keepalives, lendable to SQLAlchemy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg2
from psycopg2.extensions import connection

from migration_job.engines.naming import application_name
from migration_job.engines.postgres.partitions import keepalive_defaults

if TYPE_CHECKING:
    from migration_job.engines.inputs import ConnectionSettings


class LendableConnection(connection):
    """A libpq session that SQLAlchemy may borrow without closing it.

    The session that holds the migration lock also runs the revisions (postgres/handover.py).
    SQLAlchemy closes each connection env.py is done with; while `lendable`, close() does
    nothing, because the session must keep the lock until the job lets go.
    """

    lendable = False
    # While revisions run: the settings that bound their statements (postgres/waits.py), for
    # the connections env.py opens itself.
    revision_settings: dict[str, str] | None = None

    def close(self) -> None:
        """Close, unless lent out to SQLAlchemy."""
        if not self.lendable:
            super().close()


def connect(settings: ConnectionSettings, *, timeout: float | None = None) -> LendableConnection:
    """Open an autocommit session: it never sits idle in a transaction holding a snapshot.

    Nothing goes in the startup packet but libpq's usual parameters and application_name:
    poolers such as PgBouncer reject others (`options`) with their stock settings. The
    keepalives (postgres/partitions.py) are the client's own: they never reach the server.
    """
    kwargs: dict[str, Any] = {"application_name": application_name(),
                              "connection_factory": LendableConnection,
                              **keepalive_defaults(settings.libpq_dsn)}
    if timeout is not None:
        # libpq's connect_timeout is whole seconds, minimum 2.
        kwargs["connect_timeout"] = max(2, int(timeout + 0.999))
    session: LendableConnection = psycopg2.connect(settings.libpq_dsn, **kwargs)
    session.autocommit = True
    return session
