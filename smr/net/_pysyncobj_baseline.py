"""A PySyncObj baseline for ``smr bench tcp``: the same put, the same value size, three local processes.

PySyncObj (https://github.com/bakwc/PySyncObj, optional extra ``pysyncobj``)
embeds Raft in the application process: there is no client protocol, a
program calls a ``@replicated`` method on its own node.  So the driver runs
*inside the leader's process* -- PySyncObj's best case, with no client hop --
while ``smr``'s client is a separate process one TCP hop from the leader.

Durability is not the same either: PySyncObj's ``journalFile`` is an mmap'd
file that is never synced per command, so an acknowledged command survives a
process crash but not a power loss.  Compare it with ``smr``'s ``fsync:
false`` figures for like-for-like, and with the default figures for what a
synced log costs.

Run one node by hand with ``python -m smr.net._pysyncobj_baseline node ...``;
:func:`run_pysyncobj_bench` starts three, waits for the leader's figures (the
same load sweep as ``smr``'s, with CPU per process) and stops them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ._bench import percentile
from ._sweep import cpu_snapshot

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 30.0


def _make_kv(self_addr: str, partners: list[str], journal: str | None, batch: bool) -> Any:
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class KV(SyncObj):
        """A replicated dict with one operation, put."""

        def __init__(self) -> None:
            conf = SyncObjConf(journalFile=journal, appendEntriesUseBatch=batch)
            super().__init__(self_addr, partners, conf)
            self._data: dict[str, str] = {}

        @replicated
        def put(self, key: str, value: str) -> None:
            """Set ``key`` to ``value``."""
            self._data[key] = value

    return KV()


def drive_load(kv: Any, load: int, *, seconds: float, value_size: int, max_ops: int,
               pids: dict[str, int]) -> dict[str, Any]:
    """Puts on a ready PySyncObj node with ``load`` in flight for ``seconds`` (a row of smr's load sweep)."""
    value = "v" * value_size
    window = threading.Semaphore(load)
    lock = threading.Lock()
    done = {"ok": 0, "err": 0}
    latencies: list[float] = []
    issued = 0
    cpu_before = cpu_snapshot(pids)
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline and issued < max_ops:
        if not window.acquire(timeout=1.0):
            continue
        sent = time.perf_counter()

        def callback(result: Any, error: Any, sent: float = sent) -> None:
            with lock:
                done["ok" if error == 0 else "err"] += 1
                latencies.append(time.perf_counter() - sent)
            window.release()

        kv.put(f"k{issued % 1000}", value, callback=callback)
        issued += 1
    for _ in range(load):  # wait for the stragglers
        window.acquire(timeout=5.0)
    elapsed = time.perf_counter() - start
    cpu_after = cpu_snapshot(pids)
    ops = max(done["ok"], 1)
    cpu = {name: round((cpu_after[name] - cpu_before[name]) / ops * 1e6, 1) for name in pids}
    return {"load": load, "ok": done["ok"], "errors": done["err"], "elapsed_s": round(elapsed, 3),
            "throughput": done["ok"] / elapsed,
            "p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
            "cpu_us_per_op": cpu, "cpu_us_per_op_total": round(sum(cpu.values()), 1)}


def run_node(args: argparse.Namespace) -> int:
    """One PySyncObj node; the one that becomes leader measures and writes its figures to ``--out``."""
    directory = Path(args.out).parent
    (directory / f"pid-{args.index}").write_text(str(os.getpid()), encoding="utf-8")
    kv = _make_kv(args.self_addr, args.partners, args.journal, not args.no_batch)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        status = kv.getStatus()
        if kv.isReady() and status["leader"] is not None:
            break
        time.sleep(0.01)
    else:
        print("no leader", file=sys.stderr)
        return 1
    if kv._isLeader():
        value = "v" * args.value_size
        for i in range(200):  # warm-up
            kv.put(f"warm{i % 64}", value, sync=True, timeout=5.0)
        pids = {"leader": os.getpid()}
        for i in range(3):
            pid = int((directory / f"pid-{i}").read_text(encoding="utf-8"))
            if pid != os.getpid():
                pids[f"follower{len(pids)}"] = pid
        rows = [drive_load(kv, int(load), seconds=args.seconds, value_size=args.value_size,
                           max_ops=args.max_ops, pids=pids) for load in args.loads.split(",")]
        tmp = Path(args.out + ".tmp")
        tmp.write_text(json.dumps({"rows": rows}), encoding="utf-8")
        os.replace(tmp, args.out)
    end = time.monotonic() + args.linger
    while time.monotonic() < end:  # keep serving the others until the launcher stops us
        time.sleep(0.1)
    return 0


def run_pysyncobj_bench(directory: str | Path, *, loads: str, seconds: float = 3.0, value_size: int = 100,
                        max_ops: int = 500_000, batch: bool = True, timeout: float = 300.0) -> dict[str, Any]:
    """Start three PySyncObj processes on 127.0.0.1, return the leader's sweep of ``loads``, stop them.

    ``batch`` is PySyncObj's ``appendEntriesUseBatch`` (its default, True: new
    commands wait for the next 0.1 s append period; False: sent at once).
    """
    from smr.net import free_ports

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ports = free_ports(3)
    addrs = [f"{LOOPBACK}:{p}" for p in ports]
    out = directory / "pysyncobj-result.json"
    procs = []
    try:
        for i, addr in enumerate(addrs):
            cmd = [sys.executable, "-m", "smr.net._pysyncobj_baseline", "node", addr,
                   *[a for a in addrs if a != addr], "--journal", str(directory / f"journal{i}"),
                   "--out", str(out), "--index", str(i), "--loads", loads, "--seconds", str(seconds),
                   "--value-size", str(value_size),
                   "--max-ops", str(max_ops), "--linger", str(timeout), *([] if batch else ["--no-batch"])]
            log = open(directory / f"pysyncobj{i}.log", "wb")
            procs.append((subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT),
                          log))
        deadline = time.monotonic() + timeout
        while not out.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"PySyncObj gave no figures within {timeout} s (logs in {directory})")
            if all(p.poll() is not None for p, _ in procs):
                raise RuntimeError(f"every PySyncObj node exited (logs in {directory})")
            time.sleep(0.1)
        figures = json.loads(out.read_text(encoding="utf-8"))
        figures["config"] = "appendEntriesUseBatch=" + str(batch)
        return figures
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            log.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m smr.net._pysyncobj_baseline node SELF PARTNER...``: run one node."""
    parser = argparse.ArgumentParser(prog="python -m smr.net._pysyncobj_baseline")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("node", help="run one PySyncObj node (the leader measures)")
    p.add_argument("self_addr")
    p.add_argument("partners", nargs="+")
    p.add_argument("--journal", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--index", type=int, required=True, help="this node's position (its pid file's name)")
    p.add_argument("--loads", default="1,4,16,64,256,1024", help="comma-separated requests in flight")
    p.add_argument("--seconds", type=float, default=3.0, help="per load")
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--max-ops", type=int, default=500_000)
    p.add_argument("--linger", type=float, default=120.0)
    p.add_argument("--no-batch", action="store_true",
                   help="appendEntriesUseBatch=False: replicate each command at once, not every 0.1 s")
    args = parser.parse_args(argv)
    return run_node(args)


if __name__ == "__main__":
    sys.exit(main())
