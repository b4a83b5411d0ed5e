"""Figures of an election campaign: per-range statistics, the text table, JSON and CSV files.

Downtime statistics (median, mean, p95, max; nearest-rank percentiles) are
over the trials that converged; the trials that did not converge within the
cap are counted separately, never averaged in.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ..table import render_table
from .election import ElectionTrial

_CSV_FIELDS = ("backend", "low_ms", "high_ms", "seed", "converged", "downtime_ms", "crash_offset_ms",
               "old_leader", "lagging", "winner", "winner_lagging", "epochs", "recovery_ms", "stable",
               "missed_messages", "violations")


@attrs.frozen
class RangeSummary:
    """The trials of one backend and one election timeout range, summarised (times in ms)."""

    backend: str
    low_ms: int
    high_ms: int
    trials: int
    converged: int
    median: float | None
    mean: float | None
    p95: float | None
    max: float | None
    min: float | None
    lagging_wins: int
    mean_epochs: float | None
    recovery_median: float | None
    violations: int

    @property
    def label(self) -> str:
        """The range as the paper writes it, e.g. ``150-300``."""
        return f"{self.low_ms}-{self.high_ms}"

    @property
    def not_converged(self) -> int:
        """Trials that had no agreed leader within the cap."""
        return self.trials - self.converged

    def to_json(self) -> dict[str, Any]:
        """Return the summary as plain JSON data."""
        return {**attrs.asdict(self), "range": self.label, "not_converged": self.not_converged}


def nearest_rank(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of already sorted values by nearest rank: the ceil(q*n)-th value."""
    if not ordered:
        return None
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered) - 1e-9))) - 1]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summarize_range(trials: Sequence[ElectionTrial]) -> RangeSummary:
    """Summarise the trials of one backend and range (all must share both)."""
    first = trials[0]
    if any((t.backend, t.low_ms, t.high_ms) != (first.backend, first.low_ms, first.high_ms) for t in trials):
        raise ValueError("summarize_range needs trials of one backend and one range")
    times = sorted(t.downtime_ms for t in trials if t.downtime_ms is not None)
    epochs = [t.epochs for t in trials if t.epochs is not None]
    recoveries = [t.recovery_ms for t in trials if t.recovery_ms is not None]
    return RangeSummary(
        backend=first.backend, low_ms=first.low_ms, high_ms=first.high_ms, trials=len(trials),
        converged=len(times),
        median=_rounded(statistics.median(times)) if times else None,
        mean=_rounded(statistics.fmean(times)) if times else None,
        p95=_rounded(nearest_rank(times, 0.95)), max=_rounded(times[-1]) if times else None,
        min=_rounded(times[0]) if times else None,
        lagging_wins=sum(bool(t.winner_lagging) for t in trials),
        mean_epochs=_rounded(statistics.fmean(epochs)) if epochs else None,
        recovery_median=_rounded(statistics.median(recoveries)) if recoveries else None,
        violations=sum(bool(t.violations) for t in trials))


def summarize(trials: Sequence[ElectionTrial]) -> list[RangeSummary]:
    """One summary per (backend, range), in the order the trials first appear."""
    groups: dict[tuple[str, int, int], list[ElectionTrial]] = {}
    for t in trials:
        groups.setdefault((t.backend, t.low_ms, t.high_ms), []).append(t)
    return [summarize_range(g) for g in groups.values()]


def render_summaries(summaries: Sequence[RangeSummary], cap_ms: float) -> str:
    """The text table of one backend's ranges (statistics over converged trials)."""
    headers = ("range (ms)", "trials", "median", "mean", "p95", "max", f">{cap_ms:g} ms",
               "lagging won", "epochs", "recovery p50")
    rows = [(s.label, s.trials, s.median, s.mean, s.p95, s.max, s.not_converged, s.lagging_wins,
             s.mean_epochs, s.recovery_median) for s in summaries]
    return render_table(headers, rows)


def write_raw(trials: Sequence[ElectionTrial], setup: dict[str, Any], path_stem: Path) -> list[Path]:
    """Write the trials as ``<stem>.json`` (with the setup) and ``<stem>.csv``; return the paths."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = path_stem.with_suffix(".json")
    csv_path = path_stem.with_suffix(".csv")
    with json_path.open("w", encoding="utf-8") as f:
        json.dump({"setup": setup, "trials": [t.to_json() for t in trials]}, f, indent=1, sort_keys=True)
        f.write("\n")
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        for t in trials:
            row = t.to_json()
            row["lagging"] = " ".join(t.lagging)
            row["violations"] = "; ".join(t.violations)
            writer.writerow({k: row[k] for k in _CSV_FIELDS})
    return [json_path, csv_path]
