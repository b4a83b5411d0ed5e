"""``smr conformance`` (the catalogue on every backend) and ``smr fuzz`` (swarm seeds in parallel).

:func:`register` adds both subcommands to an ``argparse`` subparsers object;
each sets ``func`` to a function taking the parsed arguments and returning
the exit code.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import LocalProtocolError
from ..output import print_json



# ----------------------------------------------------------- smr conformance
def cmd_conformance(args: argparse.Namespace) -> int:
    """Run catalogue entries on backends and compare each outcome with the expected matrix.

    Exit 0 when every run matched its expectation (with ``--mutant``: when the
    mutant was caught by at least one run), 1 otherwise.
    """
    from ..replica import get_backend
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
    else:
        backends = conformance_backends()
    for name in backends:
        get_backend(name)
    if args.seeds < 1:
        raise LocalProtocolError("--seeds must be at least 1")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.trace and len(entries) * len(backends) * len(seeds) != 1:
        raise LocalProtocolError("--trace needs exactly one run: one scenario, one backend, --seeds 1")
    reports = []
    for entry in entries:
        for backend in (b for b in backends if entry.runs_on(b)):
            for seed in seeds:
                report, result = run_cell(entry, backend, seed, args.mutant, trace=bool(args.trace))
                reports.append(report)
                if args.trace:
                    Path(args.trace).write_text("\n".join(result.trace) + "\n", encoding="utf-8")
    surprises = [r for r in reports if not r.as_expected]
    if args.json:
        print_json({"mutant": args.mutant, "runs": [r.to_json() for r in reports],
                     "unexpected": len(surprises)})
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
    if args.mutant:
        return 0 if surprises else 1
    return 1 if surprises else 0


def _add_conformance(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conformance", help="run the conformance catalogue on every backend",
                       description="Run catalogue scenarios on backends, judge every run (linearizability, "
                                   "invariants, workload invariants, liveness, quorum) and compare the "
                                   "outcome with the expected-result matrix.")
    p.add_argument("scenarios", nargs="*", help="catalogue names or YAML files (default: the whole catalogue)")
    p.add_argument("--backends", default=None,
                   help="comma-separated backends (default: every replicated-log backend, or every "
                        "backend offering --mutant)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per scenario and backend")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--mutant", default=None, help="switch on a deliberately broken variant, e.g. forget_vote")
    p.add_argument("--trace", default=None, metavar="FILE", help="write the trace of a single run")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_conformance)


# ------------------------------------------------------------------ smr fuzz
def cmd_fuzz(args: argparse.Namespace) -> int:
    """Run a swarm campaign and report it.

    Exit 0 when no seed failed (with ``--mutant``: when some seed caught it), 1 otherwise.
    """
    from .fuzz import FuzzSettings, fuzz, run_seed

    if args.seeds < 1 or args.jobs < 1:
        raise LocalProtocolError("--seeds and --jobs must be at least 1")
    settings = FuzzSettings(backend=args.backend, mutant=args.mutant, nodes=args.nodes,
                            duration_ms=args.duration, clients=args.clients,
                            liveness_bound_ms=args.liveness_bound, membership=args.membership)
    if args.trace:
        if args.seeds != 1:
            raise LocalProtocolError("--trace needs --seeds 1")
        _, result = run_seed(settings, args.first_seed, trace=True)
        if result is not None:  # None: the run raised (its report says where)
            Path(args.trace).write_text("\n".join(result.trace) + "\n", encoding="utf-8")
    report = fuzz(settings, args.first_seed, args.seeds, jobs=args.jobs,
                  stop_at_first=args.stop_at_first, progress=not args.no_progress)
    doc = report.to_json()
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.json:
        print_json(doc)
    else:
        print(report.describe())
        if args.out:
            print(f"wrote {args.out}")
    if args.mutant:
        return 0 if report.failures else 1
    return 1 if report.failures else 0


def _add_fuzz(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuzz", help="judge many swarm seeds in parallel (fault settings drawn from each seed)",
                       description="Run swarm seeds (every seed draws its own network settings and fault "
                                   "schedule, then heals), judge each like the conformance catalogue, and "
                                   "report failures with the command that replays each.")
    p.add_argument("--backend", default="raft")
    p.add_argument("--seeds", type=int, default=100, help="how many seeds")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1, help="processes to spread the seeds over")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--duration", type=float, default=5000.0, help="simulated ms per seed")
    p.add_argument("--liveness-bound", type=float, default=1000.0,
                   help="ms after the heal within which progress must resume")
    p.add_argument("--mutant", default=None, help="switch on a deliberately broken variant, e.g. forget_vote")
    p.add_argument("--membership", action="store_true",
                   help="every seed also draws membership changes (adds, removes, replaces; 1 to 7 nodes)")
    p.add_argument("--stop-at-first", action="store_true", help="stop at the first failing seed")
    p.add_argument("--trace", default=None, metavar="FILE", help="with --seeds 1: write the run's trace")
    p.add_argument("--out", default=None, metavar="FILE", help="write the JSON report here")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_fuzz)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``smr conformance`` and ``smr fuzz`` to the ``smr`` command line."""
    _add_conformance(subparsers)
    _add_fuzz(subparsers)
