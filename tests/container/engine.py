"""Small helpers around the docker CLI for the container tests."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import NoReturn

import pytest

from tests.support.job import OUTPUTS, Result, parse_events


def docker(*args: str, check: bool = True, timeout: float = 600,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS`; with check, fail the test with its output if it exits non-zero."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"`docker {' '.join(args)}` exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def no_engine(reason: str) -> NoReturn:
    """Skip loudly, or fail when CI=true: CI must never pass by skipping the engine tests."""
    message = (f"NO DOCKER ENGINE, container tests not run: {reason}\n"
               "Run scripts/docker-engine (needs root on Debian/Ubuntu) and retry.")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}\nCI=true: failing instead of skipping.", pytrace=False)
    pytest.skip(message)


def job_result(code: int, stdout: str, stderr: str) -> Result:
    """A finished container run; its output joins the session's password-leak scan."""
    OUTPUTS.extend([stdout, stderr])
    return Result(code, stdout, stderr, parse_events(stdout + stderr))


def container_result(name: str) -> Result:
    """Exit code and logs of a finished container."""
    code = int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout)
    logs = docker("logs", name)
    return job_result(code, logs.stdout, logs.stderr)


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
    """Poll until `predicate()` is true; fail naming `what` if it never is."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(0.25)
