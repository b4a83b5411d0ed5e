"""``smr bench sim``: simulator speed against a bare heap loop measured in the same run."""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from collections import deque
from typing import Any, ClassVar

from .commands import put
from .replica import (EMPTY, TICK, Backend, ClientRequest, Input, Ready, ReplicaConfig, ReplicaStatus, Receive,
                      Reply, ReplyStatus, Role, Start, get_backend)
from .sim import ClientConfig, SimConfig, simulate
from .state_machines import make_state_machine

#: The no-protocol backend of the engine-floor run (a built-in, never listed in comparisons).
ECHO_BACKEND = "bench-echo"


class _EchoCore:
    """Answers every client request at once, sends nothing else: what the engine costs on its own."""

    backend: ClassVar[str] = ECHO_BACKEND

    def __init__(self, config: ReplicaConfig) -> None:
        self.node = config.node

    def step(self, event: Input) -> Ready:
        """Reply OK to a client request; ignore everything else."""
        if isinstance(event, ClientRequest):
            return Ready(replies=(Reply(event.client_id, event.seq, ReplyStatus.OK, None),))
        return EMPTY

    def status(self) -> ReplicaStatus:
        """An echo node is a plain replica with no leader and no log."""
        return ReplicaStatus(self.node, Role.REPLICA, 0, None, 0)


#: The ``bench-echo`` backend (named in :data:`smr.registry.BUILTIN_BACKENDS`); not a replicated
#: log, so comparisons and conformance runs leave it out.
ECHO = Backend(ECHO_BACKEND, _EchoCore, "benchmark only: replies at once, no protocol", replicated_log=False)


def _echo_backend() -> str:
    """The name of the echo backend (a built-in: nothing to register)."""
    return ECHO_BACKEND


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


def _cores(backend: Backend, nodes: int) -> dict[str, Any]:
    """``nodes`` cores of ``backend`` running the kv app, named n1..n<nodes>, seeded by name."""
    ids = tuple(f"n{i}" for i in range(1, nodes + 1))
    return {n: backend.factory(ReplicaConfig(n, tuple(p for p in ids if p != n), random.Random(n),
                                             lambda: make_state_machine("kv"))) for n in ids}


def _deliver_fifo(cores: dict[str, Any], queue: deque[tuple[str, Input]]) -> int:
    """Step queued inputs and every message they cause, FIFO, until quiet; writes count as synced at once.

    Returns the deliveries: each input stepped and each reply made.
    """
    deliveries = 0
    while queue:
        dst, event = queue.popleft()
        deliveries += 1
        ready = cores[dst].step(event)
        queue.extend((send.dst, Receive(dst, send.message)) for send in ready.all_messages)
        deliveries += len(ready.replies)
        if ready.after_sync is not None:  # synced at once
            queue.appendleft((dst, ready.after_sync))
    return deliveries


def cores_alone_rate(ops: int = 30_000, nodes: int = 5, clients: int = 10) -> dict[str, float]:
    """Deliveries per wall second of coordinator cores driven by a plain FIFO loop, with no simulator.

    Requests go round-robin to every node as the simulator's clients do; each
    message and each reply counts as one delivery, writes count as synced at
    once (a batch's ``after_sync`` input is stepped next).  This is the
    protocol's own cost, so it bounds any simulator's rate.
    """
    from workloads import make_workload

    cores = _cores(get_backend("coordinator"), nodes)
    ids = tuple(cores)
    for core in cores.values():
        core.step(Start({}))
    workload = make_workload("kv", {})
    rng = random.Random(1)
    queue: deque[tuple[str, Input]] = deque()
    deliveries = 0
    start = time.perf_counter()
    for i in range(ops):
        client = i % clients
        request = ClientRequest(f"c{client}", i // clients + 1, workload.next_command(rng, client))
        queue.append((ids[i % nodes], request))
        deliveries += _deliver_fifo(cores, queue)
    wall = time.perf_counter() - start
    return {"deliveries": deliveries, "ops": ops, "wall_s": round(wall, 3), "deliveries_per_s": deliveries / wall}


def cores_cpu_per_op(backend_name: str, batch: int = 256, ops: int = 20_480, nodes: int = 3) -> float:
    """CPU microseconds per committed put of ``nodes`` cores alone: no network, no storage, no scheduler.

    The cores elect a leader on ticks, then the leader takes ``batch``
    requests (from ``batch`` clients) per round and every message is
    delivered FIFO until quiet, writes counted as synced at once.  Every
    replica applies every put, so this is the protocol and state machine's
    own cost per operation: the floor under any runtime's CPU per operation.
    """
    cores = _cores(get_backend(backend_name), nodes)
    ids = tuple(cores)
    queue: deque[tuple[str, Input]] = deque((n, Start({})) for n in ids)
    _deliver_fifo(cores, queue)
    for _ in range(100_000):
        leader = next((n for n in ids if cores[n].status().role is Role.LEADER), None)
        if leader is not None:
            break
        queue.extend((n, TICK) for n in ids)
        _deliver_fifo(cores, queue)
    else:
        raise RuntimeError(f"{backend_name}: no leader after 100,000 ticks")
    value = "x" * 100
    seqs = [0] * batch
    rounds = max(1, ops // batch)
    before = {n: cores[n].status().commit_index for n in ids}
    start = time.process_time()
    for r in range(rounds):
        for c in range(batch):
            seqs[c] += 1
            queue.append((leader, ClientRequest(f"c{c}", seqs[c], put(f"k{(r * batch + c) % 1000}", value))))
        _deliver_fifo(cores, queue)
    cpu = time.process_time() - start
    for _ in range(3):  # heartbeats carry the last commit index to the followers
        queue.extend((n, TICK) for n in ids)
        _deliver_fifo(cores, queue)
    short = {n: cores[n].status().commit_index - before[n] for n in ids
             if cores[n].status().commit_index - before[n] < rounds * batch}
    if short:
        raise RuntimeError(f"{backend_name}: {rounds * batch} puts sent, but committed only {short}")
    return cpu / (rounds * batch) * 1e6


def sim_rate(duration_ms: float, *, trace: bool, count_bytes: bool, seed: int = 1,
             backend: str = "coordinator") -> dict[str, float]:
    """Deliveries and events per wall second for a 5-node run of ``backend`` (the coordinator by default)."""
    config = SimConfig(backend=backend, nodes=5, duration_ms=duration_ms, trace=trace,
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
    # The engine alone (client requests and replies, no protocol): the ceiling of any backend's ratio.
    floor = max((sim_rate(args.duration, trace=False, count_bytes=False, backend=_echo_backend())
                 for _ in range(args.repeat)), key=lambda r: r["deliveries_per_s"])
    floor["ratio_deliveries_to_heap"] = floor["deliveries_per_s"] / heap
    floor["ratio_events_to_heap"] = floor["events_per_s"] / heap
    rows["engine floor (echo, no protocol)"] = floor
    alone = max((cores_alone_rate() for _ in range(args.repeat)), key=lambda r: r["deliveries_per_s"])
    alone["ratio_deliveries_to_heap"] = alone["deliveries_per_s"] / heap
    rows["cores + workload, no simulator"] = alone
    if args.json:
        json.dump({"bare_heap_events_per_s": heap, "runs": rows, "target_ratio": 0.25}, sys.stdout,
                  indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print(f"bare heap loop: {heap:,.0f} push+pop per wall second")
    print("5-node coordinator run, 10 clients, "
          f"{args.duration:g} simulated ms (best of {args.repeat}):")
    for label, r in rows.items():
        events = (f"  {r['events_per_s']:>10,.0f} events/s (ratio {r['ratio_events_to_heap']:.3f})"
                  if "events_per_s" in r else "")
        print(f"  {label:32s} {r['deliveries_per_s']:>10,.0f} deliveries/s "
              f"(ratio {r['ratio_deliveries_to_heap']:.3f}){events}")
    print("target ratio >= 0.25.  The echo row is the engine with no protocol; the last row is the protocol")
    print("with no engine: each bounds the ratio on its own.")
    return 0


def register(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``smr bench sim`` to the bench subcommands."""
    from .arguments import positive_float, positive_int

    p = bench_sub.add_parser("sim", help="simulator speed vs a bare heap loop",
                             description="Time the simulator (deliveries and events per second) with and "
                                         "without traces and byte counts, the engine alone and the cores "
                                         "alone, and print each rate and its ratio to a bare heap loop "
                                         "(target ratio >= 0.25).")
    p.add_argument("--duration", type=positive_float, default=5000.0, help="simulated ms per run")
    p.add_argument("--repeat", type=positive_int, default=3, help="runs per row; the fastest counts")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_bench_sim)
