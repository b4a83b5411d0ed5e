"""Pictures of a comparison: per backend, latency and throughput over time with fault bands; CDF; summaries.

One figure per scenario, written as ``<scenario>.png`` and ``<scenario>.svg``:

* **Latency over time**, one panel per backend (small multiples with shared
  axes, so no backend hides another): every operation of every seed, OK ones
  as dots at their completion, failed ones as triangles and unknown (timed
  out) ones as crosses at their invocation.
* **Throughput over time**, one panel per backend: a thin line per seed and
  their median.
* **Latency CDF** of every backend on one axis (all seeds pooled), drawn in a
  fixed order with the first curves widest so identical curves still show.
* **Summaries**, one metric and one unit per panel: throughput, p99 latency,
  peer messages per command, operations not known to have succeeded; a bar per
  backend (mean over seeds) with a dot per seed.

Each backend has one colour (:func:`smr.colours.backend_colour`) in every
panel and figure; metrics, outcomes and faults are told apart by panels,
markers and greys.  Fault bands run from the fault to its repair (a crash to
its restart, a partition to its heal, a membership change from its start to
its end in that backend's run).  Scatter layers are rasterised inside the SVG
so it stays small.  Uses matplotlib's non-interactive Agg backend, so it works
on a machine with no screen.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import attrs
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure, SubFigure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from .colours import FAULT_GREY, MARKER_BLACK, backend_colour  # noqa: E402
from .history import Operation, Outcome  # noqa: E402
from .sim.config import MEMBERSHIP_ACTIONS, FaultEvent  # noqa: E402

__all__ = ["Band", "ScenarioFigure", "SeedRun", "Series", "backend_colour", "cdf_points", "draw_scenario",
           "fault_bands", "plot_scenario", "save_figure"]

#: Repairs: they end a band and draw none of their own.
_RESTARTS = {"restart", "restart_all"}
#: Faults that reshape the network; a later one replaces an earlier one, a heal ends it.
_NETWORK_SHAPES = {"partition", "partition_halves", "isolate", "isolate_leader", "bridge", "flap"}
#: What a membership change did, in words.
_CHANGE_WORDS = {"add_node": "node added", "remove_node": "node removed", "remove_leader": "leader removed",
                 "remove_follower": "follower removed", "replace_node": "node replaced",
                 "replace_leader": "leader replaced"}
#: Dots per inch of the PNG.
DPI = 110
#: Dots per inch of the SVG's rasterised layers (scatter points, per-seed lines): small files, still sharp.
SVG_RASTER_DPI = 90
#: Points kept per CDF curve (the tail is kept densely): the SVG stays small whatever the run length.
CDF_POINTS = 200


@attrs.frozen
class SeedRun:
    """One seed's run of one backend, as the figures need it."""

    seed: int
    history: tuple[Operation, ...]
    throughput: float | None = None
    p99: float | None = None
    messages_per_command: float | None = None
    #: Membership changes of this run: (started ms, finished ms or None if unfinished, action).
    changes: tuple[tuple[float, float | None, str], ...] = ()


@attrs.frozen
class Series:
    """One backend's runs (every seed) of one scenario."""

    backend: str
    runs: tuple[SeedRun, ...]

    def mean(self, field: str) -> float | None:
        """The mean of a per-run figure over the runs that have it."""
        values = [getattr(r, field) for r in self.runs if getattr(r, field) is not None]
        return statistics.fmean(values) if values else None


@attrs.frozen
class Band:
    """A shaded span of a time axis: a fault from when it struck to its repair (or the end of the run)."""

    start: float
    stop: float
    label: str


@attrs.frozen
class ScenarioFigure:
    """A drawn scenario figure and its panels by role, for saving and for tests."""

    figure: Figure
    latency: dict[str, Axes]
    throughput: dict[str, Axes]
    cdf: Axes
    summaries: dict[str, Axes]


def _who(fault: FaultEvent, default: str) -> str:
    return fault.node or default


def _network_words(fault: FaultEvent) -> str:
    if fault.action == "partition":
        return "partition " + " | ".join(",".join(g) for g in fault.groups)
    return {"partition_halves": "split in halves", "isolate": f"{fault.node} isolated",
            "isolate_leader": "leader isolated", "bridge": f"bridged by {_who(fault, 'a node')}",
            "flap": f"partitions flapping every {fault.period_ms:g} ms"}[fault.action]


def fault_bands(faults: Sequence[FaultEvent], end: float,
                changes: Iterable[tuple[float, float | None, str]] | None = None) -> list[Band]:
    """The schedule's faults as bands from each fault to its repair, labelled in words.

    A crash lasts until that node's restart or a ``restart_all`` (``crash_leader``
    until a ``restart_all`` or the next restart: which node led is known only
    at run time); a partition until a heal or the next partition; a loss or
    duplication setting until the next ``network`` fault; ``flap`` until its
    ``until_ms``; a clock change until the next one.  Membership changes come
    from ``changes`` (one run's (started, finished, action)), spanning the
    change itself; without them a change is drawn as a zero-width band at its
    request.  A fault never repaired runs to ``end`` and its label says so.
    """
    ordered = sorted(faults, key=lambda f: f.at)
    bands: list[Band] = []

    def until(i: int, repairs: Callable[[FaultEvent], bool]) -> float | None:
        return next((f.at for f in ordered[i + 1:] if repairs(f)), None)

    for i, fault in enumerate(ordered):
        action = fault.action
        stop: float | None
        if action == "crash":
            stop = until(i, lambda f: f.action == "restart_all" or (f.action == "restart" and f.node == fault.node))
            label, repair = f"{fault.node} crashed", "restart"
        elif action == "crash_leader":
            stop = until(i, lambda f: f.action in _RESTARTS)
            label, repair = "leader crashed", "restart"
        elif action in _NETWORK_SHAPES:
            if action == "flap":
                stop = max(fault.until_ms, fault.at) if fault.until_ms else None
            else:
                stop = until(i, lambda f: f.action == "heal" or f.action in _NETWORK_SHAPES)
            label, repair = _network_words(fault), "heal"
        elif action == "network":
            words = [f"{what} {100 * value:g}%"
                     for what, value in (("loss", fault.loss), ("duplicates", fault.duplicate)) if value]
            if not words:  # loss and duplication back to nothing: a repair
                continue
            stop = until(i, lambda f: f.action == "network")
            label, repair = ", ".join(words), "reset"
        elif action == "clock_leader":
            stop = until(i, lambda f: f.action == "clock_leader")
            label, repair = f"leader's clock x{fault.rate:g}", "reset"
        elif action in MEMBERSHIP_ACTIONS:
            if changes is None:
                bands.append(Band(fault.at, fault.at, f"{_CHANGE_WORDS.get(action, action)} (requested)"))
            continue
        else:  # restart, restart_all, heal: repairs
            continue
        if stop is None:
            bands.append(Band(fault.at, end, f"{label} (no {repair})"))
        else:
            bands.append(Band(fault.at, stop, f"{label} until {repair}"))
    for started, finished, change in changes or ():
        what = _CHANGE_WORDS.get(change, change)
        bands.append(Band(started, end if finished is None else finished,
                          what if finished is not None else f"{what} (unfinished)"))
    return sorted(bands, key=lambda b: (b.start, b.stop))


def cdf_points(values: Sequence[float], points: int = CDF_POINTS) -> tuple[list[float], list[float]]:
    """(sorted values, cumulative fractions) of at most about ``points`` samples of the empirical CDF.

    The body is sampled evenly by rank and the tail geometrically, so the
    highest percentiles keep every point; the last value is always kept.
    """
    ordered = sorted(values)
    n = len(ordered)
    if n <= points:
        ranks = list(range(n))
    else:
        half = points // 2
        even = {round(k * (n - 1) / half) for k in range(half + 1)}
        tail = {n - 1 - round(math.exp(k * math.log(n) / half)) + 1 for k in range(half + 1)}
        ranks = sorted(r for r in even | tail if 0 <= r < n)
    return [ordered[r] for r in ranks], [(r + 1) / n for r in ranks]


def _seed_text(series: Sequence[Series]) -> str:
    seeds = sorted({r.seed for s in series for r in s.runs})
    if not seeds:
        return "no runs"
    if len(seeds) == 1:
        return f"seed {seeds[0]} (the only one run)"
    span = f"{seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ", ".join(map(str, seeds))
    return f"seeds {span}, all {len(seeds)} drawn"


def _shade(ax: Axes, bands: Sequence[Band], with_labels: bool) -> None:
    """Shade the bands on ``ax``; label each distinct one above the axes' top edge."""
    seen: set[tuple[float, float]] = set()
    labelled: set[str] = set()
    above = blended_transform_factory(ax.transData, ax.transAxes)
    for band in bands:
        key = (round(band.start, 1), round(band.stop, 1))
        if key in seen:
            continue
        seen.add(key)
        if band.stop > band.start:
            ax.axvspan(band.start, band.stop, color=FAULT_GREY, alpha=0.18, lw=0, zorder=0,
                       gid=f"fault-band:{band.label}")
        else:
            ax.axvline(band.start, color=FAULT_GREY, lw=1.0, ls="--", zorder=0, gid=f"fault-band:{band.label}")
        if with_labels and band.label not in labelled:
            labelled.add(band.label)
            ax.text(band.start, 1.005, band.label, transform=above, fontsize=7, color="#404040",
                    va="bottom", ha="left", clip_on=False)


def _throughput_curve(history: Sequence[Operation], duration_ms: float, bin_ms: float) -> list[float]:
    bins = [0] * (int(duration_ms // bin_ms) + 1)
    for op in history:
        if op.outcome is Outcome.OK:
            bins[min(int(op.end // bin_ms), len(bins) - 1)] += 1
    return [n * 1000.0 / bin_ms for n in bins]


def _latency_panel(ax: Axes, s: Series, bands: Sequence[Band]) -> None:
    colour = backend_colour(s.backend)
    ok = [op for r in s.runs for op in r.history if op.outcome is Outcome.OK]
    failed = [op for r in s.runs for op in r.history if op.outcome is Outcome.FAIL]
    unknown = [op for r in s.runs for op in r.history if op.outcome is Outcome.UNKNOWN]
    _shade(ax, bands, with_labels=True)
    ax.scatter([op.end for op in ok], [max(op.end - op.invoke, 1e-3) for op in ok], s=3, color=colour,
               alpha=0.35, linewidths=0, rasterized=True, zorder=2, gid=f"ok:{s.backend}")
    if failed:
        ax.plot([op.invoke for op in failed], [max(op.end - op.invoke, 1e-3) for op in failed], "v",
                ms=5, mfc="none", mec=MARKER_BLACK, mew=0.9, ls="none", zorder=3, gid=f"failed:{s.backend}")
    if unknown:  # no latency to plot: a strip along the top, at each invocation
        ax.plot([op.invoke for op in unknown], [0.95] * len(unknown), "x", ms=5, color=MARKER_BLACK, mew=1.0,
                ls="none", transform=blended_transform_factory(ax.transData, ax.transAxes), zorder=3, clip_on=False,
                gid=f"unknown:{s.backend}")
    ax.set_title(f"{s.backend}: {len(ok)} ok, {len(failed)} failed, {len(unknown)} unknown", fontsize=9,
                 color=colour, pad=12)


def _summary_panel(ax: Axes, series: Sequence[Series], per_run: Sequence[Sequence[float]], name: str,
                   unit: str, title: str) -> None:
    """Bars of the means of ``per_run`` (one list of per-seed values per backend), a dot per seed."""
    xs = list(range(len(series)))
    means = [statistics.fmean(values) if values else None for values in per_run]
    ax.bar(xs, [m or 0.0 for m in means], 0.7, color=[backend_colour(s.backend) for s in series], alpha=0.85,
           gid=f"bars:{name}")
    dots_x = [x for x, values in zip(xs, per_run) for _ in values]
    dots_y = [v for values in per_run for v in values]
    ax.plot(dots_x, dots_y, "o", ms=2.5, color=MARKER_BLACK, ls="none", gid=f"seeds:{name}")
    for x, m, values in zip(xs, means, per_run):
        if m is not None:  # above the bar and its highest seed
            ax.annotate(f"{m:.0f}" if m >= 100 else f"{m:.3g}", (x, max([m, *values])), xytext=(0, 2),
                        textcoords="offset points", ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(xs, [s.backend for s in series], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(unit, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, max([m or 0.0 for m in means] + dots_y + [1e-9]) * 1.18)
    ax.tick_params(axis="y", labelsize=7)


def _per_run(run: SeedRun, field: str) -> float | None:
    if field == "unresolved":
        return float(sum(op.outcome is not Outcome.OK for op in run.history))
    value: float | None = getattr(run, field)
    return value


def draw_scenario(name: str, series: Sequence[Series], faults: Sequence[FaultEvent],
                  duration_ms: float) -> ScenarioFigure:
    """Draw one scenario's comparison figure (not saved); see the module docstring for its panels."""
    n = max(len(series), 1)
    fig = plt.figure(figsize=(max(12.0, 3.3 * n + 1.0), 12.5), layout="constrained")
    rows = fig.add_gridspec(3, 1, height_ratios=[1.0, 0.9, 1.05])
    top, middle, bottom = (fig.add_subfigure(rows[i]) for i in range(3))
    fig.suptitle(f"{name}: every backend on the same faults and seeds ({_seed_text(series)})", fontsize=12)
    per_run_bands = {s.backend: [b for r in s.runs for b in fault_bands(faults, duration_ms, r.changes)]
                     if s.runs else fault_bands(faults, duration_ms) for s in series}

    lat_axes = _row(top, series)
    for s in series:
        _latency_panel(lat_axes[s.backend], s, per_run_bands[s.backend])
    first = next(iter(lat_axes.values()), None)
    if first is not None:
        first.set_yscale("log")
        first.set_ylabel("latency (ms)")
        first.set_xlim(0, duration_ms)
    for ax in lat_axes.values():
        ax.set_xlabel("simulated time (ms)", fontsize=8)
    top.suptitle("latency of each operation, every seed overlaid; grey: a fault from when it struck to its repair",
                 fontsize=10)
    top.legend(handles=[Line2D([], [], marker="o", ls="none", color="#555555", ms=4,
                               label="ok (at completion)"),
                        Line2D([], [], marker="v", ls="none", mfc="none", mec=MARKER_BLACK, ms=5,
                               label="failed (at invocation)"),
                        Line2D([], [], marker="x", ls="none", color=MARKER_BLACK, ms=5,
                               label="unknown: timed out (at invocation, along the top)"),
                        Patch(color=FAULT_GREY, alpha=0.3, label="fault until its repair")],
               loc="outside lower center", ncols=4, fontsize=8, frameon=False)

    bin_ms = max(duration_ms / 60.0, 1.0)
    tput_axes = _row(middle, series)
    for s in series:
        ax = tput_axes[s.backend]
        colour = backend_colour(s.backend)
        _shade(ax, per_run_bands[s.backend], with_labels=True)
        curves = [_throughput_curve(r.history, duration_ms, bin_ms) for r in s.runs]
        times = [b * bin_ms for b in range(int(duration_ms // bin_ms) + 1)]
        for r, curve in zip(s.runs, curves):
            ax.plot(times, curve, color=colour, lw=0.7, alpha=0.45 if len(curves) > 1 else 1.0,
                    drawstyle="steps-post", rasterized=len(curves) > 1, gid=f"throughput-seed{r.seed}:{s.backend}")
        if len(curves) > 1:
            median = [statistics.median(column) for column in zip(*curves)]
            ax.plot(times, median, color=colour, lw=1.8, drawstyle="steps-post", gid=f"throughput-median:{s.backend}")
        ax.set_title(s.backend, fontsize=9, color=colour, pad=12)
        ax.set_xlabel("simulated time (ms)", fontsize=8)
    first = next(iter(tput_axes.values()), None)
    if first is not None:
        first.set_ylabel("completed operations per second")
        first.set_xlim(0, duration_ms)
        first.set_ylim(bottom=0)
    many = max((len(s.runs) for s in series), default=0) > 1
    middle.suptitle(f"throughput over time ({bin_ms:g} ms bins): "
                    + ("a thin line per seed, the thick line their median" if many else "the one seed run"),
                    fontsize=10)

    grid = bottom.add_gridspec(1, 5, width_ratios=[2.2, 1, 1, 1, 1])
    cdf = bottom.add_subplot(grid[0, 0])
    for k, s in enumerate(series):  # fixed order; earlier curves wider, so a later identical one never hides them
        latencies = [op.end - op.invoke for r in s.runs for op in r.history if op.outcome is Outcome.OK]
        if not latencies:
            continue
        xs, ys = cdf_points(latencies)
        p99 = sorted(latencies)[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
        unknown = sum(op.outcome is Outcome.UNKNOWN for r in s.runs for op in r.history)
        cdf.plot(xs, ys, color=backend_colour(s.backend), lw=1.0 + 0.9 * (len(series) - 1 - k), alpha=0.75,
                 gid=f"cdf:{s.backend}",
                 label=f"{s.backend}: p99 {p99:.3g} ms, {unknown} unknown")
    cdf.set_xscale("log")
    cdf.set_xlabel("latency (ms)")
    cdf.set_ylabel("fraction of ok operations")
    cdf.set_ylim(0, 1.02)
    cdf.set_title("latency CDF, every seed pooled", fontsize=9)
    cdf.grid(True, which="major", alpha=0.3)
    if series:
        cdf.legend(loc="upper left", bbox_to_anchor=(0.0, -0.2), fontsize=7, frameon=False)
    summaries: dict[str, Axes] = {}
    for j, (field, unit, title) in enumerate((
            ("throughput", "operations per second", "throughput"),
            ("p99", "latency (ms)", "p99 latency"),
            ("messages_per_command", "peer messages per command", "peer messages per command"),
            ("unresolved", "operations per run", "failed or unknown\noperations"))):
        ax = bottom.add_subplot(grid[0, j + 1])
        summaries[field] = ax
        per_run = [[v for r in s.runs if (v := _per_run(r, field)) is not None] for s in series]
        _summary_panel(ax, series, per_run, field, unit, title)
    bottom.suptitle("all backends: latency CDF; per backend, mean over seeds (bars) and each seed (dots), "
                    "one metric per panel", fontsize=10)
    return ScenarioFigure(fig, lat_axes, tput_axes, cdf, summaries)


def _row(sub: SubFigure, series: Sequence[Series]) -> dict[str, Axes]:
    """One panel per backend side by side, sharing both axes."""
    axes: dict[str, Axes] = {}
    first: Axes | None = None
    for k, s in enumerate(series):
        ax = sub.add_subplot(1, len(series), k + 1, sharex=first, sharey=first)
        first = first or ax
        if k:
            ax.tick_params(labelleft=False)
        ax.tick_params(labelsize=7)
        axes[s.backend] = ax
    return axes


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``fig`` as a compact ``<stem>.png`` and ``<stem>.svg`` (text as text, no date); close it.

    The PNG is reduced to a 256-colour palette (Pillow, which matplotlib
    itself requires): a third of the size of a true-colour PNG, and no
    visible difference on flat plot colours.
    """
    from PIL import Image

    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "smr"}):
        raw = io.BytesIO()
        fig.savefig(raw, format="png", dpi=DPI)
        fig.savefig(paths[1], dpi=SVG_RASTER_DPI, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    raw.seek(0)
    with Image.open(raw) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette.save(paths[0], optimize=True)
    return paths


def plot_scenario(name: str, series: Sequence[Series], faults: Sequence[FaultEvent], duration_ms: float,
                  outdir: Path) -> list[Path]:
    """Draw one scenario's comparison figure; write ``<name>.png`` and ``<name>.svg`` in ``outdir``."""
    return save_figure(draw_scenario(name, series, faults, duration_ms).figure, outdir / name)
