"""Sections of BENCHMARKS.md that a benchmark of their own writes between two markers.

`benchmarks/run` rewrites the rest of the file and keeps every such section as it stands
(`kept_sections`), so a slow benchmark that runs on its own (fleet mode, container starts)
does not lose its numbers to the main run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
_ANY_SECTION = re.compile(r"<!-- ([a-z0-9-]+): begin -->.*?<!-- \1: end -->", re.DOTALL)


@dataclass(frozen=True)
class MarkedSection:
    """One marked section, named by its markers: `<!-- NAME: begin -->`, `<!-- NAME: end -->`."""

    name: str

    @property
    def begin(self) -> str:
        return f"<!-- {self.name}: begin -->"

    @property
    def end(self) -> str:
        return f"<!-- {self.name}: end -->"

    def wrap(self, lines: list[str]) -> str:
        """The section's text: its lines between the markers."""
        return "\n".join([self.begin, *lines, "", self.end]) + "\n"

    def write(self, text: str, path: Path = BENCHMARKS_MD) -> None:
        """Replace the section in the file, or append it when it is not there yet."""
        current = path.read_text()
        if self.begin in current:
            before = current[:current.index(self.begin)].rstrip("\n")
            after = current[current.index(self.end) + len(self.end):].strip("\n")
            current = before + (f"\n\n{after}" if after else "")
        path.write_text(current.rstrip("\n") + "\n\n" + text)


def kept_sections(path: Path = BENCHMARKS_MD) -> str:
    """Every marked section of the file as it stands, in order, for a rewrite to keep."""
    current = path.read_text() if path.exists() else ""
    return "\n".join(found.group(0) + "\n" for found in _ANY_SECTION.finditer(current))
