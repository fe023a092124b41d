"""The fault matrix: every cell of tests/faults/matrix.py, run against real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.cells import Cell
from tests.faults.matrix import CELLS
from tests.faults.runner import run_cell
from tests.faults.servers import Servers
from tests.faults.shapes import SHAPES, Point


def _param(cell: Cell) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=f"issue 19 defect: {cell.defect}")
             ] if cell.defect else []
    return pytest.param(cell, id=cell.id, marks=marks)


@pytest.mark.parametrize("cell", [_param(c) for c in CELLS])
def test_cell(cell: Cell, servers: Servers, tmp_path: Path) -> None:
    """The job under this cell's fault keeps every invariant, and reruns converge."""
    run_cell(cell, servers, tmp_path)


class TestMatrixCoversWhatTheReadmeSays:
    """The cells keep the README's promise: every fault on each engine it applies to, every
    shape, and each point on each engine (a matrix edited down fails here)."""

    def test_every_fault_on_each_of_its_engines(self) -> None:
        faults = {cell.fault for cell in CELLS}
        missing = [(f.name, e) for f in faults for e in f.engines
                   if not any(c.fault is f and c.engine == e for c in CELLS)]
        assert not missing, missing
        assert all(c.engine in c.fault.engines for c in CELLS)

    def test_every_shape_and_only_where_it_has_a_body(self) -> None:
        assert {c.shape.name for c in CELLS} == set(SHAPES)
        assert all(c.engine in c.shape.bodies for c in CELLS)

    def test_each_point_on_each_engine(self) -> None:
        points = {Point.BEFORE, Point.INSIDE, Point.BETWEEN, Point.BEFORE_COMMIT}
        for engine in ("postgresql", "mariadb", "sqlite"):
            assert points <= {c.point for c in CELLS if c.engine == engine}, engine
