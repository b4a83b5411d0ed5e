"""``smr crashloop``: SIGKILL (or cut the power of) random nodes of a real cluster under load, then judge.

A 3-node loopback cluster runs a KV workload while, ``kills`` times, a node
is SIGKILLed (the current leader half of the time, otherwise any node) and
restarted from its data directory a moment later, so at most one node is
down at once; the load goes on for one interval after the last restart.  Meanwhile ledger writers append numbered entries to keys of
their own.  Afterwards every key is read once more, the whole history goes to
the linearizability checker and the workload's own invariants, and every
acknowledged ledger entry must read back exactly once.  The history is kept as
``history.jsonl`` in the cluster directory.  Not a CI test: it is as long as
you ask it to be.

With ``power_loss`` every node runs over the power-loss shim
(:mod:`smr.net._powerloss`) and each kill is a power cut: the node dies and
every file of it goes back to its last sync.  Every ``ALL_NODES_EVERY``-th cut
takes all three nodes at once -- the real danger, every replica losing its
unsynced tail together -- and restarts them.  fsync stays on (it is what is
under test); ``fsync=False`` exists to show that the check catches its absence.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import trio

from smr.checker import Budget, check, make_model
from smr.errors import LocalProtocolError
from smr.history import dump_history
from workloads import make_workload

from ._client import open_tcp_client
from ._launcher import open_local_tcp_cluster
from ._loadgen import Ledger, LedgerAudit, Recorder, final_reads, run_clients

KEYS = 5
#: Ledger writers running beside the KV clients.
LEDGER_WRITERS = 2
#: In power-loss mode, every this-many-th cut takes every node at once.
ALL_NODES_EVERY = 5
#: A client retries an operation this many times, 0.5 s apart, before recording it unknown: 20 s ride out
#: the outages the kills cause (after a cut of every node, restarting three processes and electing a
#: leader), where 5 s left hundreds of writes of unknown outcome, each a branch for the checker to try.
ATTEMPTS = 40


async def crashloop(directory: Path, backend: str, kills: int, interval: float, clients: int,
                    seed: int, options: dict[str, Any] | None = None, *, power_loss: bool = False,
                    fsync: bool = True) -> dict[str, Any]:
    """Run the crash loop in ``directory`` and return a report (``verdict``; ``lost``: acknowledged ledger
    entries missing or doubled, None if the ledger could not be read; counts; ``lines``)."""
    rng = random.Random(seed)
    workload = make_workload("kv", {"keys": KEYS})
    recorder = Recorder()
    ledger = Ledger(LEDGER_WRITERS)
    what = f"{kills} power cuts (every {ALL_NODES_EVERY}th of all nodes)" if power_loss else f"{kills} kills"
    lines = [f"crashloop: backend {backend}, 3 nodes, {clients} clients + {LEDGER_WRITERS} ledger writers, "
             f"{what} every ~{interval:g} s, seed {seed}, options {options or {}}, fsync {'on' if fsync else 'OFF'}, "
             f"directory {directory}"]
    events: list[dict[str, Any]] = []
    async with open_local_tcp_cluster(directory, nodes=3, backend=backend, backend_options=options, fsync=fsync,
                                      power_loss=power_loss) as cluster:
        if power_loss and fsync and not cluster.config.fsync:
            raise LocalProtocolError(f"{cluster.cluster_file} turns fsync off: a power-loss run tests the sync")
        async with open_tcp_client(cluster.cluster_file, prefix="crashloop") as client:
            async with trio.open_nursery() as nursery:
                # the load runs until one interval after the last restart (then cancelled: an operation
                # cut short is recorded unknown); the bound on operations is for twice the planned time
                seconds = (kills + 1) * interval
                nursery.start_soon(lambda: run_clients(client, recorder, workload, clients=clients,
                                                       seconds=math.inf, seed=seed, max_ops=int(seconds * 10_000),
                                                       attempts=ATTEMPTS))
                nursery.start_soon(lambda: ledger.run(client, seconds=math.inf, attempts=ATTEMPTS))
                for k in range(1, kills + 1):
                    await trio.sleep(interval * rng.uniform(0.6, 1.0))
                    leader = await client.find_leader(timeout=0.5)
                    victim = leader if leader is not None and rng.random() < 0.5 else rng.choice(cluster.node_ids)
                    at = recorder.now()
                    so_far = f"ops ok so far {recorder.counts.ok}"
                    if power_loss and k % ALL_NODES_EVERY == 0:
                        victims = list(cluster.node_ids)
                        reverted = cluster.power_cut(*victims)
                        kind = "power cut of all nodes"
                        lines.append(f"  cut {k}/{kills}: power cut of ALL nodes (leader {leader}) at {at / 1000:.1f} s; "
                                     f"{so_far}; " + "; ".join(f"{n}: {r.describe()}" for n, r in reverted.items()))
                    elif power_loss:
                        victims = [victim]
                        reverted = cluster.power_cut(victim)
                        kind = "power cut"
                        lines.append(f"  cut {k}/{kills}: power cut of {victim}{' (leader)' if victim == leader else ''} "
                                     f"at {at / 1000:.1f} s; {so_far}; {reverted[victim].describe()}")
                    else:
                        victims, reverted, kind = [victim], {}, "SIGKILL"
                        cluster.kill(victim)
                        lines.append(f"  kill {k}/{kills}: SIGKILL {victim}{' (leader)' if victim == leader else ''} "
                                     f"at {at / 1000:.1f} s; {so_far}")
                    await trio.sleep(interval * rng.uniform(0.2, 0.4))
                    for node in victims:
                        cluster.start_node(node)
                    events.append({"kill": k, "kind": kind, "nodes": victims, "leader": leader,
                                   "at_ms": round(at, 1),
                                   "undone": {n: r.undone for n, r in reverted.items()}})
                await trio.sleep(interval)
                nursery.cancel_scope.cancel()
            reads = await final_reads(client, recorder, [f"k{i}" for i in range(KEYS)])
            try:
                audit: LedgerAudit | None = await ledger.audit(client)
            except TimeoutError:
                audit = None  # the cluster does not serve: nothing acknowledged can be shown to be there
    history = recorder.history.finish()
    with open(directory / "history.jsonl", "w", encoding="utf-8") as f:
        dump_history(history, f)
    assert workload.model is not None, "the crash loop's KV workload has a checker model"
    verdict = check(history, make_model(workload.model), Budget(timeout=120.0))
    problems = workload.check(history)
    counts = recorder.counts.to_json()
    cut_short = len(history) - counts["ok"] - counts["failed"] - counts["unknown"]  # open when the load stopped
    counts["unknown"] += cut_short
    lines.append(f"ops ok={counts['ok']} fail={counts['failed']} unknown={counts['unknown']}"
                 f"{f' ({cut_short} cut short when the load stopped)' if cut_short else ''}; final reads {reads}")
    lines.append(audit.describe() if audit is not None else "ledger: UNREADABLE (the cluster did not answer)")
    lines.append(verdict.describe())
    lines.extend(f"INVARIANT: {p}" for p in problems)
    lines.append(f"history: {directory / 'history.jsonl'}")
    status = verdict.status.value if not problems else "invariant violated"
    return {"backend": backend, "power_loss": power_loss, "fsync": fsync, "kills": events, "counts": counts,
            "final_reads": reads, "ledger": audit.to_json() if audit is not None else None,
            "lost": audit.lost + audit.duplicated if audit is not None else None,
            "verdict": status, "lines": lines}
