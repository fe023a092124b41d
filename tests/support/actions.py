"""Running action.yml's composite steps as the GitHub runner does, with files of the test's own.

Each step's `run` goes to `bash -eo pipefail` with its `env:` (the `${{ inputs.* }}`
expressions filled in), GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and RUNNER_TEMP pointing at the
test's files; the action's outputs are then read through their `${{ steps.*.outputs.* }}`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.job import OUTPUTS, REPO

ACTION = REPO / "action.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
MASK = "::add-mask::"


@dataclass
class ActionRun:
    """What a run of the action left: its exit code, log, outputs and job summary."""

    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str

    def masked(self) -> list[str]:
        """The values the step asked the runner to mask."""
        return [line[len(MASK):] for line in self.stdout.splitlines() if line.startswith(MASK)]

    def log(self) -> str:
        """The step's log as the runner shows it: stdout without the mask commands, stderr."""
        kept = [line for line in self.stdout.splitlines() if not line.startswith(MASK)]
        return "\n".join(kept) + "\n" + self.stderr

    def everything(self) -> list[str]:
        """Every text the run leaves behind, for the password checks."""
        return [self.log(), self.summary, *self.outputs.values()]


def metadata() -> dict[str, Any]:
    """action.yml, parsed."""
    loaded: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return loaded


def fill(text: str, context: dict[str, dict[str, Any]]) -> str:
    """Replace `${{ a.b.c }}` expressions by their values in `context` (nested by dots)."""
    def value(match: re.Match[str]) -> str:
        found: Any = context
        for part in match.group(1).split("."):
            assert isinstance(found, dict), f"unknown {match.group(0)}"
            assert part in found, f"unknown {match.group(0)}"
            found = found[part]
        return str(found)
    return EXPRESSION.sub(value, text)


def read_outputs(path: Path) -> dict[str, str]:
    """A GITHUB_OUTPUT file: `name=value` lines and `name<<DELIMITER` blocks."""
    found: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            else:
                raise AssertionError(f"unterminated output {name!r} in {path}")
            found[name] = "\n".join(body)
        elif line:
            name, _, rest = line.partition("=")
            found[name] = rest
    return found


def run_action(inputs: dict[str, str], scratch: Path, workspace: Path | None = None,
               while_running: Callable[[subprocess.Popen[str]], None] | None = None,
               runner_env: dict[str, str] | None = None, timeout: float = 300) -> ActionRun:
    """Run the action's steps with these inputs (the others at their defaults);
    `while_running` gets each step's process once it started (to signal it, as a cancel);
    `runner_env` changes the runner's environment."""
    action = metadata()
    values = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    assert not set(inputs) - set(values), f"not inputs of action.yml: {set(inputs) - set(values)}"
    values.update(inputs)
    scratch.mkdir(parents=True, exist_ok=True)
    summary = scratch / "step-summary.md"
    summary.touch()
    steps: dict[str, dict[str, Any]] = {}
    code, stdout, stderr = 0, "", ""
    for step in action["runs"]["steps"]:
        output = scratch / f"output-{step['id']}"
        output.touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}
        env.update({"GITHUB_ACTION_PATH": str(REPO), "GITHUB_OUTPUT": str(output),
                    "GITHUB_STEP_SUMMARY": str(summary), "RUNNER_TEMP": str(scratch)})
        if workspace is not None:
            env["GITHUB_WORKSPACE"] = str(workspace)
        env.update(runner_env or {})
        env.update({k: fill(str(v), {"inputs": values}) for k, v in step.get("env", {}).items()})
        assert step["shell"] == "bash"
        with subprocess.Popen(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                               step["run"]], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as process:
            if while_running is not None:
                while_running(process)
            out, err = process.communicate(timeout=timeout)
        code, stdout, stderr = process.returncode, stdout + out, stderr + err
        steps[step["id"]] = {"outputs": read_outputs(output)}
        if code != 0:
            break
    outputs = {name: fill(spec["value"], {"steps": steps})
               for name, spec in action["outputs"].items()}
    result = ActionRun(code, stdout, stderr, outputs, summary.read_text())
    OUTPUTS.extend(result.everything())
    return result
