"""Clients that run a workload against a TCP cluster and record the history the checker judges.

Each client keeps one operation outstanding.  An operation that gets no
answer is recorded ``unknown`` (it may take effect later, or never), and the
client then continues under a new process name, as a crashed Jepsen process
would, so the history stays well-formed.  Every loop is bounded by a
deadline and an operation count.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Any

import attrs
import trio

from smr.commands import Command, get
from smr.history import HistoryRecorder

from ._client import CommandRefused, TcpCluster


@attrs.define
class LoadCounts:
    """What the clients of one run saw."""

    ok: int = 0
    failed: int = 0
    unknown: int = 0
    acknowledged_writes: int = 0

    def to_json(self) -> dict[str, int]:
        """The counts as JSON data."""
        return attrs.asdict(self)


class Recorder:
    """A HistoryRecorder on a wall clock in milliseconds since ``start``."""

    def __init__(self) -> None:
        self.history = HistoryRecorder()
        self.start = time.monotonic()
        self.counts = LoadCounts()

    def now(self) -> float:
        """Milliseconds since this recorder was made."""
        return (time.monotonic() - self.start) * 1000.0

    async def run(self, session: Any, process: str, command: Command, *, timeout: float,
                  attempts: int) -> tuple[str, Any]:
        """Submit ``command`` through ``session`` and record it; return (outcome, result)."""
        op = self.history.invoke(process, command, self.now())
        try:
            result = await session.submit(command, timeout=timeout, attempts=attempts)
        except TimeoutError:
            self.history.unknown(op)
            self.counts.unknown += 1
            return "unknown", None
        except CommandRefused:
            self.history.fail(op, self.now())
            self.counts.failed += 1
            return "fail", None
        self.history.ok(op, self.now(), result)
        self.counts.ok += 1
        if command.op != "get":
            self.counts.acknowledged_writes += 1
        return "ok", result


async def run_clients(cluster: TcpCluster, recorder: Recorder, workload: Any, *, clients: int,
                      seconds: float, seed: int = 1, max_ops: int = 100_000, timeout: float = 0.5,
                      attempts: int = 10) -> None:
    """Run ``clients`` closed-loop clients of ``workload`` for ``seconds`` (at most ``max_ops`` operations)."""
    deadline = trio.current_time() + seconds
    issued = 0

    async def client(i: int) -> None:
        nonlocal issued
        rng = random.Random(f"{seed}/{i}")
        session = cluster.client()
        generation = 0
        while trio.current_time() < deadline and issued < max_ops:
            issued += 1
            outcome, _ = await recorder.run(session, f"c{i}.{generation}", workload.next_command(rng, i),
                                            timeout=timeout, attempts=attempts)
            if outcome == "unknown":
                generation += 1

    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(client, i)


async def final_reads(cluster: TcpCluster, recorder: Recorder, keys: Iterable[str], *,
                      timeout: float = 1.0, attempts: int = 30) -> dict[str, Any]:
    """Read every key once more (recorded in the history) and return what was read."""
    session = cluster.client()
    found: dict[str, Any] = {}
    for key in keys:
        outcome, result = await recorder.run(session, "final", get(key), timeout=timeout, attempts=attempts)
        if outcome == "ok":
            found[key] = result
    return found
