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

from migration_job.project.script_files import Declined

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

# The same names as they would be spelled in source; Alembic's template comment names none.
WATCHED_SOURCE = re.compile(rb"(?<![A-Za-z0-9_])(?:" + b"|".join(
    re.escape(n.encode()) for n in sorted(WATCHED_NAMES | WATCHED_ATTRIBUTES))
    + rb")(?![A-Za-z0-9_])")
ONE_LINE_STRING = re.compile(rb"\"[^\"\n]*\"|'[^'\n]*'")
STAR_IMPORT = re.compile(rb"import[\s\\]*\*")
TEMPLATE_COMMENT = b"# revision identifiers, used by Alembic."


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
    values = _literal_assignments(tree, path, source)
    for name in ("revision", "down_revision"):
        if name not in values:
            raise Declined(f"{path} assigns no literal {name}")
    revision = values["revision"]
    if not isinstance(revision, str):
        raise Declined(f"{path}: revision is not one string")
    _refuse_odd_id(revision, path)
    return RevisionIds(revision, *(_ids(values.get(n), path, n) for n in NAMES[1:]))


def _literal_assignments(tree: ast.Module, path: str, source: bytes) -> dict[str, object]:
    """The four names' values from their module-level `name = literal` (or annotated) lines."""
    values: dict[str, object] = {}
    plain: set[int] = set()
    statements: list[ast.stmt] = []
    for statement in tree.body:
        target, value = _simple_assignment(statement)
        if target in NAMES:
            if target in values:
                raise Declined(f"{path} assigns {target} twice")
            values[target] = _literal(value, path, target)
            statements.append(statement)
            # Its only binding: the value is a literal, an annotation only reads.
            plain.add(id(statement.targets[0] if isinstance(statement, ast.Assign)
                         else getattr(statement, "target", None)))
    if not _mentions_watched_words(source, tree, statements):
        return values
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


def _mentions_watched_words(source: bytes, tree: ast.Module, plain: list[ast.stmt]) -> bool:
    """Whether the source, once the docstring, the plain assignments and Alembic's template
    comment are left out, spells any name the walk below looks for (or `import *`).

    Every node that walk could refuse is spelled in the source as that identifier, so when
    no line outside those holds one, the walk would refuse nothing and is skipped (it is most
    of the reader's time). Conservative: non-ASCII source (identifiers are NFKC-normalised),
    a carriage return, a statement sharing a line, or an annotation with such a name means
    walking.
    """
    if not source.isascii() or b"\r" in source:
        return True  # (and line ends other than \n: ast's line numbers must be the split's)
    body = tree.body
    owned = list(plain)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        owned.append(body[0])
    lines = source.split(b"\n")
    skipped: set[int] = set()
    for statement in owned:
        if not _owns_its_lines(statement, body) or _watched_in(
                getattr(statement, "annotation", None), lines):
            return True
        skipped.update(range(statement.lineno - 1, statement.end_lineno or statement.lineno))
    if STAR_IMPORT.search(source):
        return True
    for match in WATCHED_SOURCE.finditer(source):
        number = source.count(b"\n", 0, match.start())
        if number in skipped or lines[number].strip() == TEMPLATE_COMMENT:
            continue
        if WATCHED_SOURCE.search(_without_strings(lines[number])):
            return True
    return False


def _without_strings(line: bytes) -> bytes:
    """The line without its one-line string literals (SQL in op.execute names columns such as
    `revision`), where they can be found as Python's tokenizer finds them: lines with a
    backslash (escapes), a brace (f-strings hold code) or triple quotes are kept whole."""
    if b"\\" in line or b"{" in line or b'"""' in line or b"'''" in line:
        return line
    return ONE_LINE_STRING.sub(b"", line)


def _owns_its_lines(statement: ast.stmt, body: list[ast.stmt]) -> bool:
    """Whether no other statement starts or ends on the statement's lines."""
    index = body.index(statement)
    before = (body[index - 1].end_lineno or 0) if index else 0
    after = body[index + 1].lineno if index + 1 < len(body) else None
    end = statement.end_lineno or statement.lineno
    return (statement.col_offset == 0 and before < statement.lineno
            and (after is None or after > end))


def _watched_in(node: ast.expr | None, lines: list[bytes]) -> bool:
    """Whether an annotation (evaluated at import) may name a watched name: its text on its
    one line holds one, or it spans lines."""
    if node is None:
        return False
    if node.end_lineno != node.lineno:
        return True
    text = lines[node.lineno - 1][node.col_offset:node.end_col_offset]
    return WATCHED_SOURCE.search(text) is not None


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

