"""Who blocks a revision: the sessions holding the locks its statements wait for."""

from __future__ import annotations

from typing import NamedTuple

QUERY_CHARS = 200


class Blocker(NamedTuple):
    """A session that holds a lock one of the job's statements waits for."""

    pid: int
    application_name: str
    client_addr: str | None
    # Seconds since its transaction began; None when it is not in a transaction.
    transaction_age_s: float | None
    # The first line of its current (or, when idle in a transaction, last) statement.
    query: str
    # Whether the job's statement waits for this transaction to end rather than for a lock on
    # a table (CREATE INDEX CONCURRENTLY waiting for older transactions, on PostgreSQL).
    transaction_wait: bool = False
    # What `pid` is on this server: a process id, or (MySQL, MariaDB) a connection id.
    id_label: str = "pid"

    def describe(self) -> str:
        """One human line."""
        name = self.application_name or "(no application_name)"
        where = self.client_addr or "local socket"
        age = ("" if self.transaction_age_s is None
               else f", in a transaction for {self.transaction_age_s:.0f} s")
        query = f", query: {self.query}" if self.query else ""
        return f"{self.id_label} {self.pid} ({name}) from {where}{age}{query}"

    def fields(self) -> dict[str, object]:
        """For the JSON log: the id under its label's name (pid, connection_id)."""
        return {self.id_label.replace(" ", "_"): self.pid,
                "application_name": self.application_name,
                "client_addr": self.client_addr,
                "transaction_age_s": None if self.transaction_age_s is None
                else round(self.transaction_age_s, 1), "query": self.query}


def query_line(text: str | None) -> str:
    """The first non-empty line of a statement, shortened."""
    line = next((part.strip() for part in (text or "").splitlines() if part.strip()), "")
    return line if len(line) <= QUERY_CHARS else line[:QUERY_CHARS - 3] + "..."


def describe_all(blockers: tuple[Blocker, ...]) -> str:
    """'pid 1 (...); pid 2 (...)', or what to say when the server named nobody."""
    if not blockers:
        return "a session the server did not name (it ended its transaction meanwhile)"
    return "; ".join(blocker.describe() for blocker in blockers)
