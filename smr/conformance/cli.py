"""``smr conformance`` (the catalogue on every backend) and ``smr fuzz`` (swarm seeds in parallel).

:func:`register` adds both subcommands to an ``argparse`` subparsers object;
each sets ``func`` to a function taking the parsed arguments and returning
the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..arguments import backend_name, listed, non_negative_int, positive_float, positive_int
from ..errors import LocalProtocolError
from ..output import print_json

if TYPE_CHECKING:
    from ..campaign import StopRequest



# ----------------------------------------------------------- smr conformance
def cmd_conformance(args: argparse.Namespace) -> int:
    """Run catalogue entries on backends and compare each outcome with the expected matrix.

    Exit 0 when every run matched its expectation (with ``--mutant``: when the
    mutant was caught by at least one run), 1 otherwise.
    """
    from ..campaign import exit_code_for, stop_on_signals, workers_from
    from ..replica import get_backend
    from ..results import open_run
    from .catalogue import builtin_catalogue, resolve
    from .judging import conformance_backends, mutant_option, mutants_of, run_cell

    entries = [resolve(s) for s in args.scenarios] if args.scenarios else builtin_catalogue()
    if args.list:
        for entry in entries:
            print(f"{entry.name:26s} {entry.description}")
        return 0
    if args.backends:
        backends = args.backends.split(",")
    elif args.mutant:
        backends = [b for b in conformance_backends() if mutant_option(args.mutant) in mutants_of(b)]
        if not backends:
            known = sorted({m for b in conformance_backends() for m in mutants_of(b)})
            raise LocalProtocolError(f"no backend has a mutant {args.mutant!r}; known: {', '.join(known)}")
    else:
        backends = conformance_backends()
    for name in backends:
        get_backend(name)
    if args.seeds < 1:
        raise LocalProtocolError("--seeds must be at least 1")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.trace and len(entries) * len(backends) * len(seeds) != 1:
        raise LocalProtocolError("--trace needs exactly one run: one scenario, one backend, --seeds 1")
    if args.trace:
        _, result = run_cell(entries[0], backends[0], seeds[0], args.mutant, trace=True)
        Path(args.trace).write_text("\n".join(result.trace) + "\n", encoding="utf-8")
    workers = workers_from(args)
    tasks = [(entry, backend, seed, args.mutant) for entry in entries for backend in backends
             if entry.runs_on(backend) for seed in seeds]
    run = None if args.no_files else open_run(
        args, "conformance", {"scenarios": [e.name for e in entries], "backends": backends,
                              "first_seed": args.first_seed, "seeds": args.seeds, "mutant": args.mutant,
                              **workers.to_json()})
    with stop_on_signals() as stop, workers.executor(stop) as executor:
        reports = run_cells(tasks, executor, stop, progress=not args.quiet)
    surprises = [r for r in reports if not r.as_expected]
    doc = {"mutant": args.mutant, "runs": [r.to_json() for r in reports], "unexpected": len(surprises)}
    if run is not None:
        (run.path / "conformance.json").write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n",
                                                   encoding="utf-8")
    if args.json:
        print_json(doc)
    else:
        for r in reports:
            mark = "ok " if r.as_expected else ("CAUGHT" if args.mutant else "UNEXPECTED")
            print(f"{mark:10s} {r.scenario:26s} {r.backend:12s} seed {r.seed:<6d} "
                  f"failed {sorted(r.judgement.failed) or '-'}  expected {sorted(r.expected) or '-'}")
        for r in surprises:
            print(r.describe())
        if args.mutant:
            print(f"mutant {args.mutant}: caught by {len(surprises)} of {len(reports)} runs")
        else:
            print(f"{len(reports) - len(surprises)} of {len(reports)} runs as expected")
    code = (0 if surprises else 1) if args.mutant else (1 if surprises else 0)
    if stop:
        code = exit_code_for(stop.reason)
        print(f"smr: stopped by {stop.reason} after {len(reports)} of {len(tasks)} runs", file=sys.stderr)
    if run is not None:
        run.finish("stopped" if stop else "complete", code, [run.path / "conformance.json"])
    return code


def judge_task(task: tuple[Any, str, int, str | None]) -> Any:
    """Simulate and judge one (catalogue entry, backend, seed, mutant) run; its CellReport."""
    from .judging import run_cell

    return run_cell(*task)[0]


def run_cells(tasks: Sequence[tuple[Any, str, int, str | None]], executor: Executor,
              stop: StopRequest | None = None, progress: bool = False) -> list[Any]:
    """Judge every (entry, backend, seed, mutant) run on ``executor``; CellReports in task order."""
    from ..campaign import Progress, stream

    bar = Progress("conformance", len(tasks), "run", quiet=not progress)
    reports = []
    try:
        for _, report in stream(executor, judge_task, tasks, stop):
            reports.append(report)
            bar.advance()
    finally:
        bar.close()
    return reports


def _add_conformance(sub: argparse._SubParsersAction) -> None:
    from ..campaign import add_worker_arguments
    from ..results import add_results_argument

    p = sub.add_parser("conformance", help="run the conformance catalogue on every backend",
                       description="Run catalogue scenarios on backends, judge every run (linearizability, "
                                   "invariants, workload invariants, liveness, quorum) and compare the "
                                   "outcome with the expected-result matrix.")
    p.add_argument("scenarios", nargs="*", help="catalogue names or YAML files (default: the whole catalogue)")
    p.add_argument("--backends", type=listed(backend_name), default=None,
                   help="comma-separated backends (default: every replicated-log backend, or every "
                        "backend offering --mutant)")
    p.add_argument("--seeds", type=positive_int, default=2, help="seeds per scenario and backend")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--mutant", default=None, help="switch on a deliberately broken variant, e.g. forget_vote")
    p.add_argument("--trace", default=None, metavar="FILE", help="write the trace of a single run")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    add_worker_arguments(p)
    add_results_argument(p)
    p.add_argument("--no-files", action="store_true", help="write no run directory")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_conformance)


# ------------------------------------------------------------------ smr fuzz
_HISTORIES_KEPT = 5  # failing seeds whose client histories a run directory keeps


def cmd_fuzz(args: argparse.Namespace) -> int:
    """Run a swarm campaign and report it.

    Exit 0 when no seed failed (with ``--mutant``: when some seed caught it), 1
    otherwise; 128 + the signal's number when stopped by SIGINT or SIGTERM
    (the partial report is written first).
    """
    from ..campaign import exit_code_for, stop_on_signals, workers_from
    from ..results import open_run
    from .fuzz import FuzzReport, FuzzSettings, fuzz, run_seed

    if getattr(args, "fuzz_action", None) == "merge":
        return cmd_fuzz_merge(args)
    if args.seeds < 1:
        raise LocalProtocolError("--seeds and --jobs must be at least 1")
    workers = workers_from(args)
    settings = FuzzSettings(backend=args.backend, mutant=args.mutant, nodes=args.nodes,
                            duration_ms=args.duration, clients=args.clients,
                            liveness_bound_ms=args.liveness_bound, membership=args.membership,
                            storage=args.storage or args.storage_unchecked, storage_checks=not args.storage_unchecked)
    if args.trace:
        if args.seeds != 1:
            raise LocalProtocolError("--trace needs --seeds 1")
        _, result = run_seed(settings, args.first_seed, trace=True)
        if result is not None:  # None: the run raised (its report says where)
            Path(args.trace).write_text("\n".join(result.trace) + "\n", encoding="utf-8")
    resume = FuzzReport.from_json(_read_json(args.resume)) if args.resume else None
    settings.config()  # a bad backend or mutant fails before a run directory is made
    run = open_run(args, "fuzz", {**settings.to_json(), "first_seed": args.first_seed, "seeds": args.seeds,
                                  "stop_at_first": args.stop_at_first, "dry_run": args.dry_run,
                                  "resume": args.resume, **workers.to_json()})
    kept = run.path / "report.json"

    def save(report: FuzzReport) -> None:
        text = json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
        for path in (kept, *([Path(args.out)] if args.out else [])):
            partial = path.with_name(path.name + ".partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)  # a reader never sees half a report

    with stop_on_signals() as stop, workers.executor(stop) as executor:
        report = fuzz(settings, args.first_seed, args.seeds, jobs=args.jobs, stop_at_first=args.stop_at_first,
                      progress=not (args.no_progress or args.quiet), executor=executor, stop=stop,
                      resume=resume, dry_run=args.dry_run, scheduler=args.scheduler, checkpoint=save,
                      checkpoint_every_s=args.checkpoint)
    doc = report.to_json()
    save(report)
    outputs = [kept]
    if not report.stopped_by and not args.dry_run:
        for failure in report.failures[:_HISTORIES_KEPT]:  # replayed here: the workers keep nothing
            outputs.append(run.keep_history(f"seed-{failure.seed}", run_seed(settings, failure.seed)[1].history))
    if args.json:
        print_json(doc)
    else:
        print(report.describe())
        if args.out:
            print(f"wrote {args.out}")
        print(f"wrote {run.path}")
    if report.stopped_by:
        code = exit_code_for(report.stopped_by)
        run.finish("stopped", code, outputs)
        print(f"smr: stopped by {report.stopped_by} after {report.seeds_run} of {report.seeds_requested} seeds; "
              f"partial report {args.out or kept}; finish with --resume {args.out or kept}", file=sys.stderr)
        return code
    code = _exit_code(report)
    run.finish("complete", code, outputs)
    return code


def _exit_code(report: Any) -> int:
    """0 if a campaign did what it was for (a mutant hunt found a failure; any other found none), else 1."""
    return int(bool(report.failures) != bool(report.settings.mutant))


def _read_json(path: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LocalProtocolError(f"cannot read the report {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise LocalProtocolError(f"{path} is not a fuzz report")
    return doc


def cmd_fuzz_merge(args: argparse.Namespace) -> int:
    """Merge disjoint shards of one campaign into one report (exit 1 if a seed failed, 2 if refused)."""
    from .fuzz import FuzzReport, merge_reports

    merged = merge_reports([FuzzReport.from_json(_read_json(p)) for p in args.reports])
    doc = merged.to_json()
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.json:
        print_json(doc)
    else:
        print(merged.describe())
        if args.out:
            print(f"wrote {args.out}")
    return _exit_code(merged)


def _add_fuzz(sub: argparse._SubParsersAction) -> None:
    from ..campaign import add_worker_arguments
    from ..results import add_results_argument

    p = sub.add_parser("fuzz", help="judge many swarm seeds in parallel (fault settings drawn from each seed)",
                       description="Run swarm seeds (every seed draws its own network settings and fault "
                                   "schedule, then heals), judge each like the conformance catalogue, and "
                                   "report failures with the command that replays each.  Ctrl-C or SIGTERM "
                                   "writes the partial report; --resume finishes it; `smr fuzz merge` joins "
                                   "shards.")
    p.add_argument("--backend", type=backend_name, default="raft")
    p.add_argument("--seeds", type=positive_int, default=100, help="how many seeds")
    p.add_argument("--first-seed", type=int, default=1)
    add_worker_arguments(p)
    p.add_argument("--nodes", type=positive_int, default=3)
    p.add_argument("--clients", type=non_negative_int, default=3)
    p.add_argument("--duration", type=positive_float, default=5000.0, help="simulated ms per seed")
    p.add_argument("--liveness-bound", type=positive_float, default=1000.0,
                   help="ms after the heal within which progress must resume")
    p.add_argument("--mutant", default=None, help="switch on a deliberately broken variant, e.g. forget_vote")
    p.add_argument("--membership", action="store_true",
                   help="every seed also draws membership changes (adds, removes, replaces; 1 to 7 nodes)")
    storage = p.add_mutually_exclusive_group()
    storage.add_argument("--storage", action="store_true",
                         help="every seed also draws storage faults: wipes, bit flips and lost tails on a minority "
                              "(found at restart; the node rejoins empty), full disks on any node")
    storage.add_argument("--storage-unchecked", action="store_true",
                         help="--storage with the start-up checks of durable state off (a deliberately broken "
                              "variant: damage is loaded as it is)")
    p.add_argument("--stop-at-first", action="store_true", help="stop at the first failing seed")
    p.add_argument("--resume", default=None, metavar="REPORT",
                   help="a report of this campaign (e.g. a stopped one): skip the seeds it judged")
    p.add_argument("--checkpoint", type=positive_float, default=60.0, metavar="SECONDS",
                   help="write the report so far this often, so a killed campaign can resume")
    p.add_argument("--dry-run", action="store_true",
                   help="draw and dispatch every seed's swarm settings without simulating (measures the "
                        "campaign machinery)")
    p.add_argument("--trace", default=None, metavar="FILE", help="with --seeds 1: write the run's trace")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the JSON report here")
    add_results_argument(p)
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--no-progress", action="store_true", help="the same as --quiet")
    p.set_defaults(func=cmd_fuzz)
    actions = p.add_subparsers(dest="fuzz_action", required=False, metavar="merge")
    m = actions.add_parser("merge", help="merge reports of disjoint shards of one campaign",
                           description="Combine fuzz reports of the same settings and code over disjoint "
                                       "seeds into one; refuses overlapping or inconsistent reports.")
    m.add_argument("reports", nargs="+", metavar="REPORT")
    m.add_argument("--out", default=None, metavar="FILE", help="write the merged JSON report here")
    m.add_argument("--json", action="store_true", help="print the merged JSON report")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``smr conformance`` and ``smr fuzz`` to the ``smr`` command line."""
    _add_conformance(subparsers)
    _add_fuzz(subparsers)
