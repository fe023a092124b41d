"""`lint`: squawk over each pending revision's offline SQL; and the lint section of `plan`.

From the database's revision, or offline from `--from REV`, as `plan`. A violation exits 12,
naming its revision, file and rule; squawk itself is configured by the project's
`.squawk.toml` and MIGRATE_LINT_EXCLUDE.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from migration_job.errors import LintViolations
from migration_job.log import log
from migration_job.review.pending import pending
from migration_job.review.squawk import (
    LintUnavailable,
    lint_sql,
    refuse_other_engines,
    squawk_version,
)
from migration_job.run import outcome

if TYPE_CHECKING:
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings


def lint(settings: Settings, interruption: Interruption) -> str:
    """Lint the pending revisions' SQL with squawk; exit 12 on a violation."""
    refuse_other_engines(settings)
    found = pending(settings, interruption)
    if not found.revisions:
        target = outcome.describe(found.target)
        print(f"nothing to lint: {found.source} is already at {target}")
        return _passed(f"nothing to lint: {found.source} is already at {target}", 0)
    findings = lint_sql(settings, {r["revision"]: r["sql"] for r in found.revisions})
    report = [{"revision": r["revision"], "message": r["message"], "file": r["file"],
               "findings": [f._asdict() for f in findings[r["revision"]]]}
              for r in found.revisions]
    for revision in report:
        rules = sorted({f["rule"] for f in revision["findings"]})
        log.emit("WARNING" if rules else "INFO", "revision_linted",
                 f"{revision['revision']} ({revision['file']}): "
                 + (f"{len(revision['findings'])} violation(s): {', '.join(rules)}"
                    if rules else "clean"), revision=revision["revision"], file=revision["file"],
                 violations=len(revision["findings"]), rules=rules)
    violations = sum(len(r["findings"]) for r in report)
    if settings.json_output:
        print(json.dumps({"from": list(found.current), "source": found.source,
                          "target": list(found.target), "linter": squawk_version(settings),
                          "violations": violations, "revisions": report}))
    else:
        print("\n".join(text_report(report)))
    failing = [r for r in report if r["findings"]]
    if failing:
        raise LintViolations(
            f"squawk found {violations} violation(s) in {len(failing)} of {len(report)} "
            f"revision(s) from {found.source}: "
            + "; ".join(f"{r['revision']} ({r['file']}): "
                        + ", ".join(sorted({f["rule"] for f in r["findings"]}))
                        for r in failing)
            + "; make the DDL safe, or exclude the rule (.squawk.toml, MIGRATE_LINT_EXCLUDE)")
    return _passed(f"lint passed: {len(report)} revision(s) from {found.source}, no violations",
                   len(report))


def _passed(summary: str, revisions: int) -> str:
    log.info("lint_passed", summary, revisions=revisions)
    return summary


def text_report(report: list[dict[str, Any]]) -> list[str]:
    """One line per revision, then one per finding under it: readable in a pipeline log."""
    lines = []
    for revision in report:
        count = len(revision["findings"])
        lines.append(f"{revision['revision']} {revision['file']}: "
                     + (f"{count} violation(s)" if count else "clean"))
        lines += [f"  {revision['revision']} SQL line {f['line']}: {f['rule']}: {f['message']}"
                  + (f" ({f['help']})" if f["help"] else "") for f in revision["findings"]]
    return lines


def lint_section(settings: Settings, revisions: list[dict[str, Any]]) -> dict[str, Any]:
    """`plan`'s lint section: each revision's findings, or why lint did not run."""
    if not revisions:
        return {"ran": False, "reason": "no pending revisions"}
    try:
        refuse_other_engines(settings)
        findings = lint_sql(settings, {r["revision"]: r["sql"] for r in revisions})
        linter = squawk_version(settings)
    except LintUnavailable as error:
        return {"ran": False, "reason": str(error)}
    return {"ran": True, "linter": linter,
            "violations": sum(len(found) for found in findings.values()),
            "findings": {revision: [f._asdict() for f in found]
                         for revision, found in findings.items()}}


def markdown_summary(section: dict[str, Any]) -> list[str]:
    """The plan's overall lint line."""
    if not section["ran"]:
        return [f"**Lint**: not run: {section['reason']}.", ""]
    failing = [revision for revision, found in section["findings"].items() if found]
    if not failing:
        return [f"**Lint** ({section['linter']}): no violations.", ""]
    return [f"**Lint** ({section['linter']}): {section['violations']} violation(s) in "
            + ", ".join(f"`{revision}`" for revision in failing) + ".", ""]


def markdown_findings(section: dict[str, Any], revision: str) -> list[str]:
    """A revision's lint findings in the plan."""
    if not section["ran"]:
        return []
    found: list[dict[str, Any]] = section["findings"].get(revision, [])
    if not found:
        return ["Lint: clean.", ""]
    return [f"Lint: {len(found)} violation(s):", "",
            *(f"- `{f['rule']}` (SQL line {f['line']}): {f['message']}"
              + (f" {f['help']}" if f["help"] else "") for f in found), ""]
