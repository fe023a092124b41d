"""Running the real job as a subprocess, the way an orchestrator does, and reading its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "entrypoint.py"
# Every byte any job printed in this test session: scanned for the password at the end.
OUTPUTS: list[str] = []
# Variables of the developer's shell that would change what the job does.
_JOB_VARIABLES = ("DATABASE_URL", "DATABASE_URL_FILE", "ALEMBIC_CONFIG", "PGHOST", "PGPORT",
                  "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS", "PGAPPNAME", "PGSERVICE",
                  "FLASK_APP")


def job_env(**overrides: str) -> dict[str, str]:
    """A clean environment: no inherited DB variables, JSON logs, no termination log, no
    heads cache."""
    env = {k: v for k, v in os.environ.items()
           if k not in _JOB_VARIABLES and not k.startswith("MIGRATE_")}
    # No heads cache unless a test asks for one: runs must not write into the user's ~/.cache.
    env.update({"MIGRATE_LOG_FORMAT": "json", "MIGRATE_TERMINATION_LOG": "",
                "MIGRATE_CACHE_DIR": "", "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


@dataclass
class Result:
    """A finished run."""

    code: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def names(self) -> list[str]:
        """Event names in order."""
        return [e["event"] for e in self.events]

    def event(self, name: str) -> dict[str, Any]:
        """The first event with this name (fails the test if none)."""
        for e in self.events:
            if e["event"] == name:
                return e
        raise AssertionError(f"no {name!r} event in:\n{self.stderr}")


def parse_events(stderr: str) -> list[dict[str, Any]]:
    """JSON log lines as dicts; non-JSON lines are kept as {'event': None, 'line': ...}."""
    events = []
    for line in stderr.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"event": None, "line": line})
    return events


def run_job(*args: str, env: dict[str, str], timeout: float = 120,
            cwd: Path | None = None, prefix: Sequence[str] = ()) -> Result:
    """Run the job to completion (in `cwd`, else the tests' working directory), behind a
    `prefix` command when given (setpriv; tests.support.network.with_hosts)."""
    done = subprocess.run([*prefix, sys.executable, str(ENTRYPOINT), *args], env=env, text=True,
                          capture_output=True, timeout=timeout, check=False, cwd=cwd)
    OUTPUTS.extend([done.stdout, done.stderr])
    return Result(done.returncode, done.stdout, done.stderr, parse_events(done.stderr))


class RunningJob:
    """A job started in the background; its stderr is read line by line as it comes."""

    def __init__(self, *args: str, env: dict[str, str], prefix: Sequence[str] = ()) -> None:
        self.process = subprocess.Popen(
            [*prefix, sys.executable, str(ENTRYPOINT), *args], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._new_line:
                self.lines.append(line)
                self._new_line.notify_all()

    def wait_for_event(self, name: str, timeout: float = 60,
                       where: Callable[[dict[str, Any]], bool] = lambda _: True,
                       **fields: Any) -> dict[str, Any]:
        """Block until the job logs `name` (with matching fields, and for which `where` holds);
        fail if it exits first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new_line:
            while True:
                for line in self.lines[seen:]:
                    seen += 1
                    for event in parse_events(line):
                        if event.get("event") == name and all(
                                event.get(k) == v for k, v in fields.items()) and where(event):
                            return event
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"job exited ({self.process.returncode}) before "
                                         f"{name!r}:\n{''.join(self.lines)}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {name!r} within {timeout}s:\n{''.join(self.lines)}")
                self._new_line.wait(min(remaining, 0.2))

    def finish(self, timeout: float = 120) -> Result:
        """Wait for exit and collect everything it printed."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        self._reader.join(5)
        stderr = "".join(self.lines)
        OUTPUTS.extend([stdout, stderr])
        return Result(self.process.returncode, stdout, stderr, parse_events(stderr))


def imported_modules(env: dict[str, str], *args: str) -> tuple[Result, list[str]]:
    """Run the job with -X importtime: its result and every module it imported, in order."""
    done = subprocess.run([sys.executable, "-X", "importtime", str(ENTRYPOINT), *args], env=env,
                          text=True, capture_output=True, check=False)
    OUTPUTS.append(done.stderr)
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    return Result(done.returncode, done.stdout, done.stderr, parse_events(done.stderr)), imported


def wait_until(predicate: Any, timeout: float = 30, interval: float = 0.1) -> bool:
    """Poll `predicate` until true or the timeout passes; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = bool(predicate())
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def iter_outputs() -> Iterator[str]:
    """Everything printed by jobs so far."""
    yield from OUTPUTS
