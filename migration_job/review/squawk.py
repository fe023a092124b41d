"""Running squawk (the PostgreSQL migration linter) over each revision's offline SQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from migration_job.errors import ConfigError, first_line

if TYPE_CHECKING:
    from migration_job.settings import Settings

# squawk's own configuration file, read from the project's folder only.
CONFIG_NAME = ".squawk.toml"
SQUAWK_TIMEOUT_S = 120.0


class LintUnavailable(ConfigError):
    """Lint cannot run: another engine than PostgreSQL, squawk missing or misconfigured."""

    event = "lint_unavailable"


class Finding(NamedTuple):
    """One violation squawk reported in a revision's SQL."""

    rule: str
    message: str
    help: str | None
    # 1-based, in the revision's SQL as `plan` shows it.
    line: int
    level: str


def refuse_other_engines(settings: Settings) -> None:
    """squawk parses PostgreSQL's SQL only: other engines' SQL would be judged wrongly."""
    from migration_job.engines import SCHEMES, sqlalchemy_url

    scheme = sqlalchemy_url(settings.database_url).split("://", 1)[0]
    engine = SCHEMES[scheme].engine
    if engine != "postgres":
        raise LintUnavailable(f"lint runs squawk, which knows only PostgreSQL's SQL; this is "
                              f"{engine}, so there is nothing it could check")


def squawk_binary(settings: Settings) -> str:
    """The squawk to run: MIGRATE_LINT_SQUAWK, else the one beside the job's Python, else PATH."""
    if settings.squawk is not None:
        named = shutil.which(settings.squawk)
        if named is None:
            raise LintUnavailable(f"MIGRATE_LINT_SQUAWK={settings.squawk} is not an "
                                  "executable; point it at squawk, or unset it")
        return named
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.is_file() else shutil.which("squawk")
    if found is None:
        raise LintUnavailable("squawk is not installed: pip install squawk-cli (the image "
                              "ships it), or set MIGRATE_LINT_SQUAWK to its path")
    return found


def project_config(settings: Settings) -> tuple[Path | None, tuple[str, ...]]:
    """The project's .squawk.toml (beside its alembic.ini or pyproject.toml) and its
    excluded rules: squawk's --exclude replaces the file's list, so the job passes both."""
    path = settings.alembic_config.parent / CONFIG_NAME
    if not path.is_file():
        return None, ()
    try:
        excluded = tomllib.loads(path.read_text(encoding="utf-8")).get("excluded_rules", [])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise LintUnavailable(f"{path} cannot be read: {first_line(error)}") from None
    if not isinstance(excluded, list):
        raise LintUnavailable(f"{path}: excluded_rules must be a list of rule names")
    return path, tuple(str(rule) for rule in excluded)


def lint_sql(settings: Settings, sql: dict[str, str]) -> dict[str, list[Finding]]:
    """squawk's findings for each revision's SQL (one squawk run for them all)."""
    squawk = squawk_binary(settings)
    config, excluded = project_config(settings)
    rules = sorted({*excluded, *settings.lint_exclude})
    with tempfile.TemporaryDirectory(prefix="migration-job-lint-") as folder:
        files = {}
        for number, (revision, text) in enumerate(sql.items()):
            path = Path(folder, f"{number:05d}.sql")
            path.write_text(text + "\n", encoding="utf-8")
            files[path.name] = revision
        command = [squawk, "--reporter", "json",
                   *(["--config", str(config)] if config else []),
                   *(f"--exclude={rule}" for rule in rules), *sorted(files)]
        # Run in the empty folder: squawk would otherwise find a .squawk.toml of the working
        # directory (the image's example project) and apply it to another project.
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                              timeout=SQUAWK_TIMEOUT_S, check=False)
    reported = _reported(done)
    findings: dict[str, list[Finding]] = {revision: [] for revision in sql}
    for item in reported:
        findings[files[Path(item["file"]).name]].append(Finding(
            item["rule_name"], item["message"], item.get("help"), int(item["line"]) + 1,
            str(item.get("level", "Warning")).lower()))
    return findings


def _reported(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """squawk's JSON report; LintUnavailable when squawk failed rather than judged."""
    try:
        reported = json.loads(done.stdout) if done.returncode in (0, 1) else None
    except ValueError:
        reported = None
    if not isinstance(reported, list):
        reason = first_line(Exception(done.stderr or done.stdout or f"exit {done.returncode}"))
        raise LintUnavailable(f"squawk could not lint: {reason}")
    return reported


def squawk_version(settings: Settings) -> str:
    """`squawk 2.70.0`, as it says."""
    done = subprocess.run([squawk_binary(settings), "--version"], capture_output=True,
                          text=True, timeout=SQUAWK_TIMEOUT_S, check=False)
    return done.stdout.strip() or "squawk"
