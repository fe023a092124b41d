"""`plan` (issue 13, point 1): the pending revisions as Markdown for a pull request, or JSON,
from the database's revision or offline from --from; exit 0 whenever it could plan."""

from __future__ import annotations

import json

from tests.integration.conftest import Database
from tests.support.job import job_env, run_job


class TestPlan:
    """The example project on a real PostgreSQL: 0004 builds its index outside a transaction."""

    def test_pending_revisions_from_the_database(self, database: Database) -> None:
        assert run_job("--target", "0002", env=job_env(DATABASE_URL=database.url)).code == 0
        result = run_job("plan", env=job_env(DATABASE_URL=database.url))
        assert result.code == 0, result.stderr
        text = result.stdout
        assert text.startswith("## Migration plan: 3 pending revision(s)")
        assert "From the database (0002) to 0005." in text
        assert [line.split("`")[1] for line in text.splitlines()
                if line.startswith("### ")] == ["0003", "0004", "0005"]
        assert "File: `migrations/versions/0004_index_employee_email_concurrently.py`" in text
        assert "**Runs outside a transaction** (`autocommit_block`): `0004`." in text
        assert "CREATE INDEX CONCURRENTLY" in text
        assert text.count("<details><summary>SQL</summary>") == 3
        # Planning changes nothing.
        assert database.revisions() == ["0002"]

    def test_json_carries_the_same(self, database: Database) -> None:
        assert run_job("--target", "0003", env=job_env(DATABASE_URL=database.url)).code == 0
        result = run_job("plan", "--json", env=job_env(DATABASE_URL=database.url))
        assert result.code == 0, result.stderr
        plan = json.loads(result.stdout)
        assert plan["from"] == ["0003"]
        assert [r["revision"] for r in plan["pending"]] == ["0004", "0005"]
        assert plan["outside_transaction"] == ["0004"]
        assert "ALTER TABLE hr.employee ADD COLUMN active" in plan["pending"][1]["sql"]
        assert "CREATE INDEX" not in plan["pending"][1]["sql"]
        # Each revision's SQL is its own transaction: its BEGIN, never the next one's.
        for revision in plan["pending"]:
            assert revision["sql"].startswith("BEGIN;\n"), revision["sql"]
            assert revision["sql"].endswith("\nCOMMIT;"), revision["sql"]

    def test_at_head_the_plan_says_so(self, database: Database) -> None:
        assert run_job(env=job_env(DATABASE_URL=database.url)).code == 0
        result = run_job("plan", env=job_env(DATABASE_URL=database.url))
        assert result.code == 0, result.stderr
        assert result.stdout.strip() == ("## Migration plan\n\nNo pending revisions: the "
                                         "database (0005) is already at 0005.")

    def test_offline_from_a_revision_needs_no_database(self, database: Database) -> None:
        # The URL names the dialect only: a port where nothing listens.
        offline = database.url.rsplit("@", 1)[0] + "@127.0.0.1:1/nowhere"
        result = run_job("plan", "--from", "0004", "--json", env=job_env(DATABASE_URL=offline))
        assert result.code == 0, result.stderr
        plan = json.loads(result.stdout)
        assert [r["revision"] for r in plan["pending"]] == ["0005"]
        assert plan["outside_transaction"] == []

    def test_offline_from_base_plans_the_whole_history(self, database: Database) -> None:
        """`--from base` means an empty database, as `sql --from base` reads it."""
        offline = database.url.rsplit("@", 1)[0] + "@127.0.0.1:1/nowhere"
        result = run_job("plan", "--from", "base", "--json", env=job_env(DATABASE_URL=offline))
        assert result.code == 0, result.stderr
        plan = json.loads(result.stdout)
        assert plan["from"] == []
        assert [r["revision"] for r in plan["pending"]] == ["0001", "0002", "0003", "0004",
                                                             "0005"]
        assert plan["pending"][0]["sql"].startswith("BEGIN;")

    def test_unknown_from_revision_is_a_history_problem(self, database: Database) -> None:
        """It names the unknown --from revision, and never blames the database for it."""
        assert run_job("--target", "0002", env=job_env(DATABASE_URL=database.url)).code == 0
        result = run_job("plan", "--from", "f00d", env=job_env(DATABASE_URL=database.url))
        assert result.code == 7, result.stderr
        message = result.events[-1]["message"]
        assert "--from f00d" in message, message
        assert "database" not in message, message
        assert "Traceback" not in result.stderr
