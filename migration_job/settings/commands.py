"""The command table: each command's name, help line, flags, database need and function
(run.worker imports the function when the command runs)."""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    """One command of the job."""

    name: str
    # Its line in --help.
    help: str
    # The options (argparse dests) it takes beyond those every command takes.
    flags: tuple[str, ...]
    needs_database: bool
    # "module:function", imported only when the command runs: --help, a configuration error
    # and the manifest command then load none of the machinery they do not use.
    function: str
    # Whether a revision must follow the command word (`downgrade 0003`); it becomes the target.
    takes_revision: bool = False


COMMANDS = {command.name: command for command in (
    Command("upgrade", "(default) wait for the database, lock, and upgrade to the target revision",
            ("target",), True, "migration_job.commands.upgrade:upgrade"),
    Command("downgrade", "wait, lock, and downgrade to TARGET (required)",
            (), True, "migration_job.commands.upgrade:downgrade", takes_revision=True),
    Command("wait", "wait until the database accepts connections, then exit",
            (), True, "migration_job.commands.inspect:wait"),
    Command("status", "print current revision(s), head(s) and pending revisions",
            ("target", "json"), True, "migration_job.commands.inspect:status"),
    Command("check", "exit 0 at the target, 8 when migrations are pending",
            ("target", "json"), True, "migration_job.commands.inspect:check"),
    Command("sql", "print the SQL that upgrade would run (offline mode)",
            ("target", "from_revision"), True, "migration_job.commands.inspect:sql"),
    Command("plan", "the pending revisions as Markdown for a pull request (--json: data)",
            ("target", "from_revision", "json"), True, "migration_job.review.plan:plan"),
    Command("lint", "PostgreSQL: lint the pending revisions' SQL with squawk (exit 12 on a "
            "violation; --json: data)",
            ("target", "from_revision", "json"), True, "migration_job.review.lint:lint"),
    Command("stamp", "adopt a database created without migrations: set its revision to TARGET "
            "without running revisions, under the lock (--replace: overwrite a revision)",
            ("replace",), True, "migration_job.commands.stamp:stamp", takes_revision=True),
    Command("history", "print the applied-history table: each revision applied, reverted or "
            "stamped, when, by whom (--json: data)",
            ("json",), True, "migration_job.commands.history:history"),
    Command("mark-repaired", "MySQL/MariaDB: after repairing by hand a revision that did not "
            "finish (exit 10), let the job go on (TARGET: that revision)",
            (), True, "migration_job.commands.mark_repaired:mark_repaired", takes_revision=True),
    Command("fleet", "upgrade many databases (MIGRATE_TARGETS_FILE, or a URL template and "
            "names), a few at a time, this shard's share of them",
            ("target",), False, "migration_job.fleet.run:run_fleet"),
    Command("manifest", "write the heads manifest that lets no-op runs skip loading Alembic",
            (), False, "migration_job.commands.inspect:manifest"),
)}
DEFAULT_COMMAND = "upgrade"


def commands_taking(flag: str) -> list[str]:
    """The names of the commands that take a command-only flag."""
    return [command.name for command in COMMANDS.values() if flag in command.flags]
