"""The shared skeleton of every distributed WriteOnce core (sans-IO, one cell per cluster).

A core is one node of one write-once variable.  It speaks the
:mod:`smr.replica` contract (``step(input) -> Ready``; persist before send) and
adds one local input, :class:`Propose`, the essay's ``tryInitialize(value)``
called on this node.  Clients can do the same through the simulator with
``try_init(key, value)`` and read with ``final_value(key)``; both are answered
with the final value once this node knows it (``finalValue()`` is a future, so
the answer waits), and a request naming another key fails.

Every core exposes ``decided``: ``None`` until this node learned the final
value, then that value.  A decision is announced once, as log entry 1 in
``Ready.committed``, so the simulator's commit check doubles as an agreement
check.  Messages a node sends to itself go through the network like the
essay's ``remoteCall`` to every id in ``App.nodeIds()``; that way nothing is
counted before the write it depends on is durable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from smr.commands import Command, Scalar
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.replica import (ClientRequest, Committed, Ready, ReplicaConfig, ReplicaStatus, Receive, Reply,
                         ReplyStatus, Role, Send, Start, Tick, Write)


@attrs.frozen
class Propose:
    """Local input: this node calls ``try_initialize(value)``."""

    value: Scalar


class WriteOnceCore:
    """Base class: input dispatch, client answers, decisions and the output batch."""

    backend: ClassVar[str] = ""
    #: The class name the essay gives this algorithm.
    essay_name: ClassVar[str] = ""
    #: The local inputs this core takes besides the contract's (see :class:`smr.driver.Driver`).
    local_inputs: ClassVar[tuple[type, ...]] = (Propose,)

    def __init__(self, config: ReplicaConfig) -> None:
        self.config = config
        self.node = config.node
        self.members = config.members
        self.quorum = config.quorum
        self.options: Mapping[str, Any] = config.options
        self.key = str(self.options.get("key", "x"))
        self.rng = config.rng
        self.decided: Scalar = None
        self.proposal: Scalar = None
        self.ticks = 0
        self.waiting: list[ClientRequest] = []
        self._persist: list[Write] = []
        self._messages: list[Send] = []
        self._committed: list[Committed] = []
        self._replies: list[Reply] = []

    # ------------------------------------------------------------ the one way in
    def step(self, event: Any) -> Ready:
        """Consume one input and return the outputs it caused (persist before send)."""
        if isinstance(event, Receive):
            if event.src not in self.members:
                raise RemoteProtocolError(f"{self.node}: message from unknown node {event.src!r}")
            self.on_message(event.src, event.message)
        elif isinstance(event, Tick):
            self.ticks += 1
            self.on_tick()
        elif isinstance(event, ClientRequest):
            self._on_client(event)
        elif isinstance(event, Propose):
            self.propose(event.value)
        elif isinstance(event, Start):
            self.on_start(event.durable)
        else:
            self.on_local(event)
        return self._flush()

    def status(self) -> ReplicaStatus:
        """Role, epoch and leader belief of this node; commit index 1 once decided."""
        return ReplicaStatus(self.node, self.role(), self.epoch(), self.leader(),
                             0 if self.decided is None else 1)

    # ------------------------------------------------------ hooks for subclasses
    def on_start(self, durable: Mapping[str, Any]) -> None:
        """Boot from ``durable`` (empty on first boot)."""

    def on_tick(self) -> None:
        """React to one logical tick."""

    def on_message(self, src: str, msg: Any) -> None:
        """React to ``msg`` from peer ``src``."""
        raise RemoteProtocolError(f"{self.node}: unexpected {type(msg).__name__} from {src}")

    def on_propose(self, value: Scalar) -> None:
        """Start trying to initialize the variable to ``value`` (called once per node incarnation)."""

    def on_local(self, event: Any) -> None:
        """Handle an algorithm-specific local input."""
        raise LocalProtocolError(f"{type(self).__name__} cannot step {event!r}")

    def role(self) -> Role:
        """This node's role for status lines (one of :class:`smr.replica.Role`)."""
        return Role.NODE

    def epoch(self) -> int:
        """The ballot round (or 0 for algorithms without rounds)."""
        return 0

    def leader(self) -> str | None:
        """The node this one believes coordinates, if any."""
        return None

    # ---------------------------------------------------------------- helpers
    def propose(self, value: Scalar) -> None:
        """The essay's ``tryInitialize(value)`` on this node: only the first call on a node matters."""
        if value is None:
            raise LocalProtocolError("a write-once variable cannot be initialized to None")
        if self.proposal is not None:
            return
        self.proposal = value
        if self.decided is None:
            self.on_propose(value)

    def decide(self, value: Scalar) -> None:
        """Record that ``value`` is final; announce it and answer every waiting client."""
        if value is None or value == self.decided:
            return
        self.decided = value
        self._committed.append(Committed(1, Command("try_init", self.key, (value,))))
        for request in self.waiting:
            self._replies.append(Reply(request.client_id, request.seq, ReplyStatus.OK, value))
        self.waiting = []

    def send(self, dst: str, msg: Any) -> None:
        """Queue ``msg`` for ``dst``."""
        self._messages.append(Send(dst, msg))

    def broadcast(self, msg: Any, include_self: bool = True) -> None:
        """Queue ``msg`` for every member (this node too unless ``include_self`` is False)."""
        for member in self.members:
            if include_self or member != self.node:
                self._messages.append(Send(member, msg))

    def persist(self, key: str, value: Any) -> None:
        """Queue a durable write; it is synced before this step's messages leave."""
        self._persist.append(Write(key, value))

    def persist_all(self, writes: tuple[Write, ...]) -> None:
        """Queue several durable writes (e.g. an acceptor's drained writes)."""
        self._persist.extend(writes)

    def _on_client(self, request: ClientRequest) -> None:
        command = request.command
        if command.op == "noop":
            self._replies.append(Reply(request.client_id, request.seq, ReplyStatus.OK, None))
            return
        if command.key != self.key or command.op not in ("try_init", "final_value") or \
                (command.op == "try_init" and (len(command.args) != 1 or command.args[0] is None
                                               or not isinstance(command.args[0], (bool, int, str)))):
            self._replies.append(Reply(request.client_id, request.seq, ReplyStatus.FAIL))
            return
        if command.op == "try_init":
            value = command.args[0]
            assert isinstance(value, (bool, int, str)), "checked above"
            self.propose(value)
        if self.decided is not None:
            self._replies.append(Reply(request.client_id, request.seq, ReplyStatus.OK, self.decided))
        elif not any(w.client_id == request.client_id and w.seq == request.seq for w in self.waiting):
            self.waiting.append(request)

    def _flush(self) -> Ready:
        if not (self._persist or self._messages or self._committed or self._replies):
            return Ready()
        ready = Ready(tuple(self._persist), tuple(self._messages), tuple(self._committed),
                      tuple(self._replies))
        self._persist, self._messages, self._committed, self._replies = [], [], [], []
        return ready
