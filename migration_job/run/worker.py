"""One command on one database, in a worker thread, so that signals are handled at once: its
outcome becomes an exit code and a summary (the CLI and each fleet target run it)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from migration_job.errors import JobError
from migration_job.log import log
from migration_job.settings.commands import COMMANDS, Command

if TYPE_CHECKING:
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings

CommandFunction = Callable[["Settings", "Interruption"], str]

# After a signal, how long the worker gets to roll back and unlock before we exit anyway.
SHUTDOWN_GRACE_S = 15.0


def load_command(command: Command) -> CommandFunction:
    """The function that runs `command`."""
    module, name = command.function.split(":")
    function: CommandFunction = getattr(importlib.import_module(module), name)
    return function


class Outcome(NamedTuple):
    """How the command ended: exit code, summary, and for a failure its last event."""

    exit_code: int
    summary: str
    event: str | None = None
    traceback: str | None = None


def run_in_worker(settings: Settings,
                  command: CommandFunction | None = None) -> tuple[int, str]:
    """Run the command in a worker thread so that signals are handled at once.
    `command` replaces the table's function (a fleet's child runs upgrade with what the
    fleet shares).

    The main thread writes a failure's last line itself, after the worker ended and the
    signal's canceller stopped: so the summary is the last line by design, whatever order
    the threads finish in.
    """
    from migration_job.run.interruption import Interruption

    run = command or load_command(COMMANDS[settings.command])
    interruption = Interruption(settings)
    outcomes: list[Outcome] = []

    def work() -> None:
        try:
            outcomes.append(Outcome(0, run(settings, interruption)))
        except JobError as error:
            outcomes.append(Outcome(error.exit_code, str(error), error.event))
        except Exception as error:  # noqa: BLE001  (exit 1 with the traceback: a bug)
            import traceback

            outcomes.append(Outcome(1, f"unexpected error: {type(error).__name__}: {error}",
                                    "internal_error", traceback.format_exc()))

    interruption.install()
    worker = threading.Thread(target=work, name="job", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
        if interruption.requested.is_set():
            worker.join(SHUTDOWN_GRACE_S)
            break
    interruption.finish()
    outcome = _final_outcome(outcomes[0] if outcomes else None, interruption,
                             gave_up=worker.is_alive())
    _report_failure(outcome)
    log.silence()  # a worker still rolling back after the grace period must not write after it
    return outcome.exit_code, outcome.summary


def _final_outcome(outcome: Outcome | None, interruption: Interruption,
                   gave_up: bool) -> Outcome:
    """The worker's outcome, or after a signal that stopped it, the interruption's."""
    if not interruption.requested.is_set() or (outcome is not None and outcome.exit_code == 0):
        assert outcome is not None
        return outcome
    message = str(interruption.error(SHUTDOWN_GRACE_S if gave_up else None))
    return Outcome(interruption.exit_code, message, "interrupted")


def _report_failure(outcome: Outcome) -> None:
    if outcome.exit_code == 0 or outcome.event is None:
        return
    if outcome.traceback is not None:
        log.error(outcome.event, f"{outcome.summary}; this is a bug, the traceback follows",
                  exit_code=outcome.exit_code, traceback=outcome.traceback)
    else:
        log.error(outcome.event, outcome.summary, exit_code=outcome.exit_code)
