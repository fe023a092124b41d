"""The house's shape (docs/architecture.md): no import circles, Alembic and SQLAlchemy only
where they belong, a package root a newcomer can read at a glance. The floors themselves are
import-linter's contracts in pyproject.toml, run by scripts/test."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "migration_job"
# At most this many entries at the package's root (issue 20): modules and subpackages.
MOST_TOP_LEVEL = 14
HEAVY = ("alembic", "sqlalchemy")


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), type-only imports and
    imports inside functions included: a circle hidden by a lazy import is still a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for module in sorted(graph.modules):
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return found


@pytest.mark.parametrize("package", ["migration_job", "tests", "benchmarks", "pipelines"])
def test_no_import_circles(package: str) -> None:
    graph = grimp.build_graph(package, include_external_packages=False, cache_dir=None)
    assert circles(graph) == []


def test_circles_are_found() -> None:
    """The finder itself sees a circle (a test of the test)."""
    graph = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(module)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.d", imported="a.b")
    assert circles(graph) == [["a.b", "a.c"]]


def _heavy_imports_at_import_time(tree: ast.Module) -> list[str]:
    """Alembic or SQLAlchemy imported by the module's own body (not in a function, not under
    TYPE_CHECKING): what importing the module costs."""
    found = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler)
                                   else [child])
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in HEAVY]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in HEAVY:
            found.append(node.module)
    return found


def test_alembic_and_sqlalchemy_only_in_alembic_env_at_import_time() -> None:
    """Outside alembic_env/, the job imports neither until a run needs it: the fast path at
    head starts without them."""
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "alembic_env") in path.parents:
            continue
        heavy = _heavy_imports_at_import_time(ast.parse(path.read_text()))
        if heavy:
            offenders[str(path.relative_to(ROOT))] = heavy
    assert offenders == {}


def test_the_import_time_check_sees_an_import() -> None:
    tree = ast.parse("import os\nif True:\n    from sqlalchemy import text\n"
                     "if TYPE_CHECKING:\n    import alembic\n")
    assert _heavy_imports_at_import_time(tree) == ["sqlalchemy"]


def test_package_root_stays_small() -> None:
    entries = [p.name for p in PACKAGE.iterdir()
               if p.name != "__pycache__" and (p.suffix == ".py" or p.is_dir())]
    assert len(entries) <= MOST_TOP_LEVEL, sorted(entries)


def test_every_package_says_what_it_holds() -> None:
    """Each subpackage's __init__ opens with a docstring: its purpose in a line or two."""
    missing = [str(init.relative_to(ROOT)) for init in sorted(PACKAGE.rglob("__init__.py"))
               if not ast.get_docstring(ast.parse(init.read_text()))]
    assert missing == []


def test_architecture_page_names_real_paths() -> None:
    """Every `migration_job/...` path docs/architecture.md names exists."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(migration_job/[\w/.]+)`", text))
    assert named, "docs/architecture.md names no path"
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def _used_at_runtime_but_only_type_checked(tree: ast.Module) -> list[str]:
    """Names a module imports only under TYPE_CHECKING (Alembic, SQLAlchemy and others kept
    out of the import) and yet uses at run time in a function with no import of its own: a
    NameError waiting for the first run that reaches it."""
    only_typed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            only_typed |= {alias.asname or alias.name.split(".")[0] for child in node.body
                           if isinstance(child, (ast.Import, ast.ImportFrom))
                           for alias in child.names}
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        imported = {alias.asname or alias.name.split(".")[0] for node in ast.walk(function)
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        in_annotations = {id(part) for node in ast.walk(function)
                          for field in ("annotation", "returns")
                          if getattr(node, field, None) is not None
                          for part in ast.walk(getattr(node, field))}
        found += [f"{function.name}: {node.id}" for node in ast.walk(function)
                  if isinstance(node, ast.Name) and node.id in only_typed
                  and node.id not in imported and id(node) not in in_annotations]
    return sorted(set(found))


def test_no_type_checking_import_is_used_at_runtime() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        used = _used_at_runtime_but_only_type_checked(ast.parse(path.read_text()))
        if used:
            offenders[str(path.relative_to(ROOT))] = used
    assert offenders == {}


def test_the_runtime_check_sees_a_type_only_name_used() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    import sqlalchemy as sa\n"
                     "def table(x: sa.Table) -> sa.Table:\n    return sa.Table()\n"
                     "def fine(x: sa.Table) -> None:\n"
                     "    import sqlalchemy as sa\n    sa.Table()\n")
    assert _used_at_runtime_but_only_type_checked(tree) == ["table: sa"]


@pytest.mark.parametrize("folder", ["benchmarks", "pipelines", "scripts"])
def test_no_script_folder_shadows_the_standard_library(folder: str) -> None:
    """A file run as a script puts its folder first on sys.path: a module there named like
    one of the standard library's (benchmarks/numbers.py once did) breaks every import of it,
    psycopg2's own included."""
    names = {path.stem for path in (ROOT / folder).glob("*.py")}
    assert sorted(names & sys.stdlib_module_names) == []
