"""The GitHub Action's step (action.yml): run the job's image, turn its result into outputs.

It runs on the runner's own `python3` (standard library only, Python 3.9+). Inputs come as
`INPUT_*` variables (action.yml maps them); results go to the files that `GITHUB_OUTPUT` and
`GITHUB_STEP_SUMMARY` name. The database URL reaches `docker run` in its environment, never on
a command line, and is masked in the log before anything runs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, unquote, urlsplit

# The README's exit-code table: what each code means and whether a retry helps (a unit test
# holds the two side by side). "" for retry: neither a failure nor retryable.
EXIT_CODES: dict[int, tuple[str, str]] = {
    0: ("done, or nothing to do", ""),
    1: ("unexpected internal error", "no"),
    2: ("usage or configuration error", "no"),
    3: ("database not reachable within the wait timeout", "yes"),
    4: ("connection refused for good", "no"),
    5: ("lock not acquired within the lock timeout", "yes"),
    6: ("a migration failed", "no"),
    7: ("history problem", "no"),
    8: ("migrations are pending", ""),
    9: ("blocked: a revision kept hitting the DDL lock timeout", "yes, later"),
    10: ("a revision started and did not finish", "no"),
    11: ("verification failed", "no"),
    12: ("squawk found a violation in a pending revision's SQL", "no"),
    13: ("one or more targets of the shard did not reach the target revision", "yes"),
    130: ("interrupted by SIGINT / SIGTERM", "yes"),
    143: ("interrupted by SIGINT / SIGTERM", "yes"),
}
# Where the job writes its summary line (its termination message) inside the container.
SUMMARY_IN_CONTAINER = "/run/migration-job/summary"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The signals a cancelled workflow sent this step: passed on to the job; no run starts after.
RECEIVED: list[int] = []


class ActionError(Exception):
    """A mistake in the action's inputs: exit 2, like the job's configuration errors."""


@dataclass(frozen=True)
class Inputs:
    """The action's inputs, validated."""

    command: str
    args: list[str]
    image: str
    network: str
    accept: frozenset[int]
    # Variables for the container; their values reach docker through its environment.
    variables: dict[str, str]

    @classmethod
    def from_environment(cls, env: dict[str, str]) -> Inputs:
        """Read and check the INPUT_* variables that action.yml sets."""
        image = env.get("INPUT_IMAGE", "").strip()
        if not image:
            raise ActionError("the input `image` is required: the job's image, or yours built "
                              "on it")
        variables = extra_environment(env.get("INPUT_ENV", ""))
        named = {"DATABASE_URL": env.get("INPUT_DATABASE_URL", "").strip(),
                 "MIGRATE_TARGET": env.get("INPUT_TARGET", "").strip(),
                 "ALEMBIC_CONFIG": config_path(env.get("INPUT_CONFIG", "").strip(),
                                               env.get("GITHUB_WORKSPACE", ""))}
        # The commit the workflow runs for: the job records it in its history table.
        named["GITHUB_SHA"] = env.get("GITHUB_SHA", "")
        variables.update({name: value for name, value in named.items() if value})
        return cls(command=env.get("INPUT_COMMAND", "").strip() or "upgrade",
                   args=shlex.split(env.get("INPUT_ARGS", "")), image=image,
                   network=env.get("INPUT_NETWORK", "").strip() or "host",
                   accept=accepted_codes(env.get("INPUT_ACCEPT_EXIT_CODES", "")),
                   variables=variables)


def extra_environment(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines (blank lines and `#` comments skipped)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals or not ENV_NAME.match(name.strip()):
            raise ActionError(f"the input `env` takes KEY=VALUE lines; {name.strip()[:40]!r} "
                              "is not a variable name followed by '='")
        found[name.strip()] = value
    return found


def accepted_codes(text: str) -> frozenset[int]:
    """The exit codes besides 0 that leave the step green."""
    words = text.replace(",", " ").split()
    if not all(word.isdigit() for word in words):
        raise ActionError(f"the input `accept-exit-codes` takes exit codes (such as 8), not "
                          f"{text.strip()[:40]!r}")
    return frozenset(int(word) for word in words)


def config_path(config: str, workspace: str) -> str:
    """A relative path is the checkout's (mounted at the same path); an absolute one the image's."""
    if not config or os.path.isabs(config) or not workspace:
        return config
    return os.path.join(workspace, config)


def mask(url: str) -> None:
    """Ask the runner to mask the URL and its password (as written and decoded) in the log."""
    if not url:
        return
    parts = urlsplit(url)
    passwords = [url, parts.password or "", *parse_qs(parts.query).get("password", [])]
    for secret in {*passwords, *(unquote(p) for p in passwords)}:
        if secret.strip():
            print(f"::add-mask::{secret.strip()}", flush=True)


@dataclass(frozen=True)
class Run:
    """One finished run of the image."""

    code: int
    stdout: str
    summary: str


def run_image(inputs: Inputs, args: list[str]) -> Run:
    """`docker run` the image with ARGS; the job's log goes to the step's log as it comes."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("RUNNER_TEMP")) as scratch:
        summary = Path(scratch) / "summary"
        summary.touch()
        summary.chmod(0o666)  # the image runs as a non-root user of its own
        argv = ["docker", "run", "--rm", "--network", inputs.network,
                "-v", f"{summary}:{SUMMARY_IN_CONTAINER}",
                "-e", f"MIGRATE_TERMINATION_LOG={SUMMARY_IN_CONTAINER}"]
        workspace = os.environ.get("GITHUB_WORKSPACE", "")
        if workspace:
            argv += ["-v", f"{workspace}:{workspace}:ro", "-w", workspace]
        for name in sorted(inputs.variables):
            argv += ["-e", name]
        argv += [inputs.image, *args]
        done = docker_run(argv, {**os.environ, **inputs.variables})
        written = summary.read_text(encoding="utf-8", errors="replace").strip()
    show(done.stdout)
    line = re.sub(r"^exit \d+: ", "", written) or (
        f"the job did not run: `docker run` exited {done.returncode}")
    return Run(done.returncode, done.stdout, line)


def docker_run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run docker, passing on SIGTERM and SIGINT (the job rolls back, unlocks, exits 143/130)."""
    if RECEIVED:
        return subprocess.CompletedProcess(argv, 128 + RECEIVED[0], "", "")
    try:
        docker = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    except OSError as error:
        print(f"docker could not be started: {error}", file=sys.stderr, flush=True)
        return subprocess.CompletedProcess(argv, 127, "", "")

    def forward(signum: int, _frame: FrameType | None) -> None:
        RECEIVED.append(signum)
        docker.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    with docker:
        stdout, _ = docker.communicate()
    return subprocess.CompletedProcess(argv, docker.returncode, stdout, "")


def show(text: str) -> None:
    """Print the job's output to the log, with workflow commands off: it quotes revisions."""
    if not text:
        return
    token = secrets.token_hex(16)
    print(f"::stop-commands::{token}\n{text.rstrip()}\n::{token}::", flush=True)


def pending_from(run: Run) -> list[str]:
    """The pending revision ids in a `status --json` or `plan --json` document."""
    pending = json.loads(run.stdout)["pending"]
    return [p["revision"] if isinstance(p, dict) else p for p in pending]


@dataclass
class Outcome:
    """What the action reports."""

    run: Run
    pending: list[str] | None = None
    plan: str = ""


def perform(inputs: Inputs) -> Outcome:
    """Run the command; `plan`, `status` and `check` also tell the pending revisions."""
    command, args = inputs.command, inputs.args
    if command in ("plan", "status"):
        data = run_image(inputs, [command, "--json", *args])
        if data.code != 0 or command == "status":
            return Outcome(data, pending_from(data) if data.code == 0 else None)
        markdown = run_image(inputs, ["plan", *args])
        return Outcome(markdown, pending_from(data), markdown.stdout if not markdown.code else "")
    run = run_image(inputs, [command, *args])
    if command == "check" and run.code in (0, 8):
        if run.code == 0:
            return Outcome(run, [])
        status = run_image(inputs, ["status", "--json", *args])
        return Outcome(run, pending_from(status) if status.code == 0 else None)
    return Outcome(run)


def meaning(code: int) -> tuple[str, str]:
    """The contract's meaning of an exit code, and whether a retry helps."""
    if code in EXIT_CODES:
        return EXIT_CODES[code]
    if code in (125, 126, 127):
        return f"docker could not run the image (docker run exited {code})", "no"
    return f"not an exit code of the job's contract ({code})", "no"


def write_outputs(path: str, values: dict[str, str]) -> None:
    """Append step outputs to GITHUB_OUTPUT; multi-line values within a random delimiter."""
    with open(path, "a", encoding="utf-8") as out:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def report(command: str, accept: frozenset[int], outcome: Outcome) -> None:
    """Step outputs, and the job summary: the plan's Markdown, or one line."""
    code = outcome.run.code
    said, retry = meaning(code)
    pending = "" if outcome.pending is None else json.dumps(outcome.pending)
    values = {"exit-code": str(code), "meaning": said, "retry": retry,
              "summary": outcome.run.summary, "pending": pending, "plan": outcome.plan}
    if os.environ.get("GITHUB_OUTPUT"):
        write_outputs(os.environ["GITHUB_OUTPUT"], values)
    summary = outcome.plan or (f"**migration-job {command}**: exit {code} ({said}): "
                               f"{outcome.run.summary}\n")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as out:
            out.write(summary + "\n")
    if code not in accept and code != 0:
        print(f"::error title=migration-job {command}::exit {code} ({said}): "
              f"{outcome.run.summary}", flush=True)


def main() -> int:
    """Run the action's step; exit 0, or the job's code unless it is accepted."""
    mask(os.environ.get("INPUT_DATABASE_URL", "").strip())
    try:
        inputs = Inputs.from_environment(dict(os.environ))
    except ActionError as error:
        report(os.environ.get("INPUT_COMMAND", ""), frozenset(), Outcome(Run(2, "", str(error))))
        return 2
    outcome = perform(inputs)
    report(inputs.command, inputs.accept, outcome)
    code = outcome.run.code
    return 0 if code in inputs.accept else code


if __name__ == "__main__":
    sys.exit(main())
