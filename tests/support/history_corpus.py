"""Generated Alembic projects with odd histories, for the source reader's differential test.

Each project is drawn from a seeded random.Random: linear, branched and merged histories,
depends_on, branch labels, several version locations (split by each separator Alembic knows),
recursive ones, files Alembic ignores, revision ids in docstrings, comments and strings, and
now and then a shape the reader must decline (a computed id, a rebinding, a duplicate).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

HEADER = '"""{message}\n\nRevision ID: {doc_id}\nRevises: {doc_down}\n"""\n'
# Source lines a revision may carry besides its identifiers: none changes what Alembic reads.
HARMLESS = (
    "# revision = 'not_this_one'\n",
    "NOTE = \"down_revision = 'nor_this'\"\n",
    "import sqlalchemy as sa  # noqa: F401\n",
    "from typing import Sequence, Union  # noqa: F401\n",
    "def helper(revision: str = 'x') -> str:\n    return revision\n",
)


@dataclass
class Revision:
    """One revision file to write."""

    rev: str
    down: tuple[str, ...]
    labels: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    folder: str = "versions"
    odd: list[str] = field(default_factory=list)  # extra source; may make the reader decline
    style: str = "plain"  # how the identifiers are written


def _value(ids: tuple[str, ...], rng: random.Random) -> str:
    if not ids:
        return "None"
    if len(ids) == 1 and rng.random() < 0.8:
        return repr(ids[0])
    return repr(list(ids)) if rng.random() < 0.5 else repr(tuple(ids))


def source(one: Revision, rng: random.Random) -> str:
    """A revision file's text."""
    doc_id = one.rev if rng.random() < 0.7 else rng.choice(["deadbeef0000", "0000", one.rev])
    lines = [HEADER.format(message=f"revision {one.rev}", doc_id=doc_id,
                           doc_down=", ".join(one.down) or "")]
    lines += rng.sample(HARMLESS, rng.randint(0, len(HARMLESS)))
    if one.style == "annotated":
        lines.append(f"revision: str = {one.rev!r}\n"
                     f"down_revision: str | tuple[str, ...] | None = {_value(one.down, rng)}\n")
    elif one.style == "computed":
        half = len(one.rev) // 2
        lines.append(f"revision = {one.rev[:half]!r} + {one.rev[half:]!r}\n"
                     f"down_revision = {_value(one.down, rng)}\n")
    else:
        lines.append(f"revision = {one.rev!r}\ndown_revision = {_value(one.down, rng)}\n")
    if one.labels or rng.random() < 0.5:
        lines.append(f"branch_labels = {_value(one.labels, rng)}\n")
    if one.depends or rng.random() < 0.5:
        lines.append(f"depends_on = {_value(one.depends, rng)}\n")
    lines += one.odd
    lines.append("\n\ndef upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n")
    return "".join(lines)


# Source appended to a revision that the reader must not vouch for (Alembic may still load it).
ODD = (
    "if True:\n    revision = 'rebound0000'\n",
    "globals()['down_revision'] = None\n",
    "for depends_on in []:\n    pass\n",
    "del branch_labels\n",
    "revision = revision\n",
    "from os import *  # noqa: F403\n",
    "def __getattr__(name: str) -> None:\n    return None\n",
    "class Model:\n    depends_on = 'ignored'\n",
)


def draw_history(rng: random.Random) -> list[Revision]:
    """A history of 1 to 14 revisions: mostly one head, sometimes several."""
    revisions: list[Revision] = []
    heads: list[str] = []
    for number in range(rng.randint(1, 14)):
        rev = f"{rng.getrandbits(40):010x}" if rng.random() < 0.8 else f"{number:04d}_r"
        roll = rng.random()
        if not revisions:
            down: tuple[str, ...] = ()
        elif roll < 0.15 and len(heads) >= 2:
            down = tuple(rng.sample(heads, 2))  # a merge
        elif roll < 0.3:
            down = (rng.choice(revisions).rev,)  # a branch, unless it picks a head
        else:
            down = (heads[-1],)
        heads = [h for h in heads if h not in down] + [rev]
        one = Revision(rev, down)
        if revisions and rng.random() < 0.2:
            one.depends = (rng.choice(revisions).rev,)
        if rng.random() < 0.1:
            one.labels = (f"label_{number}",)
        revisions.append(one)
    if len(heads) > 1 and rng.random() < 0.6:
        revisions.append(Revision(f"{rng.getrandbits(40):010x}", tuple(heads)))  # merge all
    return revisions


def spoil(revisions: list[Revision], rng: random.Random) -> None:
    """Now and then one thing the reader must decline, or a history Alembic refuses."""
    roll = rng.random()
    victim = rng.choice(revisions)
    if roll < 0.1:
        victim.style = "computed"
    elif roll < 0.2:
        victim.odd.append(rng.choice(ODD))
    elif roll < 0.25:
        revisions.append(Revision(victim.rev, victim.down))  # duplicate id
    elif roll < 0.3 and len(revisions) > 1:
        victim.depends = (revisions[0].labels or ("label_missing",))[:1]  # depends on a label
    elif roll < 0.35:
        victim.down = ("missing0000",)
    elif roll < 0.5:
        victim.style = "annotated"


@dataclass
class Layout:
    """Where the files go and how alembic.ini says it."""

    folders: list[str]
    ini_lines: list[str]
    recursive: bool


def draw_layout(rng: random.Random) -> Layout:
    """One versions folder, or several named by version_locations, maybe recursive."""
    recursive = rng.random() < 0.3
    lines = ["recursive_version_locations = true"] if recursive else []
    if rng.random() < 0.4:
        return Layout(["migrations/versions"], lines, recursive)
    folders = [f"locations/v{n}" for n in range(rng.randint(1, 3))]
    separator, joiner = rng.choice([("os", ":"), ("space", " "), (";", ";"), (None, ", ")])
    if separator is not None:
        lines.append(f"path_separator = {separator}")
    lines.append("version_locations = " + joiner.join(f"%(here)s/{f}" for f in folders))
    return Layout(folders, lines, recursive)


def write_project(root: Path, rng: random.Random) -> Path:
    """Draw and write one project under `root`; return its alembic.ini."""
    revisions = draw_history(rng)
    spoil(revisions, rng)
    layout = draw_layout(rng)
    (root / "migrations").mkdir(parents=True)
    (root / "migrations" / "env.py").write_text("")
    for name in layout.folders:
        (root / name).mkdir(parents=True, exist_ok=True)
    for index, one in enumerate(revisions):
        folder = root / rng.choice(layout.folders)
        # Subfolders: read only when recursive (never __pycache__), so mostly then.
        if rng.random() < (0.4 if layout.recursive else 0.03):
            folder = folder / rng.choice(["sub", "sub/deeper", "sub", "__pycache__"])
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{one.rev}_{index}.py").write_text(source(one, rng))
    ignored = root / rng.choice(layout.folders)
    (ignored / "__init__.py").write_text("revision = 'init0000'\ndown_revision = None\n")
    (ignored / "notes.txt").write_text("revision = 'txt0000'\n")
    (ignored / ".#lock_0.py").write_text("revision = 'lock0000'\ndown_revision = None\n")
    ini = root / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n"
                   + "".join(line + "\n" for line in layout.ini_lines))
    return ini
