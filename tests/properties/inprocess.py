"""The job's command line run inside the test's process (migration_job.cli.main), with its
own environment, reading everything it writes: its log lines, stdout and the termination
message. A run costs milliseconds instead of a process start, so properties can afford many
examples; what is checked is the job's real output all the same."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import traceback
from pathlib import Path

from migration_job.cli import main
from migration_job.log import log
from tests.support.job import OUTPUTS, Result, job_env, parse_events


def run_in_process(*argv: str, env: dict[str, str], termination_log: Path,
                   cwd: Path | None = None) -> Result:
    """Run the job's main() with `env` as the whole environment (in `cwd`); an exception that
    escapes it is what a process would print as a traceback and exit 1 with."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    saved_handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    saved_stream = log.stream
    stdout, stderr = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(job_env(**{"MIGRATE_TERMINATION_LOG": str(termination_log), **env}))
    log.stream = stderr
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(argv))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except Exception:  # noqa: BLE001  (what a process would die of, printed as it would)
                stderr.write(traceback.format_exc())
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for number, handler in saved_handlers.items():
            signal.signal(number, handler)
        log.stream = saved_stream
    termination = termination_log.read_text() if termination_log.exists() else ""
    termination_log.unlink(missing_ok=True)
    OUTPUTS.extend([stdout.getvalue(), stderr.getvalue(), termination])
    return Result(code, stdout.getvalue() + termination, stderr.getvalue(),
                  parse_events(stderr.getvalue()))
