"""Every event the job can write is listed in docs/logs.md's "Events" section."""

from __future__ import annotations

import ast
import re

from tests.support.job import REPO

LEVELS = ("debug", "info", "warning", "error")


def emitted_events() -> dict[str, str]:
    """Each event name the code writes, with where: `log.<level>("event", ...)` calls, and
    the `event` of each error class (a failure's last line)."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "migration_job").rglob("*.py")):
        where = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "log" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.setdefault(str(node.args[0].value), f"{where}:{node.lineno}")
            elif isinstance(node, ast.ClassDef) and node.name != "JobError":  # its subclasses
                for line in node.body:
                    if (isinstance(line, ast.Assign) and isinstance(line.value, ast.Constant)
                            and [getattr(t, "id", None) for t in line.targets] == ["event"]):
                        found.setdefault(str(line.value.value), f"{where}:{line.lineno}")
    return found


def listed_events() -> set[str]:
    """The names in backquotes in docs/logs.md's "Events" section."""
    page = (REPO / "docs" / "logs.md").read_text()
    section = page.split("\n## Events\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z][a-z0-9_]*)`", section))


def test_the_scan_finds_events() -> None:
    """The scan itself works: it sees events of both kinds."""
    events = emitted_events()
    assert {"database_ready", "lock_acquired", "migration_failed", "history_error"} <= set(events)
    assert len(events) > 40


def test_every_emitted_event_is_listed_in_the_docs() -> None:
    missing = {event: where for event, where in emitted_events().items()
               if event not in listed_events()}
    assert not missing, f"events missing from docs/logs.md's Events section: {missing}"
