"""The applied-history table's readers see every column it has, and a refusal keeps its code."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_job.applied_history.access import COLUMNS, refuse_or_go_on
from migration_job.applied_history.recorder import history_table
from migration_job.errors import HistoryDenied, HistoryUnreadable
from migration_job.project import Project
from migration_job.settings.load import load_settings


def test_readers_read_every_column_of_the_table() -> None:
    """The job's own session reads COLUMNS (no SQLAlchemy on check's fast path): they must be
    the table's, so that a column renamed anywhere is noticed."""
    settings = load_settings({"command": "status"}, {"DATABASE_URL": "sqlite:////tmp/x.db"})
    table = history_table(settings, Project(Path("alembic.ini"), Path("migrations")))
    assert tuple(table.columns.keys()) == COLUMNS


@pytest.mark.parametrize(("error", "code"), [(HistoryDenied("denied"), 4),
                                             (HistoryUnreadable("renamed"), 7)])
def test_a_refusal_keeps_the_exit_code_and_says_what_did_not_happen(
        error: HistoryUnreadable, code: int) -> None:
    with pytest.raises(HistoryUnreadable) as refused:
        refuse_or_go_on(error, strict=True, refusal="nothing was changed")
    assert refused.value.exit_code == code
    assert str(refused.value) == f"{error}; nothing was changed"
