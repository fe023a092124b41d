"""The command table: every entry resolves to the function that runs it."""

from __future__ import annotations

import pytest

from migration_job.cli import parse_options
from migration_job.commands import history as audit
from migration_job.commands import inspect as inspection
from migration_job.commands import mark_repaired as repair
from migration_job.commands import stamp as baseline
from migration_job.commands import upgrade as runner
from migration_job.errors import ConfigError
from migration_job.fleet import run as fleet
from migration_job.review import lint as linting
from migration_job.review import plan as planning
from migration_job.run.worker import load_command
from migration_job.settings.commands import COMMANDS


class TestCommandTable:
    """The table names each command's function and decides which flags it takes."""

    def test_each_command_loads_its_function(self) -> None:
        functions = {name: load_command(command) for name, command in COMMANDS.items()}
        assert functions == {"upgrade": runner.upgrade, "downgrade": runner.downgrade,
                             "wait": inspection.wait, "status": inspection.status,
                             "check": inspection.check, "sql": inspection.sql,
                             "plan": planning.plan, "lint": linting.lint,
                             "history": audit.history, "stamp": baseline.stamp,
                             "mark-repaired": repair.mark_repaired,
                             "fleet": fleet.run_fleet,
                             "manifest": inspection.manifest}

    @pytest.mark.parametrize("command", ["downgrade", "mark-repaired", "stamp"])
    def test_a_revision_command_needs_its_revision(self, command: str) -> None:
        assert parse_options([command, "0003"])["target"] == "0003"
        with pytest.raises(ConfigError, match=f"{command} needs an explicit target revision"):
            parse_options([command])

    @pytest.mark.parametrize(("command", "flag"), [
        (name, flag) for name, command in COMMANDS.items() for flag in command.flags])
    def test_a_command_takes_its_flags(self, command: str, flag: str) -> None:
        spelled = {"target": ["--target", "x"], "json": ["--json"],
                   "from_revision": ["--from", "x"], "replace": ["--replace"]}[flag]
        spelled = ["0001", *spelled] if COMMANDS[command].takes_revision else spelled
        assert parse_options([command, *spelled])[flag]

    def test_a_flag_of_another_command_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="--from does not apply to status"):
            parse_options(["status", "--from", "0001"])

    @pytest.mark.parametrize("argv", [["stamp", "0001", "--replace"],
                                      ["stamp", "--replace", "0001"],
                                      ["--replace", "stamp", "0001"]])
    def test_flags_go_anywhere_around_the_revision(self, argv: list[str]) -> None:
        options = parse_options(argv)
        assert options["target"] == "0001"
        assert options["replace"] is True


class TestBareCommand:
    """No argument, or a bare command word (the image's CMD), is taken without argparse; the
    parser would have found nothing more in it."""

    @pytest.mark.parametrize("argv", [[], *([name] for name, command in COMMANDS.items()
                                            if not command.takes_revision)])
    def test_the_parser_would_add_nothing(self, argv: list[str]) -> None:
        from migration_job.cli import build_parser

        bare = parse_options(argv)
        parsed = vars(build_parser().parse_intermixed_args(argv))
        assert bare == {"command": parsed.pop("command")}
        assert all(value in (None, False) for value in parsed.values()), parsed

    def test_no_argparse_for_the_image_s_command(self) -> None:
        import subprocess
        import sys

        code = ("import sys; from migration_job.cli import parse_options; "
                "parse_options(['upgrade']); print('argparse' in sys.modules)")
        found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True)
        assert found.stdout.strip() == "False"
