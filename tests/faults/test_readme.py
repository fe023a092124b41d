"""README.md's "Failure matrix" section is the fault matrix's cells, as readme.py renders them."""

from __future__ import annotations

from tests.faults.readme import README, current, render


class TestFailureMatrixSection:
    """The README says what the cells check: the same rows, the same expectations."""

    def test_readme_matches_the_cells(self) -> None:
        assert current() == render(), (
            f"{README.name}'s Failure matrix differs from tests/faults/matrix.py: run "
            "`python -m tests.faults.readme` (and review what changed)")

    def test_section_stands_under_its_heading(self) -> None:
        text = README.read_text()
        assert "## Failure matrix\n\n<!-- failure-matrix: begin -->" in text
