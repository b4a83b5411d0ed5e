"""``smr compare``: every backend on the same scenarios, faults and seeds, side by side."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .errors import LocalProtocolError
from .replica import backend_names, get_backend
from .scenarios import builtin_scenarios
from .sim import SimConfig, load_scenario, simulate
from .summary import RunSummary, summarize
from .table import render_table


@attrs.frozen
class Cell:
    """All runs of one backend on one scenario."""

    scenario: str
    backend: str
    runs: tuple[RunSummary, ...]
    verdicts: tuple[str, ...]
    replays: tuple[str, ...]

    def mean(self, field: str) -> float | None:
        """The mean of a numeric summary field over the runs that have it."""
        values = [getattr(r, field) for r in self.runs if getattr(r, field) is not None]
        return round(statistics.fmean(values), 3) if values else None

    def to_json(self) -> dict[str, Any]:
        """Return the cell as plain JSON data."""
        return {"scenario": self.scenario, "backend": self.backend,
                "runs": [r.to_json() for r in self.runs], "verdicts": list(self.verdicts),
                "replays": list(self.replays)}


def _verdict(result: Any, model: str) -> str:
    from .checker import check

    if result.violations:
        return "invariant violated"
    return check(list(result.history), model).verdict


def run_cell(config: SimConfig, backend: str, seeds: Sequence[int]) -> Cell:
    """Run ``config`` on ``backend`` for every seed and judge each history."""
    from workloads import make_workload

    config = attrs.evolve(config, backend=backend, count_bytes=True, trace=False)
    model = make_workload(config.clients.workload, config.clients.workload_options).model
    runs, verdicts, replays = [], [], []
    fault_times = tuple(f.at for f in config.faults)
    for seed in seeds:
        result = simulate(config, seed)
        runs.append(summarize(result, fault_times))
        verdicts.append(_verdict(result, model))
        replays.append(result.replay)
    return Cell(config.name or (config.source or "scenario"), backend, tuple(runs), tuple(verdicts),
                tuple(replays))


def compare(configs: Sequence[SimConfig], backends: Sequence[str], seeds: Sequence[int]) -> list[Cell]:
    """Run every scenario on every backend with the same seeds."""
    return [run_cell(config, backend, seeds) for config in configs for backend in backends]


def render_cells(cells: Sequence[Cell]) -> str:
    """Return the side-by-side table of ``cells``."""
    headers = ["scenario", "backend", "ok ops", "unknown", "tput/s", "p50 ms", "p99 ms", "max ms",
               "msgs/cmd", "bytes/cmd", "leader chg", "unavail ms", "linearizable"]
    rows = []
    for c in cells:
        unavail = [u for r in c.runs for u in r.unavailability_ms]
        lin = sum(v == "linearizable" for v in c.verdicts)
        rows.append([c.scenario, c.backend, c.mean("ok"), c.mean("unknown"), c.mean("throughput"),
                     c.mean("latency_p50"), c.mean("latency_p99"), c.mean("latency_max"),
                     c.mean("messages_per_command"), c.mean("bytes_per_command"),
                     c.mean("leader_changes"),
                     round(statistics.fmean(unavail), 1) if unavail else None,
                     f"{lin}/{len(c.verdicts)}"])
    return render_table(headers, rows)


def cmd_compare(args: argparse.Namespace) -> int:
    """Run the comparison and print the table (or one JSON document with --json)."""
    paths = [Path(p) for p in args.scenarios] or builtin_scenarios()
    configs = [load_scenario(p) for p in paths]
    configs = [c if c.name else attrs.evolve(c, name=Path(str(c.source)).stem) for c in configs]
    names = args.backends.split(",") if args.backends else backend_names()
    for name in names:
        get_backend(name)  # unknown names fail before any work starts
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if not seeds:
        raise LocalProtocolError("--seeds must be at least 1")
    cells = compare(configs, names, seeds)
    bad = [(c, v, r) for c in cells for v, r in zip(c.verdicts, c.replays) if v != "linearizable"]
    if args.json:
        json.dump({"seeds": seeds, "cells": [c.to_json() for c in cells]}, sys.stdout, indent=2,
                  sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(f"seeds {seeds[0]}..{seeds[-1]} (same seeds for every backend); times in simulated ms")
        print(render_cells(cells))
        for cell, verdict, replay in bad:
            print(f"{cell.backend} on {cell.scenario}: {verdict}; replay: {replay}")
    return 1 if any(v.startswith("invariant") or v == "not linearizable" for _, v, _ in bad) else 0
