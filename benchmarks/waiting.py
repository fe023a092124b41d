"""Waiting for a database that comes up: the job started against a stopped server."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from benchmarks.measure import CommandFailed, launcher
from benchmarks.world import Bench, output_file
from tests.support.pgserver import PostgresServer


@dataclass
class WaitRun:
    """One job started against a stopped server that is started `delay_s` later."""

    delay_s: float
    connected_after_s: float
    probe_resolution_s: float
    after_pg_ctl_s: float
    failed_attempts: int
    attempts_per_s: float
    peak_attempts_1s: int
    exit_code: int


class Probe(threading.Thread):
    """Tries connect + SELECT 1 every 5 ms; remembers when the last failure and first success began.

    The database "starts accepting" (t0) somewhere between the start of the last failed probe
    and the start of the first successful one: we take the last failed probe's start, which
    can only make the job's measured delay longer, never shorter.
    """

    def __init__(self, server: PostgresServer, database: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.server, self.database, self.deadline = server, database, deadline
        self.last_failure: float | None = None
        self.first_success: float | None = None

    def run(self) -> None:
        """Probe until the first success or the deadline."""
        while time.time() < self.deadline:
            began = time.time()
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.server.port, user="postgres",
                                        password=self.server.password, dbname=self.database,
                                        connect_timeout=2, application_name="bench-probe")
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT 1")
                finally:
                    conn.close()
            except psycopg2.Error:
                self.last_failure = began
                time.sleep(0.005)
                continue
            self.first_success = began
            return


def _ts(stamp: str) -> float:
    """The job's JSON `ts` (UTC, milliseconds) as a Unix time."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _events(path: Path) -> list[tuple[str, float]]:
    """The (event, Unix time) pairs of the job's JSON log, in order."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record and "ts" in record:
            events.append((str(record["event"]), _ts(str(record["ts"]))))
    return events


def wait_for_start(bench: Bench) -> list[WaitRun]:
    """The job started against a stopped server; the server starts a random 2-4 s later."""
    history = bench.histories[min(bench.profile.sizes)]
    server = PostgresServer(password=bench.server.password, max_connections=50)
    rng = random.Random(4)  # noqa: S311  (delays, not secrets; fixed seed for repeatability)
    runs: list[WaitRun] = []
    try:
        server.start()
        bench.recreate_database("wait", server)
        bench.psql_file(bench.url("wait", server), history.all_sql)
        server.stop()
        command = bench.job(history, bench.url("wait", server), MIGRATE_WAIT_TIMEOUT="60",
                            MIGRATE_LOG_FORMAT="json")
        bench.say(f"  wait: {bench.profile.wait_reps} starts of a stopped server")
        for rep in range(bench.profile.wait_reps):
            delay = rng.uniform(*bench.profile.wait_delay_s)
            out = output_file(f"wait-{rep:02d}")
            process = launcher().spawn(command, out)
            time.sleep(delay)
            probe = Probe(server, "wait", time.time() + 60)
            probe.start()
            server.start()
            pg_ctl_returned = time.time()
            probe.join(60)
            sample = launcher().reap(process)
            server.stop()
            if sample.exit_code != 0:
                raise CommandFailed(f"job exited {sample.exit_code} in the wait scenario:\n"
                                    + out.read_text(errors="replace")[-2000:])
            if probe.first_success is None or probe.last_failure is None:
                raise RuntimeError("the probe never saw the server go from down to up")
            events = _events(out)
            waits = [t for name, t in events if name == "waiting_for_database"]
            ready = next(t for name, t in events if name == "database_ready")
            peak = max((sum(1 for u in waits if t <= u < t + 1.0) for t in waits), default=0)
            runs.append(WaitRun(
                delay_s=delay,
                connected_after_s=ready - probe.last_failure,
                probe_resolution_s=probe.first_success - probe.last_failure,
                after_pg_ctl_s=ready - pg_ctl_returned,
                failed_attempts=len(waits),
                attempts_per_s=len(waits) / (ready - waits[0]) if waits else 0.0,
                peak_attempts_1s=peak,
                exit_code=sample.exit_code))
    finally:
        server.destroy()
    return runs
