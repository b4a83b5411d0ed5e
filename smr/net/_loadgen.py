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
from smr.machine import SessionExpired

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
        except (TimeoutError, SessionExpired):  # expired: an earlier attempt may have run
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


#: Entries a ledger key holds before its writer moves on to the next key (keeps every value small).
LEDGER_ENTRIES_PER_KEY = 500


@attrs.define
class LedgerAudit:
    """What reading a :class:`Ledger` back found."""

    acknowledged: int = 0
    lost: int = 0        # acknowledged entries missing from the final state
    duplicated: int = 0  # entries found more than once (exactly-once broken)
    unknown: int = 0     # appends whose outcome the writer never learnt (may or may not be there)
    examples: list[str] = attrs.field(factory=list)

    def to_json(self) -> dict[str, Any]:
        """The audit as JSON data."""
        return attrs.asdict(self)

    def describe(self) -> str:
        """One line: how many acknowledged appends were checked, and what was wrong."""
        line = (f"ledger: {self.acknowledged} acknowledged appends, {self.lost} lost, {self.duplicated} "
                f"duplicated ({self.unknown} of unknown outcome)")
        return line + (f"; e.g. {', '.join(self.examples)}" if self.examples else "")


class Ledger:
    """Writers that append numbered entries (``"7,"``) to keys of their own; every acknowledged entry must
    then read back exactly once.  Unlike a register, an append cannot hide a lost write behind a later one.

    Its commands go to the KV app's ``append`` and stay out of the recorded history.
    """

    def __init__(self, writers: int) -> None:
        self.writers = writers
        #: Per writer, the numbers of its acknowledged entries, and how many it tried.
        self.acked: dict[int, list[int]] = {w: [] for w in range(writers)}
        self.tried: dict[int, int] = {w: 0 for w in range(writers)}
        self.unknown = 0

    @staticmethod
    def key(writer: int, entry: int) -> str:
        """The key that holds ``writer``'s entry number ``entry``."""
        return f"ledger.{writer}.{(entry - 1) // LEDGER_ENTRIES_PER_KEY}"

    async def run(self, cluster: TcpCluster, *, seconds: float, timeout: float = 0.5, attempts: int = 10) -> None:
        """Append for ``seconds`` with every writer, one append outstanding each."""
        deadline = trio.current_time() + seconds

        async def writer(w: int) -> None:
            session = cluster.client()
            while trio.current_time() < deadline:
                self.tried[w] += 1
                entry = self.tried[w]
                try:
                    await session.submit(Command("append", self.key(w, entry), (f"{entry},",)),
                                         timeout=timeout, attempts=attempts)
                except (TimeoutError, SessionExpired):  # expired: an earlier attempt may have run
                    self.unknown += 1
                    continue
                except CommandRefused:
                    continue  # never applied
                self.acked[w].append(entry)

        async with trio.open_nursery() as nursery:
            for w in range(self.writers):
                nursery.start_soon(writer, w)

    async def audit(self, cluster: TcpCluster, *, timeout: float = 1.0, attempts: int = 30) -> LedgerAudit:
        """Read every ledger key and count the acknowledged entries missing and the entries found twice."""
        session = cluster.client()
        audit = LedgerAudit(acknowledged=sum(map(len, self.acked.values())), unknown=self.unknown)
        for w in range(self.writers):
            found: dict[int, int] = {}
            for k in range((self.tried[w] + LEDGER_ENTRIES_PER_KEY - 1) // LEDGER_ENTRIES_PER_KEY):
                key = self.key(w, k * LEDGER_ENTRIES_PER_KEY + 1)
                value = await session.submit(get(key), timeout=timeout, attempts=attempts)
                for part in str(value or "").split(","):
                    if part:
                        found[int(part)] = found.get(int(part), 0) + 1
            missing = [e for e in self.acked[w] if e not in found]
            twice = sorted(e for e, n in found.items() if n > 1)
            audit.lost += len(missing)
            audit.duplicated += len(twice)
            audit.examples.extend(f"writer {w} entry {e} lost" for e in missing[:3] if len(audit.examples) < 6)
            audit.examples.extend(f"writer {w} entry {e} twice" for e in twice[:3] if len(audit.examples) < 6)
        return audit
