"""The picture of an election campaign, after Figure 16 of the extended Raft paper.

Time without a leader on a logarithmic x axis, cumulative percent of trials
on the y axis: one panel per election timeout range, every backend in each
panel, and every panel on the same axes, so backends and ranges compare by
eye.  As in the paper, the first row varies the randomness at a fixed minimum
(ranges sharing the most common minimum) and the second scales the minimum
(ranges whose maximum is twice their minimum); with ranges that do not split
that way, the panels simply follow the ranges' order.  Percentages are of all
trials, so a backend with trials that never converged stops short of 100%.
Each backend has its colour from :func:`smr.colours.backend_colour`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import attrs
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ..colours import backend_colour  # noqa: E402
from ..plots import save_figure  # noqa: E402
from .election import ElectionTrial  # noqa: E402

#: Panels per row at most.
_COLUMNS = 6


def panels(ranges: Sequence[tuple[int, int]]) -> list[tuple[str, list[tuple[int, int]]]]:
    """Split ranges into the paper's two groups (titled), or one group when they do not split."""
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


@attrs.frozen
class ElectionFigure:
    """A drawn election figure and its panel per timeout range, for saving and for tests."""

    figure: Figure
    axes: dict[tuple[int, int], Axes]


def _rows(ranges: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """The panels' rows: the paper's groups, each range drawn once, long rows wrapped."""
    rows: list[list[tuple[int, int]]] = []
    drawn: set[tuple[int, int]] = set()
    for _, group in panels(ranges):
        fresh = [r for r in group if r not in drawn]
        drawn.update(fresh)
        rows += [fresh[i:i + _COLUMNS] for i in range(0, len(fresh), _COLUMNS)]
    return rows


def draw_election(trials: Sequence[ElectionTrial], title: str) -> ElectionFigure:
    """Draw the downtime CDFs: a panel per range, every backend in it, all panels on shared axes."""
    by_range: dict[tuple[int, int], list[ElectionTrial]] = {}
    for t in trials:
        by_range.setdefault((t.low_ms, t.high_ms), []).append(t)
    backends = list(dict.fromkeys(t.backend for t in trials))
    rows = _rows(list(by_range)) or [[]]
    columns = max(len(row) for row in rows) or 1
    fig = plt.figure(figsize=(2.6 * columns + 1.0, 2.7 * len(rows) + 1.4), layout="constrained")
    grid = fig.add_gridspec(len(rows), columns)
    axes: dict[tuple[int, int], Axes] = {}
    first: Axes | None = None
    for i, row in enumerate(rows):
        for j, rng in enumerate(row):
            ax = fig.add_subplot(grid[i, j], sharex=first, sharey=first)
            first = first or ax
            axes[rng] = ax
            _panel(ax, rng, by_range[rng], backends, left=(j == 0), bottom=(i == len(rows) - 1 or
                                                                          j >= len(rows[i + 1])))
    if first is not None:
        first.set_xscale("log")
        first.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 3.0)))
        first.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        first.xaxis.set_minor_formatter(NullFormatter())
        first.set_ylim(0, 102)
    handles = [Line2D([], [], color=backend_colour(b), lw=2.5, label=b) for b in backends]
    fig.legend(handles=handles, loc="outside lower center", ncols=max(len(backends), 1), fontsize=9,
               frameon=False, title="backend (percent of all trials; a curve short of 100% had trials that never "
                                    "converged)", title_fontsize=8)
    fig.suptitle(title, fontsize=11)
    return ElectionFigure(fig, axes)


def _panel(ax: Axes, rng: tuple[int, int], group: Sequence[ElectionTrial], backends: Sequence[str], *,
           left: bool, bottom: bool) -> None:
    low, high = rng
    medians = []
    for k, backend in enumerate(backends):  # fixed order; earlier curves wider, so none hides another
        mine = [t for t in group if t.backend == backend]
        times = sorted(t.downtime_ms for t in mine if t.downtime_ms is not None)
        if not times:
            continue
        ys = [100.0 * (n + 1) / len(mine) for n in range(len(times))]
        ax.step([times[0], *times], [0.0, *ys], where="post", color=backend_colour(backend), alpha=0.8,
                lw=1.3 + 1.2 * (len(backends) - 1 - k), gid=f"cdf:{backend}:{low}-{high}")
        medians.append(f"{backend} {statistics.median(times):.0f}")
    ax.set_title(f"{low}-{high} ms\nmedian ms: " + ", ".join(medians), fontsize=8.5)
    ax.grid(True, which="both", alpha=0.3)
    ax.tick_params(labelsize=8, labelleft=left, labelbottom=bottom)
    if left:
        ax.set_ylabel("cumulative percent")
    if bottom:
        ax.set_xlabel("time without leader (ms)")


def plot_cdf(trials: Sequence[ElectionTrial], title: str, path_stem: Path) -> list[Path]:
    """Draw the downtime CDFs of every backend and range; write ``<stem>.png`` and ``<stem>.svg``."""
    return save_figure(draw_election(trials, title).figure, path_stem)
