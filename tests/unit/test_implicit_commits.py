"""implicit_commits: what a running revision committed of itself, on a SQLite file (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import sqlalchemy
from alembic.runtime.migration import MigrationStep
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from migration_job.alembic_env.implicit_commits import implicit_commits
from migration_job.alembic_env.progress import Progress
from migration_job.engines.sqlite.engine import ENGINE


@pytest.fixture
def engine(tmp_path: Path) -> sqlalchemy.Engine:
    """A file whose child rows' parent is checked only at COMMIT (a deferred foreign key)."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}", poolclass=NullPool)

    @sqlalchemy.event.listens_for(engine, "connect")
    def foreign_keys(dbapi_connection: object, _: object) -> None:
        dbapi_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[attr-defined]

    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE parent (id integer PRIMARY KEY)")
        connection.exec_driver_sql("CREATE TABLE child (parent_id integer REFERENCES parent "
                                   "DEFERRABLE INITIALLY DEFERRED)")
    return engine


def running() -> Progress:
    """A revision running (the step itself is not looked at)."""
    return Progress(running=cast(MigrationStep, object()))


def test_a_commit_inside_the_revision_counts(engine: sqlalchemy.Engine) -> None:
    progress = running()
    with implicit_commits(ENGINE, progress), engine.connect() as connection:
        connection.exec_driver_sql("INSERT INTO parent VALUES (1)")
        connection.commit()  # what entering an autocommit_block does
    assert progress.committed


def test_a_failed_commit_committed_nothing(engine: sqlalchemy.Engine) -> None:
    """A COMMIT that fails (here a deferred constraint; SQLite's journal not deleted on a
    volume turned read-only) leaves the revision rolled back, not partly committed."""
    progress = running()
    with implicit_commits(ENGINE, progress), engine.connect() as connection:
        connection.exec_driver_sql("INSERT INTO child VALUES (7)")
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            connection.commit()
    assert not progress.committed
