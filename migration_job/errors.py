"""One error type per row of the contract's exit-code table, and how errors read in one line."""


class JobError(Exception):
    """A failure the job reports with one line and a contract exit code."""

    exit_code = 1
    event = "failed"


class ConfigError(JobError):
    """Usage or configuration error: bad flag, missing or malformed URL, bad number."""

    exit_code = 2
    event = "configuration_error"


class DatabaseUnreachable(JobError):
    """The database did not accept a connection within the wait timeout."""

    exit_code = 3
    event = "database_unreachable"


class PoolerNotSupported(ConfigError):
    """A pooler shares server sessions between transactions: a session lock cannot hold."""

    event = "pooler_not_supported"


class ConnectionRejected(JobError):
    """The database refused us for good: authentication, missing database, permissions."""

    exit_code = 4
    event = "connection_rejected"


class ReadOnlyDatabase(ConnectionRejected):
    """The database is a standby or read-only: migrating it cannot work."""

    event = "read_only_database"


class PermissionDenied(ConnectionRejected):
    """The job's role lacks a privilege a revision or the version table needs."""

    event = "permission_denied"


class LockLost(DatabaseUnreachable):
    """The session holding the migration lock ended while the job ran; work was rolled back."""

    event = "lock_lost"


class LockTimeout(JobError):
    """Another runner held the migration lock for longer than the lock timeout."""

    exit_code = 5
    event = "lock_timeout"


class MigrationFailed(JobError):
    """A migration raised; its transaction was rolled back."""

    exit_code = 6
    event = "migration_failed"


class HistoryError(JobError):
    """The revision history and the database disagree: multiple heads, unknown revision."""

    exit_code = 7
    event = "history_error"


class NewerDatabase(HistoryError):
    """The database is ahead of this image's head (the image was rolled back)."""

    event = "newer_database"


class HistoryUnreadable(JobError):
    """The applied-history table is not the one the job created: a column renamed or gone."""

    exit_code = 7
    event = "history_unreadable"


class HistoryDenied(HistoryUnreadable):
    """The job's role lacks a privilege on the applied-history table."""

    exit_code = 4


class PendingMigrations(JobError):
    """`check` found revisions that are not applied yet."""

    exit_code = 8
    event = "migrations_pending"


class Blocked(JobError):
    """A revision kept hitting the DDL lock timeout through every retry; rolled back."""

    exit_code = 9
    event = "ddl_blocked"


class DdlLockTimedOut(Blocked):
    """One try of a revision hit the DDL lock timeout and was rolled back whole: the job
    tries it again (lock_retries.py), and only after the last try is the job Blocked."""

    event = "ddl_lock_timeout"

    def __init__(self, message: str, revision: str) -> None:
        super().__init__(message)
        self.revision = revision


class UnfinishedRevision(JobError):
    """A revision started and did not finish on an engine without transactional DDL."""

    exit_code = 10
    event = "revision_unfinished"


class VerificationFailed(JobError):
    """An applied revision's file changed since it ran (MIGRATE_VERIFY=fail)."""

    exit_code = 11
    event = "verification_failed"


class LintViolations(JobError):
    """`lint`: squawk found a violation in a pending revision's SQL."""

    exit_code = 12
    event = "lint_failed"


class FleetIncomplete(JobError):
    """`fleet`: some targets did not reach the target revision (each result line says why)."""

    exit_code = 13
    event = "fleet_incomplete"


class Interrupted(JobError):
    """SIGTERM or SIGINT stopped the job after it rolled back and released the lock."""

    event = "interrupted"

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def first_line(error: BaseException) -> str:
    """The error's first non-empty line, for one-line messages."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__
