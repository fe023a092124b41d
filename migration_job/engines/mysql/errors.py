"""What a MySQL or MariaDB error means for the job: wait, fail for good, lost, or denied.

PyMySQL puts the server's (or its own client-side) error number in args[0].
"""

from __future__ import annotations

import pymysql

NO_SUCH_TABLE = 1146
UNKNOWN_VARIABLE = 1193
# Not the server's: PyMySQL cannot do MySQL 8's RSA password exchange without `cryptography`.
NEEDS_RSA = 2061
# Refusals that waiting will not fix, and what to do about each (exit 4).
PERMANENT = {
    1044: "grant the job's user access to the database (or fix the database name in the URL)",
    1045: "check the user and password in DATABASE_URL",
    1049: "create the database first, or fix its name in DATABASE_URL",
    1115: "the server does not know the character set DATABASE_URL's charset= names; use "
          "utf8mb4, or leave it out",
    1129: "the server blocked this host after too many connection errors; run "
          "`mariadb-admin flush-hosts` (or FLUSH HOSTS) on the server",
    1130: "the server does not let this user connect from the job's host; grant it access",
    1251: "the server asks for an authentication method the job's driver does not support",
    2059: "the server asks for an authentication plugin the job's driver cannot load",
    NEEDS_RSA: "connect over TLS (add ssl_ca=... to DATABASE_URL), give the job's user "
               "mysql_native_password, or add PyMySQL[rsa] (cryptography) to a derived image",
    3159: "the server requires TLS: add ssl_ca=... (and ssl_verify_cert=true) to DATABASE_URL",
}
# PyMySQL's "Lost connection" (a read failed) and "gone away" (a write failed).
SERVER_LOST = 2013
SERVER_GONE = 2006
# The session is gone: gone away, lost mid-query, killed, server shutting down.
CONNECTION_LOST = {1053, 1927, 2006, 2013, 2055, 4031}
# A statement lacked a privilege.
PERMISSION_DENIED = {1044, 1142, 1143, 1227, 1370}
# Another session held a lock the revision needed: no fault of the migration's.
LOCK_WAIT = {1205, 1213}
# ER_LOCK_WAIT_TIMEOUT: lock_wait_timeout (a table's metadata lock) or InnoDB's row lock wait.
LOCK_WAIT_TIMEOUT = 1205
# MariaDB's max_statement_time ended a statement (ER_STATEMENT_TIMEOUT).
STATEMENT_TIMEOUT = 1969
LOCK_WAIT_ADVICE = ("another session held a lock the revision needed (lock wait timeout or "
                    "deadlock: an application transaction, or a tool holding the table); run "
                    "the job again when it has finished")


def code(error: BaseException) -> int | None:
    """The MySQL error number, if the error carries one."""
    if isinstance(error, pymysql.err.MySQLError) and error.args:
        number = error.args[0]
        return number if isinstance(number, int) else None
    return None


def is_transient(error: BaseException) -> bool:
    """Refused, reset, unresolvable host, server starting or full: worth waiting for."""
    return isinstance(error, pymysql.err.MySQLError) and code(error) not in PERMANENT


def rejection_advice(error: BaseException) -> str:
    """What to do about a refusal for good."""
    return PERMANENT.get(code(error) or 0, "check DATABASE_URL and the server's grants")


def is_connection_lost(error: BaseException) -> bool:
    """Whether the session is gone (as opposed to a statement that failed)."""
    if isinstance(error, pymysql.err.InterfaceError):
        return True  # PyMySQL's word for a connection it has already closed
    return code(error) in CONNECTION_LOST


def is_permission_denied(error: BaseException) -> bool:
    """Whether a failed statement lacked a privilege."""
    return code(error) in PERMISSION_DENIED


def is_lock_timeout(error: BaseException) -> bool:
    """Whether a statement gave up waiting for a lock."""
    return code(error) == LOCK_WAIT_TIMEOUT


def is_statement_timeout(error: BaseException) -> bool:
    """Whether MariaDB's max_statement_time ended a statement."""
    return code(error) == STATEMENT_TIMEOUT


def failure_advice(error: BaseException) -> str | None:
    """For a revision another session blocked, what to do instead of fixing the migration."""
    return LOCK_WAIT_ADVICE if code(error) in LOCK_WAIT else None


class NoReply(pymysql.err.OperationalError):
    """The server did not answer within the job's bound; PyMySQL closed the session."""


def is_no_reply(error: BaseException) -> bool:
    """Whether PyMySQL gave up on a reply (or a write) because its timeout passed."""
    return isinstance(error, NoReply) or (code(error) in (SERVER_LOST, SERVER_GONE)
                                          and isinstance(error.__context__, TimeoutError))


def no_reply(seconds: float | None, what: str) -> NoReply:
    """The lost session, saying that the server did not answer `what` within `seconds`."""
    within = f" within {round(seconds, 1):g} s" if seconds is not None else ""
    return NoReply(SERVER_LOST, f"the server did not answer {what}{within} (timed out: it is "
                   "frozen or overloaded, or what listens there is not a MySQL server)")
