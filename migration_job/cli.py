"""Command line: flags and environment onto Settings, a worker runs, errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from migration_job.config import COMMANDS, Settings, load_settings
from migration_job.errors import ConfigError, JobError
from migration_job.log import log
from migration_job.report import write_termination_log

COMMAND_HELP = {
    "upgrade": "(default) wait for the database, lock, and upgrade to the target revision",
    "downgrade": "wait, lock, and downgrade to TARGET (required)",
    "wait": "wait until the database accepts connections, then exit",
    "status": "print current revision(s), head(s) and pending revisions",
    "check": "exit 0 at the target, 8 when migrations are pending",
    "sql": "print the SQL that upgrade would run (offline mode)",
    "manifest": "write the heads manifest that lets no-op runs skip loading Alembic",
}
# After a signal, how long the worker gets to roll back and unlock before we exit anyway.
SHUTDOWN_GRACE_S = 15.0


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        """Turn argparse's complaint into a configuration error."""
        raise ConfigError(f"{message} (see --help)")


def build_parser() -> ArgumentParser:
    """Commands and their flags; every flag also has an environment variable."""
    common = ArgumentParser(add_help=False)
    suppress = argparse.SUPPRESS
    common.add_argument("--database-url", default=suppress, help="SQLAlchemy/libpq URL "
                        "(env DATABASE_URL, or DATABASE_URL_FILE)")
    common.add_argument("--config", default=suppress, help="alembic.ini (env ALEMBIC_CONFIG)")
    common.add_argument("--wait-timeout", default=suppress,
                        help="seconds to wait for the database (env MIGRATE_WAIT_TIMEOUT)")
    common.add_argument("--lock-timeout", default=suppress,
                        help="seconds to wait for the lock (env MIGRATE_LOCK_TIMEOUT)")
    common.add_argument("--lock-key", default=suppress,
                        help="64-bit advisory lock key (env MIGRATE_LOCK_KEY)")
    common.add_argument("--log-format", default=suppress, help="text or json "
                        "(env MIGRATE_LOG_FORMAT)")
    common.add_argument("--log-level", default=suppress, help="DEBUG, INFO, WARNING, ERROR "
                        "(env MIGRATE_LOG_LEVEL)")
    parser = ArgumentParser(prog="migration-job", parents=[common],
                            description="Wait for PostgreSQL, lock, and run Alembic migrations.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in ("upgrade", "check", "status", "sql"):
        sub = commands.add_parser(name, parents=[common], help=COMMAND_HELP[name],
                                  description=COMMAND_HELP[name])
        sub.add_argument("--target", default=suppress,
                         help="revision to reach, default head (env MIGRATE_TARGET)")
        if name in ("status", "check"):
            sub.add_argument("--json", action="store_true", default=suppress,
                             help="machine-readable output")
        if name == "sql":
            sub.add_argument("--from", dest="from_revision", default=suppress,
                             help="start from this revision instead of the database's")
    down = commands.add_parser("downgrade", parents=[common], help=COMMAND_HELP["downgrade"],
                               description=COMMAND_HELP["downgrade"])
    down.add_argument("target", help="revision to downgrade to (required: no default)")
    for name in ("wait", "manifest"):
        commands.add_parser(name, parents=[common], help=COMMAND_HELP[name],
                            description=COMMAND_HELP[name])
    return parser


def parse_options(argv: Sequence[str]) -> dict[str, object]:
    """Flags as a dict; no command means `upgrade`."""
    args = list(argv)
    asks_for_help = bool({"-h", "--help"} & set(args))
    if not asks_for_help and not any(a in COMMANDS for a in args if not a.startswith("-")):
        args.insert(0, "upgrade")
    return vars(build_parser().parse_args(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; return the contract's exit code."""
    from migration_job.database import APPLICATION_NAME

    os.environ["PGAPPNAME"] = APPLICATION_NAME
    try:
        settings = load_settings(parse_options(sys.argv[1:] if argv is None else argv),
                                 os.environ)
    except ConfigError as error:
        log.error(error.event, f"configuration error: {error}")
        return error.exit_code
    log.configure(log_format=settings.log_format, level=settings.log_level,
                  secrets=settings.secrets)
    exit_code, summary = run_in_worker(settings)
    write_termination_log(settings.termination_log, exit_code, summary)
    return exit_code


def run_in_worker(settings: Settings) -> tuple[int, str]:
    """Run the command in a worker thread so that signals are handled at once."""
    from migration_job.interruption import Interruption
    from migration_job.runner import run

    interruption = Interruption(settings)
    result: list[tuple[int, str]] = []

    def work() -> None:
        try:
            result.append((0, run(settings, interruption)))
        except JobError as error:
            result.append((error.exit_code, str(error)))
            log.error(error.event, str(error), exit_code=error.exit_code)
        except Exception as error:  # noqa: BLE001  (exit 1 with the traceback: a bug)
            import traceback

            log.error("internal_error", f"unexpected error: {type(error).__name__}: {error}; "
                      "this is a bug, the traceback follows", exit_code=1,
                      traceback=traceback.format_exc())
            result.append((1, f"unexpected error: {type(error).__name__}: {error}"))
        finally:
            interruption.worker_done.set()

    interruption.install()
    worker = threading.Thread(target=work, name="job", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
        if interruption.requested.is_set():
            worker.join(SHUTDOWN_GRACE_S)
            break
    interruption.finish()
    if interruption.requested.is_set() and (not result or result[0][0] != 0):
        message = str(interruption.error())
        if worker.is_alive():
            message += " (gave up waiting for the rollback; the server rolls it back)"
        log.error("interrupted", message, exit_code=interruption.exit_code)
        return interruption.exit_code, message
    return result[0]
