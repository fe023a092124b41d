"""The benchmark of issues 4 and 9, side by side: the job, plain Alembic, a psycopg2-only floor,
dbmate on PostgreSQL; the job and plain Alembic on SQLite and on MariaDB (issue 9).

Run it with `benchmarks/run` (which installs dbmate and matplotlib first), or, with those in
place, `.venv/bin/python -m benchmarks.bench [--quick]` from the repository root. A full run
writes BENCHMARKS.md and benchmarks/noop.png; --quick writes them under benchmarks/work/quick/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import sys
import time
from pathlib import Path

from benchmarks import (
    benchmarks_md,
    environment,
    fleets,
    heads_paths,
    heads_targets,
    import_profile,
    marked_section,
    noop_plot,
    other_engines,
    report,
    side_by_side,
    targets,
    waiting,
)
from benchmarks.measure import close_launcher
from benchmarks.sites import MariaDBSite, SqliteSite
from benchmarks.world import FULL, QUICK, REPO, WORK, Bench, find_dbmate, prepare_histories
from tests.support.mariadbserver import running_mariadb
from tests.support.pgserver import PostgresServer


def parse_args(argv: list[str]) -> argparse.Namespace:
    """--quick for a smoke run."""
    parser = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="short smoke run (fewer runs, smaller histories), ~2-3 minutes; "
                        "writes to benchmarks/work/quick/ instead of BENCHMARKS.md")
    parser.add_argument("--issue21", action="store_true",
                        help="only issue 21's targets (benchmarks/issue21.py, ~15-25 min): "
                        "writes their section of BENCHMARKS.md (with --quick: nothing)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, then write the results, the report and the plot."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.issue21:
        from benchmarks import issue21

        return issue21.main(["--quick"] if args.quick else [])
    profile = QUICK if args.quick else FULL
    command = "benchmarks/run" + (" --quick" if args.quick else "")
    if args.quick:
        markdown_path, plot_path = WORK / "quick" / "BENCHMARKS.md", WORK / "quick" / "noop.png"
        plot_link = "noop.png"
    else:
        markdown_path, plot_path = REPO / "BENCHMARKS.md", REPO / "benchmarks" / "noop.png"
        plot_link = "benchmarks/noop.png"
    started = time.monotonic()
    load_before = os.getloadavg()
    code_before = environment.describe_code(REPO), environment.code_fingerprint(REPO)
    python = Path(sys.executable)
    dbmate = find_dbmate()
    server = PostgresServer(password=secrets.token_hex(12), max_connections=300)
    bench = Bench(profile=profile, python=python, dbmate=dbmate, server=server)
    try:
        server.start()
        print(f"PostgreSQL on 127.0.0.1:{server.port} ({server.base}); profile {profile.name}",
              flush=True)

        def stage(title: str) -> None:
            print(f"[{time.monotonic() - started:6.1f}s] {title}", flush=True)

        stage("generating histories and their databases")
        prepare_histories(bench)
        stage("no-op at head")
        noop = side_by_side.noop_at_head(bench)
        stage("how the job learns the head: cache, no cache, manifest, public histories")
        heads = heads_paths.heads_paths(bench)
        stage("where the job's no-op time goes (-X importtime)")
        imports = import_profile.import_profile(bench)
        stage("full upgrade from empty")
        full = side_by_side.full_upgrade(bench)
        stage("fleet")
        fleet = fleets.fleet(bench, environment.usable_cores())
        stage("wait for a database that starts")
        wait = waiting.wait_for_start(bench)
        engines = []
        stage("SQLite: no-op at head and fleet, side by side with plain Alembic")
        engines.append(other_engines.engine_benchmark(
            bench, SqliteSite(WORK / "sqlite"), environment.usable_cores()))
        stage("MariaDB: no-op at head and fleet, side by side with plain Alembic")
        with running_mariadb() as mariadb:
            bench.say(f"  MariaDB on 127.0.0.1:{mariadb.port} ({mariadb.base})")
            engines.append(other_engines.engine_benchmark(
                bench, MariaDBSite(mariadb), environment.usable_cores()))
        stage("report")
        env = environment.collect(REPO, server.bindir, dbmate)
        code_after = env.commit, environment.code_fingerprint(REPO)
        # The job's code, not the commit's description: editing the benchmark itself (or
        # BENCHMARKS.md) during a run makes the tree dirty without changing what is measured.
        if code_after[1] != code_before[1]:
            bench.note(f"the job's code changed during this run (commit {code_before[0]}, "
                       f"code {code_before[1]} at the start; {code_after[0]}, {code_after[1]} "
                       "at the end): the numbers mix two versions, rerun for a clean result")
    finally:
        close_launcher()
        server.destroy()
    results = report.Report(env=env, profile=profile, command=command,
                            runtime_s=time.monotonic() - started, fast_path=bench.manifest,
                            notes=bench.notes, noop=noop, full=full, fleet=fleet, wait=wait,
                            imports=imports, engines=engines, load=(load_before, os.getloadavg()),
                            heads=heads)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    raw = WORK / ("results-quick.json" if args.quick else "results.json")
    raw.write_text(json.dumps(dataclasses.asdict(results), indent=1, default=str))
    noop_plot.plot(results, plot_path)
    # Fleet mode's and container starts' sections come from runs of their own: kept as they are.
    kept = marked_section.kept_sections(markdown_path)
    markdown_path.write_text(benchmarks_md.markdown(results, plot_link)
                             + (f"\n{kept}" if kept else ""))
    print(f"\nwrote {markdown_path.relative_to(REPO)}, {plot_path.relative_to(REPO)} and "
          f"{raw.relative_to(REPO)} in {results.runtime_s / 60:.1f} min\n", flush=True)
    for target in (targets.targets(results) + heads_targets.heads_targets(results)
                   + targets.all_engine_targets(results)):
        print(f"  {'MET    ' if target.met else 'NOT MET'}  {target.what}: {target.goal}: "
              f"{target.measured}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
