"""The job's settings: one immutable value, read once from the environment (settings.load)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from migration_job import engines

if TYPE_CHECKING:
    from migration_job.engines import Engine
    from migration_job.settings.fleet import FleetSettings


class Settings(NamedTuple):
    """Everything one run needs, validated; built by `load_settings`.

    Immutable records here are NamedTuples rather than frozen dataclasses: importing
    dataclasses costs about 5 ms, paid on every start of a job that often has nothing to do.
    """

    command: str
    # SQLAlchemy URL with the driver the job ships spelled out (engines.job_url); None means
    # libpq's PG* variables.
    database_url: str | None
    alembic_config: Path
    # Revision to upgrade (or downgrade) to.
    target: str
    wait_timeout: float
    lock_timeout: float
    # Advisory lock key; None derives it from database, schema and version table.
    lock_key: int | None
    log_format: str
    log_level: str
    # Where the Kubernetes-style termination summary goes; None writes none.
    termination_log: Path | None
    # `status --json`: machine-readable output.
    json_output: bool = False
    # `sql --from REV`: start offline SQL here instead of at the database's revision.
    from_revision: str | None = None
    # `stamp --replace`: overwrite the revision the version table holds.
    replace: bool = False
    # Strings never to print (the password, raw and URL-encoded).
    secrets: tuple[str, ...] = ()
    # Alembic's -x KEY=VALUE arguments, for env.py's context.get_x_argument().
    x_arguments: tuple[str, ...] = ()
    # Alembic's -n/--name: the alembic.ini section that holds the project.
    ini_section: str = "alembic"
    # The pyproject.toml whose [tool.alembic] holds (part of) the project, if any; it is
    # alembic_config itself when ALEMBIC_CONFIG names it.
    toml_config: Path | None = None
    # FLASK_APP, when the project is that Flask application's Flask-Migrate project; then
    # alembic_config is the alembic.ini in its migrations directory (settings/flask_app.py).
    flask_app: str | None = None
    # The URL as given: env.py gets its driver from it (engines.env_url); None as above.
    given_url: str | None = None
    # `lint`: squawk rules to leave out (MIGRATE_LINT_EXCLUDE), beside the project's own.
    lint_exclude: tuple[str, ...] = ()
    # `lint`: the squawk to run (MIGRATE_LINT_SQUAWK); None finds the one installed.
    squawk: str | None = None
    # MIGRATE_HISTORY: whether each revision applied or reverted is recorded in the
    # applied-history table (migration_job.applied_history.recorder).
    record_history: bool = True
    # MIGRATE_HISTORY_TABLE; None: `<version_table>_history` (in the version table's schema).
    history_table: str | None = None
    # What the deploy says it is (MIGRATE_DEPLOY_REF, else GITHUB_SHA or CI_COMMIT_SHA).
    deploy_ref: str | None = None
    # While revisions run, how long one statement may wait for a table lock (0: unbounded),
    # and how often a revision that timed out is retried before exit 9 (lock_retries.py).
    ddl_lock_timeout: float = 2.0
    ddl_lock_retries: int = 5
    # How long one statement of a revision may run (0: unbounded).
    statement_timeout: float = 0.0
    # While a revision runs longer than this, how often its progress is logged (0: never;
    # progress_watch.py).
    progress_interval: float = 10.0
    # `fleet`: its targets, concurrency and shard.
    fleet: FleetSettings | None = None
    # Where the head read from the revision files is kept between runs; None keeps none.
    heads_cache: Path | None = None
    # MIGRATE_VERIFY: what an applied revision whose file changed since it ran does: warn,
    # fail (exit 11) or off (migration_job.applied_history.verification).
    verify: str = "warn"
    # MIGRATE_ON_NEWER_DATABASE: a database ahead of this image's head (applied_history/skew.py):
    # fail (exit 7) or accept (exit 0).
    on_newer_database: str = "fail"

    @property
    def ini_config(self) -> Path | None:
        """The alembic.ini, if the project has one."""
        return None if self.alembic_config == self.toml_config else self.alembic_config

    @property
    def engine(self) -> Engine:
        """The database engine the URL names."""
        return engines.engine_for(self.database_url)

    @property
    def libpq_dsn(self) -> str:
        """The URL as libpq parses it (no SQLAlchemy driver suffix); '' means PG* variables."""
        if self.database_url is None:
            return ""
        return "postgresql://" + self.database_url.split("://", 1)[1]
