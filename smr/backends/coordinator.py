"""The essay's single coordinator (``DistributedWriteOnce``), generalised to a log.

Every replica runs the bully algorithm on the member list and gets the same
coordinator, the largest node id, without sending a message.  The coordinator
orders every command into its log, persists it, applies it and answers; every
other replica forwards client requests to the coordinator and relays the
answer.  Without faults it is correct and simple.  When the coordinator
crashes nobody takes over: requests stall until it comes back (the essay's
point: it is not fault tolerant), but no client is ever answered wrongly,
because the coordinator only answers after the entry is durable.

It is the baseline of every comparison.  :func:`bully`, the election rule,
lives here; the essay's write-once coordinator (:mod:`synod.coordinator`)
uses it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import attrs

from ..replica import (EMPTY, Backend, ClientRequest, Committed, Input, NodeId, Ready, ReplicaConfig,
                       ReplicaStatus, Receive, Reply, Role, Send, Start, Tick, Write)
from ..errors import RemoteProtocolError
from ..sessions import Applier, SessionLimits, reply_to
from .. import wire


def bully(nodes: Iterable[NodeId]) -> NodeId:
    """The essay's bully algorithm: every node picks the same coordinator, the largest id."""
    return max(nodes, key=_node_order)


def _node_order(node: NodeId) -> tuple[int, str]:
    digits = "".join(ch for ch in node if ch.isdigit())
    return (int(digits) if digits else -1, node)


@wire.message
@attrs.frozen
class Forward:
    """A replica hands a client request to the coordinator."""

    request: ClientRequest


@wire.message
@attrs.frozen
class ForwardReply:
    """The coordinator's answer to a forwarded request, for the replica to relay."""

    reply: Reply


def _log_key(index: int) -> str:
    return f"log/{index:012d}"


class CoordinatorCore:
    """One replica of the single-coordinator log; see the module docstring."""

    backend: ClassVar[str] = "coordinator"

    def __init__(self, config: ReplicaConfig) -> None:
        self.config = config
        self.node = config.node
        self.coordinator = bully(config.members)
        self.applier = Applier(config.state_machine, SessionLimits.from_options(config.options))
        self.log_length = 0
        self.started = False

    @property
    def is_coordinator(self) -> bool:
        """True if this replica is the one the bully algorithm picked."""
        return self.node == self.coordinator

    def status(self) -> ReplicaStatus:
        """Role is COORDINATOR on the bully-chosen node, REPLICA elsewhere; the coordinator never changes."""
        role = Role.COORDINATOR if self.is_coordinator else Role.REPLICA
        return ReplicaStatus(self.node, role, 0, self.coordinator, self.log_length)

    def step(self, event: Input) -> Ready:
        """Consume one input; see :mod:`smr.replica` for the contract."""
        if isinstance(event, Tick):
            return EMPTY
        if isinstance(event, Receive):
            return self._on_message(event.src, event.message)
        if isinstance(event, ClientRequest):
            if self.is_coordinator:
                return self._order(event)
            return Ready(messages=(Send(self.coordinator, Forward(event)),))
        if isinstance(event, Start):
            return self._start(event)
        raise TypeError(f"CoordinatorCore cannot step {event!r}")

    def _start(self, event: Start) -> Ready:
        committed = []
        for key in sorted(k for k in event.durable if k.startswith("log/")):
            index = int(key[4:])
            if index != self.log_length + 1:
                break  # a torn tail cannot happen here (writes are ordered); stop at a gap
            entry = event.durable[key]
            self.applier.apply(entry)
            self.log_length = index
            committed.append(Committed(index, entry))
        self.started = True
        return Ready(committed=tuple(committed))

    def _on_message(self, src: str, msg: object) -> Ready:
        if isinstance(msg, Forward) and self.is_coordinator:
            ready = self._order(msg.request)
            return Ready(persist=ready.persist, committed=ready.committed,
                         messages=tuple(Send(src, ForwardReply(r)) for r in ready.replies))
        if isinstance(msg, ForwardReply) and src == self.coordinator:
            return Ready(replies=(msg.reply,))
        raise RemoteProtocolError(f"{self.node}: unexpected {type(msg).__name__} from {src}")

    def _order(self, request: ClientRequest) -> Ready:
        done, status, result = self.applier.lookup(request)
        if done:
            return Ready(replies=(reply_to(request, status, result),))
        self.log_length += 1
        status, result = self.applier.apply(request)
        return Ready(persist=(Write(_log_key(self.log_length), request),),
                     committed=(Committed(self.log_length, request),),
                     replies=(reply_to(request, status, result),))


#: The ``coordinator`` backend (named in :data:`smr.registry.BUILTIN_BACKENDS`).
BACKEND = Backend(
    name="coordinator",
    factory=CoordinatorCore,
    description="the essay's single coordinator chosen by the bully algorithm (not fault tolerant)",
)
