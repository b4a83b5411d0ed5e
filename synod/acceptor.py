"""Paxos acceptors as small pure classes: single-decree and multi-slot.

An acceptor is the durable memory of Paxos.  It answers two questions and
remembers its answers:

* ``on_prepare(ballot)``: promise never to accept a lower ballot, and report
  the highest-ballot value accepted so far (:class:`Promise`), or refuse
  (:class:`Nack`) if it already promised a higher ballot;
* ``on_accept(ballot, value)``: accept ``value`` unless a higher ballot was
  promised (:class:`Accepted` or :class:`Nack`).

Neither method does I/O.  Every change of durable state is queued as a
:class:`smr.replica.Write`; the caller takes them with :meth:`drain_writes`
and puts them in the **same** ``Ready`` as the reply.  Because the runtime
syncs ``Ready.persist`` before it sends ``Ready.messages``, a promise or an
acceptance is on disk before anybody can count it (persist before you promise).
After a crash, :meth:`restore` rebuilds the acceptor from what survived.

How multi-Paxos uses these classes
----------------------------------
A multi-Paxos replica owns one :class:`MultiAcceptor`.  Its single
``promised`` ballot covers every slot, so a new leader runs phase 1 once:
``on_prepare(ballot, from_slot)`` returns a :class:`SlotPromise` with every
value accepted at or after ``from_slot`` (the leader's first unchosen slot).
The leader feeds those promises to :class:`synod.proposer.MultiPrepareQuorum`,
which picks, per slot, the value of the highest ballot; the leader re-proposes
those and fills the gaps with no-ops.  From then on each command is only
phase 2: ``on_accept(ballot, slot, value)`` per slot, counted by one
:class:`synod.proposer.AcceptQuorum` per slot.  The result classes here carry
any value (multi-Paxos log entries); multi-Paxos wraps them in its own wire
messages.  :meth:`MultiAcceptor.forget_below` drops slots a snapshot covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from smr.replica import Write

from .ballot import Ballot
from .messages import Accepted, Nack, Promise


@attrs.define
class Acceptor:
    """A single-decree acceptor: the promised ballot and the last accepted (ballot, value)."""

    prefix: str = "acceptor/"
    promised: Ballot | None = None
    accepted_ballot: Ballot | None = None
    accepted_value: Any = None
    _writes: list[Write] = attrs.field(factory=list, repr=False)

    @classmethod
    def restore(cls, durable: Mapping[str, Any], prefix: str = "acceptor/") -> "Acceptor":
        """Rebuild the acceptor from the durable state it wrote before a crash."""
        state = durable.get(prefix + "state")
        if state is None:
            return cls(prefix)
        promised = None if state["promised"] is None else Ballot.from_json(state["promised"])
        accepted = state["accepted"]
        if accepted is None:
            return cls(prefix, promised)
        return cls(prefix, promised, Ballot.from_json(accepted[0]), accepted[1])

    def on_prepare(self, ballot: Ballot) -> Promise | Nack:
        """Promise ``ballot`` (reporting any accepted value) unless a higher ballot was promised."""
        if self.promised is not None and ballot < self.promised:
            return Nack(ballot, self.promised)
        if self.promised != ballot:
            self.promised = ballot
            self._queue_write()
        return Promise(ballot, self.accepted_ballot, self.accepted_value)

    def on_accept(self, ballot: Ballot, value: Any) -> Accepted | Nack:
        """Accept ``value`` in ``ballot`` unless a higher ballot was promised."""
        if self.promised is not None and ballot < self.promised:
            return Nack(ballot, self.promised)
        if self.promised != ballot or self.accepted_ballot != ballot or self.accepted_value != value:
            self.promised = ballot
            self.accepted_ballot = ballot
            self.accepted_value = value
            self._queue_write()
        return Accepted(ballot, value)

    def drain_writes(self) -> tuple[Write, ...]:
        """Return (and forget) the durable writes made since the last drain."""
        writes, self._writes = tuple(self._writes), []
        return writes

    def _queue_write(self) -> None:
        accepted = None if self.accepted_ballot is None else [self.accepted_ballot.to_json(),
                                                             self.accepted_value]
        state = {"promised": None if self.promised is None else self.promised.to_json(),
                 "accepted": accepted}
        self._writes = [w for w in self._writes if w.key != self.prefix + "state"]
        self._writes.append(Write(self.prefix + "state", state))


@attrs.frozen
class SlotVote:
    """One slot's accepted (ballot, value), as reported in a :class:`SlotPromise`."""

    slot: int
    ballot: Ballot
    value: Any


@attrs.frozen
class SlotPromise:
    """Multi-slot phase 1b: ``ballot`` promised for every slot; ``accepted`` lists slots >= ``from_slot``."""

    ballot: Ballot
    from_slot: int
    accepted: tuple[SlotVote, ...] = ()


@attrs.frozen
class SlotAccepted:
    """Multi-slot phase 2b: ``value`` accepted in ``slot`` at ``ballot``."""

    ballot: Ballot
    slot: int
    value: Any


def _slot_key(prefix: str, slot: int) -> str:
    return f"{prefix}slot/{slot:012d}"


@attrs.define
class MultiAcceptor:
    """An acceptor for a log of synod instances: one promise shared by all slots."""

    prefix: str = "macceptor/"
    promised: Ballot | None = None
    accepted: dict[int, tuple[Ballot, Any]] = attrs.field(factory=dict)
    #: How many times ``accepted`` changed (a store or a forget): lets an observer tell it did not.
    changes: int = attrs.field(default=0, eq=False, repr=False)
    _writes: list[Write] = attrs.field(factory=list, repr=False)

    @classmethod
    def restore(cls, durable: Mapping[str, Any], prefix: str = "macceptor/") -> "MultiAcceptor":
        """Rebuild the acceptor (promise and every accepted slot) from durable state."""
        acceptor = cls(prefix)
        promised = durable.get(acceptor.promise_key)
        if promised is not None:
            acceptor.promised = Ballot.from_json(promised)
        slot_prefix = prefix + "slot/"
        for key, value in durable.items():
            if key.startswith(slot_prefix) and value is not None:
                acceptor.accepted[int(key[len(slot_prefix):])] = (Ballot.from_json(value[0]), value[1])
        return acceptor

    @property
    def promise_key(self) -> str:
        """The durable key of the promise (shared by every slot)."""
        return self.prefix + "promised"

    def refuses(self, ballot: Ballot) -> bool:
        """True if a higher ballot was promised: phase 1b and 2b answer ``ballot`` with a Nack."""
        return self.promised is not None and ballot < self.promised

    def on_prepare(self, ballot: Ballot, from_slot: int = 0) -> SlotPromise | Nack:
        """Promise ``ballot`` for all slots and report every value accepted at slot >= ``from_slot``."""
        if self.promised is not None and ballot < self.promised:
            return Nack(ballot, self.promised)
        if self.promised != ballot:
            self.promised = ballot
            self._writes.append(Write(self.promise_key, ballot.to_json()))
        votes = tuple(SlotVote(slot, b, v) for slot, (b, v) in sorted(self.accepted.items())
                      if slot >= from_slot)
        return SlotPromise(ballot, from_slot, votes)

    def on_accept(self, ballot: Ballot, slot: int, value: Any) -> SlotAccepted | Nack:
        """Accept ``value`` for ``slot`` in ``ballot`` unless a higher ballot was promised."""
        if self.promised is not None and ballot < self.promised:
            return Nack(ballot, self.promised)
        if self.promised != ballot:
            self.promised = ballot
            self._writes.append(Write(self.promise_key, ballot.to_json()))
        if self.accepted.get(slot) != (ballot, value):
            self._store(ballot, slot, value)
        return SlotAccepted(ballot, slot, value)

    def accept_despite_promise(self, ballot: Ballot, slot: int, value: Any) -> SlotAccepted:
        """UNSAFE, for deliberately broken replicas only: store ``value`` for ``slot`` ignoring the promise.

        This is the one bug Paxos exists to prevent (a chosen value can be
        overwritten); :mod:`multipaxos.mutants` uses it to prove the checkers
        catch it.  The promise is left as it was.
        """
        self._store(ballot, slot, value)
        return SlotAccepted(ballot, slot, value)

    def _store(self, ballot: Ballot, slot: int, value: Any) -> None:
        self.accepted[slot] = (ballot, value)
        self.changes += 1
        self._writes.append(Write(_slot_key(self.prefix, slot), [ballot.to_json(), value]))

    def forget_below(self, slot: int) -> None:
        """Drop (and delete durably) every slot below ``slot``, e.g. once a snapshot covers them."""
        for old in [s for s in self.accepted if s < slot]:
            del self.accepted[old]
            self.changes += 1
            self._writes.append(Write(_slot_key(self.prefix, old), None))

    def drain_writes(self) -> tuple[Write, ...]:
        """Return (and forget) the durable writes made since the last drain."""
        writes, self._writes = tuple(self._writes), []
        return writes
