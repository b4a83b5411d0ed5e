"""``smr bench sim``: simulator speed against a bare heap loop measured in the same run."""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from typing import Any

from .sim import ClientConfig, SimConfig, simulate


def bare_heap_rate(events: int = 400_000, pending: int = 1_000) -> float:
    """Events per wall second of a loop that only pops and pushes (time, seq, event) tuples."""
    queue: list[tuple[Any, ...]] = [(i * 0.1, i, 0, None, None, None) for i in range(pending)]
    heapq.heapify(queue)
    seq = pending
    pop, push = heapq.heappop, heapq.heappush
    start = time.perf_counter()
    for _ in range(events):
        event = pop(queue)
        seq += 1
        push(queue, (event[0] + 1.0, seq, event[2], event[3], event[4], event[5]))
    return events / (time.perf_counter() - start)


def sim_rate(duration_ms: float, *, trace: bool, count_bytes: bool, seed: int = 1) -> dict[str, float]:
    """Deliveries and events per wall second for a 5-node coordinator run."""
    config = SimConfig(backend="coordinator", nodes=5, duration_ms=duration_ms, trace=trace,
                       count_bytes=count_bytes, clients=ClientConfig(count=10, workload="kv"))
    start = time.perf_counter()
    result = simulate(config, seed)
    wall = time.perf_counter() - start
    return {"deliveries": result.counters.deliveries, "events": result.counters.events,
            "wall_s": round(wall, 3), "deliveries_per_s": result.counters.deliveries / wall,
            "events_per_s": result.counters.events / wall}


def cmd_bench_sim(args: argparse.Namespace) -> int:
    """Print simulator speed, the bare heap loop's rate, and their ratio."""
    heap = max(bare_heap_rate() for _ in range(3))
    rows = {}
    for label, trace, count_bytes in (("lean (no trace, no byte counts)", False, False),
                                      ("bytes counted", False, True),
                                      ("trace and bytes", True, True)):
        rate = max((sim_rate(args.duration, trace=trace, count_bytes=count_bytes)
                    for _ in range(args.repeat)), key=lambda r: r["deliveries_per_s"])
        rate["ratio_deliveries_to_heap"] = rate["deliveries_per_s"] / heap
        rate["ratio_events_to_heap"] = rate["events_per_s"] / heap
        rows[label] = rate
    if args.json:
        json.dump({"bare_heap_events_per_s": heap, "runs": rows, "target_ratio": 0.25}, sys.stdout,
                  indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print(f"bare heap loop: {heap:,.0f} push+pop per wall second")
    print("5-node coordinator run, 10 clients, "
          f"{args.duration:g} simulated ms (best of {args.repeat}):")
    for label, r in rows.items():
        print(f"  {label:32s} {r['deliveries_per_s']:>10,.0f} deliveries/s "
              f"(ratio {r['ratio_deliveries_to_heap']:.3f})  "
              f"{r['events_per_s']:>10,.0f} events/s (ratio {r['ratio_events_to_heap']:.3f})")
    return 0


def register(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``smr bench sim`` to the bench subcommands."""
    p = bench_sub.add_parser("sim", help="simulator speed vs a bare heap loop")
    p.add_argument("--duration", type=float, default=5000.0, help="simulated ms per run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_sim)
