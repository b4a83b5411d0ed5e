"""The ``smr bench checker`` subcommand: how fast the checker judges linearizable histories.

Each row generates, from the seed, a linearizable history (1 000 or 10 000
operations, 5 or 20 concurrent clients, 1% unknown and 1% failed
operations) for the KV map over 8 keys and for a single register, checks
each, and reports operations checked per second.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import attrs

from ._check import check
from .generate import generate_history
from .models import make_model

#: (operations, clients) for each row.
BENCH_SHAPES = ((1_000, 5), (1_000, 20), (10_000, 5), (10_000, 20))
#: The models each row checks, with the keys their histories use.
BENCH_MODELS = (("kv", 8), ("register", 1))
UNKNOWN_RATE = 0.01
FAIL_RATE = 0.01


@attrs.frozen
class BenchResult:
    """One model's figures in one row: verdict, model steps, seconds and operations per second."""

    model: str
    verdict: str
    steps: int
    seconds: float
    ops_per_second: float


@attrs.frozen
class BenchRow:
    """One history shape and how each model fared on it."""

    operations: int
    clients: int
    results: tuple[BenchResult, ...]


def run_bench(seed: int = 0, shapes: tuple[tuple[int, int], ...] = BENCH_SHAPES) -> list[BenchRow]:
    """Check generated linearizable histories of each shape and return the measured throughput."""
    rows = []
    for operations, clients in shapes:
        results = []
        for model, keys in BENCH_MODELS:
            rng = random.Random(f"{seed}/{model}/{operations}/{clients}")
            history = generate_history(rng, operations=operations, clients=clients, model=model,
                                       keys=keys, unknown_rate=UNKNOWN_RATE, fail_rate=FAIL_RATE)
            started = time.perf_counter()
            verdict = check(history, make_model(model))
            seconds = time.perf_counter() - started
            results.append(BenchResult(model, verdict.status.value, verdict.steps, seconds,
                                       operations / seconds if seconds > 0 else float("inf")))
        rows.append(BenchRow(operations, clients, tuple(results)))
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """Return the rows as an aligned text table, one line per history shape."""
    header = f"{'operations':>10} {'clients':>7}"
    for model, _ in BENCH_MODELS:
        header += f" {model + ' ops/s':>14} {model + ' s':>10} {'verdict':>12}"
    lines = [header]
    for row in rows:
        line = f"{row.operations:>10} {row.clients:>7}"
        for r in row.results:
            line += f" {r.ops_per_second:>14,.0f} {r.seconds:>10.3f} {r.verdict:>12}"
        lines.append(line)
    return "\n".join(lines)


def rows_to_json(rows: list[BenchRow], seed: int) -> dict[str, Any]:
    """Return a JSON-serialisable report of the rows."""
    return {
        "benchmark": "checker",
        "seed": seed,
        "unknown_rate": UNKNOWN_RATE,
        "fail_rate": FAIL_RATE,
        "rows": [attrs.asdict(row) for row in rows],
    }


def register_bench(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``checker [--json] [--seed N]`` benchmark subcommand; its ``func(args)`` returns 0."""
    parser = subparsers.add_parser(
        "checker", help="measure linearizability checker throughput",
        description="Check generated linearizable KV and register histories (1 000 and 10 000 "
                    "operations, 5 and 20 clients) and report operations checked per second.")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--seed", type=int, default=0, help="the seed the histories are generated from")
    parser.set_defaults(func=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    """Run the checker benchmark and print a table (or JSON); return 0."""
    rows = run_bench(args.seed)
    if args.json:
        print(json.dumps(rows_to_json(rows, args.seed), sort_keys=True))
    else:
        print(f"checker throughput (seed {args.seed}, {UNKNOWN_RATE:.0%} unknown, {FAIL_RATE:.0%} failed)")
        print(format_table(rows))
    return 0
