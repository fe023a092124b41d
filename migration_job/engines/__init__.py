"""The engine seam: what the job needs from a database engine, and which URL names which engine.

The runner, the commands and the reporting talk only to these interfaces. Each engine lives in
its own module and is imported only when a URL names it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, NamedTuple, Protocol

from migration_job.engines.locking import Holder
from migration_job.engines.naming import application_name
from migration_job.engines.urls import authority_end
from migration_job.errors import ConfigError

if TYPE_CHECKING:
    from migration_job.engines.blocking import Blocker
    from migration_job.engines.inputs import ConnectionSettings, VersionTable
    from migration_job.engines.statement_progress import StatementProgress
    from migration_job.engines.unfinished import UnfinishedLog

__all__ = ["Engine", "Holder", "MigrationLock", "Session", "application_name",
           "authority_end", "engine_for", "env_url", "job_url", "sqlalchemy_scheme",
           "sqlalchemy_url"]


class Scheme(NamedTuple):
    """What a URL scheme means."""

    # The module under migration_job.engines that implements the engine.
    engine: str
    # The SQLAlchemy dialect and driver the job connects with (the driver it ships).
    sqlalchemy: str
    # The SQLAlchemy dialect and driver that the project's env.py gets in sqlalchemy.url: for
    # a synchronous env.py, and for one that runs asyncio. A URL that names a driver gives
    # env.py that driver either way (env.py then fails if it cannot use it: exit 2).
    env: str
    async_env: str


def _named(engine: str, job: str, driver: str) -> Scheme:
    """A scheme that names the driver env.py gets, whatever env.py is."""
    return Scheme(engine, job, driver, driver)


PSYCOPG2 = "postgresql+psycopg2"
# A bare PostgreSQL URL is read by libpq's rules (sslmode=..., PG* variables, passfiles): an
# env.py that runs asyncio gets psycopg 3's async mode, which is libpq too (and SQLAlchemy
# 2.1's own reading of a bare postgresql://); asyncpg reads neither the query nor PGAPPNAME.
BARE_POSTGRES = Scheme("postgres", PSYCOPG2, PSYCOPG2, "postgresql+psycopg_async")
SCHEMES = {
    "postgres": BARE_POSTGRES,
    "postgresql": BARE_POSTGRES,
    "postgresql+psycopg2": _named("postgres", PSYCOPG2, PSYCOPG2),
    # psycopg 3: SQLAlchemy picks its async mode by itself under create_async_engine.
    "postgresql+psycopg": _named("postgres", PSYCOPG2, "postgresql+psycopg"),
    "postgresql+psycopg_async": _named("postgres", PSYCOPG2, "postgresql+psycopg_async"),
    "postgresql+asyncpg": _named("postgres", PSYCOPG2, "postgresql+asyncpg"),
    # MySQL, MariaDB and SQLite: the job ships no async driver (aiomysql, asyncmy, aiosqlite).
    "mysql": _named("mysql", "mysql+pymysql", "mysql+pymysql"),
    "mysql+pymysql": _named("mysql", "mysql+pymysql", "mysql+pymysql"),
    # The tutorial's driver (mysqlclient, a C extension): the job ships PyMySQL instead.
    "mysql+mysqldb": _named("mysql", "mysql+pymysql", "mysql+pymysql"),
    "mariadb": _named("mysql", "mariadb+pymysql", "mariadb+pymysql"),
    "mariadb+pymysql": _named("mysql", "mariadb+pymysql", "mariadb+pymysql"),
    "mariadb+mysqldb": _named("mysql", "mariadb+pymysql", "mariadb+pymysql"),
    "sqlite": _named("sqlite", "sqlite+pysqlite", "sqlite+pysqlite"),
    "sqlite+pysqlite": _named("sqlite", "sqlite+pysqlite", "sqlite+pysqlite"),
}
# Without a URL, libpq's PG* variables say where to connect.
DEFAULT_SCHEME = "postgresql"
SUPPORTED = ("migration-job runs on PostgreSQL (postgresql://...), MySQL and MariaDB "
             "(mysql://... or mariadb://...) and SQLite (sqlite:///path)")
ASYNC_DRIVERS = ("an env.py that runs asyncio works on PostgreSQL, with a bare postgresql:// "
                 "(psycopg's async mode), postgresql+psycopg:// or postgresql+asyncpg://; on "
                 "MySQL, MariaDB and SQLite env.py must be synchronous (the job ships no "
                 "aiomysql, asyncmy or aiosqlite)")
SYNC_DRIVERS = ("a synchronous env.py needs a synchronous driver: a bare postgresql:// "
                "(psycopg2), postgresql+psycopg2:// or postgresql+psycopg://")


class Engine(Protocol):
    """A database engine: how the job reaches it and what its errors mean.

    Every method may be called from any thread; none keeps state between calls.

    errors: the driver's exception classes. Everything the engine's sessions and locks raise
    about the database is one of these; the job catches these and no others, so anything else
    stays a bug (exit 1, with the traceback).

    connect(settings, timeout) opens a new Session in autocommit mode (it never sits idle in a
    transaction holding a snapshot), giving up after about `timeout` seconds (None: the
    driver's default). It raises one of `errors` when the server cannot be reached or refuses.

    is_transient(error): whether an error that connect raised may go away by waiting (refused,
    reset, timed out, a host name not resolvable yet, a server starting up or out of connection
    slots): the wait step retries it until the wait timeout (then exit 3). An error the engine
    does not recognise counts as transient: a wrong guess costs a wait, never a failed deploy.

    rejection_advice(error): for an error that is not transient (authentication failed, a
    missing database or role, no permission, an invalid option), one line that says what to
    do; the job fails at once with exit 4.

    is_connection_lost(error): whether an error means the session is gone (the server ended it,
    or the network broke), as opposed to a statement that failed. A lost session has lost its
    lock: exit 3, never 6.

    is_permission_denied(error): whether a failed statement lacked a privilege (exit 4: a grant
    helps, a fix to the migration does not).

    cancel_own_statements(settings): from a new connection, cancel every statement of this
    process (application_name()) that runs on the server, env.py's own connections included;
    return how many. Called from the signal handler's thread while the worker is blocked in a
    statement: after it, the blocked call raises and the transaction rolls back.

    name_process(): make every connection this process opens carry application_name(), those that
    env.py opens itself included (where the driver can be told so from outside).

    sqlalchemy_connect_args(): connect arguments for the SQLAlchemy engines the job creates.

    check_url(url): raise ConfigError for a (normalised) URL this engine cannot migrate.

    is_lock_timeout(error): whether a statement gave up waiting for a lock because of the
    DDL lock timeout (Session.bounded_waits), or of the database's own when the job sets none:
    the revision is retried (lock_retries.py), and after the last try the job exits 9.

    is_statement_timeout(error): whether the statement timeout (not a signal's cancel) ended
    a statement: exit 6, saying so.

    failure_advice(error): for a revision that failed for a reason of the database's rather
    than the migration's (another writer held the database too long), what to do instead of
    fixing the migration; for a lost session (is_connection_lost), when the server rolls the
    revision back, true to the engine's settings (after a network cut it has not noticed
    yet); else None.

    transactional_ddl: whether a revision's DDL rolls back with its transaction. Where it does
    not (MySQL/MariaDB), a revision that failed or was cut short may be partly applied: the
    job records revisions while they run (Session.unfinished_log) and exits 10.

    reports_progress: whether the server can say how far a running statement got
    (Session.statement_progress). Where it cannot (SQLite), the progress watch opens no
    session at all and logs elapsed time only.

    has_server: whether there is a server that can go silent or name a blocker. Where there
    is none (SQLite, a file), the revision watch opens no session of its own.

    read_only_advice: what to do about a database that Session.read_only_reason() says cannot
    be written (a standby: point the job at the primary; a read-only volume: remount it).
    """

    errors: tuple[type[Exception], ...]
    transactional_ddl: bool
    reports_progress: bool
    has_server: bool
    read_only_advice: str

    def connect(self, settings: ConnectionSettings, timeout: float | None = None) -> Session: ...

    def is_transient(self, error: BaseException) -> bool: ...

    def rejection_advice(self, error: BaseException) -> str: ...

    def is_connection_lost(self, error: BaseException) -> bool: ...

    def is_permission_denied(self, error: BaseException) -> bool: ...

    def cancel_own_statements(self, settings: ConnectionSettings) -> int: ...

    def name_process(self) -> None: ...

    def sqlalchemy_connect_args(self) -> dict[str, object]: ...

    def check_url(self, url: str) -> None: ...

    def is_lock_timeout(self, error: BaseException) -> bool: ...

    def is_statement_timeout(self, error: BaseException) -> bool: ...

    def failure_advice(self, error: BaseException) -> str | None: ...


class Session(Protocol):
    """One connection of the job's to the database, in autocommit mode.

    server_version: the server's version, for the log.

    ping() runs a trivial query: the wait step's proof that the server answers.

    describe() is 'host:port/database as user', never a credential.

    revisions(project) reads the project's version table: its revision ids, sorted; () when the
    table does not exist yet. It never creates the table.

    read_only_reason() says why this session cannot write (a standby, read-only transactions,
    a SQLite file on a volume remounted read-only), or None. The job refuses such a database
    before taking the lock, and names it when a run fails after it turned read-only (exit 4,
    with Engine.read_only_advice).

    prepare_for_migrations() sets up a session that will hold the lock and run the revisions:
    no idle timeout may end it while Alembic loads or between revisions, and where the server
    can, it notices a dead client within seconds, so that a killed job's transaction ends.

    refuse_shared_sessions(settings) raises PoolerNotSupported when this session reaches the
    server through a pooler that shares server sessions between clients, where a session lock
    cannot hold. It may open a second session to find out.

    lock(key, project, sleep) is the migration lock on this session, not yet acquired. A key of
    None derives it from the server's database and schema and the project's version table, so
    that two projects on one server never share a lock. `sleep` is how the lock waits between
    tries (a signal cuts it short).

    lent_to_sqlalchemy(url) is a context manager: within it, every SQLAlchemy connection to
    `url` through the engine's driver (the connection the job hands env.py, and an engine that
    env.py builds itself) gets this very session, so that the revisions run on the session that
    holds the lock and losing one loses both. Afterwards the session is back in autocommit mode.

    bounded_waits(lock_timeout, statement_timeout) is a context manager: within it, each
    statement of this session (and, where the driver allows, of the connections env.py opens
    itself) waits at most `lock_timeout` seconds for a lock and runs at most
    `statement_timeout` seconds; 0 leaves the server's own setting. Afterwards the session's
    settings are as before. Where the engine has no such limit it does nothing (the README's
    engine matrix says where).

    blockers() names the sessions that hold the locks this process's statements wait for
    (engines.blocking.Blocker), asked from this session (a second one: the revisions' own
    session is busy waiting); () where the server cannot say.

    statement_progress() says how far the statements that this process runs on its other
    sessions got, in the server's own figures (engines.statement_progress.StatementProgress:
    a phase, and units done of a total or a percentage where the phase counts them), asked
    from this session (a second one: the revisions' own session is busy running them); a
    statement the server reports nothing for is left out, and () where it reports nothing at
    all (Engine.reports_progress is False).

    unfinished_log(project) is where revisions that started and did not finish are recorded
    (engines.unfinished), on an engine without transactional DDL; None on the others.

    sever() cuts the session from another thread, so that a statement blocked on it fails at
    once, and returns True: the blocker watch's last resort when the server has stopped
    answering (behind a TCP proxy, no keepalive tells). The server may hold its transaction
    and locks until it notices. An engine where a revision cut short needs a repair (no
    transactional DDL) does nothing and returns False: a false alarm must never cost one.

    close() ends the session; the server then releases its lock.

    close_and_wait(timeout) closes the session, and returns once the server has ended it (at
    most `timeout` seconds later), so that a session opened in its place never counts beside
    it against the server's connection limit: how a fleet's spare connection changes hands.
    Where the client cannot see that end (MySQL and MariaDB count a session until its thread
    is gone, after its socket closed) or there is no server, it only closes.
    """

    @property
    def server_version(self) -> int: ...

    def ping(self) -> None: ...

    def describe(self) -> str: ...

    def revisions(self, project: VersionTable) -> tuple[str, ...]: ...

    def table_rows(self, schema: str | None, name: str,
                   columns: tuple[str, ...]) -> list[tuple[object, ...]]: ...

    def read_only_reason(self) -> str | None: ...

    def prepare_for_migrations(self) -> None: ...

    def refuse_shared_sessions(self, settings: ConnectionSettings) -> None: ...

    def lock(self, key: int | None, project: VersionTable,
             sleep: Callable[[float], None]) -> MigrationLock: ...

    def lent_to_sqlalchemy(self, url: str) -> AbstractContextManager[None]: ...

    def bounded_waits(self, lock_timeout: float,
                      statement_timeout: float) -> AbstractContextManager[None]: ...

    def blockers(self) -> tuple[Blocker, ...]: ...

    def statement_progress(self) -> tuple[StatementProgress, ...]: ...

    def unfinished_log(self, project: VersionTable) -> UnfinishedLog | None: ...

    def sever(self) -> bool: ...

    def close(self) -> None: ...

    def close_and_wait(self, timeout: float) -> None: ...


class MigrationLock(Protocol):
    """The lock that all runners against one database agree on, held by one session.

    key: the signed 64-bit key that names the lock (MIGRATE_LOCK_KEY, or derived).

    session: the session that holds it; the revisions run on it.

    acquire(timeout, needless) polls until the lock is held (True), or returns False as soon as
    `needless()` (asked before each try) says it is no longer needed, or raises LockTimeout
    after `timeout` seconds, naming the holder. While waiting it logs `waiting_for_lock` with
    the holder every few seconds. It never blocks inside the database for longer than one
    poll, so a signal stops it at once. It raises PoolerNotSupported when the session already
    holds the lock it never took (a pooler shares the server session).

    verify() raises LockLost unless this session still holds the lock. Each revision calls it
    inside its transaction, before it commits.

    release() unlocks if held and logs `lock_released`, or warns `lock_release_failed` when
    the session did not hold it any more; it is safe to call when not held, and does nothing
    once the session has ended. It returns whether the job let go of the lock (or never held
    it): False when it is left to the server, which frees it when its session ends (process
    killed, node lost) or once it notices the session is gone (a partition).

    holder() says who holds the lock, or None when nobody does.

    revision_gate() is the statement (SQLAlchemy text with :name parameters, which every
    driver's paramstyle can take) and parameters each revision's transaction runs first:
    a transaction-level lock that makes another runner's revision wait until this one ends,
    even on a connection the job could not lend its session to. None where the engine has
    no transaction-level lock: then the lock's verify() before each commit is the guard.

    held_check() is a condition (SQLAlchemy text, :name parameters) true while the session
    that evaluates it holds the lock: a statement run on the lock's own session (the
    revision's history row) tests it in its own round trip instead of verify()'s. None where
    only verify() can tell.
    """

    key: int

    @property
    def session(self) -> Session: ...

    def acquire(self, timeout: float, needless: Callable[[], bool] | None = None) -> bool: ...

    def verify(self) -> None: ...

    def release(self) -> bool: ...

    def holder(self) -> Holder | None: ...

    def revision_gate(self) -> tuple[str, dict[str, int]] | None: ...

    def held_check(self) -> tuple[str, dict[str, int]] | None: ...


def sqlalchemy_scheme(scheme: str) -> str:
    """The SQLAlchemy scheme the job connects with for a URL scheme; ConfigError if none."""
    known = SCHEMES.get(scheme)
    if known is not None:
        return known.sqlalchemy
    dialect = scheme.split("+", 1)[0]
    if "+" in scheme and dialect in SCHEMES:
        engine = SCHEMES[dialect].engine
        accepted = [name for name, known in SCHEMES.items() if known.engine == engine]
        drivers = sorted({driver.split("+", 1)[1] for name in accepted
                          for driver in (SCHEMES[name].env, SCHEMES[name].async_env)})
        raise ConfigError(f"DATABASE_URL driver {scheme!r} is not supported; use "
                          f"{_either(f'{name}://' for name in accepted)} (env.py gets "
                          f"{_either(drivers)})")
    raise ConfigError(f"DATABASE_URL scheme {scheme!r} is not supported; {SUPPORTED}")


def _either(items: Iterable[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    listed = list(items)
    return " or ".join(filter(None, (", ".join(listed[:-1]), listed[-1])))


def sqlalchemy_url(url: str | None) -> str:
    """The URL SQLAlchemy connects with: the job's, or the default engine's bare scheme."""
    if not url:
        return f"{SCHEMES[DEFAULT_SCHEME].sqlalchemy}://"
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{_one_authority(rest)}"


def _one_authority(rest: str) -> str:
    """`rest` (a URL after '://') as SQLAlchemy reads it: libpq's several hosts
    (host1:port1,host2:port2, PostgreSQL only) go into its query."""
    if "," not in rest[:authority_end(rest)].rpartition("@")[2]:
        return rest
    from migration_job.engines.postgres.drivers import hosts_in_query

    return hosts_in_query(rest)


def job_url(given: str) -> str:
    """The URL the job itself connects with: the driver it ships, and the query as that
    driver reads it (an asyncpg URL's own parameters mean something else to libpq)."""
    scheme, rest = given.split("://", 1)
    known = SCHEMES[scheme.lower()]
    if known.env == "postgresql+asyncpg":
        from migration_job.engines.postgres.drivers import libpq_query_from_asyncpg

        rest = libpq_query_from_asyncpg(rest)
    return f"{known.sqlalchemy}://{rest}"


def env_url(given: str | None, async_env: bool) -> str:
    """The URL the project's env.py gets: the URL as the user gave it (None: libpq's PG*
    variables), with the driver that SCHEMES names for this env.py."""
    scheme, rest = (given or f"{DEFAULT_SCHEME}://").split("://", 1)
    known = SCHEMES[scheme.lower()]
    return f"{known.async_env if async_env else known.env}://{_one_authority(rest)}"


def engine_for(url: str | None) -> Engine:
    """The engine a (normalised) URL names; None means PostgreSQL through libpq's variables."""
    scheme = sqlalchemy_url(url).split("://", 1)[0]
    module = importlib.import_module(f"migration_job.engines.{SCHEMES[scheme].engine}.engine")
    engine: Engine = module.ENGINE
    return engine
