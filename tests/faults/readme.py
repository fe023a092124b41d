"""README.md's "Failure matrix" section, generated from the fault matrix's cells: for each
engine and fault, what the job does, its exit code, what is left behind and how reruns
converge. `python -m tests.faults.readme` rewrites it; test_readme.py fails while it differs.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.markdown_table import table
from benchmarks.marked_section import MarkedSection
from tests.faults.cells import KILLED, Cell
from tests.faults.matrix import CELLS
from tests.faults.runner import RERUN_BOUND_S

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = MarkedSection("failure-matrix")
ENGINES = {"postgresql": "PostgreSQL", "mariadb": "MySQL/MariaDB", "sqlite": "SQLite"}
# What the job does, by the event its last line reports (the cells check that event).
DOES = {
    "interrupted": "cancels the running statement, rolls back, releases the lock",
    "lock_lost": "stops: the lock went with the session, the server rolled the revision back",
    "ddl_blocked": "rolls the revision back, retries it, then gives up naming the blocker",
    "migration_failed": "fails the revision: its transaction rolled back",
    "revision_unfinished": "stops; the revision stays recorded as unfinished",
    "database_unreachable": "gives up when the wait timeout ends",
    "read_only_database": "stops, saying the database turned read-only",
}
INTRO = f"""\
What the job does when something fails while it runs, engine by engine. Each row is a cell of
the fault matrix (`tests/faults`): the real job runs as a process against a real server,
its revision 0002 (after a base revision 0001, before a last one 0003) is held still at the
point named (a lock or a file the test holds: no timing), the fault strikes there, and then
every cell checks the same invariants, after the run and after each rerun until the database
is at head:

- each revision's side effects exist exactly as the version table says (each writes an
  audit row: a revision that ran twice shows), apart from what the row says stays;
- the exit code is the one in the row, never 1; no traceback, no password; the last line is
  the job's summary, and no line says "rolled back" of work that stays committed;
- the job ends within a bound derived from the timeouts the cell sets (no hang); no session
  or lock of the job's stays on the server (nor the SQLite lock file's lock);
- reruns (at most {RERUN_BOUND_S:.0f} s each), with the repair the row names, bring every
  revision to exactly one application.

Which cells run: every fault on every engine it applies to (a server's faults on PostgreSQL
and MariaDB; the blackhole and the failover on PostgreSQL, which the suite can run in a network
namespace and with a streaming standby, while MariaDB gets the server that never answers;
another writer and a read-only volume on SQLite); every revision shape at least once;
and each point where different things are committed (before the first statement, inside one,
between two, before the commit) on each engine. The other combinations are implied: a fault
acts on what is committed at its point and on the statement running there, not on the
statement's kind, so one shape per point and fault shows it; SIGTERM and SIGKILL behave alike
in a DDL and a data statement of one transaction; the MySQL cells with several DDL statements
cover the single-statement case, whose committed part is smaller. A row marked † is a known
defect awaiting its fix (the test marks it xfail(strict), so the fix's merge flips it); the
row says what the job does once fixed.
"""
HEADER = ("fault", "point", "revision 0002", "what the job does", "exit", "left behind",
          "to converge")


def exit_code(cell: Cell) -> str:
    """The exit column: the code(s), or killed."""
    return " or ".join("killed" if c == KILLED else str(c) for c in cell.expect.codes)


def does(cell: Cell) -> str:
    """The "what the job does" column, from the event its last line must report."""
    if cell.expect.event is None:
        if cell.expect.codes == (KILLED,):
            return "nothing (killed): its transaction and lock end with the process"
        return "waits it out, then completes"
    said = DOES[cell.expect.event]
    if cell.expect.kept:
        said += "; its last line says what stays committed"
    return said


def left_behind(cell: Cell) -> str:
    """Applied revisions and what of 0002 stays committed."""
    applied = f"{cell.expect.applied} applied" if cell.expect.applied else "nothing applied"
    if cell.expect.applied and cell.expect.applied >= "0002":
        return applied
    kept = ", ".join(e.label for e in cell.expect.kept) or "nothing"
    return f"{applied}; of 0002: {kept}"


def row(cell: Cell) -> list[str]:
    """One cell as a table row."""
    fault = cell.fault.label + (" †" if cell.defect else "")
    return [fault, cell.point.value, cell.shape.description, does(cell), exit_code(cell),
            left_behind(cell), cell.expect.recovery.value]


def render() -> str:
    """The section's text between its markers."""
    marked = sum(1 for cell in CELLS if cell.defect)
    lines = ["", INTRO.rstrip("\n") + (f" {marked} row(s) are marked today.\n" if marked
                                         else " No row is marked today.\n")]
    for engine, title in ENGINES.items():
        lines += [f"### {title}", "", *table(HEADER, [row(c) for c in CELLS
                                                      if c.engine == engine]), ""]
    return SECTION.wrap(lines[:-1])


def current(readme: Path = README) -> str:
    """The section as README.md has it (empty when it has none)."""
    text = readme.read_text()
    if SECTION.begin not in text:
        return ""
    start = text.index(SECTION.begin)
    return text[start:text.index(SECTION.end, start) + len(SECTION.end)] + "\n"


def write(readme: Path = README) -> None:
    """Replace the section in README.md where it stands (its markers must be there)."""
    old = current(readme)
    if not old:
        raise SystemExit(f"{readme} has no {SECTION.begin} ... {SECTION.end} section")
    text = readme.read_text()
    readme.write_text(text.replace(old.rstrip("\n"), render().rstrip("\n"), 1))


if __name__ == "__main__":
    write()
