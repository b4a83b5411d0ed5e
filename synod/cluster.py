"""An in-process, virtual-time cluster of WriteOnce cores with a blocking ``WriteOnce`` handle per node.

The shared simulator (:mod:`smr.sim`) runs whole scenarios to completion; an
application written against the essay's ``WriteOnce`` interface instead wants
to call ``try_initialize`` and ``final_value`` on one node at a time.
:class:`CoreCluster` drives the same sans-IO cores with one seeded event
queue (uniform link latency, logical ticks, crash and restart) and keeps the
contract: a batch's writes are durable before its messages leave.
:meth:`CoreCluster.handle` returns a :class:`ClusterWriteOnce` for one node,
whose ``final_value`` advances virtual time until that node has decided.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from smr.commands import Scalar
from smr.driver import Driver, apply_writes
from smr.errors import LocalProtocolError
from smr.replica import TICK, ReplicaConfig, Receive, Start, get_backend
from smr.state_machines import WriteOnceMap

from .core import Propose, WriteOnceCore
from .essay import ALGORITHMS

_DELIVER, _TICK = 0, 1


class CoreCluster:
    """``nodes`` cores of one WriteOnce algorithm on a simulated network, driven on demand."""

    def __init__(self, algorithm: str = "paxos", nodes: int = 5, seed: int = 0, *,
                 options: dict[str, Any] | None = None, latency_ms: tuple[float, float] = (0.5, 1.5),
                 tick_ms: float = 10.0) -> None:
        self.backend = get_backend(ALGORITHMS[algorithm][0] if algorithm in ALGORITHMS else algorithm)
        self.options = {**self.backend.options, **(options or {})}
        self.seed = seed
        self.node_ids = tuple(f"n{i}" for i in range(1, nodes + 1))
        self.latency_ms = latency_ms
        self.tick_ms = tick_ms
        self.now = 0.0
        self.rng = random.Random(f"{seed}/cluster")
        #: The running nodes' drivers (each wraps one WriteOnce core).
        self.drivers: dict[str, Driver[WriteOnceCore]] = {}
        self.durable: dict[str, dict[str, Any]] = {n: {} for n in self.node_ids}
        self.incarnation: dict[str, int] = {n: 0 for n in self.node_ids}
        self._queue: list[tuple[Any, ...]] = []
        self._seq = 0
        for node in self.node_ids:
            self._boot(node)

    def handle(self, node: str) -> "ClusterWriteOnce":
        """The essay's ``WriteOnce`` as seen from ``node``."""
        return ClusterWriteOnce(self, node)

    @property
    def cores(self) -> dict[str, WriteOnceCore]:
        """The running nodes' cores, by node id."""
        return {node: driver.core for node, driver in self.drivers.items()}

    def alive(self, node: str) -> bool:
        """True if ``node`` is running."""
        return node in self.drivers

    def decided(self, node: str) -> Scalar:
        """What ``node`` has decided (None if undecided or down)."""
        driver = self.drivers.get(node)
        return None if driver is None else driver.core.decided

    def propose(self, node: str, value: Scalar) -> None:
        """Feed ``try_initialize(value)`` to ``node`` (ignored if it is down)."""
        self._step(node, Propose(value))

    def crash(self, node: str) -> None:
        """Stop ``node``: volatile state is gone, durable state stays."""
        self.drivers.pop(node, None)

    def restart(self, node: str) -> None:
        """Restart a crashed ``node`` from its durable state."""
        if node not in self.drivers:
            self._boot(node)

    def run_until(self, done: Callable[[], bool], timeout_ms: float) -> bool:
        """Advance virtual time until ``done()`` or ``timeout_ms`` passed; return ``done()``."""
        deadline = self.now + timeout_ms
        while not done():
            if not self._queue or self._queue[0][0] > deadline:
                self.now = max(self.now, deadline)
                return done()
            time, _, kind, a, b, c = heapq.heappop(self._queue)
            self.now = time
            if kind == _DELIVER:
                self._step(b, Receive(a, c))
            elif a in self.drivers and self.incarnation[a] == b:
                self._step(a, TICK)
                self._push(self.now + self.tick_ms, _TICK, a, b)
        return True

    def _push(self, time: float, kind: int, a: Any, b: Any, c: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, a, b, c))

    def _boot(self, node: str) -> None:
        self.incarnation[node] += 1
        peers = tuple(n for n in self.node_ids if n != node)
        rng = random.Random(f"{self.seed}/{node}/{self.incarnation[node]}")
        core = self.backend.factory(ReplicaConfig(node, peers, rng, WriteOnceMap, self.options))
        if not isinstance(core, WriteOnceCore):
            raise LocalProtocolError(f"{self.backend.name} is not a WriteOnce algorithm")
        self.drivers[node] = Driver(core, node)
        self._step(node, Start(dict(self.durable[node])))
        self._push(self.now + self.tick_ms * self.rng.random(), _TICK, node, self.incarnation[node])

    def _step(self, node: str, event: Any) -> None:
        driver = self.drivers.get(node)
        if driver is None:
            return
        ready = driver.step(event)  # a rejected input (counted by the driver) gives the empty batch
        while True:
            apply_writes(self.durable[node], ready.persist)  # synced before anything below leaves
            low, high = self.latency_ms
            for send in ready.all_messages:  # eager ones too: the writes are synced at once
                self._push(self.now + self.rng.uniform(low, high), _DELIVER, node, send.dst, send.message)
            if ready.after_sync is None:
                return
            ready = driver.synced(ready)


class ClusterWriteOnce:
    """One node's view of a :class:`CoreCluster`: the essay's ``WriteOnce`` interface."""

    def __init__(self, cluster: CoreCluster, node: str) -> None:
        self.cluster = cluster
        self.node = node

    def try_initialize(self, value: Scalar) -> None:
        """Propose ``value`` on this node (the essay's ``tryInitialize``); returns at once."""
        self.cluster.propose(self.node, value)

    def final_value(self, timeout: float | None = None) -> Scalar:
        """Advance virtual time (at most ``timeout`` ms; None: 60 s) until this node decided; return it."""
        limit = 60_000.0 if timeout is None else timeout
        if not self.cluster.run_until(lambda: self.cluster.decided(self.node) is not None, limit):
            raise TimeoutError(f"{self.node} has not learned the value after {limit:g} virtual ms")
        return self.cluster.decided(self.node)
