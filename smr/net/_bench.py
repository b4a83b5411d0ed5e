"""``smr bench storage`` and ``smr bench tcp``: what a sync costs, and what a real cluster sustains.

``storage`` measures one node's :class:`~smr.net._storage.Storage`: commits
and writes per second at several group-commit batch sizes, beside a bare
``write`` + ``fdatasync`` loop on the same disk (the floor any design pays).

``tcp`` starts a local 3-node cluster of real processes per backend (durable
by default), then measures (a) sustained throughput with ``--clients``
sessions each keeping one put outstanding for ``--seconds`` and (b) the
latency of ``--latency-ops`` puts issued one at a time; it runs the same puts
against a 3-node PySyncObj cluster (``smr.net._pysyncobj_baseline``) when
that package is installed, and prints everything side by side with ratios.
Every loop is bounded in operations and in time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from smr.commands import put
from smr.replica import ClientRequest, Write
from smr.stats import percentile as _percentile

from ._client import open_tcp_client
from ._launcher import open_local_tcp_cluster
from ._storage import Storage


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank); NaN if empty."""
    found = _percentile(values, q)
    return float("nan") if found is None else found


# ---------------------------------------------------------------- storage
def raw_sync_rate(directory: Path, seconds: float, size: int, max_ops: int = 5000) -> dict[str, float]:
    """Appends of ``size`` bytes, each followed by fdatasync, per second."""
    path = directory / "raw.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    record = b"x" * size
    n = 0
    start = time.perf_counter()
    try:
        while n < max_ops and time.perf_counter() - start < seconds:
            os.write(fd, record)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        path.unlink()
    elapsed = time.perf_counter() - start
    return {"syncs_per_s": n / elapsed, "ms_per_sync": elapsed / n * 1000}


def storage_rate(directory: Path, batch: int, seconds: float, value_size: int, *, fsync: bool = True,
                 max_commits: int = 5000) -> dict[str, float]:
    """Commits and writes per second of :class:`Storage` with ``batch`` Raft-like entries per commit."""
    from raft.messages import Entry, log_key

    request = ClientRequest("bench", 1, put("k", "v" * value_size))
    index = 0
    with Storage(directory / f"b{batch}-{int(fsync)}", "bench", fsync=fsync) as storage:
        start = time.perf_counter()
        while storage.stats.commits < max_commits and time.perf_counter() - start < seconds:
            writes = []
            for _ in range(batch):
                index += 1
                writes.append(Write(log_key(index), Entry(1, request)))
            storage.commit(writes)
        elapsed = time.perf_counter() - start
        commits = storage.stats.commits
    return {"batch": batch, "fsync": fsync, "commits_per_s": commits / elapsed,
            "writes_per_s": commits * batch / elapsed, "ms_per_commit": elapsed / commits * 1000}


def cmd_bench_storage(args: argparse.Namespace) -> int:
    """Print storage commit rates per batch size beside the bare fdatasync floor."""
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="smr-bench-storage-", dir=args.dir) as tmp:
        directory = Path(tmp)
        raw = raw_sync_rate(directory, args.seconds, args.value_size + 60)
        rows = [storage_rate(directory, b, args.seconds, args.value_size) for b in batches]
        rows.append(storage_rate(directory, 1, args.seconds, args.value_size, fsync=False))
    if args.json:
        json.dump({"raw_fdatasync": raw, "storage": rows}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print(f"bare write+fdatasync: {raw['syncs_per_s']:,.0f} syncs/s ({raw['ms_per_sync']:.2f} ms each)")
    print(f"{'storage':22s} {'batch':>6s} {'commits/s':>10s} {'writes/s':>10s} {'ms/commit':>10s}")
    for r in rows:
        label = "SQLite WAL FULL" if r["fsync"] else "SQLite WAL OFF (no sync)"
        print(f"{label:22s} {r['batch']:6d} {r['commits_per_s']:10,.0f} {r['writes_per_s']:10,.0f} "
              f"{r['ms_per_commit']:10.3f}")
    return 0


# -------------------------------------------------------------------- tcp
async def measure(cluster_file: Path, *, clients: int, seconds: float, latency_ops: int, value_size: int,
                  max_ops: int) -> dict[str, Any]:
    """Throughput with ``clients`` sessions for ``seconds``, then sequential put latency."""
    value = "v" * value_size
    async with open_tcp_client(cluster_file, prefix="bench") as cluster:
        warm = cluster.client()
        for i in range(50):
            await warm.submit(put(f"warm{i}", value))
        loaded: list[float] = []
        counts = {"ok": 0, "errors": 0, "issued": 0}
        start = time.perf_counter()
        deadline = start + seconds

        async def worker(n: int) -> None:
            session = cluster.client()
            i = 0
            while time.perf_counter() < deadline and counts["issued"] < max_ops:
                counts["issued"] += 1
                i += 1
                t = time.perf_counter()
                try:
                    await session.submit(put(f"k{n}-{i % 100}", value), attempts=10)
                except TimeoutError:
                    counts["errors"] += 1
                    continue
                loaded.append(time.perf_counter() - t)
                counts["ok"] += 1

        async with trio.open_nursery() as nursery:
            for n in range(clients):
                nursery.start_soon(worker, n)
        elapsed = time.perf_counter() - start
        sequential: list[float] = []
        session = cluster.client()
        for i in range(latency_ops):
            t = time.perf_counter()
            await session.submit(put(f"seq{i % 100}", value))
            sequential.append(time.perf_counter() - t)
    return {"ok": counts["ok"], "errors": counts["errors"], "elapsed_s": round(elapsed, 3),
            "throughput": counts["ok"] / elapsed,
            "loaded_p50_ms": percentile(loaded, 0.5) * 1000, "loaded_p99_ms": percentile(loaded, 0.99) * 1000,
            "p50_ms": percentile(sequential, 0.5) * 1000, "p99_ms": percentile(sequential, 0.99) * 1000,
            "latency_ops": len(sequential)}


async def bench_backend(directory: Path, backend: str, *, fsync: bool, clients: int, seconds: float,
                        latency_ops: int, value_size: int, max_ops: int) -> dict[str, Any]:
    """Start a 3-node loopback cluster of ``backend`` in ``directory`` and measure it."""
    async with open_local_tcp_cluster(directory, nodes=3, backend=backend, fsync=fsync) as cluster:
        figures = await measure(cluster.cluster_file, clients=clients, seconds=seconds,
                                latency_ops=latency_ops, value_size=value_size, max_ops=max_ops)
    return {"system": backend, "storage": "sqlite fsync" if fsync else "sqlite no-sync", **figures}


def _pysyncobj(directory: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        print("(pysyncobj is not installed: pip install 'smr-compare[pysyncobj]' to compare)", file=sys.stderr)
        return []
    from ._pysyncobj_baseline import run_pysyncobj_bench

    rows = []
    for batch in (True, False):  # its default, and its low-latency setting
        figures = run_pysyncobj_bench(directory / f"batch-{batch}", clients=args.clients, seconds=args.seconds,
                                      latency_ops=args.latency_ops, value_size=args.value_size,
                                      max_ops=args.max_ops, batch=batch)
        label = "pysyncobj" if batch else "pysyncobj*"
        rows.append({**figures, "system": label, "storage": "mmap journal, no sync"})
    return rows


def cmd_bench_tcp(args: argparse.Namespace) -> int:
    """Print throughput and sequential latency per backend (and PySyncObj) with ratios."""
    backends = [b for b in args.backends.split(",") if b]
    modes = [True, False] if args.no_fsync_too else [True]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="smr-bench-tcp-", dir=args.dir) as tmp:
        for fsync in modes:
            for backend in backends:
                directory = Path(tmp) / f"{backend}-{'sync' if fsync else 'nosync'}"
                rows.append(trio.run(lambda: bench_backend(  # noqa: B023 (called at once)
                    directory, backend, fsync=fsync, clients=args.clients, seconds=args.seconds,
                    latency_ops=args.latency_ops, value_size=args.value_size, max_ops=args.max_ops)))
        baselines = [] if args.no_pysyncobj else _pysyncobj(Path(tmp) / "pysyncobj", args)
    for row in rows:
        row["vs"] = {b["system"]: {"throughput": row["throughput"] / b["throughput"],
                                   "p50": row["p50_ms"] / b["p50_ms"]} for b in baselines}
    rows.extend(baselines)
    wall = time.perf_counter() - started
    settings = {"nodes": 3, "clients": args.clients, "seconds": args.seconds, "latency_ops": args.latency_ops,
                "value_size": args.value_size, "operation": "put", "cpus": os.cpu_count(),
                "wall_s": round(wall, 1),
                "load_average_before": load_before, "load_average_after": os.getloadavg()[0]}
    if args.json:
        json.dump({"settings": settings, "rows": rows}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print(f"3 nodes on 127.0.0.1, {os.cpu_count()} CPUs (load average {load_before:.1f} before, "
          f"{settings['load_average_after']:.1f} after); put of a {args.value_size}-byte value; "
          f"{args.clients} clients for {args.seconds:g} s, then {args.latency_ops} sequential puts")
    names = [b["system"] for b in baselines]
    header = "".join(f" {'x tput/x p50 vs ' + n:>24s}" for n in names)
    print(f"{'system':11s} {'storage':21s} {'ops/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} "
          f"{'loaded p50/p99':>15s}{header}")
    for r in rows:
        ratios = "".join(f" {r['vs'][n]['throughput']:>15.2f}/{r['vs'][n]['p50']:<8.2f}"
                         for n in names) if "vs" in r else ""
        print(f"{r['system']:11s} {r['storage']:21s} {r['throughput']:8,.0f} {r['p50_ms']:7.2f} "
              f"{r['p99_ms']:7.2f} "
              f"{r['loaded_p50_ms']:7.1f}/{r['loaded_p99_ms']:<7.1f}{ratios}")
    if baselines:
        print("pysyncobj: its defaults (appendEntriesUseBatch=True); pysyncobj*: appendEntriesUseBatch=False. "
              "PySyncObj is driven inside its leader process (no client hop) and never syncs its journal.")
    print(f"targets: throughput >= 2x PySyncObj; sequential durable p50 <= 1 ms.  wall time {wall:.0f} s")
    return 0


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``smr bench tcp`` and ``smr bench storage``."""
    p = bench_sub.add_parser("tcp", help="real 3-process clusters per backend (and PySyncObj), side by side")
    p.add_argument("--backends", default="raft,multipaxos", help="comma-separated backend names")
    p.add_argument("--clients", type=int, default=16, help="concurrent sessions for the throughput phase")
    p.add_argument("--seconds", type=float, default=5.0, help="length of the throughput phase")
    p.add_argument("--latency-ops", type=int, default=300, help="sequential puts for p50/p99")
    p.add_argument("--value-size", type=int, default=100, help="bytes per put value")
    p.add_argument("--max-ops", type=int, default=200_000, help="cap on operations in the throughput phase")
    p.add_argument("--no-fsync-too", action="store_true", help="also measure with fsync off (like PySyncObj)")
    p.add_argument("--no-pysyncobj", action="store_true", help="skip the PySyncObj baseline")
    p.add_argument("--dir", default=None, help="parent directory for the temporary clusters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_tcp)

    p = bench_sub.add_parser("storage", help="SQLite WAL commits per second per group-commit batch size")
    p.add_argument("--batches", default="1,10,100")
    p.add_argument("--seconds", type=float, default=2.0, help="per batch size")
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--dir", default=None, help="parent directory (default: the system temp dir)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_storage)
