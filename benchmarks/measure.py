"""Running a command the way an orchestrator does, and measuring what it cost.

Commands are started by benchmarks/launcher.py, a tiny process of its own (see there why):
wall time is its monotonic clock from just before the fork to the reap; CPU time (user +
system) and peak RSS come from the child's own rusage, read with os.wait4 when it is reaped,
so they cover that child only (and any grandchildren it waited for), never the harness.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAUNCHER = Path(__file__).resolve().parent / "launcher.py"


@dataclass(frozen=True)
class Sample:
    """One finished run of one command."""

    wall_s: float
    cpu_s: float
    rss_kb: int
    exit_code: int


class CommandFailed(RuntimeError):
    """A measured command exited non-zero where success was required."""


@dataclass(frozen=True)
class Command:
    """A contender: what to run, with which environment, from where."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path


@dataclass(frozen=True)
class Running:
    """A command the launcher has started."""

    command: Command
    pid: int
    started_ns: int
    output: Path


class Launcher:
    """The harness's handle on the launcher process."""

    def __init__(self, python: Path) -> None:
        self._process = subprocess.Popen([str(python), "-I", "-S", str(LAUNCHER)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def _send(self, *request: Any) -> None:
        assert self._process.stdin is not None
        payload = marshal.dumps(request)
        self._process.stdin.write(len(payload).to_bytes(4, "big") + payload)
        self._process.stdin.flush()

    def _call(self, *request: Any) -> Any:
        self._send(*request)
        assert self._process.stdout is not None
        header = self._process.stdout.read(4)
        if len(header) < 4:
            raise RuntimeError("the launcher died")
        # Only the launcher writes to this pipe: plain tuples of numbers and strings.
        return marshal.loads(self._process.stdout.read(int.from_bytes(header, "big")))  # noqa: S302

    def spawn(self, command: Command, output: Path) -> Running:
        """Start the command with stdout and stderr going to `output`."""
        _, pid, started = self._call("spawn", list(command.argv), dict(command.env),
                                     str(command.cwd), str(output))
        return Running(command, int(pid), int(started), output)

    def reap(self, running: Running) -> Sample:
        """Wait for it to end; its wall time, CPU time, peak RSS and exit code."""
        _, _, code, ended, cpu, rss = self._call("reap", running.pid)
        return Sample(wall_s=(int(ended) - running.started_ns) / 1e9, cpu_s=float(cpu),
                      rss_kb=int(rss), exit_code=int(code))

    def close(self) -> None:
        """Ask the launcher to exit and wait for it."""
        if self._process.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                self._send("exit")
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(10)


_launcher: list[Launcher] = []


def launcher() -> Launcher:
    """The one launcher of this run, started on first use with this interpreter."""
    if not _launcher:
        _launcher.append(Launcher(Path(sys.executable)))
    return _launcher[0]


def close_launcher() -> None:
    """Stop the launcher, if it was started."""
    while _launcher:
        _launcher.pop().close()


def run_once(command: Command, output: Path, *, check: bool = True) -> Sample:
    """Run to completion and measure; raise CommandFailed on a non-zero exit if `check`."""
    sample = launcher().reap(launcher().spawn(command, output))
    if check and sample.exit_code != 0:
        tail = output.read_text(errors="replace")[-2000:]
        raise CommandFailed(f"{command.name} exited {sample.exit_code}:\n{tail}")
    return sample


def machine_busy_s() -> float:
    """CPU time every CPU of the machine has been busy since boot, steal time included.

    From /proc/stat's `cpu` line: user, nice, system, irq, softirq and steal (the time a virtual
    CPU wanted to run but the host ran something else); idle and iowait are not busy. The
    difference over a window, minus what the measured processes used, is what other work took.
    """
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_simple(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
               cwd: Path | None = None, timeout: float = 600) -> str:
    """Run a set-up command (not measured); return its output, raise on failure."""
    done = subprocess.run(list(argv), env=None if env is None else dict(env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {done.returncode}:\n"
                            f"{(done.stdout + done.stderr)[-2000:]}")
    return done.stdout


@dataclass(frozen=True)
class Summary:
    """Medians (and the spread) of a contender's samples."""

    runs: int
    wall_ms: float
    wall_min_ms: float
    wall_max_ms: float
    cpu_ms: float
    rss_mb: float


def summarize(samples: Sequence[Sample]) -> Summary:
    """Medians of wall, CPU and peak RSS; min and max of wall."""
    walls = [s.wall_s * 1000 for s in samples]
    return Summary(
        runs=len(samples),
        wall_ms=statistics.median(walls),
        wall_min_ms=min(walls),
        wall_max_ms=max(walls),
        cpu_ms=statistics.median(s.cpu_s * 1000 for s in samples),
        rss_mb=statistics.median(s.rss_kb / 1024 for s in samples),
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile (fraction in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
