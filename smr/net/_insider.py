"""``smr insider``: a peer with the cluster's credential sends hostile, well-typed messages to a live cluster.

A 3-node loopback cluster (:mod:`smr.net._launcher`) serves a KV workload
(clients recording a history, plus a writer of unique keys whose every
acknowledged write is read back at the end) while the insider connects to
each node *as one of its peers* -- a peer connection authenticated with the
cluster's peer key, opened with that peer's real :class:`~smr.net._identity.Identity`
read from its data directory -- and sends ``messages`` hostile messages made
by :class:`smr.hostile.HostileGenerator` (well-typed, out-of-range values; no
plausible lies: see :func:`smr.hostile.lie`).  The receivers' state (epoch,
commit index, leader) comes from their status reports.

Afterwards: no node process may have exited, every acknowledged write must be
read back, and the history must be linearizable (the checker, as
``smr crashloop``).  The figures come from the nodes' own counters.  The
messages are the same for the same seed; the interleaving with the cluster's
traffic is not (real time), so a failure also names the in-process run
(``python -m smr.hostile``) that feeds the same generator to the cores directly.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from smr import wire
from smr.checker import Budget, check, make_model
from smr.commands import get, put
from smr.errors import LocalProtocolError
from smr.machine import SessionExpired
from smr.history import dump_history
from smr.hostile import FRAME_LIMIT, IMPOSSIBLE_FROM, HostileGenerator, View, epoch_floor, sample_traffic
from workloads import make_workload

from ._client import open_tcp_client
from ._config import ClusterConfig
from ._identity import INCARNATION_KEY, MEMBERS_KEY, Identity
from ._launcher import LocalTcpCluster, open_local_tcp_cluster
from ._loadgen import Recorder
from ._storage import DB_NAME
from ._frames import FrameError
from ._transport import FramedConnection

KEYS = 16  # many keys: each partition of the history stays small enough to check (unknown outcomes abound)
#: Hostile messages sent before the sender yields to the cluster's other traffic.
BURST = 64
#: Seconds the cluster gets to recover after the last hostile message, under load, before the checks.
SETTLE_S = 3.0
#: Seconds the final reads (the workload's keys, then every acknowledged unique write) may take in all.
FINAL_S = 60.0
#: A node's commit index may run this far ahead of its last status report (an ack beyond it is impossible).
LAST_SLACK = 1_000_000


#: A node's resident memory above this counts as exhausted: it is reported and the node stopped.
NODE_RSS_LIMIT = 2 << 30
#: The address space each node may use (RLIMIT_AS), so a runaway allocation fails in the node, not the machine.
NODE_AS_LIMIT = 6 << 30


def resident(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes (None if unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cap_memory(pid: int) -> None:
    """Limit process ``pid``'s address space to NODE_AS_LIMIT (where the platform allows)."""
    try:
        import resource

        resource.prlimit(pid, resource.RLIMIT_AS, (NODE_AS_LIMIT, NODE_AS_LIMIT))
    except (ImportError, AttributeError, OSError, ValueError):
        pass


def peer_identity(cluster: LocalTcpCluster, node: str) -> Identity:
    """What ``node`` says first on its peer connections, read from its data directory."""
    db = cluster.data_dir(node) / DB_NAME
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    return Identity(node, meta[INCARNATION_KEY], True, dict(json.loads(meta.get(MEMBERS_KEY, "{}"))))


async def open_peer(config: ClusterConfig, target: str, identity: Identity) -> FramedConnection:
    """A peer connection to ``target`` as ``identity.node``, its Identity already sent.

    Uses whatever the transport offers: the peer key of a cluster whose secret
    derives separate keys (``ClusterConfig.credentials``), else the secret itself.
    """
    from . import _transport

    address = config.address(target)
    credentials = getattr(config, "credentials", None)
    if credentials is not None:
        key = credentials().key("peer")
        tls = None
        node_tls = getattr(_transport, "node_tls", None)
        if getattr(config, "tls", None) is not None and node_tls is not None:
            contexts = node_tls(config, identity.node)
            tls = contexts.dial if contexts is not None else None
        conn, _ = await _transport.connect(address.host, address.port, key, "peer", identity.node,
                                           config.max_frame_bytes, tls=tls)
    else:  # the transport before per-role keys
        connect: Any = _transport.connect
        conn, _ = await connect(address.host, address.port, config.secret_bytes(), "peer", identity.node,
                                config.max_frame_bytes)
    try:
        await conn.send([wire.encode(identity)])
    except BaseException:
        await trio.aclose_forcefully(conn.stream)
        raise
    return conn


class _Insider:
    """The hostile peer: one connection per (receiver, impersonated sender), reopened when a node closes it."""

    def __init__(self, cluster: LocalTcpCluster, generator: HostileGenerator, rng: random.Random) -> None:
        self.cluster = cluster
        self.config = cluster.config
        self.gen = generator
        self.rng = rng
        self.nodes = cluster.node_ids
        self.identities = {n: peer_identity(cluster, n) for n in self.nodes}
        # Until a node's first status report, no acknowledgement counts as beyond its log.
        self.views: dict[str, View] = {n: View(n, self.nodes, last_max=IMPOSSIBLE_FROM - 1) for n in self.nodes}
        self.conns: dict[tuple[str, str], FramedConnection] = {}
        self.sent: Counter[str] = Counter()
        self.how: Counter[str] = Counter()
        self.skipped = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.leader: str | None = None

    async def send(self, index: int) -> None:
        """Make hostile message ``index`` and send it on its (receiver, sender) connection."""
        dst = self.leader if self.leader is not None and self.rng.random() < 0.5 else self.rng.choice(self.nodes)
        hostile = self.gen.next(index, dst, self.views[dst])
        try:
            body = wire.encode(hostile.message)
        except LocalProtocolError:
            self.skipped += 1
            return
        if len(body) + 32 > min(FRAME_LIMIT, self.config.max_frame_bytes):
            self.skipped += 1
            return
        for attempt in range(3):
            conn = await self._conn(dst, hostile.src)
            if conn is None:
                return
            try:
                await conn.send([body])
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                # the node closed the connection (it refused an earlier frame, as it must): reconnect
                await trio.aclose_forcefully(conn.stream)
                self.conns.pop((dst, hostile.src), None)
                self.reconnects += 1
                continue
            self.sent[type(hostile.message).__name__] += 1
            self.how[hostile.how.split()[0]] += 1
            return

    async def _conn(self, dst: str, src: str) -> FramedConnection | None:
        conn = self.conns.get((dst, src))
        if conn is not None:
            return conn
        try:
            with trio.fail_after(2.0):
                conn = await open_peer(self.config, dst, self.identities[src])
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError,
                LocalProtocolError, FrameError) as exc:
            self.connect_failures += 1
            if self.connect_failures > 200:
                raise LocalProtocolError(f"the insider cannot connect to {dst} as {src}: {exc}") from exc
            await trio.sleep(0.05)
            return None
        self.conns[(dst, src)] = conn
        return conn

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in self.conns.values():
            await trio.aclose_forcefully(conn.stream)
        self.conns.clear()


async def insider(directory: Path, backend: str, messages: int, seed: int, *, clients: int = 4,
                  options: dict[str, Any] | None = None, check_seconds: float = 300.0) -> dict[str, Any]:
    """Run the insider against a fresh cluster in ``directory``; return a report (``ok``, figures, ``lines``).

    Args:
        directory: where the cluster lives (a new one; the history is kept there as ``history.jsonl``).
        backend: a replicated-log backend.
        messages: how many hostile messages to send.
        seed: decides the messages (and the clients' commands).
        clients: closed-loop KV clients recording the history (a writer of unique keys runs beside them).
        options: backend options for the cluster file.
        check_seconds: the linearizability checker's budget.
    """
    started = time.monotonic()
    rng = random.Random(f"{seed}/insider")
    samples = sample_traffic(backend, seed)
    generator = HostileGenerator(backend, seed, samples, live=True)
    workload = make_workload("kv", {"keys": KEYS})
    recorder = Recorder()
    acked: list[str] = []
    expired = [0]  # client sessions the cluster said had expired (a hostile log clock can do that)
    peak: dict[str, int] = {}  # highest resident memory seen per node
    exhausted: dict[str, int] = {}  # nodes stopped for exceeding NODE_RSS_LIMIT
    exits: dict[str, str] = {}
    lines = [f"insider: backend {backend}, 3 nodes, {clients} clients, {messages} hostile messages, seed {seed}, "
             f"directory {directory}"]
    async with open_local_tcp_cluster(directory, nodes=3, backend=backend, backend_options=options) as cluster:
        spy = _Insider(cluster, generator, rng)
        async with open_tcp_client(cluster.cluster_file, prefix="insider") as client:
            before = await client.statuses(timeout=2.0)
            stop = trio.Event()

            async def load(i: int) -> None:
                session = client.client()
                generation = 0
                crng = random.Random(f"{seed}/client/{i}")
                while not stop.is_set():
                    try:
                        outcome, _ = await recorder.run(session, f"c{i}.{generation}",
                                                        workload.next_command(crng, i), timeout=0.5, attempts=10)
                    except SessionExpired:  # left open: unknown in the history; the client opens a new session
                        expired[0] += 1
                        outcome = "unknown"
                    if outcome == "unknown":
                        generation += 1

            async def ledger() -> None:
                session = client.client()
                n = 0
                while not stop.is_set():
                    key = f"ack/{n}"
                    n += 1
                    try:
                        outcome, _ = await recorder.run(session, f"ledger.{n}", put(key, n), timeout=0.5,
                                                        attempts=10)
                    except SessionExpired:
                        expired[0] += 1
                        continue
                    if outcome == "ok":
                        acked.append(key)
                    await trio.sleep(0.01)

            for proc in cluster.processes.values():
                cap_memory(proc.pid)

            async def watch() -> None:
                while True:
                    for node in cluster.node_ids:
                        proc = cluster.processes.get(node)
                        rss = resident(proc.pid) if proc is not None else None
                        if rss is not None:
                            peak[node] = max(peak.get(node, 0), rss)
                            if rss > NODE_RSS_LIMIT and node not in exhausted:
                                exhausted[node] = rss
                                cluster.kill(node)  # before it takes the machine down with it
                        if node not in exits and not cluster.alive(node):
                            exits[node] = cluster.log_tail(node, 30)
                    reports = await client.statuses(timeout=0.5)
                    top = -1
                    for node, rep in reports.items():
                        if rep is None:
                            continue
                        spy.views[node] = View(node, cluster.node_ids, rep.epoch, rep.commit_index,
                                               rep.commit_index, rep.leader, rep.role,
                                               last_max=rep.commit_index + LAST_SLACK,
                                               floor=epoch_floor(backend, str(rep.role), rep.epoch))
                        if rep.role in ("leader", "coordinator") and rep.epoch > top:
                            spy.leader, top = node, rep.epoch
                    await trio.sleep(0.2)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                for i in range(clients):
                    nursery.start_soon(load, i)
                nursery.start_soon(ledger)
                await trio.sleep(0.5)
                sending = time.monotonic()
                for i in range(messages):
                    await spy.send(i)
                    if i % BURST == BURST - 1:
                        await trio.sleep(0)
                send_s = time.monotonic() - sending
                await spy.aclose()
                await trio.sleep(SETTLE_S)
                stop.set()
                await trio.sleep(1.5)  # let the last operations finish
                nursery.cancel_scope.cancel()
            reads: dict[str, Any] = {}
            lost: list[str] = []
            unread = list(acked)
            with trio.move_on_after(FINAL_S):  # a cluster that cannot answer is a failure, not a long wait
                session = client.client()
                for i in range(KEYS):
                    outcome, value = await recorder.run(session, "final", get(f"k{i}"), timeout=0.5, attempts=10)
                    if outcome != "ok":
                        break  # not answering: the rest would not be either
                    reads[f"k{i}"] = value
                while unread:
                    outcome, value = await recorder.run(session, "final", get(unread[0]), timeout=0.5, attempts=10)
                    if outcome != "ok":
                        break  # not answering: the rest would not be either
                    key = unread.pop(0)
                    if value is None:
                        lost.append(key)
            after = await client.statuses(timeout=2.0)
        for node in cluster.node_ids:
            if node not in exits and not cluster.alive(node):
                exits[node] = cluster.log_tail(node, 30)
    history = recorder.history.finish()
    with open(directory / "history.jsonl", "w", encoding="utf-8") as f:
        dump_history(history, f)
    assert workload.model is not None, "the KV workload has a checker model"
    verdict = check(history, make_model(workload.model), Budget(timeout=check_seconds))
    problems = workload.check(history)

    def counter(reports: dict[str, Any], field: str, name: str) -> int:
        return sum(getattr(r, field).get(name, 0) for r in reports.values() if r is not None)

    refused = {reason: counter(after, "refused", reason) - counter(before, "refused", reason)
               for reason in sorted({k for r in after.values() if r is not None for k in r.refused})}
    rejected = counter(after, "counters", "remote_errors") - counter(before, "counters", "remote_errors")
    def epoch(reports: dict[str, Any], node: str) -> int | None:
        report = reports.get(node)
        return None if report is None else int(report.epoch)

    epochs = {n: (epoch(before, n), epoch(after, n)) for n in cluster.node_ids}
    counts = recorder.counts.to_json()
    sent = sum(spy.sent.values())
    lines += [
        f"sent {sent} hostile messages in {send_s:.1f} s ({sent / max(send_s, 1e-9):.0f}/s); skipped {spy.skipped} "
        f"(unencodable or over the frame limit); reconnects after a node closed the connection {spy.reconnects}",
        "  by class: " + ", ".join(f"{k} {v}" for k, v in sorted(spy.sent.items())),
        "  made by: " + ", ".join(f"{k} {v}" for k, v in sorted(spy.how.items())) +
        f"; lies refused by the generator {generator.made.get('lie refused', 0)}",
        f"nodes: refused frames {refused}; inputs the cores rejected {rejected}; epochs before -> after "
        + ", ".join(f"{n} {a}->{b}" for n, (a, b) in epochs.items()),
        "peak resident memory: " + ", ".join(f"{n} {b >> 20} MiB" for n, b in sorted(peak.items()))
        + "".join(f"; {n} EXHAUSTED ({b >> 20} MiB > {NODE_RSS_LIMIT >> 20} MiB): stopped" for n, b in exhausted.items()),
        f"node exits: {len(exits)}" + "".join(f"\n  {n} exited; its log ends:\n{tail}" for n, tail in exits.items()),
        f"ops ok={counts['ok']} fail={counts['failed']} unknown={counts['unknown']} (sessions expired under "
        f"the clients: {expired[0]}); final reads {reads}",
        f"acknowledged unique writes {len(acked)}: lost {len(lost)}, not readable at the end {len(unread)}"
        + (f" (lost: {lost[:10]})" if lost else "") + ("" if not unread else
                                                       " -- the cluster did not answer reads after the attack"),
        verdict.describe(),
    ]
    lines.extend(f"INVARIANT: {p}" for p in problems)
    ok = not exits and not exhausted and not lost and not unread and verdict.status.value == "linearizable" and not problems
    lines.append(f"history: {directory / 'history.jsonl'}; {time.monotonic() - started:.1f} s in all")
    if not ok:
        lines.append(f"FAILED. replay: smr insider --backend {backend} --messages {messages} --seed {seed}; the same "
                     f"messages against the cores in process: python -m smr.hostile --backend {backend} "
                     f"--messages {messages} --seed {seed}")
    return {"backend": backend, "seed": seed, "messages": sent, "sent_by_class": dict(spy.sent),
            "refused": refused, "rejected": rejected, "reconnects": spy.reconnects, "exits": sorted(exits), "exhausted": sorted(exhausted),
            "peak_rss_mib": {n: b >> 20 for n, b in peak.items()},
            "counts": counts, "sessions_expired": expired[0], "acknowledged": len(acked), "lost": lost, "unread": unread,
            "verdict": verdict.status.value, "ok": ok, "lines": lines, "seconds": round(time.monotonic() - started, 1)}
