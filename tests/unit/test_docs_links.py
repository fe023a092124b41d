"""Every relative link of the project's Markdown resolves: the file it names exists, and its
`#anchor` is a heading of that file as GitHub spells heading anchors."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from tests.support.job import REPO

# CommonMark with GitHub's tables, so that links and headings inside tables are seen as GitHub
# sees them (and nothing inside a code block or a code span is).
MARKDOWN = MarkdownIt("commonmark").enable("table")


def pages() -> list[Path]:
    """The Markdown a reader follows links through."""
    top = [REPO / name for name in ("README.md", "CONTRIBUTING.md", "BENCHMARKS.md")]
    return [*top, *sorted((REPO / "docs").glob("*.md")),
            *sorted((REPO / "deploy").rglob("README.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: lowercase; letters, marks, digits, connector
    punctuation ('_'), '-' and spaces kept; each space a '-'."""
    kept = "".join(c for c in heading.lower()
                   if c in " -" or unicodedata.category(c)[0] in "LMN"
                   or unicodedata.category(c) == "Pc")
    return kept.replace(" ", "-")


def plain_text(inline: Token) -> str:
    """A heading's text as GitHub renders it: code spans' content, no markup."""
    return "".join(child.content for child in inline.children or ()
                   if child.type in ("text", "code_inline"))


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    tokens = MARKDOWN.parse(page.read_text())
    found: set[str] = set()
    for opening, inline in pairwise(tokens):
        if opening.type == "heading_open":
            base = slug(plain_text(inline))
            anchor, n = base, 0
            while anchor in found:
                n += 1
                anchor = f"{base}-{n}"
            found.add(anchor)
    return found


def links(page: Path) -> Iterator[str]:
    """Every link and image target of a page."""
    for token in MARKDOWN.parse(page.read_text()):
        for child in token.children or ():
            if child.type == "link_open":
                yield str(child.attrs["href"])
            elif child.type == "image":
                yield str(child.attrs["src"])


def broken(page: Path, root: Path = REPO) -> list[str]:
    """Each relative link of a page that does not resolve, with why."""
    problems = []
    for href in links(page):
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//"):
            continue  # another site's page: not this repository's to keep
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        shown = f"{page.relative_to(root)}: ({href})"
        if not target.exists():
            problems.append(f"{shown}: no file {unquote(parts.path)}")
        elif parts.fragment and target.suffix != ".md":
            problems.append(f"{shown}: an anchor on a file that has no headings")
        elif parts.fragment and unquote(parts.fragment) not in anchors(target):
            problems.append(f"{shown}: no heading #{parts.fragment} in {target.relative_to(root)}")
    return problems


class TestTheChecker:
    """The parser and the slugs are GitHub's, so that the check below can fail."""

    @pytest.mark.parametrize(("heading", "anchor"), [
        ("Blocked revisions: the DDL lock timeout", "blocked-revisions-the-ddl-lock-timeout"),
        ("Drivers for env.py", "drivers-for-envpy"),
        ("The no-op fast path: heads without Alembic", "the-no-op-fast-path-heads-without-alembic"),
        ("Set-up: two commands", "set-up-two-commands"),
        ("`MIGRATE_X_ARGS` and -x", "migrate_x_args-and--x"),
    ])
    def test_slug(self, heading: str, anchor: str, tmp_path: Path) -> None:
        page = tmp_path / "page.md"
        page.write_text(f"# {heading}\n")
        assert anchors(page) == {anchor}

    def test_finds_broken_links_and_ignores_code(self, tmp_path: Path) -> None:
        (tmp_path / "README.md").write_text("# Set-up: two commands\n")
        page = tmp_path / "docs" / "page.md"
        page.parent.mkdir()
        page.write_text(
            "# Top\n\n## Top\n\n```sh\n# not a heading\n```\n\n"
            "[ok](#top-1) [ok](../README.md#set-up-two-commands) [ok](https://example.com/x#y)\n"
            "[bad](#not-a-heading) [bad](missing.md) [bad](../README.md#nowhere) "
            "`[in code](nowhere.md)`\n\n| a | b |\n|---|---|\n| [bad](#in-a-table) | |\n")
        assert [p.split(": ", 2)[2] for p in broken(page, tmp_path)] == [
            "no heading #not-a-heading in docs/page.md", "no file missing.md",
            "no heading #nowhere in README.md", "no heading #in-a-table in docs/page.md"]

def test_the_pages_exist() -> None:
    """The pages the check reads are there (a missing one would pass unseen)."""
    assert all(page.is_file() for page in pages()[:3])
    assert len(pages()) > 5


def test_every_relative_link_resolves() -> None:
    problems = [problem for page in pages() for problem in broken(page)]
    assert not problems, "\n".join(problems)
