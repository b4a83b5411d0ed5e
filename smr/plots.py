"""Pictures of a comparison: latency over time with fault bands, throughput, CDF, bars.

Uses matplotlib's non-interactive Agg backend, so it works on a machine with no screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .history import Operation, Outcome  # noqa: E402
from .sim.config import FaultEvent  # noqa: E402

_RESTORE = {"restart", "restart_all", "heal"}


@attrs.frozen
class Series:
    """One backend's sample run of one scenario, as the plots need it."""

    backend: str
    history: tuple[Operation, ...]
    throughput: float
    p99: float | None
    messages_per_command: float | None


def fault_bands(faults: Sequence[FaultEvent], end: float) -> list[tuple[float, float, str]]:
    """Turn a fault schedule into (start, stop, label) spans: from a fault to the next repair."""
    bands: list[tuple[float, float, str]] = []
    ordered = sorted(faults, key=lambda f: f.at)
    for i, fault in enumerate(ordered):
        if fault.action in _RESTORE or fault.action == "network":
            continue
        stop = next((f.at for f in ordered[i + 1:] if f.action in _RESTORE), end)
        bands.append((fault.at, stop, fault.action))
    return bands


def plot_scenario(name: str, series: Sequence[Series], faults: Sequence[FaultEvent], duration_ms: float,
                  outdir: Path) -> list[Path]:
    """Draw the four panels for one scenario; write PNG and SVG; return their paths."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    (ax_lat, ax_tput), (ax_cdf, ax_bar) = axes
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    bin_ms = max(duration_ms / 60.0, 1.0)
    for i, s in enumerate(series):
        colour = colours[i % len(colours)]
        done = [op for op in s.history if op.outcome is Outcome.OK]
        ax_lat.scatter([op.end for op in done], [op.end - op.invoke for op in done], s=4,
                       color=colour, label=s.backend, alpha=0.6)
        bins = [0] * (int(duration_ms // bin_ms) + 1)
        for op in done:
            bins[min(int(op.end // bin_ms), len(bins) - 1)] += 1
        ax_tput.plot([b * bin_ms for b in range(len(bins))], [n * 1000.0 / bin_ms for n in bins],
                     color=colour, label=s.backend, drawstyle="steps-post")
        latencies = sorted(op.end - op.invoke for op in done)
        if latencies:
            ax_cdf.plot(latencies, [(k + 1) / len(latencies) for k in range(len(latencies))],
                        color=colour, label=s.backend)
    for ax in (ax_lat, ax_tput):
        for start, stop, label in fault_bands(faults, duration_ms):
            ax.axvspan(start, stop, color="red", alpha=0.08)
            ax.text(start, 1.0, f" {label}", transform=ax.get_xaxis_transform(), va="top",
                    fontsize=8, color="darkred")
        ax.set_xlabel("simulated time (ms)")
        ax.set_xlim(0, duration_ms)
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_yscale("log")
    ax_lat.set_title("latency of each completed operation (fault periods shaded)")
    ax_tput.set_ylabel("completed operations per second")
    ax_tput.set_title("throughput over time")
    ax_cdf.set_xscale("log")
    ax_cdf.set_xlabel("latency (ms)")
    ax_cdf.set_ylabel("fraction of operations")
    ax_cdf.set_title("latency CDF")
    names = [s.backend for s in series]
    xs = range(len(series))
    width = 0.27
    ax_bar.bar([x - width for x in xs], [s.throughput for s in series], width, label="ops/s")
    ax_bar.bar(list(xs), [s.p99 or 0.0 for s in series], width, label="p99 latency (ms)")
    ax_bar.bar([x + width for x in xs], [s.messages_per_command or 0.0 for s in series], width,
               label="peer messages per command")
    ax_bar.set_xticks(list(xs), names, rotation=15)
    ax_bar.set_yscale("log")
    ax_bar.set_title("per backend (mean over seeds)")
    for ax in (ax_lat, ax_tput, ax_cdf, ax_bar):
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"{name}: backends side by side on the same faults and seed")
    fig.tight_layout()
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"{name}.png", outdir / f"{name}.svg"]
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths
