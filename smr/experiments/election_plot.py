"""The picture of an election campaign, drawn like Figure 16 of the extended Raft paper.

Time without a leader on a logarithmic x axis, cumulative percent of trials
on the y axis, one line per election timeout range.  As in the paper, the
top panel varies the randomness at a fixed minimum (ranges sharing the most
common minimum) and the bottom panel scales the minimum (ranges whose
maximum is twice their minimum); with ranges that do not split that way, one
panel shows them all.  Percentages are of all trials, so a range with trials
that never converged stops short of 100%.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .election import ElectionTrial  # noqa: E402


def panels(ranges: Sequence[tuple[int, int]]) -> list[tuple[str, list[tuple[int, int]]]]:
    """Split ranges into the paper's two panels (titled), or one panel when they do not split."""
    if not ranges:
        return []
    lows = Counter(low for low, _ in ranges)
    common = max(lows, key=lambda low: (lows[low], low))
    scaled = [r for r in ranges if r[1] == 2 * r[0]]
    varied = [r for r in ranges if r[0] == common or r not in scaled]
    if len(varied) >= 2 and len(scaled) >= 2 and set(varied) != set(scaled):
        return [(f"varying randomness (minimum {common} ms)", varied),
                ("scaling the minimum election timeout", scaled)]
    return [("election timeout ranges", list(ranges))]


def plot_cdf(trials: Sequence[ElectionTrial], title: str, path_stem: Path) -> list[Path]:
    """Draw the CDF of downtime per range; write ``<stem>.png`` and ``<stem>.svg``; return the paths."""
    by_range: dict[tuple[int, int], list[ElectionTrial]] = {}
    for t in trials:
        by_range.setdefault((t.low_ms, t.high_ms), []).append(t)
    layout = panels(list(by_range))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {r: cycle[i % len(cycle)] for i, r in enumerate(by_range)}  # one colour per range
    fig, axes = plt.subplots(len(layout), 1, figsize=(8, 3.6 * len(layout) + 0.6), squeeze=False,
                             sharex=True)
    for ax, (panel_title, ranges) in zip(axes[:, 0], layout):
        for low, high in ranges:
            group = by_range[(low, high)]
            times = sorted(t.downtime_ms for t in group if t.downtime_ms is not None)
            if not times:
                continue
            ys = [100.0 * (k + 1) / len(group) for k in range(len(times))]
            ax.step([times[0], *times], [0.0, *ys], where="post", label=f"{low}-{high}ms",
                    color=colour[(low, high)])
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 100)
        ax.set_ylabel("cumulative percent")
        ax.set_title(panel_title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[-1, 0].set_xlabel("time without leader (ms)")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [path_stem.with_suffix(".png"), path_stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths
