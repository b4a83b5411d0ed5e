"""The essay's ``DistributedWriteOnce``: one coordinator, chosen by the bully algorithm, holds the variable.

Every node runs :func:`smr.backends.coordinator.bully` on the member list and gets the same
coordinator without sending a message.  ``tryInitialize`` is a remote call to
the coordinator (retried on ticks until answered, like the essay's
``remoteCall``); ``finalValue`` asks the coordinator until it answers.  The
coordinator keeps the first value it hears, makes it durable, and only then
answers (it learns its own decision through the same message as everyone
else, so nothing is announced before it is on disk).

Agreement, validity and termination hold; fault tolerance does not: when the
coordinator is down, nobody can learn anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from smr import wire
from smr.backends.coordinator import bully
from smr.commands import Scalar
from smr.replica import Role

from .core import WriteOnceCore
from .messages import AskDecided, Decided

_VALUE_KEY = "coordinator/value"


@wire.message
@attrs.frozen
class TryInitialize:
    """The remote call ``tryInitialize(value)`` made to the coordinator."""

    value: Scalar


class CoordinatorWriteOnce(WriteOnceCore):
    """One node of ``DistributedWriteOnce``; see the module docstring."""

    backend = "synod-coordinator"
    essay_name = "DistributedWriteOnce"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.coordinator = bully(self.members)
        self.ask_ticks = int(self.options.get("ask_ticks", 3))
        self.value: Scalar = None  # the coordinator's MultithreadedWriteOnce

    @property
    def is_coordinator(self) -> bool:
        """True on the node the bully algorithm picked."""
        return self.node == self.coordinator

    def role(self) -> Role:
        """Return COORDINATOR on the node the bully algorithm picked, REPLICA elsewhere."""
        return Role.COORDINATOR if self.is_coordinator else Role.REPLICA

    def leader(self) -> str | None:
        """The bully-chosen coordinator (fixed for the whole run)."""
        return self.coordinator

    def on_start(self, durable: Mapping[str, Any]) -> None:
        """On the coordinator, recover and re-decide a persisted value."""
        if self.is_coordinator and durable.get(_VALUE_KEY) is not None:
            self.value = durable[_VALUE_KEY]
            self.decide(self.value)

    def on_propose(self, value: Scalar) -> None:
        """The coordinator initializes directly; any other node asks the coordinator."""
        if self.is_coordinator:
            self._initialize(value)
        else:
            self.send(self.coordinator, TryInitialize(value))

    def on_tick(self) -> None:
        """Until decided, retry: the coordinator re-delivers its answer, others ask it every ``ask_ticks`` ticks."""
        if self.decided is None and self.is_coordinator and self.value is not None:
            self.send(self.node, Decided(self.value))  # its own answer was lost: ask again
        elif self.decided is None and not self.is_coordinator and self.ticks % self.ask_ticks == 0:
            if self.proposal is not None:
                self.send(self.coordinator, TryInitialize(self.proposal))
            self.send(self.coordinator, AskDecided())

    def on_message(self, src: str, msg: Any) -> None:
        """The coordinator keeps the first value and answers with it; others decide what it says."""
        if isinstance(msg, TryInitialize) and self.is_coordinator:
            self._initialize(msg.value)
            if src != self.node:
                self.send(src, Decided(self.value))
        elif isinstance(msg, AskDecided) and self.is_coordinator:
            if self.value is not None:
                self.send(src, Decided(self.value))
        elif isinstance(msg, Decided) and src == self.coordinator:
            self.decide(msg.value)
        else:
            super().on_message(src, msg)

    def _initialize(self, value: Scalar) -> None:
        if self.value is None and value is not None:
            self.value = value
            self.persist(_VALUE_KEY, value)
            self.send(self.node, Decided(value))
