"""The GitHub Action against the README's exit codes and docs/pipelines.md (inputs, outputs,
what a pipeline does with each code), and its own input errors: exit 2 with outputs set,
before any container runs, the password masked."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from pipelines.action import EXIT_CODES
from tests.support.actions import metadata, run_action
from tests.support.job import REPO

README = (REPO / "README.md").read_text()
PIPELINES = (REPO / "docs" / "pipelines.md").read_text()
# `| code(s) | meaning | retry helps? |` rows of the exit-code table.
EXIT_CODE_ROW = re.compile(r"^\| (\d+(?: / \d+)*) \| (.*) \|([^|]*)\|$", re.MULTILINE)
PASSWORD = "s3cret@pass/word"
URL = f"postgresql://app:{quote(PASSWORD, safe='')}@db.invalid:5432/app"


def section(title: str) -> str:
    """A `## title` section of the README, up to the next `## `."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else len(README)]


def first_cells(text: str, header: str) -> list[str]:
    """The first cell of every row of the table whose header row starts with `| header |`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    cells = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells.append(line.split("|")[1].strip())
    return cells


def readme_exit_codes() -> dict[int, tuple[str, str]]:
    """Each code of the README's table: its meaning cell and its retry cell."""
    found = {}
    for codes, said, retry in EXIT_CODE_ROW.findall(section("Exit codes")):
        for code in codes.split(" / "):
            found[int(code)] = (said, retry.strip())
    return found


def codes_in(cell: str) -> set[int]:
    """`3, 5, 130, 143` as numbers."""
    return {int(code) for code in cell.split(", ")}


class TestExitCodes:
    """The action's meanings are the README's, code for code."""

    def test_every_readme_code_has_its_meaning_and_retry(self) -> None:
        readme = readme_exit_codes()
        assert sorted(EXIT_CODES) == sorted(readme)
        for code, (said, retry) in EXIT_CODES.items():
            assert said in readme[code][0], code
            assert retry == readme[code][1], code

    def test_the_pipeline_table_follows_the_exit_code_table(self) -> None:
        rows = first_cells(PIPELINES, "exit code")
        readme = readme_exit_codes()
        assert codes_in(rows[2]) == {c for c, (_, retry) in readme.items() if retry == "yes"}
        assert codes_in(rows[3]) == {c for c, (_, retry) in readme.items() if retry == "no"}
        assert (rows[0], rows[1]) == ("0", "8")


class TestDocsMatchAction:
    """docs/pipelines.md names exactly the inputs and outputs of action.yml."""

    def test_inputs_and_outputs(self) -> None:
        action = metadata()
        assert [c.strip("`") for c in first_cells(PIPELINES, "input")] == list(action["inputs"])
        assert [c.strip("`") for c in first_cells(PIPELINES, "output")] == list(action["outputs"])


class TestInputErrors:
    """A mistake in the inputs: exit 2, the outputs say so, no container, no password."""

    @pytest.mark.parametrize(("inputs", "named"), [
        ({"env": "MIGRATE_WAIT_TIMEOUT=5\nnot a variable"}, "`env`"),
        ({"accept-exit-codes": "8 pending"}, "`accept-exit-codes`"),
        ({"image": " "}, "`image`"),
    ], ids=["env", "accept-exit-codes", "image"])
    def test_exit_2_before_any_container(self, inputs: dict[str, str], named: str,
                                         tmp_path: Path) -> None:
        # An image that does not exist: had docker run, the code would be docker's 125.
        run = run_action({"image": "migration-job:never-run", "database-url": URL, **inputs},
                         tmp_path)
        assert run.code == 2, run.log()
        assert run.outputs["exit-code"] == "2"
        assert run.outputs["meaning"] == "usage or configuration error"
        assert named in run.outputs["summary"]
        assert "::error title=migration-job upgrade::exit 2 (usage or configuration error): " in (
            run.stdout)
        assert {URL, PASSWORD, quote(PASSWORD, safe="")} <= set(run.masked())
        for text in run.everything():
            assert PASSWORD not in text
            assert quote(PASSWORD, safe="") not in text


class TestNoDocker:
    """A runner without docker: the step fails with 127 and says so, no traceback."""

    def test_exit_127(self, tmp_path: Path) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "python3").symlink_to(sys.executable)
        (bin_dir / "bash").symlink_to(shutil.which("bash") or "/bin/bash")
        run = run_action({"image": "migration-job:never-run", "command": "check"},
                         tmp_path / "run", runner_env={"PATH": str(bin_dir)})
        assert run.code == 127, run.log()
        assert run.outputs["exit-code"] == "127"
        assert run.outputs["meaning"] == "docker could not run the image (docker run exited 127)"
        assert "docker could not be started" in run.stderr
        assert "Traceback" not in run.stderr
