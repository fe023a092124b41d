"""`lint` (issue 11, point 6) and `plan`'s lint section (issue 13, point 1): squawk over each
pending revision's offline SQL, on a real PostgreSQL or offline from --from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import Database
from tests.support.job import Result, job_env, run_job
from tests.support.pgserver import PASSWORD
from tests.support.projects import make_project, make_sqlite_project, revision

# Both bound their own lock and statement waits, as squawk's default rules ask.
TIMEOUTS = '''
op.execute("SET LOCAL lock_timeout = '2s'")
op.execute("SET LOCAL statement_timeout = '5s'")
'''
SAFE = revision("0006", "0005", TIMEOUTS + 'op.execute("ALTER TABLE hr.employee ADD COLUMN '
                'nickname text")')
# Blocks every write to a table that already exists while the index builds.
DANGEROUS = revision("0007", "0006", TIMEOUTS + 'op.execute("CREATE INDEX ix_employee_name ON '
                     'hr.employee (name)")')
RULE = "require-concurrent-index-creation"
# A port where nothing listens: offline runs need the URL's dialect only.
NOWHERE = "postgresql://mj:secret@127.0.0.1:1/nowhere"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The example project plus a safe revision (0006) and a dangerous one (0007)."""
    return make_project(tmp_path / "project",
                        extra={"0006_safe": SAFE, "0007_dangerous": DANGEROUS})


def lint(project: Path, *args: str, url: str = NOWHERE, **env: str) -> Result:
    """Run `lint` against the project."""
    return run_job("lint", *args, env=job_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(project),
                                              **env))


class TestLintFromTheDatabase:
    """From the database's revision on a real server: what an upgrade would apply."""

    def test_a_dangerous_revision_fails_naming_revision_file_and_rule(
            self, database: Database, project: Path) -> None:
        applied = run_job("--target", "0005", env=job_env(DATABASE_URL=database.url,
                                                          ALEMBIC_CONFIG=str(project)))
        assert applied.code == 0, applied.stderr
        result = lint(project, url=database.url)
        assert result.code == 12, result.stderr
        assert result.stdout.splitlines()[0] == "0006 migrations/versions/0006_safe.py: clean"
        assert "0007 migrations/versions/0007_dangerous.py: 1 violation(s)" in result.stdout
        assert f"  0007 SQL line 7: {RULE}: " in result.stdout
        linted = {e["revision"]: e for e in result.events if e["event"] == "revision_linted"}
        assert (linted["0006"]["violations"], linted["0007"]["rules"]) == (0, [RULE])
        last = result.events[-1]
        assert (last["event"], last["exit_code"]) == ("lint_failed", 12)
        assert f"0007 (migrations/versions/0007_dangerous.py): {RULE}" in last["message"]
        assert PASSWORD not in result.stdout + result.stderr
        assert database.revisions() == ["0005"]  # lint changes nothing

    def test_the_safe_revision_alone_passes(self, database: Database, project: Path) -> None:
        run_job("--target", "0005", env=job_env(DATABASE_URL=database.url,
                                                ALEMBIC_CONFIG=str(project)))
        result = lint(project, "--target", "0006", url=database.url)
        assert result.code == 0, result.stderr
        assert result.stdout == "0006 migrations/versions/0006_safe.py: clean\n"
        assert result.events[-1]["event"] == "lint_passed"

    def test_at_head_there_is_nothing_to_lint(self, database: Database, project: Path) -> None:
        run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(project)))
        result = lint(project, url=database.url)
        assert result.code == 0, result.stderr
        assert result.stdout == "nothing to lint: the database (0007) is already at 0007\n"


class TestLintOffline:
    """--from REV needs no database; the project's .squawk.toml and MIGRATE_LINT_EXCLUDE
    leave rules out."""

    def test_from_a_revision_as_json(self, project: Path) -> None:
        result = lint(project, "--from", "0006", "--json")
        assert result.code == 12, result.stderr
        report = json.loads(result.stdout)
        assert (report["from"], report["violations"]) == (["0006"], 1)
        assert report["linter"].startswith("squawk ")
        [only] = report["revisions"]
        assert (only["revision"], only["file"]) == ("0007", "migrations/versions/0007_dangerous.py")
        assert [(f["rule"], f["line"]) for f in only["findings"]] == [(RULE, 7)]

    def test_excluded_rules_from_the_environment_and_the_project(self, project: Path) -> None:
        assert lint(project, "--from", "0006", MIGRATE_LINT_EXCLUDE=RULE).code == 0
        (project.parent / ".squawk.toml").write_text(f'excluded_rules = ["{RULE}"]\n')
        # Both lists count: squawk's own --exclude would replace the file's.
        both = lint(project, "--from", "0005", MIGRATE_LINT_EXCLUDE="require-lock-timeout")
        assert both.code == 0, both.stderr

    def test_a_squawk_toml_in_the_working_directory_is_not_the_projects(
            self, project: Path, tmp_path: Path) -> None:
        # As in the image: the working directory (/app) holds the example's .squawk.toml.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / ".squawk.toml").write_text(f'excluded_rules = ["{RULE}"]\n')
        result = run_job("lint", "--from", "0006", cwd=elsewhere,
                         env=job_env(DATABASE_URL=NOWHERE, ALEMBIC_CONFIG=str(project)))
        assert result.code == 12, result.stderr

    def test_the_example_project_passes_its_own_rules(self) -> None:
        result = run_job("lint", "--from", "0001", env=job_env(DATABASE_URL=NOWHERE))
        assert result.code == 0, result.stderr
        assert result.stdout.count(": clean\n") == 4


class TestLintCannotRun:
    """Exit 2 with one line when squawk cannot judge: another engine, no squawk, bad rules."""

    def test_sqlite_is_refused(self, tmp_path: Path) -> None:
        config = make_sqlite_project(tmp_path / "project")
        result = lint(config, url=f"sqlite:///{tmp_path}/db.sqlite")
        assert result.code == 2, result.stderr
        assert "knows only PostgreSQL's SQL; this is sqlite" in result.events[-1]["message"]

    def test_squawk_missing(self, project: Path) -> None:
        result = lint(project, "--from", "0006", MIGRATE_LINT_SQUAWK="/nonexistent/squawk")
        assert result.code == 2, result.stderr
        assert result.events[-1]["event"] == "lint_unavailable"
        assert "MIGRATE_LINT_SQUAWK=/nonexistent/squawk is not an executable" in result.stderr

    def test_an_unknown_rule_is_a_configuration_error(self, project: Path) -> None:
        result = lint(project, "--from", "0006", MIGRATE_LINT_EXCLUDE="no-such-rule")
        assert result.code == 2, result.stderr
        assert "squawk could not lint" in result.events[-1]["message"]
        assert "no-such-rule" in result.events[-1]["message"]

    def test_a_broken_squawk_toml_is_a_configuration_error(self, project: Path) -> None:
        (project.parent / ".squawk.toml").write_text("excluded_rules = [\n")
        result = lint(project, "--from", "0006")
        assert result.code == 2, result.stderr
        assert "/.squawk.toml cannot be read: " in result.events[-1]["message"]


class TestPlanLintSection:
    """`plan` shows squawk's findings per revision and overall, or says why there are none."""

    def test_markdown_and_json_carry_the_findings(self, database: Database,
                                                  project: Path) -> None:
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(project))
        run_job("--target", "0005", env=env)
        text = run_job("plan", env=env)
        assert text.code == 0, text.stderr
        assert "**Lint** (squawk " in text.stdout
        assert "): 1 violation(s) in `0007`." in text.stdout
        section_0006 = text.stdout.split("### `0006`")[1].split("### `0007`")[0]
        assert "Lint: clean." in section_0006
        assert f"- `{RULE}` (SQL line 7): " in text.stdout.split("### `0007`")[1]
        data = json.loads(run_job("plan", "--json", env=env).stdout)
        assert data["lint"]["ran"] is True
        assert data["lint"]["violations"] == 1
        assert [f["rule"] for f in data["lint"]["findings"]["0007"]] == [RULE]

    def test_without_postgresql_the_section_says_why(self, tmp_path: Path) -> None:
        config = make_sqlite_project(tmp_path / "project")
        env = job_env(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite", ALEMBIC_CONFIG=str(config))
        result = run_job("plan", "--from", "0002", "--json", env=env)
        assert result.code == 0, result.stderr
        section = json.loads(result.stdout)["lint"]
        assert section["ran"] is False
        assert "knows only PostgreSQL's SQL" in section["reason"]
        text = run_job("plan", "--from", "0002", env=env).stdout
        assert "**Lint**: not run: lint runs squawk, which knows only PostgreSQL's SQL" in text
        assert "Lint: clean." not in text
