"""``smr compare``: every backend on the same scenarios, faults and seeds, side by side.

For each (scenario, backend, seed) the run is simulated, its history judged by
the linearizability checker against the workload's model, and checked against
the workload's own invariants.  Runs are independent, so ``--jobs N`` spreads
them over processes; the report is the same whatever N is.

A scenario that changes the membership (the built-in kv-replace-under-load)
runs on the backends that keep one, and gets a second table: per change, how
long it took, the longest gap in successful client operations while it ran
(unavailability), and the peer messages and bytes the cluster sent meanwhile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from .errors import LocalProtocolError
from .history import Operation
from .replica import backend_names, get_backend
from .scenarios import builtin_scenarios
from .sim import SimConfig, load_scenario, simulate
from .sim.admin import change_figures, supports_membership
from .sim.engine import workload_for
from .summary import RunSummary, summarize
from .table import render_table


@attrs.frozen
class RunReport:
    """One simulated run, judged."""

    summary: RunSummary
    verdict: str
    workload_problems: tuple[str, ...]
    replay: str
    history: tuple[Operation, ...]
    #: Per membership change: smr.sim.admin.change_figures.
    changes: tuple[dict[str, Any], ...] = ()


@attrs.frozen
class Cell:
    """All runs of one backend on one scenario."""

    scenario: str
    backend: str
    runs: tuple[RunReport, ...]

    def mean(self, field: str) -> float | None:
        """The mean of a numeric summary field over the runs that have it."""
        values = [getattr(r.summary, field) for r in self.runs if getattr(r.summary, field) is not None]
        return round(statistics.fmean(values), 3) if values else None

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(what went wrong, replay command) for every run that was not clean."""
        out = []
        for r in self.runs:
            if r.verdict not in ("linearizable", AGREED):
                out.append((r.verdict, r.replay))
            for problem in r.workload_problems:
                out.append((f"workload invariant: {problem}", r.replay))
        return out

    def to_json(self) -> dict[str, Any]:
        """Return the cell as plain JSON data (histories left out)."""
        return {"scenario": self.scenario, "backend": self.backend,
                "runs": [{**r.summary.to_json(), "verdict": r.verdict,
                          "workload_problems": list(r.workload_problems), "replay": r.replay,
                          **({"changes": list(r.changes)} if r.changes else {})}
                         for r in self.runs]}


#: The verdict on a run of an app with no checker model: every replica committed the same log and state.
AGREED = "replicas agree (no model)"


def judge(result: Any, workload: Any) -> tuple[str, tuple[str, ...]]:
    """The checker's verdict on a run's history, and the workload's invariant violations."""
    from .checker import check, make_model

    if result.violations:
        return "invariant violated: " + "; ".join(result.violations), ()
    if workload.model is None:  # an app with no checker model: the simulator checked agreement
        return AGREED, tuple(workload.check(result.history))
    verdict = check(list(result.history), make_model(workload.model))
    return verdict.status.value, tuple(workload.check(result.history))


def run_one(config: SimConfig, backend: str, seed: int) -> RunReport:
    """Simulate ``config`` on ``backend`` with ``seed`` and judge the run."""
    config = attrs.evolve(config, backend=backend, count_bytes=True, trace=False)
    result = simulate(config, seed)
    workload = workload_for(config)
    verdict, problems = judge(result, workload)
    summary = summarize(result, tuple(f.at for f in config.faults
                                      if f.action not in ("restart", "restart_all", "heal", "network")))
    changes = change_figures(result.changes, result.history, result.end_time)
    return RunReport(summary, verdict, problems, result.replay, result.history, changes)


def _run_task(task: tuple[SimConfig, str, int]) -> RunReport:
    return run_one(*task)


def compare(configs: Sequence[SimConfig], backends: Sequence[str], seeds: Sequence[int],
            jobs: int = 1, progress: bool = False) -> list[Cell]:
    """Run every scenario on every backend with the same seeds; ``jobs`` processes in parallel (a scenario
    that changes the membership only on the backends that keep one)."""
    pairs = [(c, b) for c in configs for b in backends if not c.changes_membership or supports_membership(b)]
    tasks = [(config, backend, seed) for config, backend in pairs for seed in seeds]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="runs", unit="run", file=sys.stderr, leave=False)
    reports: list[RunReport] = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for report in pool.map(_run_task, tasks):
                reports.append(report)
                if bar is not None:
                    bar.update()
    else:
        for task in tasks:
            reports.append(_run_task(task))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    cells = []
    per = len(seeds)
    for i, (config, backend) in enumerate(pairs):
        name = config.name or Path(str(config.source)).stem
        cells.append(Cell(name, backend, tuple(reports[i * per:(i + 1) * per])))
    return cells


def render_cells(cells: Sequence[Cell]) -> str:
    """Return the side-by-side table of ``cells``."""
    headers = ["scenario", "backend", "ok ops", "unknown", "ops/s", "p50 ms", "p95 ms", "p99 ms",
               "max ms", "msgs/cmd", "bytes/cmd", "leader chg", "unavail ms", "linearizable"]
    rows = []
    for c in cells:
        unavail = [u for r in c.runs for u in r.summary.unavailability_ms]
        lin = sum(r.verdict == "linearizable" for r in c.runs)
        agreed = sum(r.verdict == AGREED for r in c.runs)  # an app with no model: replicas agreed
        rows.append([c.scenario, c.backend, c.mean("ok"), c.mean("unknown"), c.mean("throughput"),
                     c.mean("latency_p50"), c.mean("latency_p95"), c.mean("latency_p99"),
                     c.mean("latency_max"), c.mean("messages_per_command"), c.mean("bytes_per_command"),
                     c.mean("leader_changes"), round(statistics.fmean(unavail), 1) if unavail else None,
                     f"{lin}/{len(c.runs)}" if not agreed else f"no model, {agreed}/{len(c.runs)} agree"])
    return render_table(headers, rows)


def render_changes(cells: Sequence[Cell]) -> str:
    """The membership changes of ``cells`` side by side (means over seeds), or "" if there are none."""
    headers = ["scenario", "backend", "change", "finished", "change ms", "unavail ms", "peer msgs", "peer KB"]
    rows = []
    for c in cells:
        per_run = [r.changes for r in c.runs]
        for k in range(max((len(changes) for changes in per_run), default=0)):
            figures = [changes[k] for changes in per_run if len(changes) > k]

            def mean(field: str) -> float | None:
                values = [f[field] for f in figures if f[field] is not None]
                return round(statistics.fmean(values), 1) if values else None

            kb = mean("bytes")
            names = {f["change"] for f in figures}
            rows.append([c.scenario, c.backend, names.pop() if len(names) == 1 else figures[0]["action"],
                         f"{sum(f['outcome'] == 'done' for f in figures)}/{len(figures)}", mean("duration_ms"),
                         mean("unavailable_ms"), mean("messages"), None if kb is None else round(kb / 1024, 1)])
    return render_table(headers, rows) if rows else ""


def write_outputs(cells: Sequence[Cell], configs: Sequence[SimConfig], seeds: Sequence[int],
                  outdir: Path) -> list[Path]:
    """Write compare.json and one PNG and SVG figure per scenario; return their paths."""
    from .plots import Series, plot_scenario

    outdir.mkdir(parents=True, exist_ok=True)
    data = outdir / "compare.json"
    data.write_text(json.dumps({"seeds": list(seeds), "cells": [c.to_json() for c in cells]},
                               indent=2, sort_keys=True) + "\n")
    paths = [data]
    for config in configs:
        name = config.name or Path(str(config.source)).stem
        series = [Series(c.backend, c.runs[0].history, c.mean("throughput") or 0.0, c.mean("latency_p99"),
                         c.mean("messages_per_command")) for c in cells if c.scenario == name]
        paths += plot_scenario(name, series, config.faults, config.duration_ms, outdir)
    return paths


def cmd_compare(args: argparse.Namespace) -> int:
    """Run the comparison and print the table (or one JSON document with --json)."""
    paths = [Path(p) for p in args.scenarios] or builtin_scenarios()
    configs = [load_scenario(p) for p in paths]
    configs = [c if c.name else attrs.evolve(c, name=Path(str(c.source)).stem) for c in configs]
    names = args.backends.split(",") if args.backends else backend_names(replicated_log_only=True)
    for name in names:
        get_backend(name)  # unknown names fail before any work starts
    if args.seeds < 1 or args.jobs < 1:
        raise LocalProtocolError("--seeds and --jobs must be at least 1")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    cells = compare(configs, names, seeds, jobs=args.jobs, progress=not args.json and sys.stderr.isatty())
    outputs = [] if args.no_plots else write_outputs(cells, configs, seeds, Path(args.out))
    failures = [(c, what, replay) for c in cells for what, replay in c.failures]
    if args.json:
        json.dump({"seeds": seeds, "cells": [c.to_json() for c in cells],
                   "outputs": [str(p) for p in outputs]}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(f"seeds {seeds[0]}..{seeds[-1]}, the same for every backend; times in simulated ms; "
              "figures are means over seeds")
        print(render_cells(cells))
        changes = render_changes(cells)
        if changes:
            print("membership changes (unavail: longest gap in OK client operations while the change ran; "
                  "peer messages and bytes: the whole cluster's meanwhile)")
            print(changes)
        for cell, what, replay in failures:
            print(f"{cell.backend} on {cell.scenario}: {what}\n    replay: {replay}")
        for path in outputs:
            print(f"wrote {path}")
    expected_stalls = {"unknown"}
    return 1 if any(not what.startswith(tuple(expected_stalls)) for _, what, _ in failures) else 0
