"""The job's PyMySQL connections: lendable to SQLAlchemy, and never waiting without end.

PyMySQL waits for a reply as long as the server takes unless told otherwise, and the server
speaks first: a server that accepts a connection and never answers (frozen, or something
else on its port) would hang the job. So every wait for a reply is bounded on the job's own
clock: the connect, the greeting and the login by the connect's timeout (the wait step's
attempt), the job's own statements by the wait timeout (at least REPLY_TIMEOUT_S), the
lock's polls by what is left of the lock timeout (mysql/lock.py), the session that cancels
after a signal by CANCEL_TIMEOUT_S. Only a revision's statements wait for as long as they
run (mysql/handover.py): the server bounds those (lock_wait_timeout, max_statement_time),
and a signal cancels them.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pymysql
from pymysql.connections import Connection
from pymysql.constants import CLIENT

from migration_job.engines.mysql import errors as mysql_errors
from migration_job.engines.mysql.url import connect_arguments
from migration_job.engines.naming import application_name
from migration_job.errors import ConfigError, first_line

if TYPE_CHECKING:
    from migration_job.engines.inputs import ConnectionSettings

if TYPE_CHECKING:
    PyMySQLConnection = Connection[Any]
else:
    PyMySQLConnection = Connection  # generic only in its type stubs
# Every PyMySQL connection this process opened and has not closed: what a signal interrupts.
OPEN: weakref.WeakSet[LendableConnection] = weakref.WeakSet()
# The least time a reply to the job's own statements may take (they take milliseconds), and
# so the bound when the wait timeout is shorter (0 tries once: not a reason to fail a busy
# server's reply).
REPLY_TIMEOUT_S = 10.0
# The least time a reply may take when a deadline is near: the last poll of the lock still
# gets an answer from a server that is slow rather than frozen.
MIN_REPLY_S = 1.0
# What the server's id of a session is (CONNECTION_ID(), the process list's ID): a thread of
# mysqld's, not a process; labelled so wherever the job names another session.
CONNECTION_ID = "connection id"
# The session that cancels statements after a signal: connected and answered within this, so
# that a frozen server cannot keep the job from exiting.
CANCEL_TIMEOUT_S = 3.0


class LendableConnection(PyMySQLConnection):
    """A PyMySQL session that SQLAlchemy may borrow without closing it (see postgres.py),
    whose replies are awaited for a bounded time (see the module's docstring)."""

    lendable = False
    # How long the connect, the greeting and the login were awaited.
    handshake_timeout = REPLY_TIMEOUT_S
    # While set (time.monotonic()), each statement's reply is awaited until then only.
    reply_by: float | None = None

    @property
    def reply_timeout(self) -> float | None:
        """How long each reply is awaited (None: as long as the server takes)."""
        return self._read_timeout

    def reply_within(self, seconds: float | None) -> None:
        """Await each reply (and each write) for at most `seconds`; None: no limit.

        PyMySQL reads these attributes before each packet: the next statement obeys.
        """
        self._read_timeout = self._write_timeout = seconds

    @contextmanager
    def answered_within(self, seconds: float | None) -> Iterator[None]:
        """Within the block, each reply is awaited `seconds` (None: no limit); afterwards as
        before."""
        standing = self.reply_timeout
        self.reply_within(seconds)
        try:
            yield
        finally:
            self.reply_within(standing)

    @contextmanager
    def answered_by(self, deadline: float) -> Iterator[None]:
        """Within the block, each statement's reply is awaited only until `deadline`
        (time.monotonic(); at least MIN_REPLY_S); afterwards as before."""
        with self.answered_within(self.reply_timeout):
            self.reply_by = deadline
            try:
                yield
            finally:
                self.reply_by = None

    def query(self, sql: str | bytes, unbuffered: bool = False) -> int:
        """Run a statement (every cursor's way to the server), within `reply_by` if set."""
        if self.reply_by is not None:
            self.reply_within(max(MIN_REPLY_S, self.reply_by - time.monotonic()))
        waited = self.reply_timeout
        try:
            return super().query(sql, unbuffered)
        except pymysql.err.OperationalError as error:
            if not mysql_errors.is_no_reply(error):
                raise
            raise mysql_errors.no_reply(waited, "a statement") from None

    def close(self) -> None:
        """Close, unless lent out to SQLAlchemy; closing a closed session does nothing."""
        if self.lendable:
            return
        OPEN.discard(self)
        if self.open:
            super().close()


def connect(settings: ConnectionSettings, *, timeout: float | None = None,
            reply_timeout: float | None = None) -> LendableConnection:
    """Open an autocommit session named after this process (where the server records it).

    `timeout` (default 10 s) bounds the connect, the server's greeting and the login; then
    each reply to a statement is awaited `reply_timeout` (default: `timeout`).
    FOUND_ROWS as SQLAlchemy sets it: Alembic checks that its version-table UPDATE matched
    one row.
    """
    assert settings.database_url is not None
    handshake = max(MIN_REPLY_S, timeout if timeout is not None else REPLY_TIMEOUT_S)
    try:
        session = LendableConnection(
            **connect_arguments(settings.database_url), autocommit=True,
            connect_timeout=math.ceil(handshake), read_timeout=handshake,
            write_timeout=handshake, program_name=application_name(),
            client_flag=CLIENT.FOUND_ROWS)
    except RuntimeError as error:
        if "cryptography" not in str(error):
            raise
        raise pymysql.err.OperationalError(
            mysql_errors.NEEDS_RSA, "the server asks for sha256_password or "
            "caching_sha2_password authentication over a connection without TLS, which needs "
            "the 'cryptography' package that the image leaves out") from None
    except pymysql.err.OperationalError as error:
        if not mysql_errors.is_no_reply(error):
            raise
        raise mysql_errors.no_reply(handshake, "the connection (greeting and login)") from None
    except OSError as error:  # PyMySQL reports the network's as OperationalError: TLS files
        raise ConfigError(f"DATABASE_URL's TLS files (ssl_ca, ssl_cert, ssl_key) cannot be "
                          f"used: {first_line(error)}; give PEM files that match") from None
    session.handshake_timeout = handshake
    session.reply_within(reply_timeout or handshake)
    OPEN.add(session)
    return session
