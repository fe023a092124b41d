"""A revision file's identifiers read from its source with `ast`, never by running it.

Alembic runs the file and reads the module's `revision`, `down_revision`, `branch_labels` and
`depends_on`. Their values are certain from the source only when each is one plain
module-level assignment of a literal and nothing else in the file can bind or change it; any
other shape raises Declined (and Alembic reads the history).
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple

from migration_job.script_files import Declined

NAMES = ("revision", "down_revision", "branch_labels", "depends_on")
# Ids the reader vouches for: Alembic refuses '@', '-', '+' and ':' in them, and these words
# mean something else in a target.
REVISION_ID = re.compile(r"[A-Za-z0-9_.]+\Z")
RESERVED = {"head", "heads", "base", "current"}
# Ways a module can change its own globals (or another's) at run time.
DYNAMIC_NAMES = {"globals", "vars", "locals", "exec", "eval", "compile", "setattr", "delattr",
                 "__import__", "__builtins__", "__getattr__", "__dict__"}
DYNAMIC_ATTRIBUTES = {"__dict__", "modules", "_getframe", "f_globals", "__setattr__",
                      "__class__"}

WATCHED_NAMES = frozenset(NAMES) | DYNAMIC_NAMES
WATCHED_ATTRIBUTES = frozenset(NAMES) | DYNAMIC_ATTRIBUTES
# Nodes other than names that bind a name.
BINDERS = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.alias,
                     ast.Global, ast.Nonlocal, ast.ExceptHandler, ast.MatchAs, ast.MatchStar,
                     ast.MatchMapping, ast.AnnAssign})


class RevisionIds(NamedTuple):
    """What Alembic would read from one revision file."""

    revision: str
    down_revisions: tuple[str, ...]
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]


def read_revision(path: str, source: bytes) -> RevisionIds:
    """The file's identifiers, or Declined when the source cannot vouch for them."""
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as error:
        raise Declined(f"cannot parse {path}: {type(error).__name__}") from None
    values = _literal_assignments(tree, path)
    for name in ("revision", "down_revision"):
        if name not in values:
            raise Declined(f"{path} assigns no literal {name}")
    revision = values["revision"]
    if not isinstance(revision, str):
        raise Declined(f"{path}: revision is not one string")
    _refuse_odd_id(revision, path)
    return RevisionIds(revision, *(_ids(values.get(n), path, n) for n in NAMES[1:]))


def _literal_assignments(tree: ast.Module, path: str) -> dict[str, object]:
    """The four names' values from their module-level `name = literal` (or annotated) lines."""
    values: dict[str, object] = {}
    plain: set[int] = set()
    for statement in tree.body:
        target, value = _simple_assignment(statement)
        if target in NAMES:
            if target in values:
                raise Declined(f"{path} assigns {target} twice")
            values[target] = _literal(value, path, target)
            plain.update(id(node) for node in ast.walk(statement) if isinstance(node, ast.Name)
                         and node.id == target and isinstance(node.ctx, ast.Store))
    for node in ast.walk(tree):
        # Most nodes cannot matter: sorted out by type and name before any call (this loop
        # is most of the reader's time).
        kind = type(node)
        if kind is ast.Name:
            if node.id in WATCHED_NAMES and id(node) not in plain:  # type: ignore[attr-defined]
                _refuse_other_binding(node, path)
        elif kind is ast.Attribute:
            if node.attr in WATCHED_ATTRIBUTES:  # type: ignore[attr-defined]
                _refuse_other_binding(node, path)
        elif kind in BINDERS:
            _refuse_other_binding(node, path)
    return values


def _simple_assignment(statement: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)):
        return statement.targets[0].id, statement.value
    if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            and statement.value is not None):
        return statement.target.id, statement.value
    return None, None


def _literal(value: ast.expr | None, path: str, name: str) -> object:
    if isinstance(value, ast.Constant) and (value.value is None or isinstance(value.value, str)):
        return value.value
    if isinstance(value, ast.Tuple | ast.List) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts):
        return tuple(e.value for e in value.elts if isinstance(e, ast.Constant))
    raise Declined(f"{path}: {name} is not a literal string, None, tuple or list of strings")


def _refuse_other_binding(node: ast.AST, path: str) -> None:
    """Declined if the node may bind one of the four names or reach into a module's globals."""
    bound: list[str] = []
    if isinstance(node, ast.Name):
        if not isinstance(node.ctx, ast.Load):
            bound.append(node.id)
        elif node.id in DYNAMIC_NAMES:
            raise Declined(f"{path} uses {node.id} (line {node.lineno})")
    elif isinstance(node, ast.Attribute):
        if node.attr in DYNAMIC_ATTRIBUTES or (
                not isinstance(node.ctx, ast.Load) and node.attr in NAMES):
            raise Declined(f"{path} uses .{node.attr} (line {node.lineno})")
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        bound.append(node.name)
    elif isinstance(node, ast.alias):
        if node.name == "*":
            raise Declined(f"{path} imports * (line {node.lineno})")
        bound.append(node.asname or node.name.split(".")[0])
    elif isinstance(node, ast.Global | ast.Nonlocal):
        bound.extend(node.names)
    elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
        bound.append(node.name or "")
    elif isinstance(node, ast.MatchMapping):
        bound.append(node.rest or "")
    elif isinstance(node, ast.AnnAssign) and node.value is None:
        bound.append(ast.unparse(node.target))
    hit = [name for name in bound if name in NAMES or name in DYNAMIC_NAMES]
    if hit:
        raise Declined(f"{path} binds {hit[0]} outside one plain assignment "
                       f"(line {getattr(node, 'lineno', '?')})")


def _ids(value: object, path: str, name: str) -> tuple[str, ...]:
    """Alembic's util.to_tuple, for ids the reader vouches for (duplicates and odd ones decline)."""
    ids = () if value is None else (value,) if isinstance(value, str) else value
    assert isinstance(ids, tuple)
    if isinstance(value, tuple) and not value:
        raise Declined(f"{path}: {name} is empty")
    if len(set(ids)) != len(ids):
        raise Declined(f"{path}: {name} names an id twice")
    for one in ids:
        _refuse_odd_id(one, path)
    return ids


def _refuse_odd_id(value: str, path: str) -> None:
    if not REVISION_ID.match(value) or value in RESERVED:
        raise Declined(f"{path}: {value!r} is not an id the reader vouches for")

