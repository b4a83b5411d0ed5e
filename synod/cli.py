"""The ``essay`` subcommand: run the essay's table (and the Paxos costs) from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .costs import measure_costs
from .essay import run_essay_table


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``essay`` subcommand to an argparse ``subparsers`` object and return its parser."""
    parser = subparsers.add_parser(
        "essay", help="run every WriteOnce algorithm of the essay under every scenario",
        description="Run the essay's algorithms (coordinator, majority voting, tie-break voting, "
                    "Paxos synod) under the essay's scenarios on the simulator and report which "
                    "property each one loses, with the smallest counterexample.")
    parser.add_argument("--seeds", type=int, default=20, help="seeds per (algorithm, scenario) (default 20)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")
    parser.add_argument("--costs", action="store_true", help="also measure Paxos message and delay costs")
    parser.add_argument("--no-counterexamples", action="store_true",
                        help="skip the search for minimal counterexamples")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the table (and costs); exit 0 if it matches the essay's predictions, 1 if not."""
    if args.seeds < 1:
        print("essay: --seeds must be at least 1", file=sys.stderr)
        return 2
    table = run_essay_table(args.seeds, counterexamples=not args.no_counterexamples)
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
