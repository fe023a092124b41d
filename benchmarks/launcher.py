"""A tiny process that starts the measured commands, so that their peak RSS is their own.

Linux carries a process's peak RSS (ru_maxrss) across execve, and a forked child starts with
its parent's resident pages: a command forked from the harness (tens of MB of Python) would
report at least the harness's size. This launcher runs as `python -I -S launcher.py`, imports
nothing beyond what the interpreter has already loaded (about 5 MB resident), and forks and
reaps on request, timing with CLOCK_MONOTONIC and reading each child's rusage from os.wait4.

Protocol on stdin/stdout: frames of a 4-byte big-endian length and a marshal payload.
  ("spawn", argv, env, cwd, output)  ->  ("spawned", pid, start_ns)
  ("reap", pid)                      ->  ("reaped", pid, exit_code, end_ns, cpu_s, maxrss_kb)
  ("exit",)                          ->  (the launcher exits)
"""

from __future__ import annotations

import marshal
import os
import sys
import time
from typing import IO, Any


def read_frame(stream: IO[bytes]) -> Any:
    """One request, or None at end of input."""
    header = stream.read(4)
    if len(header) < 4:
        return None
    # Only the harness writes to this pipe; marshal carries plain lists, dicts and strings.
    return marshal.loads(stream.read(int.from_bytes(header, "big")))  # noqa: S302


def write_frame(stream: IO[bytes], value: tuple[Any, ...]) -> None:
    """One reply."""
    payload = marshal.dumps(value)
    stream.write(len(payload).to_bytes(4, "big") + payload)
    stream.flush()


def start(argv: list[str], env: dict[str, str], cwd: str, output: str) -> tuple[int, int]:
    """Fork and exec with stdin from /dev/null and stdout + stderr into `output`."""
    started = time.monotonic_ns()
    pid = os.fork()
    if pid == 0:
        try:
            sink = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(sink, 1)
            os.dup2(sink, 2)
            os.chdir(cwd)
            os.execve(argv[0], argv, env)  # noqa: S606  (no shell, on purpose)
        except BaseException as error:  # noqa: BLE001  (report anything, then leave)
            os.write(2, f"launcher: cannot exec {argv[0]}: {error}\n".encode())
        os._exit(127)
    return pid, started


def main() -> None:
    """Serve requests until told to exit or the harness goes away."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while (request := read_frame(requests)) is not None and request[0] != "exit":
        if request[0] == "spawn":
            pid, started = start(*request[1:])
            write_frame(replies, ("spawned", pid, started))
        elif request[0] == "reap":
            pid, status, usage = os.wait4(request[1], 0)
            ended = time.monotonic_ns()
            write_frame(replies, ("reaped", pid, os.waitstatus_to_exitcode(status), ended,
                                  usage.ru_utime + usage.ru_stime, usage.ru_maxrss))


if __name__ == "__main__":
    main()
