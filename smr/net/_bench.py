"""``smr bench storage`` and ``smr bench tcp``: what a sync costs, and what a real cluster sustains.

``storage`` measures one node's :class:`~smr.net._storage.Storage`: commits
and writes per second at several group-commit batch sizes, beside a bare
``write`` + ``fdatasync`` loop on the same disk (the floor any design pays).

``tcp`` starts local 3-node clusters of real processes per backend, as
embedded nodes (the caller inside the leader's process, :mod:`smr.net._sweep`)
and client-server (``smr serve`` processes and a client process), durable and
without sync, and sweeps the load (1 to 1024 puts outstanding) on each:
ops/s, p50/p99 and CPU per operation per process.  The same sweep runs on a
3-node PySyncObj cluster (``smr.net._pysyncobj_baseline``, batching on and
off; its best at each load is the baseline) when that package is installed.
Beside them: the physical floor of a durable commit (a loopback round trip
and one ``fdatasync``).  Every loop is bounded in operations and in time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from smr.arguments import backend_name, json_object, listed, one_of, positive_float, positive_int
from smr.bench import cores_cpu_per_op
from smr.commands import put
from smr.replica import ClientRequest, Write
from smr.stats import percentile as _percentile

from ._client import open_tcp_client
from ._launcher import open_local_tcp_cluster, write_cluster_file
from ._storage import Storage
from ._sweep import LOADS, fdatasync_ms, loopback_rtt_ms, sweep


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
MODES = ("embedded", "client-server")
EMBEDDED_TIMEOUT_S = 60.0


def _wait_for_file(path: Path, procs: list[subprocess.Popen[bytes]], timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} gave no figures within {timeout:.0f} s (logs in {path.parent})")
        if all(p.poll() is not None for p in procs):
            raise RuntimeError(f"every process of {what} exited (logs in {path.parent})")
        time.sleep(0.05)
    found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return found


def embedded_sweep(directory: Path, backend: str, *, fsync: bool, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Three embedded-node processes of ``backend``; the leader sweeps the loads through its own sessions."""
    directory.mkdir(parents=True)
    cluster_file = directory / "cluster.yaml"
    config = write_cluster_file(cluster_file, nodes=3, backend=backend, fsync=fsync,
                                backend_options=args.backend_options)
    out = directory / "figures.json"
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for node in config.node_ids:
            log = open(directory / f"{node}.log", "wb")
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "smr.net._sweep", "node", "--cluster", str(cluster_file), "--node", node,
                 "--dir", str(directory), "--out", str(out), "--loads", args.loads, "--seconds", str(args.seconds),
                 "--value-size", str(args.value_size), "--max-ops", str(args.max_ops)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        timeout = EMBEDDED_TIMEOUT_S + len(args.loads.split(",")) * (args.seconds + 5)
        rows: list[dict[str, Any]] = _wait_for_file(out, procs, timeout, f"embedded {backend}")["rows"]
        return rows
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for log in logs:
            log.close()


async def client_server_sweep(directory: Path, backend: str, *, fsync: bool,
                              args: argparse.Namespace) -> list[dict[str, Any]]:
    """Three ``smr serve`` processes of ``backend``; this process is the client, sweeping the loads."""
    async with open_local_tcp_cluster(directory, nodes=3, backend=backend, fsync=fsync,
                                      backend_options=args.backend_options) as cluster:
        leader = await cluster.wait_for_leader()
        pids = {"leader": cluster.processes[leader].pid}
        pids.update((n, p.pid) for n, p in cluster.processes.items() if n != leader)
        pids["client"] = os.getpid()
        async with open_tcp_client(cluster.cluster_file, prefix="bench") as tcp:
            return await sweep(tcp.client, [int(x) for x in args.loads.split(",")], seconds=args.seconds,
                               value_size=args.value_size, max_ops=args.max_ops, pids=pids)


def _pysyncobj(directory: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        print("(pysyncobj is not installed: pip install 'smr-compare[pysyncobj]' to compare)", file=sys.stderr)
        return []
    from ._pysyncobj_baseline import run_pysyncobj_bench

    systems = []
    for batch in (True, False):  # its default, and its low-latency setting
        figures = run_pysyncobj_bench(directory / f"batch-{batch}", loads=args.loads, seconds=args.seconds,
                                      value_size=args.value_size, max_ops=args.max_ops, batch=batch)
        systems.append({"system": "pysyncobj", "mode": "embedded", "storage": "no sync",
                        "config": f"appendEntriesUseBatch={batch}", "rows": figures["rows"]})
    return systems


def _best_baseline(baselines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """PySyncObj's best row at each load (highest throughput over its settings), labelled with its setting."""
    best: dict[int, dict[str, Any]] = {}
    for system in baselines:
        for row in system["rows"]:
            if row["load"] not in best or row["throughput"] > best[row["load"]]["throughput"]:
                best[row["load"]] = {**row, "config": system["config"]}
    return best


#: Puts per cores-alone measurement (per backend and load).
CORE_OPS = 10_240


def acceptance(systems: list[dict[str, Any]], best: dict[int, dict[str, Any]],
               floor: dict[str, float]) -> list[tuple[str, bool]]:
    """Issue 16's acceptance lines, judged on this run's figures."""
    checks: list[tuple[str, bool]] = []

    def ratios(system: dict[str, Any], min_load: int) -> list[float]:
        return [r["throughput"] / best[r["load"]]["throughput"] for r in system["rows"]
                if r["load"] >= min_load and r["load"] in best]

    for s in systems:
        if s["system"] == "pysyncobj":
            continue
        label = f"{s['system']} {s['mode']} {s['storage']}"
        if s["mode"] == "embedded" and s["storage"] == "no sync":
            found = ratios(s, 16)
            checks.append((f"{label}: >= 2x best PySyncObj at loads >= 16 (min {min(found, default=0):.2f}x)",
                           bool(found) and min(found) >= 2.0))
        elif s["mode"] == "embedded":
            found = ratios(s, 16)
            checks.append((f"{label}: >= 1x best PySyncObj at loads >= 16 (min {min(found, default=0):.2f}x)",
                           bool(found) and min(found) >= 1.0))
            one = next((r for r in s["rows"] if r["load"] == 1), None)
            if one is not None:
                limit = 1.5 * (floor["loopback_rtt_ms"] + floor["fdatasync_ms"])
                checks.append((f"{label}: sequential p50 {one['p50_ms']:.2f} ms <= 1.5 x (RTT + fdatasync) "
                               f"= {limit:.2f} ms", one["p50_ms"] <= limit))
        elif s["storage"] == "no sync":
            found = ratios(s, 64)
            checks.append((f"{label}: >= 1x best PySyncObj at loads >= 64 (min {min(found, default=0):.2f}x)",
                           bool(found) and min(found) >= 1.0))
    return checks


def cmd_bench_tcp(args: argparse.Namespace) -> int:
    """Sweep the load for each backend, mode and storage (and PySyncObj); print figures and ratios."""
    backends = [b for b in args.backends.split(",") if b]
    loads = [int(x) for x in args.loads.split(",") if x]
    modes = [m for m in args.modes.split(",") if m]
    storages = [True, False] if args.storage == "both" else [args.storage == "fsync"]
    systems: list[dict[str, Any]] = []
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="smr-bench-tcp-", dir=args.dir) as tmp:
        floor: dict[str, Any] = {"loopback_rtt_ms": loopback_rtt_ms(), "fdatasync_ms": fdatasync_ms(Path(tmp))}
        # The protocol's own CPU per put, batch = load: what no runtime around the cores can go below.
        floor["cores_us_per_op"] = {b: {str(load): round(cores_cpu_per_op(b, batch=load, ops=CORE_OPS), 1)
                                        for load in loads} for b in backends}
        for fsync in storages:
            for mode in modes:
                for backend in backends:
                    directory = Path(tmp) / f"{backend}-{mode}-{'sync' if fsync else 'nosync'}"
                    if mode == "embedded":
                        rows = embedded_sweep(directory, backend, fsync=fsync, args=args)
                    else:
                        rows = trio.run(lambda: client_server_sweep(  # noqa: B023 (called at once)
                            directory, backend, fsync=fsync, args=args))
                    systems.append({"system": backend, "mode": mode, "storage": "fsync" if fsync else "no sync",
                                    "rows": rows})
        baselines = [] if args.no_pysyncobj else _pysyncobj(Path(tmp) / "pysyncobj", args)
    best = _best_baseline(baselines)
    for system in systems:
        for row in system["rows"]:
            if row["load"] in best:
                row["vs_best_pysyncobj"] = round(row["throughput"] / best[row["load"]]["throughput"], 3)
    systems.extend(baselines)
    checks = acceptance(systems, best, floor) if best else []
    wall = time.perf_counter() - started
    settings = {"nodes": 3, "loads": args.loads, "seconds_per_load": args.seconds, "value_size": args.value_size,
                "operation": "put", "cpus": os.cpu_count(), "wall_s": round(wall, 1),
                "load_average_before": load_before, "load_average_after": os.getloadavg()[0]}
    if args.json:
        json.dump({"settings": settings, "floor": floor, "systems": systems,
                   "best_pysyncobj": {str(k): v for k, v in best.items()},
                   "acceptance": [{"check": c, "holds": ok} for c, ok in checks]},
                  sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print(f"3 nodes on 127.0.0.1, {os.cpu_count()} CPUs (load average {load_before:.1f} before, "
          f"{settings['load_average_after']:.1f} after); put of a {args.value_size}-byte value; "
          f"{args.seconds:g} s per load; loopback round trip {floor['loopback_rtt_ms']:.3f} ms, "
          f"fdatasync {floor['fdatasync_ms']:.3f} ms (medians)")
    print(f"{'system':31s} {'load':>5s} {'ops/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'CPU us/op':>9s} "
          f"{'(per process)':28s} {'x best PySyncObj':>16s}")
    for s in systems:
        label = f"{s['system']} {s['mode']} {s['storage']}"
        if "config" in s:
            label = f"pysyncobj {s['config'].replace('appendEntriesUseBatch=', 'batch=')}"
        for r in s["rows"]:
            per = "/".join(f"{v:.0f}" for v in r["cpu_us_per_op"].values())
            ratio = f"{r['vs_best_pysyncobj']:.2f}" if "vs_best_pysyncobj" in r else ""
            print(f"{label:31s} {r['load']:5d} {r['throughput']:8,.0f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
                  f"{r['cpu_us_per_op_total']:9.0f} {per:28s} {ratio:>16s}")
    if baselines:
        print("PySyncObj runs its caller inside the leader's process and never syncs its journal; its best "
              "setting is taken at each load. CPU per process: leader first, then followers (and the client).")
    _print_budget(floor, best, loads)
    for check, holds in checks:
        print(f"{'PASS' if holds else 'FAIL'}  {check}")
    print(f"wall time {wall:.0f} s")
    return 0


def _print_budget(floor: dict[str, Any], best: dict[int, dict[str, Any]], loads: list[int]) -> None:
    """Print the cores' own CPU per put beside the CPU per put that 2x PySyncObj's best would allow."""
    cpus = os.cpu_count() or 1
    print("CPU us per put of the three cores alone (no network, storage or scheduler; batch = load):")
    for backend, per_load in floor["cores_us_per_op"].items():
        print(f"  {backend:31s} " + "  ".join(f"{load}: {per_load[str(load)]:.0f}" for load in loads))
    if best:
        budget = {load: cpus * 1e6 / (2 * best[load]["throughput"]) for load in loads if load in best}
        print(f"  {'all of 2x best PySyncObj allows':31s} "
              + "  ".join(f"{load}: {us:.0f}" for load, us in budget.items()) + f"  ({cpus} CPUs)")


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``smr bench tcp`` and ``smr bench storage``."""
    p = bench_sub.add_parser("tcp", help="real 3-process clusters, embedded and client-server, swept over load, "
                                         "beside PySyncObj",
                             description="Start real 3-process clusters on 127.0.0.1 for each backend, mode "
                                         "and storage setting, sweep the number of puts outstanding at once, "
                                         "and print throughput and latency per load beside PySyncObj's, the "
                                         "cores' own CPU per put, and PASS/FAIL for the acceptance checks.")
    p.add_argument("--backends", type=listed(backend_name), default="raft,multipaxos",
                   help="comma-separated backend names")
    p.add_argument("--modes", type=listed(one_of(MODES)), default="embedded,client-server",
                   help="embedded (the caller in the leader's process), client-server (a client process)")
    p.add_argument("--storage", choices=["both", "fsync", "no-sync"], default="both")
    p.add_argument("--loads", type=listed(positive_int), default=",".join(map(str, LOADS)),
                   help="requests outstanding at once, per step")
    p.add_argument("--seconds", type=positive_float, default=3.0, help="length of each load step")
    p.add_argument("--value-size", type=positive_int, default=100, help="bytes per put value")
    p.add_argument("--max-ops", type=positive_int, default=500_000, help="cap on operations per load step")
    p.add_argument("--backend-options", type=json_object, default=None, metavar="JSON",
                   help="backend options for every cluster, e.g. '{\"max_batch\": 256}'")
    p.add_argument("--no-pysyncobj", action="store_true", help="skip the PySyncObj baseline")
    p.add_argument("--dir", default=None, help="parent directory for the temporary clusters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_tcp)

    p = bench_sub.add_parser("storage", help="SQLite WAL commits per second per group-commit batch size",
                             description="Time the durable storage (SQLite in WAL mode, one sync per batch) "
                                         "for each group-commit batch size and print commits and writes per "
                                         "second and ms per commit, beside the bare fdatasync rate of this "
                                         "disk and a run without syncing.")
    p.add_argument("--batches", type=listed(positive_int), default="1,10,100",
                   help="comma-separated batch sizes (writes per commit)")
    p.add_argument("--seconds", type=positive_float, default=2.0, help="per batch size")
    p.add_argument("--value-size", type=positive_int, default=100, help="bytes per written value")
    p.add_argument("--dir", default=None, help="parent directory (default: the system temp dir)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_storage)
