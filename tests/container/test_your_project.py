"""examples/your-project: an application's own Alembic project on the job's image, baked in by
its Dockerfile or mounted as a volume, migrating a real PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from tests.container.conftest import LOCKED_DOWN, REPO, RUN_ID, Database
from tests.container.engine import docker, job_result
from tests.support.job import Result

pytestmark = pytest.mark.container

EXAMPLE = REPO / "examples" / "your-project"
_SCRIPTS = ScriptDirectory(str(EXAMPLE / "migrations"))
# Oldest first: the order an upgrade applies them.
EXAMPLE_REVISIONS = [s.revision for s in reversed(list(_SCRIPTS.walk_revisions()))]
EXAMPLE_HEAD = _SCRIPTS.get_current_head()
MOUNTED = "/project"


@pytest.fixture(scope="module")
def your_image(image: str) -> Iterator[str]:
    """The example's Dockerfile built FROM the job's image, as a user would build it."""
    tag = f"migration-job:your-project-{RUN_ID}"
    docker("build", "-q", "--build-arg", f"MIGRATION_JOB_IMAGE={image}", "-t", tag, str(EXAMPLE))
    yield tag
    docker("rmi", "-f", tag, check=False)


@pytest.fixture
def mounted_project(tmp_path: Path) -> list[str]:
    """`docker run` options mounting a clean copy of the example (no manifest) read-only."""
    copy = tmp_path / "your-project"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(
        "__pycache__", "heads.manifest.json"))
    return ["-v", f"{copy}:{MOUNTED}:ro", "-e", f"ALEMBIC_CONFIG={MOUNTED}/alembic.ini"]


def applied(result: Result) -> list[str]:
    """Revisions in the order the job logged them as applied."""
    return [e["revision"] for e in result.events if e.get("event") == "revision_applied"]


class TestBakedProject:
    """The example's image migrates once, then answers at head from its build-time manifest."""

    def test_upgrades_then_takes_the_manifest_path_and_checks_clean(
            self, your_image: str, database: Database) -> None:
        first = database.run(your_image, "upgrade", options=LOCKED_DOWN)
        assert first.code == 0, first.stderr
        assert applied(first) == EXAMPLE_REVISIONS
        assert database.revisions() == [EXAMPLE_HEAD]
        assert database.query("SELECT to_regclass('note')") == "note"

        again = database.run(your_image, "upgrade", options=LOCKED_DOWN)
        assert again.code == 0, again.stderr
        assert again.event("already_at_target")["via"] == "manifest"
        assert "lock_acquired" not in again.names()

        check = database.run(your_image, "check", options=LOCKED_DOWN)
        assert check.code == 0, check.stderr
        assert check.event("already_at_target")["via"] == "manifest"

    def test_models_match_what_the_migrations_built(
            self, your_image: str, database: Database) -> None:
        assert database.run(your_image, "upgrade").code == 0
        # The plain alembic CLI in the image: env.py's own engine from DATABASE_URL.
        done = docker("run", "--rm", "--network", database.pg.network,
                      "-e", f"DATABASE_URL={database.url_file.read_text().strip()}",
                      "--entrypoint", "alembic", your_image,
                      "-c", "/project/alembic.ini", "check", check=False)
        result = job_result(done.returncode, done.stdout, done.stderr)
        assert result.code == 0, result.stdout + result.stderr
        assert "No new upgrade operations detected" in result.stdout + result.stderr


class TestMountedProject:
    """A project mounted at run time migrates as well; with no manifest, a run at head reads
    the head from the revision files, without Alembic."""

    def test_upgrades_then_reads_the_head_from_the_revision_files(
            self, image: str, database: Database, mounted_project: list[str]) -> None:
        options = (*LOCKED_DOWN, *mounted_project)
        first = database.run(image, "upgrade", options=options)
        assert first.code == 0, first.stderr
        assert applied(first) == EXAMPLE_REVISIONS

        again = database.run(image, "upgrade", options=options)
        assert again.code == 0, again.stderr
        assert again.event("already_at_target")["via"] == "revision files"
