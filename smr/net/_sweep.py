"""The load sweep behind ``smr bench tcp``: puts at 1..1024 outstanding, CPU per process, the physical floor.

One *load* is a number of closed-loop callers, each with its own session and
one put outstanding, run for a fixed time (and a cap on operations).  For
each load the sweep records throughput, p50/p99 latency and the CPU time
every process of the cluster spent (read from ``/proc/PID/stat`` before and
after), per operation.

The embedded figures come from a cluster of three ``python -m smr.net._sweep
node ...`` processes: each opens its node with :func:`smr.net.open_node`, and
the one that leads runs the sweep through its own sessions (no client hop,
as PySyncObj is measured) and writes the figures to a file.

The floor of a durable commit is measured beside it: a round trip over
loopback TCP between two processes, and one ``fdatasync`` of a small append.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from smr.commands import put
from smr.stats import percentile

#: Loads the sweep runs by default (requests outstanding at once).
LOADS = (1, 4, 16, 64, 256, 1024)
#: How long a caller waits for one attempt: long enough that 1024 requests in flight are not
#: retried while they queue (a retry is one more request), as PySyncObj's callers never retry.
CALL_TIMEOUT_S = 10.0
#: Keys the puts cycle through: the same 1,000 as the PySyncObj baseline's, so every system's state
#: (and so every snapshot) has the same size at every load.
KEYS = 1000
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (Linux ``/proc``); NaN if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(b")") + 2:].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process."""
    return {name: process_cpu_seconds(pid) for name, pid in pids.items()}


def _ms(values: list[float], q: float) -> float:
    found = percentile(values, q)
    return float("nan") if found is None else found * 1000


async def run_load(make_session: Callable[[], Any], load: int, *, seconds: float, value_size: int,
                   max_ops: int, pids: dict[str, int]) -> dict[str, Any]:
    """``load`` callers, one put outstanding each, for ``seconds``: throughput, latency, CPU per process."""
    value = "v" * value_size
    sessions = [make_session() for _ in range(load)]
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "issued": 0}
    cpu_before = cpu_snapshot(pids)
    start = time.perf_counter()
    deadline = start + seconds

    async def caller(n: int) -> None:
        session = sessions[n]
        while counts["issued"] < max_ops and time.perf_counter() < deadline:
            key = f"k{counts['issued'] % KEYS}"
            counts["issued"] += 1
            sent = time.perf_counter()
            try:
                await session.submit(put(key, value), timeout=CALL_TIMEOUT_S, attempts=3)
            except TimeoutError:
                counts["errors"] += 1
                continue
            latencies.append(time.perf_counter() - sent)
            counts["ok"] += 1

    async with trio.open_nursery() as nursery:
        for n in range(load):
            nursery.start_soon(caller, n)
    elapsed = time.perf_counter() - start
    cpu_after = cpu_snapshot(pids)
    ops = max(counts["ok"], 1)
    cpu = {name: round((cpu_after[name] - cpu_before[name]) / ops * 1e6, 1) for name in pids}
    return {"load": load, "ok": counts["ok"], "errors": counts["errors"], "elapsed_s": round(elapsed, 3),
            "throughput": counts["ok"] / elapsed, "p50_ms": _ms(latencies, 0.5), "p99_ms": _ms(latencies, 0.99),
            "cpu_us_per_op": cpu, "cpu_us_per_op_total": round(sum(cpu.values()), 1)}


async def sweep(make_session: Callable[[], Any], loads: Sequence[int], *, seconds: float, value_size: int,
                max_ops: int, pids: dict[str, int], warmup: int = 200) -> list[dict[str, Any]]:
    """Warm up with ``warmup`` puts, then :func:`run_load` at every load in ``loads``, in order."""
    session = make_session()
    for i in range(warmup):
        await session.submit(put(f"warm{i % 64}", "w" * value_size), timeout=2.0, attempts=20)
    return [await run_load(make_session, load, seconds=seconds, value_size=value_size, max_ops=max_ops,
                           pids=pids) for load in loads]


# ------------------------------------------------------------------- floor
def fdatasync_ms(directory: Path, *, count: int = 200, size: int = 160) -> float:
    """Median milliseconds of one small append followed by ``fdatasync`` in ``directory``."""
    path = directory / "floor.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    record = b"x" * size
    times = []
    try:
        for _ in range(count):
            t = time.perf_counter()
            os.write(fd, record)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return _ms(times, 0.5)


_ECHO = ("import socket,sys\n"
         "s=socket.socket();s.bind(('127.0.0.1',0));s.listen(1)\n"
         "print(s.getsockname()[1],flush=True)\n"
         "c,_=s.accept();c.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)\n"
         "while True:\n"
         " d=c.recv(65536)\n"
         " if not d: break\n"
         " c.sendall(d)\n")


def loopback_rtt_ms(*, count: int = 2000, size: int = 200) -> float:
    """Median milliseconds of one round trip of ``size`` bytes to another process over loopback TCP."""
    echo = subprocess.Popen([sys.executable, "-c", _ECHO], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert echo.stdout is not None
        port = int(echo.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            payload = b"p" * size
            times = []
            for _ in range(count):
                t = time.perf_counter()
                s.sendall(payload)
                got = 0
                while got < size:
                    got += len(s.recv(65536))
                times.append(time.perf_counter() - t)
        return _ms(times, 0.5)
    finally:
        echo.kill()
        echo.wait()
        if echo.stdout is not None:
            echo.stdout.close()


# ------------------------------------------------------- embedded node runner
def run_embedded_node(args: argparse.Namespace) -> int:
    """One embedded node; the one that leads runs the sweep through its own sessions and writes ``--out``."""
    from ._node import open_node

    directory = Path(args.dir)
    (directory / f"pid-{args.node}").write_text(str(os.getpid()), encoding="utf-8")

    async def main() -> None:
        async with open_node(args.cluster, args.node, data_dir=directory / args.node) as node:
            leader = await node.wait_for_leader(timeout=30.0)
            settled = time.monotonic() + 0.3
            while time.monotonic() < settled:  # every node connected, the leader's no-op committed
                await trio.sleep(0.05)
            if leader == node.id and node.is_leader:
                epoch = node.server.core.status().epoch
                pids = {"leader": os.getpid()}
                for n in node.server.config.node_ids:
                    if n != node.id:
                        pids[n] = int((directory / f"pid-{n}").read_text(encoding="utf-8"))
                rows = await sweep(node.client, [int(x) for x in args.loads.split(",")], seconds=args.seconds,
                                   value_size=args.value_size, max_ops=args.max_ops, pids=pids)
                reports = await node.cluster.statuses(timeout=2.0)  # drops, refusals: was the run clean?
                rows[-1]["counters"] = {n: None if r is None else {**r.counters, **r.storage}
                                        for n, r in reports.items()}
                rows[-1]["epochs"] = [epoch, node.server.core.status().epoch]  # a new epoch: leadership moved
                out = Path(args.out)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps({"node": node.id, "rows": rows}), encoding="utf-8")
                os.replace(tmp, out)
            await trio.sleep(args.linger)

    trio.run(main)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m smr.net._sweep node --cluster F --node N --dir D --out OUT``: one embedded bench node."""
    parser = argparse.ArgumentParser(prog="python -m smr.net._sweep")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("node", help="run one embedded node; the leader sweeps the loads")
    p.add_argument("--cluster", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--dir", required=True, help="data directories and pid files live here")
    p.add_argument("--out", required=True)
    p.add_argument("--loads", default=",".join(map(str, LOADS)))
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--max-ops", type=int, default=500_000)
    p.add_argument("--linger", type=float, default=600.0)
    return run_embedded_node(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
