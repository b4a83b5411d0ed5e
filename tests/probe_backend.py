"""A tiny test-only backend whose every message is unique, to watch the simulator's faults.

Each node, on every tick, persists its tick count (so the disk model has writes
to keep or lose) and sends a uniquely numbered ``Probe`` to every peer.  With
the option ``eager: true`` the probes go in ``Ready.eager`` (they may leave
before the tick count is synced) and each tick asks for a ``Synced(life,
ticks)``, which the core records in ``synced``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from smr import wire
from smr.replica import (EMPTY, Backend, ClientRequest, Input, Ready, ReplicaConfig, ReplicaStatus,
                         Receive, Reply, ReplyStatus, Send, Start, Synced, Tick, Write, register_backend)


@wire.message
@attrs.frozen
class Probe:
    """Message number ``n`` of node ``src`` in incarnation ``life``."""

    src: str
    life: int
    n: int


class ProbeCore:
    """Counts ticks durably, sends a unique probe per peer per tick, remembers what it got."""

    backend: ClassVar[str] = "probe"

    def __init__(self, config: ReplicaConfig) -> None:
        self.config = config
        self.volatile_ticks = 0
        self.durable_ticks = 0
        self.life = 0
        self.received: list[Probe] = []
        self.sent = 0
        self.eager = bool(config.options.get("eager", False))
        #: The Synced inputs stepped into this incarnation, as (life, ticks).
        self.synced: list[tuple[int, int]] = []

    def status(self) -> ReplicaStatus:
        """A probe node is never a leader."""
        return ReplicaStatus(self.config.node, "probe", 0, None, 0)

    def step(self, event: Input) -> Ready:
        """Tick: persist and probe; Receive: remember; Start: recover the tick count."""
        if isinstance(event, Start):
            self.durable_ticks = int(event.durable.get("ticks", 0))
            self.life = int(event.durable.get("life", 0)) + 1
            return Ready(persist=(Write("life", self.life),))
        if isinstance(event, Tick):
            self.volatile_ticks += 1
            self.durable_ticks += 1
            sends = []
            for peer in self.config.peers:
                self.sent += 1
                sends.append(Send(peer, Probe(self.config.node, self.life, self.sent)))
            if self.eager:
                return Ready(persist=(Write("ticks", self.durable_ticks),), eager=tuple(sends),
                             after_sync=Synced(self.life, self.durable_ticks))
            return Ready(persist=(Write("ticks", self.durable_ticks),), messages=tuple(sends))
        if isinstance(event, Synced):
            self.synced.append((event.epoch, event.index))
            return EMPTY
        if isinstance(event, Receive):
            self.received.append(event.message)
            return EMPTY
        if isinstance(event, ClientRequest):
            return Ready(replies=(Reply(event.client_id, event.seq, ReplyStatus.FAIL),))
        raise TypeError(event)


register_backend(Backend("probe", ProbeCore, "test-only: unique probes on every tick"))
