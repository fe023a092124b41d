"""The fault matrix: every cell of tests/faults/matrix.py, run against real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.cells import Cell
from tests.faults.matrix import CELLS
from tests.faults.runner import run_cell
from tests.faults.servers import Servers


def _param(cell: Cell) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=f"issue 19 defect: {cell.defect}")
             ] if cell.defect else []
    return pytest.param(cell, id=cell.id, marks=marks)


@pytest.mark.parametrize("cell", [_param(c) for c in CELLS])
def test_cell(cell: Cell, servers: Servers, tmp_path: Path) -> None:
    """The job under this cell's fault keeps every invariant, and reruns converge."""
    run_cell(cell, servers, tmp_path)
