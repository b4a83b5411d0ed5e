"""``smr catchup``: the largest put and a large state reach a follower restarted with no state, under load.

A 3-node loopback cluster starts, and a follower is SIGKILLed before it holds
any of the app's state.  The other two take one put of the largest value the
request limit allows (it must reach the second node in one AppendEntries or
Accept: nothing is dropped as oversized), then grow the state by ``state_mb``
megabytes (the log is compacted as it grows, so the follower can only catch up
through a snapshot sent in chunks), all under a small KV client load.  The
follower is restarted; the command waits until it has applied everything the
leader had, and checks that no node's term (ballot round) moved while it
caught up, that no frame was refused as oversized and that the clients'
history is linearizable.  The tests run it with small numbers; the full size
is a command you run by hand.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio

from smr.checker import Budget, check, make_model
from smr.commands import put
from workloads import make_workload

from ._client import open_tcp_client
from ._config import load_cluster
from ._frames import request_limit
from ._launcher import open_local_tcp_cluster
from ._loadgen import Recorder, run_clients

#: What a put's request carries besides its value (ids, op, key, envelope), generously.
PUT_OVERHEAD = 512
#: The size of each put that grows the state.
FILL_VALUE_BYTES = 1 << 20


async def catchup(directory: Path, backend: str, state_mb: float, value_bytes: int | None, clients: int,
                  seed: int, options: dict[str, Any] | None = None, timeout: float = 300.0) -> dict[str, Any]:
    """Run the catch-up check in ``directory`` and return a report (``verdict``, figures, ``lines``)."""
    options = {"snapshot_every": 16, **(options or {})}
    workload = make_workload("kv", {"keys": 5})
    recorder = Recorder()
    problems: list[str] = []
    lines = [f"catchup: backend {backend}, 3 nodes, state {state_mb:g} MB, {clients} clients, seed {seed}, "
             f"options {options}, directory {directory}"]
    async with open_local_tcp_cluster(directory, nodes=3, backend=backend, backend_options=options) as cluster:
        config = load_cluster(cluster.cluster_file)
        largest = value_bytes or request_limit(config.max_frame_bytes) - PUT_OVERHEAD
        async with open_tcp_client(cluster.cluster_file, prefix="catchup") as client:
            writer = client.client()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: run_clients(client, recorder, workload, clients=clients,
                                                       seconds=timeout, seed=seed, max_ops=10_000_000))
                leader = None
                while leader is None:
                    leader = await client.find_leader(timeout=1.0)
                follower = next(n for n in cluster.node_ids if n != leader)
                cluster.kill(follower)  # before any app state: it restarts with none of it
                started = time.monotonic()
                await writer.submit(put("largest", "L" * largest), timeout=10.0)
                lines.append(f"largest put: {largest:,} bytes acknowledged in {time.monotonic() - started:.2f} s "
                             f"with {follower} down")
                filled, started = 0, time.monotonic()
                while filled < state_mb * 1e6:
                    await writer.submit(put(f"state{filled // FILL_VALUE_BYTES}", "S" * FILL_VALUE_BYTES),
                                        timeout=10.0)
                    filled += FILL_VALUE_BYTES
                lines.append(f"state grown by {filled / 1e6:.1f} MB with {follower} down "
                             f"in {time.monotonic() - started:.1f} s")
                before = await client.statuses(timeout=1.0)
                target = max(s.commit_index for s in before.values() if s is not None)
                epochs = {n: s.epoch for n, s in before.items() if s is not None}
                cluster.start_node(follower)
                started = time.monotonic()
                caught_up, moved = None, []
                while time.monotonic() - started < timeout:
                    await trio.sleep(0.2)
                    now = await client.statuses(timeout=1.0)
                    moved = [f"{n} {epochs[n]}->{s.epoch}" for n, s in now.items()
                             if s is not None and n in epochs and s.epoch != epochs[n]]
                    mine = now.get(follower)
                    if mine is not None and mine.commit_index >= target:
                        caught_up = time.monotonic() - started
                        break
                nursery.cancel_scope.cancel()
            after = await client.statuses(timeout=1.0)
    if caught_up is None:
        problems.append(f"{follower} did not reach index {target} within {timeout:g} s")
    else:
        lines.append(f"{follower} restarted and applied up to index {target} in {caught_up:.1f} s")
    if moved:
        problems.append(f"terms moved while {follower} caught up: {', '.join(moved)}")
    oversized = {n: s.refused.get("oversized", 0) for n, s in after.items() if s is not None}
    if any(oversized.values()):
        problems.append(f"frames refused as oversized: {oversized}")
    history = recorder.history.finish()
    assert workload.model is not None, "the KV workload has a checker model"
    verdict = check(history, make_model(workload.model), Budget(timeout=120.0))
    if verdict.status.value != "linearizable":
        problems.append(f"client history is {verdict.status.value}")
    counts = recorder.counts.to_json()
    lines.append(f"client load meanwhile: ok={counts['ok']} fail={counts['failed']} unknown={counts['unknown']}; "
                 f"{verdict.describe()}")
    lines.extend(f"PROBLEM: {p}" for p in problems)
    return {"backend": backend, "largest_put_bytes": largest, "state_bytes": filled,
            "catch_up_s": caught_up, "epochs_moved": moved, "counts": counts,
            "verdict": "ok" if not problems else "failed", "problems": problems, "lines": lines}
