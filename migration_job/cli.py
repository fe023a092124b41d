"""Command line: flags and environment onto Settings, a worker runs, errors become exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn

from migration_job import __version__
from migration_job.errors import ConfigError
from migration_job.log import log
from migration_job.run.report import write_termination_log
from migration_job.run.worker import run_in_worker
from migration_job.settings.commands import COMMANDS, DEFAULT_COMMAND, commands_taking
from migration_job.settings.load import LOG_FORMATS, UrlError, load_settings, termination_log_path

if TYPE_CHECKING:
    import argparse

# How the flags that only some commands take are spelled (the command table names their dests).
FLAG_SPELLING = {"target": "--target", "json": "--json", "from_revision": "--from",
                 "replace": "--replace"}


def fixed_width_help(prog: str) -> argparse.HelpFormatter:
    """A fixed width spares argparse from asking the terminal (and importing shutil) at start."""
    import argparse

    return argparse.RawDescriptionHelpFormatter(prog, width=100)


def build_parser() -> argparse.ArgumentParser:
    """One flat parser: a command word, its revision (downgrade), and every flag.

    Flat rather than one sub-parser per command: options may follow the command either way,
    and a flat parser builds in a fifth of the time, paid on every start that has flags.
    """
    import argparse

    class ArgumentParser(argparse.ArgumentParser):
        """argparse that raises ConfigError (one line, exit 2) instead of printing usage."""

        def error(self, message: str) -> NoReturn:
            """Turn argparse's complaint into a configuration error."""
            raise ConfigError(f"{message} (see --help)")

    parser = ArgumentParser(
        prog="migration-job", formatter_class=fixed_width_help,
        description="Wait for PostgreSQL, lock, and run Alembic migrations.\n\ncommands:\n"
        + "\n".join(f"  {c.name:<13} {c.help}" for c in COMMANDS.values()))
    parser.add_argument("command", nargs="?", default=DEFAULT_COMMAND, choices=COMMANDS,
                        metavar="COMMAND", help="one of the commands above (default: upgrade)")
    parser.add_argument("--version", action="version", version=f"migration-job {__version__}")
    parser.add_argument("revision", nargs="?", metavar="TARGET",
                        help="downgrade, stamp and mark-repaired only: the revision (required)")
    parser.add_argument("--database-url", help="SQLAlchemy/libpq URL (env DATABASE_URL); "
                        "any user on the machine can read a password given here in the "
                        "process list: prefer DATABASE_URL_FILE")
    parser.add_argument("--config", help="alembic.ini (env ALEMBIC_CONFIG)")
    parser.add_argument("-n", "--name", help="the alembic.ini section of the project, as "
                        "alembic -n (env MIGRATE_INI_SECTION; default alembic)")
    parser.add_argument("-x", action="append", metavar="KEY=VALUE",
                        help="an argument for env.py's context.get_x_argument(), as alembic "
                        "-x; repeatable (env MIGRATE_X_ARGS: space-separated)")
    parser.add_argument("--target", help=f"{_takers('target')}: revision to reach, "
                        "default head (env MIGRATE_TARGET)")
    parser.add_argument("--wait-timeout", help="seconds to wait for the database "
                        "(env MIGRATE_WAIT_TIMEOUT)")
    parser.add_argument("--lock-timeout", help="seconds to wait for the lock "
                        "(env MIGRATE_LOCK_TIMEOUT)")
    parser.add_argument("--ddl-lock-timeout", help="how long a revision's statement may wait "
                        "for a table lock before the revision is retried; 0: no limit "
                        "(env MIGRATE_DDL_LOCK_TIMEOUT, default 2s)")
    parser.add_argument("--ddl-lock-retries", help="retries of a revision that hit the DDL "
                        "lock timeout, then exit 9 (env MIGRATE_DDL_LOCK_RETRIES, default 5)")
    parser.add_argument("--statement-timeout", help="how long a revision's statement may run; "
                        "0: no limit (env MIGRATE_STATEMENT_TIMEOUT, default 0)")
    parser.add_argument("--progress-interval", help="while a revision runs longer than this, "
                        "log its progress this often; 0: never (env MIGRATE_PROGRESS_INTERVAL, "
                        "default 10s)")
    parser.add_argument("--lock-key", help="64-bit advisory lock key (env MIGRATE_LOCK_KEY)")
    parser.add_argument("--log-format", help="text or json (env MIGRATE_LOG_FORMAT)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (env MIGRATE_LOG_LEVEL)")
    parser.add_argument("--json", action="store_true", help=f"{_takers('json')}: JSON output")
    parser.add_argument("--from", dest="from_revision", help=f"{_takers('from_revision')}: "
                        "start from this revision instead of the database's")
    parser.add_argument("--replace", action="store_true", help=f"{_takers('replace')}: "
                        "overwrite the revision the database already holds")
    return parser


def _takers(flag: str) -> str:
    """The commands that take a flag, for its help line."""
    return ", ".join(commands_taking(flag))


def parse_options(argv: Sequence[str]) -> dict[str, object]:
    """Flags as a dict; no command means `upgrade`; each flag checked against its command.

    No argument or a bare command word (the image's CMD) is taken as it is: argparse, with the
    gettext and locale it imports, would cost a no-op at head a few milliseconds for nothing.
    """
    if len(argv) <= 1 and all(word in COMMANDS and not COMMANDS[word].takes_revision
                              for word in argv):
        return {"command": argv[0] if argv else DEFAULT_COMMAND}
    # Intermixed: a flag may come between the command and its revision (`stamp --replace 1`).
    options = vars(build_parser().parse_intermixed_args(list(argv)))
    command = str(options["command"])
    for option, spelling in FLAG_SPELLING.items():
        if options.get(option) and option not in COMMANDS[command].flags:
            raise ConfigError(f"{spelling} does not apply to {command} (see --help)")
    revision = options.pop("revision")
    if COMMANDS[command].takes_revision:
        if not revision:
            raise ConfigError(f"{command} needs an explicit target revision, e.g. "
                              f"`{command} 0003` (there is no default)")
        options["target"] = revision
    elif revision is not None:
        raise ConfigError(f"unexpected argument {revision!r} after {command} (see --help)")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; return the contract's exit code."""
    log.announce(f"migration-job {__version__}", job_version=__version__)
    try:
        settings = load_settings(parse_options(sys.argv[1:] if argv is None else argv),
                                 os.environ)
    except ConfigError as error:
        # A URL that could not be used still has secrets to mask in what follows.
        log.configure(log_format=_log_format(os.environ), level="INFO",
                      secrets=error.secrets if isinstance(error, UrlError) else ())
        message = f"configuration error: {error}"
        log.error(error.event, message, exit_code=error.exit_code)
        write_termination_log(termination_log_path(os.environ), error.exit_code, message)
        return error.exit_code
    log.configure(log_format=settings.log_format, level=settings.log_level,
                  secrets=settings.secrets)
    settings.engine.name_process()
    if settings.command == "fleet":
        from migration_job.fleet.run import run_fleet

        # The fleet takes signals itself and runs each target's worker in a process of its own.
        exit_code, summary = run_fleet(settings)
    else:
        exit_code, summary = run_in_worker(settings)
    write_termination_log(settings.termination_log, exit_code, summary)
    return exit_code


def _log_format(env: Mapping[str, str]) -> str:
    """The configured log format, if valid, for reporting a configuration error in it."""
    wanted = env.get("MIGRATE_LOG_FORMAT", "text").lower()
    return wanted if wanted in LOG_FORMATS else "text"
