"""How far a database is ahead of the image, from the parents the history table recorded."""

from __future__ import annotations

from migration_job.applied_history.skew import revisions_ahead

# 0005 is the image's head; 0006 and 0007 came later (0007 merges 0006 and 0006b).
PARENTS = {"0005": ("0004",), "0006": ("0005",), "0006b": ("0005",),
           "0007": ("0006", "0006b"), "0004": ("0003",), "0003": ()}


class TestRevisionsAhead:
    """Counted only when every path down from the database reaches the image's head."""

    def test_ahead_through_a_merge(self) -> None:
        assert revisions_ahead(PARENTS, ("0007",), ("0005",)) == 3

    def test_unrecorded_revision_is_not_ahead(self) -> None:
        assert revisions_ahead(PARENTS, ("cafe0001",), ("0005",)) is None

    def test_behind_the_head_is_not_ahead(self) -> None:
        assert revisions_ahead(PARENTS, ("0004",), ("0005",)) is None

    def test_a_line_that_misses_the_head_is_not_ahead(self) -> None:
        assert revisions_ahead({**PARENTS, "0006c": ("0004",)}, ("0006c",), ("0005",)) is None
