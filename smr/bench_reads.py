"""``smr bench reads``: what a linearizable read costs -- through the log, by ReadIndex, under a lease.

For each backend and read mode the simulator runs the same read-heavy KV
workload (same seeds, same network), and once more with no clients at all,
so the heartbeats a cluster sends anyway can be taken out: a read's cost is
``(peer messages of the run - those of the idle run) / operations``.  Read
latency is the median and 99th percentile of the reads' simulated
milliseconds.  With ``--tcp`` the same rows come from a real 3-node cluster
on 127.0.0.1 (``smr serve`` processes, no fsync): one client reads a key in
a loop for ``--seconds``, latency is wall-clock, and messages are the peer
messages the nodes sent (``messages_sent``) beyond an idle interval as long.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .arguments import backend_name, listed, one_of, positive_float, positive_int
from .history import Outcome
from .sim import ClientConfig, SimConfig, simulate
from .stats import percentile

#: The read modes, as each backend's ``read_mode`` option names them.
READ_MODES = ("log", "read_index", "lease")
#: Options of each backend's runs (the same for every read mode, so the rows compare like with like).
BACKEND_OPTIONS: dict[str, dict[str, Any]] = {"raft": {"check_quorum": True, "pre_vote": True},
                                              "multipaxos": {}}
#: Simulator messages that are client traffic, not the protocol's.
CLIENT_MESSAGES = frozenset({"ClientRequest", "Reply"})


@attrs.frozen
class ReadFigures:
    """One backend and read mode: read latency, protocol messages per operation, throughput."""

    backend: str
    mode: str
    reads: int
    writes: int
    p50_ms: float | None
    p99_ms: float | None
    messages_per_op: float
    ops_per_s: float


def _peer_messages(sent: dict[str, int]) -> int:
    return sum(n for kind, n in sent.items() if kind not in CLIENT_MESSAGES)


def measure(backend: str, mode: str, seeds: Sequence[int], duration_ms: float = 3000.0, clients: int = 8,
            read_ratio: float = 0.9) -> ReadFigures:
    """Run ``backend`` with ``read_mode`` ``mode`` over ``seeds`` and return the read figures."""
    options = {**BACKEND_OPTIONS.get(backend, {}), "read_mode": mode}
    base = SimConfig(backend=backend, backend_options=options, duration_ms=duration_ms,
                     clients=ClientConfig(count=clients, workload="kv", warmup_ms=300.0,
                                          workload_options={"read_ratio": read_ratio, "conflict_ratio": 0.0}))
    idle = attrs.evolve(base, clients=attrs.evolve(base.clients, count=0))
    latencies: list[float] = []
    reads = writes = extra = 0
    for seed in seeds:
        run = simulate(base, seed)
        quiet = simulate(idle, seed)
        if run.violations:
            raise RuntimeError(f"{backend} read_mode={mode} seed {seed} violated safety: {run.violations[0]}; "
                               f"replay: {run.replay}")
        extra += _peer_messages(run.counters.sent) - _peer_messages(quiet.counters.sent)
        for op in run.history:
            if op.outcome is not Outcome.OK or op.complete is None or op.invoke < 300.0:
                continue
            if op.command.op == "get":
                reads += 1
                latencies.append(op.complete - op.invoke)
            else:
                writes += 1
    ops = reads + writes
    seconds = len(seeds) * (duration_ms - 300.0) / 1000.0
    return ReadFigures(backend, mode, reads, writes, percentile(latencies, 0.5), percentile(latencies, 0.99),
                       extra / ops if ops else 0.0, ops / seconds if seconds else 0.0)


async def measure_tcp(backend: str, mode: str, seconds: float = 3.0) -> ReadFigures:
    """Read one key in a loop on a real local cluster with ``read_mode`` ``mode``; wall-clock figures."""
    import trio

    from .commands import get, put
    from .net import open_local_tcp_cluster, open_tcp_client

    options = {**BACKEND_OPTIONS.get(backend, {}), "read_mode": mode}

    async def sent(client: Any) -> int:
        reports = await client.statuses(timeout=2.0)
        return sum(r.counters.get("messages_sent", 0) for r in reports.values() if r is not None)

    with tempfile.TemporaryDirectory(prefix="smr-bench-reads-") as directory:
        async with open_local_tcp_cluster(Path(directory), backend=backend, backend_options=options,
                                          fsync=False) as cluster, open_tcp_client(cluster.cluster_file) as client:
            await client.submit(put("k", "v"))
            await trio.sleep(0.5)
            idle_from = await sent(client)
            await trio.sleep(seconds)
            idle = await sent(client) - idle_from
            latencies: list[float] = []
            run_from = await sent(client)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                started = time.perf_counter()
                await client.submit(get("k"))
                latencies.append((time.perf_counter() - started) * 1000)
            extra = await sent(client) - run_from - idle
    reads = len(latencies)
    return ReadFigures(backend, mode, reads, 0, percentile(latencies, 0.5), percentile(latencies, 0.99),
                       extra / reads if reads else 0.0, reads / seconds)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cmd_bench_reads(args: argparse.Namespace) -> int:
    """Print read latency and messages per operation for every backend and read mode."""
    rows = []
    for backend in args.backends.split(","):
        for mode in args.modes.split(","):
            if args.tcp:
                import trio
                rows.append(trio.run(measure_tcp, backend, mode, args.seconds))
            else:
                rows.append(measure(backend, mode, range(1, args.seeds + 1), args.duration, args.clients,
                                    args.read_ratio))
    if args.json:
        json.dump([attrs.asdict(r) for r in rows], sys.stdout, indent=2)
        print()
        return 0
    if args.tcp:
        print(f"TCP, 3 smr serve processes on 127.0.0.1 (no fsync), one client reading one key for {args.seconds:g} s; "
              f"latency in wall ms; messages = peer messages per read beyond an idle interval's")
    else:
        print(f"simulator, {args.clients} closed-loop clients, {args.read_ratio:.0%} reads, {args.seeds} seed(s) of "
              f"{args.duration:.0f} ms; messages = protocol messages per operation beyond an idle cluster's")
    print(f"{'backend':<12} {'read mode':<11} {'reads':>7} {'read p50 ms':>12} {'read p99 ms':>12} "
          f"{'msgs/op':>8} {'ops/s':>8}")
    for r in rows:
        print(f"{r.backend:<12} {r.mode:<11} {r.reads:>7} {_fmt(r.p50_ms):>12} {_fmt(r.p99_ms):>12} "
              f"{r.messages_per_op:>8.2f} {r.ops_per_s:>8.0f}")
    return 0


def register(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``smr bench reads`` to the bench subcommands."""
    p = bench_sub.add_parser("reads", help="read latency and messages per read: log, ReadIndex, lease",
                             description=__doc__)
    p.add_argument("--backends", type=listed(backend_name), default="raft,multipaxos", help="comma-separated")
    p.add_argument("--modes", type=listed(one_of(READ_MODES)), default=",".join(READ_MODES), help="read modes")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per row")
    p.add_argument("--duration", type=positive_float, default=3000.0, help="simulated ms per run")
    p.add_argument("--clients", type=positive_int, default=8, help="closed-loop clients")
    p.add_argument("--read-ratio", type=float, default=0.9, help="share of reads")
    p.add_argument("--tcp", action="store_true", help="measure a real local cluster instead of the simulator")
    p.add_argument("--seconds", type=positive_float, default=3.0, help="with --tcp: seconds of reads per row")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=cmd_bench_reads)
