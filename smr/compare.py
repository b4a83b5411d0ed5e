"""``smr compare``: every backend on the same scenarios, faults and seeds, side by side.

For each (scenario, backend, seed) the run is simulated, its history judged by
the linearizability checker against the workload's model, and checked against
the workload's own invariants.  Runs are independent, so ``--jobs N`` spreads
them over processes (``--scheduler`` over a Dask cluster's workers); the report
is the same whatever runs them.  Each run of the command keeps its inputs,
compare.json, histories and figures in a new directory (:mod:`smr.results`).

A scenario that changes the membership (the built-in kv-replace-under-load)
runs on the backends that keep one, and gets a second table: per change, how
long it took, the longest gap in successful client operations while it ran
(unavailability), and the peer messages and bytes the cluster sent meanwhile.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import contextlib
import sys
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import LocalProtocolError
from .history import Operation
from .replica import backend_names, get_backend
from .scenarios import builtin_scenario_names, find_scenario
from .sim import SimConfig, load_scenario, simulate
from .sim.admin import change_figures, supports_membership
from .sim.engine import workload_for
from .summary import RunSummary, summarize
from .table import render_table

if TYPE_CHECKING:
    from .campaign import StopRequest
    from .plots import SeedRun


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


def _run_task(task: tuple[int, SimConfig, str, int]) -> RunReport:
    return run_one(*task[1:])


def compare(configs: Sequence[SimConfig], backends: Sequence[str], seeds: Sequence[int],
            jobs: int = 1, progress: bool = False, *, executor: Executor | None = None,
            stop: StopRequest | None = None) -> list[Cell]:
    """Run every scenario on every backend with the same seeds, on ``executor`` (else ``jobs`` processes);
    a scenario that changes the membership runs only on the backends that keep one.

    When ``stop`` is set no more runs start, and the cells hold the runs that finished.
    """
    from .campaign import Progress, Workers, stream

    pairs = [(c, b) for c in configs for b in backends if not c.changes_membership or supports_membership(b)]
    tasks = [(i, config, backend, seed) for i, (config, backend, seed) in
             enumerate((c, b, s) for c, b in pairs for s in seeds)]
    bar = Progress("compare", len(tasks), "run", quiet=not progress)
    reports: dict[int, RunReport] = {}
    owned = Workers(jobs=jobs).executor(stop) if executor is None else contextlib.nullcontext(executor)
    try:
        with owned as pool, contextlib.closing(stream(pool, _run_task, tasks, stop)) as results:
            for task, report in results:
                reports[task[0]] = report
                bar.advance()
    finally:
        bar.close()
    cells = []
    per = len(seeds)
    for i, (config, backend) in enumerate(pairs):
        name = config.name or Path(str(config.source)).stem
        runs = tuple(reports[j] for j in range(i * per, (i + 1) * per) if j in reports)
        cells.append(Cell(name, backend, runs))
    return cells


def cell_rows(cells: Sequence[Cell]) -> tuple[list[str], list[list[Any]]]:
    """The side-by-side table of ``cells`` as (headers, rows of raw values): text and HTML render it."""
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
    return headers, rows


def render_cells(cells: Sequence[Cell]) -> str:
    """Return the side-by-side table of ``cells``."""
    return render_table(*cell_rows(cells))


def change_rows(cells: Sequence[Cell]) -> tuple[list[str], list[list[Any]]]:
    """The membership changes of ``cells`` (means over seeds) as (headers, rows of raw values)."""
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
    return headers, rows


def render_changes(cells: Sequence[Cell]) -> str:
    """The membership changes of ``cells`` side by side (means over seeds), or "" if there are none."""
    headers, rows = change_rows(cells)
    return render_table(headers, rows) if rows else ""


def write_outputs(cells: Sequence[Cell], configs: Sequence[SimConfig], seeds: Sequence[int],
                  outdir: Path, record: dict[str, Any] | None = None) -> list[Path]:
    """Write compare.json (with ``record``: what produced it), histories, per-scenario figures and report.html."""
    from .history import dump_history
    from .plots import Series, plot_scenario

    outdir.mkdir(parents=True, exist_ok=True)
    data = outdir / "compare.json"
    paths = [data]
    histories: list[str] = []
    for c in cells:  # every failing run's client history, and the first seed's as a sample
        for i, r in enumerate(c.runs):
            if i == 0 or (c.failures and (r.verdict not in ("linearizable", AGREED) or r.workload_problems)):
                path = outdir / "histories" / f"{c.scenario}-{c.backend}-seed{r.summary.seed}.jsonl"
                path.parent.mkdir(exist_ok=True)
                with path.open("w", encoding="utf-8") as out:
                    dump_history(r.history, out)
                histories.append(str(path.relative_to(outdir)))
                paths.append(path)
    data.write_text(json.dumps({**(record or {}), "seeds": list(seeds), "histories": histories,
                                "cells": [c.to_json() for c in cells]},
                               indent=2, sort_keys=True, default=str) + "\n")
    for config in configs:
        name = config.name or Path(str(config.source)).stem
        series = [Series(c.backend, tuple(_seed_run(r) for r in c.runs)) for c in cells
                  if c.scenario == name and c.runs]
        paths += plot_scenario(name, series, config.faults, config.duration_ms, outdir)
    from .report_html import write_report

    # Last, so it embeds every figure written above.
    paths.append(write_report(outdir, cells, configs, seeds, [p for p in paths if p.suffix == ".png"], record))
    return paths


def _seed_run(report: RunReport) -> SeedRun:
    """What the figures need of one run: its history, figures and membership changes (every seed is drawn)."""
    from .plots import SeedRun

    s = report.summary
    changes = tuple((c["started_ms"], c["finished_ms"], c["action"]) for c in report.changes
                    if c.get("started_ms") is not None)
    return SeedRun(s.seed, report.history, s.throughput, s.latency_p99, s.messages_per_command, changes)


def cmd_compare(args: argparse.Namespace) -> int:
    """Run the comparison, print the table (or one JSON document with --json), keep it in a new run directory.

    Exit 1 when a run was not clean (beyond expected stalls); 128 + the signal's
    number when stopped by SIGINT or SIGTERM (what finished is kept first).
    """
    from .campaign import exit_code_for, provenance, stop_on_signals, workers_from
    from .results import open_run

    given = args.scenarios or builtin_scenario_names()  # files, or built-in scenarios by name
    paths = [find_scenario(name)[0] for name in given]
    configs = [load_scenario(name) for name in given]
    configs = [c if c.name else attrs.evolve(c, name=Path(str(c.source)).stem) for c in configs]
    names = args.backends.split(",") if args.backends else backend_names(replicated_log_only=True)
    for name in names:
        get_backend(name)  # unknown names fail before any work starts
    if args.seeds < 1:
        raise LocalProtocolError("--seeds and --jobs must be at least 1")
    workers = workers_from(args)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    settings = {"backends": names, "first_seed": args.first_seed, "seeds": args.seeds,
                "scenarios": [str(p) for p in paths], **workers.to_json()}
    run = None if args.no_plots else open_run(args, "compare", settings, root=args.out)
    record: dict[str, Any] = {}
    # With a run directory, the scenario files' content is kept in it, so the run can be repeated exactly.
    sources = [run.keep_input(p, f"{i}-{p.name}") for i, p in enumerate(paths)] if run is not None else given
    rerun = shlex.join(["smr", "compare", *map(str, sources), "--backends", ",".join(names),
                        "--seeds", str(args.seeds), "--first-seed", str(args.first_seed)])
    if run is not None:
        run.note(rerun=rerun)
        record = {**provenance(), "settings": settings, "rerun": rerun,
                  "scenarios": {str(p): p.read_text(encoding="utf-8") for p in paths}}
    with stop_on_signals() as stop, workers.executor(stop) as executor:
        cells = compare(configs, names, seeds, jobs=args.jobs, progress=not args.quiet, executor=executor,
                        stop=stop)
    outputs = [] if run is None else write_outputs(cells, configs, seeds, run.path, record)
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
        print(f"rerun: {rerun}")
    expected_stalls = {"unknown"}
    code = 1 if any(not what.startswith(tuple(expected_stalls)) for _, what, _ in failures) else 0
    if stop:
        code = exit_code_for(stop.reason)
        print(f"smr: stopped by {stop.reason} after {sum(len(c.runs) for c in cells)} of "
              f"{len(configs) * len(names) * len(seeds)} runs"
              f"{f'; the finished runs are in {run.path}' if run is not None else ''}", file=sys.stderr)
    if run is not None:
        run.finish("stopped" if stop else "complete", code, outputs)
    return code
