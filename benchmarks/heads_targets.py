"""Issue 12's targets: the no-op at head with no manifest, and fleets that have none."""

from __future__ import annotations

from benchmarks.heads_paths import CACHED, ORDER, UNCACHED, cpu_ratio
from benchmarks.measure import summarize
from benchmarks.report import Report, ratio
from benchmarks.targets import Target, fleet_ideal, fleet_wall, ratio_on_cores_left

CPU_LIMIT = 0.15
FLEET_AT_HEAD_LIMIT, FLEET_BEHIND_LIMIT = 1.3, 1.2
RSS_LIMIT_MB = 30.0


def heads_targets(report: Report) -> list[Target]:
    """Each of issue 12's targets with what this run measured."""
    out = []
    for row in report.heads:
        for name in (CACHED, UNCACHED):
            measured = cpu_ratio(row, name)
            out.append(Target(f"No-op at head, no manifest, {row.name} ({row.revisions} "
                              f"revisions), {name}: CPU time",
                              f"<= {CPU_LIMIT:g}x plain Alembic", f"{measured:.3f}x",
                              measured <= CPU_LIMIT))
    ideal = fleet_ideal(report)
    fleet = report.fleet
    for state, limit, ideal_s in (("at head", FLEET_AT_HEAD_LIMIT, ideal.at_head_s),
                                  ("behind", FLEET_BEHIND_LIMIT, ideal.behind_s)):
        wall = fleet_wall(report, state)
        what = "at head" if state == "at head" else f"{fleet.size} revisions behind"
        out.append(Target(f"Fleet of {fleet.runners}, no manifest, {what}, {fleet.cores} cores",
                          f"<= {limit:g}x CPU-bound ideal",
                          f"{ratio(wall, ideal_s):.3f}x ({wall:.2f} s vs ideal {ideal_s:.2f} s; "
                          f"{ratio_on_cores_left(fleet, ideal, state):.2f}x on the cores other "
                          "work left)", ratio(wall, ideal_s) <= limit))
    rss = max(summarize(row.samples[name]).rss_mb for row in report.heads
              for name in ORDER if name.startswith("job"))
    out.append(Target("Peak RSS of the job at head, no manifest (largest over the histories)",
                      f"<= {RSS_LIMIT_MB:g} MB", f"{rss:.1f} MB", rss <= RSS_LIMIT_MB))
    return out
