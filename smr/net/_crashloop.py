"""``smr crashloop``: SIGKILL random nodes of a real cluster under load, then judge the history.

A 3-node loopback cluster runs a KV workload while, ``kills`` times, a node
is SIGKILLed (the current leader half of the time, otherwise any node) and
restarted from its data directory a moment later, so at most one node is
down at once.  Afterwards every key is read once more and the whole history
goes to the linearizability checker and the workload's own invariants.  The
history is kept as ``history.jsonl`` in the cluster directory.  Not a CI
test: it is as long as you ask it to be.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import trio

from smr.checker import Budget, check, make_model
from smr.history import dump_history
from workloads import make_workload

from ._client import open_tcp_client
from ._launcher import open_local_tcp_cluster
from ._loadgen import Recorder, final_reads, run_clients

KEYS = 5


async def crashloop(directory: Path, backend: str, kills: int, interval: float, clients: int,
                    seed: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the crash loop in ``directory`` and return a report (``verdict``, counts, ``lines``)."""
    rng = random.Random(seed)
    workload = make_workload("kv", {"keys": KEYS})
    recorder = Recorder()
    lines = [f"crashloop: backend {backend}, 3 nodes, {clients} clients, {kills} kills every ~{interval:g} s, "
             f"seed {seed}, options {options or {}}, directory {directory}"]
    events: list[dict[str, Any]] = []
    async with open_local_tcp_cluster(directory, nodes=3, backend=backend, backend_options=options) as cluster:
        async with open_tcp_client(cluster.cluster_file, prefix="crashloop") as client:
            async with trio.open_nursery() as nursery:
                seconds = (kills + 1) * interval
                nursery.start_soon(lambda: run_clients(client, recorder, workload, clients=clients,
                                                       seconds=seconds, seed=seed, max_ops=int(seconds * 5000)))
                for k in range(1, kills + 1):
                    await trio.sleep(interval * rng.uniform(0.6, 1.0))
                    leader = await client.find_leader(timeout=0.5)
                    victim = leader if leader is not None and rng.random() < 0.5 else rng.choice(cluster.node_ids)
                    cluster.kill(victim)
                    at = recorder.now()
                    lines.append(f"  kill {k}/{kills}: SIGKILL {victim}{' (leader)' if victim == leader else ''} "
                                 f"at {at / 1000:.1f} s; ops ok so far {recorder.counts.ok}")
                    await trio.sleep(interval * rng.uniform(0.2, 0.4))
                    cluster.start_node(victim)
                    events.append({"kill": k, "node": victim, "leader": victim == leader, "at_ms": round(at, 1)})
            reads = await final_reads(client, recorder, [f"k{i}" for i in range(KEYS)])
    history = recorder.history.finish()
    with open(directory / "history.jsonl", "w", encoding="utf-8") as f:
        dump_history(history, f)
    assert workload.model is not None, "the crash loop's KV workload has a checker model"
    verdict = check(history, make_model(workload.model), Budget(timeout=120.0))
    problems = workload.check(history)
    counts = recorder.counts.to_json()
    lines.append(f"ops ok={counts['ok']} fail={counts['failed']} unknown={counts['unknown']}; "
                 f"final reads {reads}")
    lines.append(verdict.describe())
    lines.extend(f"INVARIANT: {p}" for p in problems)
    lines.append(f"history: {directory / 'history.jsonl'}")
    status = verdict.status.value if not problems else "invariant violated"
    return {"backend": backend, "kills": events, "counts": counts, "final_reads": reads, "verdict": status,
            "lines": lines}
