"""Fleet mode (issue 14), side by side in one run: 100 tenants from empty and at head.

`fleet` in one process, a sequential shell loop of the single-database job, and a shell loop
of plain `alembic upgrade head`, each on its own 100 databases copied from one template.
Measured: wall time, tenants per second, CPU (the whole process tree's, from rusage), peak RSS
(the largest process, and the process tree's sum sampled every 20 ms), and peak server
connections, exactly, from the server's own connection and disconnection log lines.

    .venv/bin/python -m benchmarks.fleet_mode [--tenants 100] [--concurrency 4]

Writes benchmarks/work/fleet.json and the "Fleet mode" section of BENCHMARKS.md (between its
markers; `benchmarks/run` keeps that section when it rewrites the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.marked_section import MarkedSection
from benchmarks.world import clean_env
from tests.support.pgserver import PostgresServer
from tests.support.projects import make_project
from tests.support.queries import run_once

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / "work"
SECTION = MarkedSection("fleet-mode")
CONTENDERS = ("fleet", "job loop", "alembic loop")
# The targets: the fleet's wall time over the job loop's.
FROM_EMPTY_TARGET, AT_HEAD_TARGET = 0.35, 0.1
_CONNECTED = re.compile(r"\[(\d+)\] LOG:  connection authorized")
_DISCONNECTED = re.compile(r"\[(\d+)\] LOG:  disconnection")


def tenants(server: PostgresServer, prefix: str, count: int) -> list[str]:
    """`count` empty databases copied from one template; their URLs."""
    run_once(server.connect(), f'CREATE DATABASE "{prefix}_template" IS_TEMPLATE true')
    conn = server.connect()
    with conn.cursor() as cursor:
        for n in range(count):
            cursor.execute(f'CREATE DATABASE "{prefix}_{n}" TEMPLATE "{prefix}_template"')
    conn.close()
    return [server.url(f"{prefix}_{n}") for n in range(count)]


def command(contender: str, targets: Path, ini: Path, concurrency: int) -> list[str]:
    """The contender's command line."""
    python = sys.executable
    if contender == "fleet":
        return [python, str(REPO / "entrypoint.py"), "fleet"]
    if contender == "job loop":
        run = f'DATABASE_URL="$url" {python} {REPO / "entrypoint.py"} upgrade'
    else:
        alembic = Path(python).parent / "alembic"
        run = f'DATABASE_URL="$url" {python} {alembic} -c {ini} upgrade head'
    return ["bash", "-c", f'while read -r url; do {run} || exit 1; done < {targets}']


def tree_rss_kib(pid: int) -> int:
    """The summed VmRSS of a process and its descendants (shared pages counted in each)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return total


def peak_rss_kib(pid: int) -> int:
    """The process's own peak RSS so far (VmHWM), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return 0


def peak_connections(log: Path, start: int) -> int:
    """The most client connections open at once, from the server log after `start` bytes."""
    with log.open("rb") as file:
        file.seek(start)
        text = file.read().decode("utf-8", "replace")
    open_now, peak = set(), 0
    for line in text.splitlines():
        if (found := _CONNECTED.search(line)) is not None:
            open_now.add(found.group(1))
            peak = max(peak, len(open_now))
        elif (found := _DISCONNECTED.search(line)) is not None:
            open_now.discard(found.group(1))
    return peak


def measure(argv: list[str], env: dict[str, str], cwd: Path, server: PostgresServer
            ) -> dict[str, Any]:
    """Run one contender to completion; its numbers."""
    log_start = server.logfile.stat().st_size
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    peak_tree, parent_peak = [0], [0]

    def sample() -> None:
        while process.poll() is None:
            peak_tree[0] = max(peak_tree[0], tree_rss_kib(process.pid))
            parent_peak[0] = max(parent_peak[0], peak_rss_kib(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    wall = time.monotonic() - started
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(0.5)  # the server writes its disconnection lines after the client left
    return {"exit_code": process.returncode, "wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "max_process_rss_mib": after.ru_maxrss / 1024,
            "peak_tree_rss_mib": peak_tree[0] / 1024,
            "parent_peak_rss_mib": parent_peak[0] / 1024,
            "peak_connections": peak_connections(server.logfile, log_start),
            "stderr_tail": stderr[-500:]}


def run(count: int, concurrency: int) -> dict[str, Any]:
    """Every contender from empty and then at head, each on its own tenants."""
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    server = PostgresServer(max_connections=100).start()
    try:
        ini = make_project(root / "project")
        subprocess.run([sys.executable, str(REPO / "entrypoint.py"), "manifest"], check=True,
                       env=clean_env(ALEMBIC_CONFIG=str(ini)), capture_output=True)
        run_once(server.connect(), "ALTER SYSTEM SET log_connections = on")
        run_once(server.connect(), "ALTER SYSTEM SET log_disconnections = on")
        run_once(server.connect(), "SELECT pg_reload_conf()")
        results: dict[str, Any] = {"tenants": count, "concurrency": concurrency,
                                   "load_before": os.getloadavg()}
        for contender in CONTENDERS:
            prefix = contender.split()[0]
            targets = root / f"{prefix}.targets"
            targets.write_text("".join(f"{url}\n" for url in tenants(server, prefix, count)))
            env = clean_env(ALEMBIC_CONFIG=str(ini), MIGRATE_TARGETS_FILE=str(targets),
                            MIGRATE_CONCURRENCY=str(concurrency), MIGRATE_LOG_LEVEL="WARNING")
            argv = command(contender, targets, ini, concurrency)
            for scenario in ("from empty", "at head"):
                print(f"==> {contender}, {count} tenants {scenario}", flush=True)
                found = measure(argv, env, ini.parent, server)
                results[f"{contender} / {scenario}"] = found
                print(f"    {found['wall_s']:.2f} s, exit {found['exit_code']}, "
                      f"peak connections {found['peak_connections']}", flush=True)
        results["load_after"] = os.getloadavg()
        return results
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def section(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    count, concurrency = results["tenants"], results["concurrency"]
    lines = ["## Fleet mode (issue 14)", "",
             f"Generated by `python -m benchmarks.fleet_mode` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (commit {_commit()}), "
             f"{count} tenant databases on one PostgreSQL, the example "
             f"project (5 revisions, heads manifest written); `fleet` with "
             f"`MIGRATE_CONCURRENCY={concurrency}`; the loops run one database after another. "
             f"Load average {_load(results['load_before'])} before, "
             f"{_load(results['load_after'])} after.", "",
             "| contender | scenario | wall | tenants/s | CPU | largest process RSS | "
             "process tree RSS (sum) | peak server connections | exit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, found in results.items():
        if " / " not in key:
            continue
        contender, scenario = key.split(" / ")
        lines.append(f"| {contender} | {scenario} | {found['wall_s']:.2f} s | "
                     f"{count / found['wall_s']:.1f} | {found['cpu_s']:.2f} s | "
                     f"{found['max_process_rss_mib']:.0f} MiB | "
                     f"{found['peak_tree_rss_mib']:.0f} MiB | {found['peak_connections']} | "
                     f"{found['exit_code']} |")
    lines += ["", "| target | goal | measured | verdict |", "|---|---|---|---|"]
    for scenario, goal in (("from empty", FROM_EMPTY_TARGET), ("at head", AT_HEAD_TARGET)):
        ratio = (results[f"fleet / {scenario}"]["wall_s"]
                 / results[f"job loop / {scenario}"]["wall_s"])
        lines.append(f"| {count} tenants {scenario}: wall time | fleet <= {goal}x the job loop | "
                     f"{ratio:.3f}x | {'MET' if ratio <= goal else '**NOT MET**'} |")
    peak = max(results[f"fleet / {s}"]["peak_connections"] for s in ("from empty", "at head"))
    lines.append(f"| peak server connections | fleet <= concurrency + 1 = {concurrency + 1} | "
                 f"{peak} | {'MET' if peak <= concurrency + 1 else '**NOT MET**'} |")
    return SECTION.wrap(lines)


def _load(load: list[float]) -> str:
    return "/".join(f"{value:.1f}" for value in load)


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                          capture_output=True, check=False)
    return done.stdout.strip() or "unknown"


def main() -> int:
    """Run, save and write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    results = run(args.tenants, args.concurrency)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "fleet.json").write_text(json.dumps(results, indent=1))
    text = section(results)
    print(text)
    if not args.no_write:
        SECTION.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
