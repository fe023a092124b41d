"""The no-op plot (noop.png): wall, CPU and peak RSS at head against history size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.contenders import LEGEND, NOOP_ORDER
from benchmarks.measure import Summary
from benchmarks.report import Report, noop_summary


def plot(report: Report, path: Path) -> None:
    """No-op at head: wall, CPU and peak RSS against history size, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    summary = noop_summary(report)
    sizes = sorted(summary)
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6), dpi=80)
    panels: list[tuple[str, Callable[[Summary], float], bool]] = [
        ("wall time, ms (log)", lambda s: s.wall_ms, True),
        ("CPU time, ms (log)", lambda s: s.cpu_ms, True),
        ("peak RSS, MB", lambda s: s.rss_mb, False),
    ]
    for axis, (title, value, log_y) in zip(axes, panels, strict=True):
        for name in NOOP_ORDER:
            axis.plot(sizes, [value(summary[n][name]) for n in sizes], marker="o",
                      label=LEGEND[name], linewidth=1.5)
        axis.set_xscale("log")
        if log_y:
            axis.set_yscale("log")
            axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.yaxis.set_minor_formatter(NullFormatter())
        else:
            axis.set_ylim(bottom=0)
        axis.set_xticks(sizes, [str(n) for n in sizes])
        axis.set_xlabel("revisions in the history")
        axis.set_title(title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(NOOP_ORDER), fontsize=9,
                  frameon=False)
    figure.suptitle(f"No-op at head: medians of {report.profile.noop_runs} runs each, "
                    f"{report.env.cores} cores ({report.env.date})", fontsize=11)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=80)
    plt.close(figure)
