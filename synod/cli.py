"""The ``essay`` subcommand: the essay's table (and the Paxos costs), or its FLP part, from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from smr.arguments import non_negative_int, positive_int

from .costs import measure_costs
from .essay import run_essay_table

#: Seeds per (algorithm, scenario) for the table, and per column / row for the FLP part.
DEFAULT_SEEDS = {"table": 20, "flp": 200}


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``essay`` subcommand to an argparse ``subparsers`` object and return its parser."""
    parser = subparsers.add_parser(
        "essay", help="run every WriteOnce algorithm of the essay under every scenario (or its FLP part)",
        description="Run the essay's algorithms (coordinator, majority voting, tie-break voting, "
                    "Paxos synod) under the essay's scenarios on the simulator and report which "
                    "property each one loses, with the smallest counterexample.  'smr essay flp' "
                    "runs Part 3 instead: an FLP adversary against the synod without back-off, "
                    "the undecided fraction per round with back-off, and leader-election rounds "
                    "for Raft and multi-Paxos.")
    parser.add_argument("part", nargs="?", choices=("table", "flp"), default="table",
                        help="table: the essay's algorithm x property table (default); flp: Part 3, FLP")
    parser.add_argument("--seeds", type=positive_int, default=None,
                        help="seeds per (algorithm, scenario) for the table (default 20); "
                             "seeds per curve and per election row for flp (default 200)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")
    parser.add_argument("--costs", action="store_true", help="also measure Paxos message and delay costs (table)")
    parser.add_argument("--no-counterexamples", action="store_true",
                        help="skip the search for minimal counterexamples (table)")
    parser.add_argument("--rounds", type=positive_int, default=20,
                        help="flp: ballot rounds the adversary must keep the synod undecided")
    parser.add_argument("--trace-rounds", type=non_negative_int, default=3,
                        help="flp: ballot rounds shown step by step in the adversary's trace")
    parser.add_argument("--election-seeds", type=positive_int, default=None,
                        help="flp: seeds per leader-election row (default: --seeds)")
    parser.add_argument("--plot", default=None, metavar="STEM",
                        help="flp: also draw the per-round decay with its fitted geometric law into "
                             "STEM.png and STEM.svg (default: no figure)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chosen part; exit 0 if it matches the essay's predictions, 1 if not, 2 on bad arguments."""
    seeds = DEFAULT_SEEDS[args.part] if args.seeds is None else args.seeds
    if args.part == "flp":
        return _run_flp(args, seeds)
    if args.plot:
        print("essay: --plot belongs to flp, not to the table", file=sys.stderr)
        return 2
    table = run_essay_table(seeds, counterexamples=not args.no_counterexamples)
    costs = measure_costs() if args.costs else None
    if args.json:
        document: dict[str, Any] = table.to_json()
        if costs is not None:
            document["costs"] = costs.to_json()
        print(json.dumps(document, sort_keys=True))
    else:
        print(table.format())
        if costs is not None:
            print()
            print(costs.format())
    return 0 if table.matches_essay else 1


def _run_flp(args: argparse.Namespace, seeds: int) -> int:
    if args.costs or args.no_counterexamples:
        print("smr essay: error: --costs and --no-counterexamples belong to the table, not to flp", file=sys.stderr)
        return 2
    from .flp import run_flp

    report = run_flp(args.rounds, seeds, trace_rounds=args.trace_rounds, election_seeds=args.election_seeds)
    files: list[str] = []
    if args.plot:
        from .flp_plot import plot_flp

        files = [str(p) for p in plot_flp(report, Path(args.plot))]
    if args.json:
        print(json.dumps({**report.to_json(), **({"files": files} if files else {})}, sort_keys=True))
    else:
        print(report.format())
        if files:
            print(f"wrote {', '.join(files)}")
    return 0 if report.matches_essay else 1
