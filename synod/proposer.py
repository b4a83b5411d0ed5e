"""Paxos proposer bookkeeping as small pure classes: phase-1 and phase-2 quorums.

A proposer runs a ballot in two phases:

1. send ``Prepare(ballot)``; collect promises in a :class:`PrepareQuorum`
   until a majority promised; then propose :meth:`PrepareQuorum.value_to_propose`:
   the value of the highest-ballot acceptance reported, or its own value if
   none was reported (this is what makes a chosen value stick);
2. send ``Accept(ballot, value)``; count acceptances in an
   :class:`AcceptQuorum`; a majority means the value is chosen.

A refusal (``Nack``) or a timeout sends the proposer to a higher ballot:
:func:`next_ballot` picks a round above every round it has seen.

For multi-Paxos, :class:`MultiPrepareQuorum` collects the multi-slot promises
of :class:`synod.acceptor.MultiAcceptor` and returns, per slot, the value a new
leader must re-propose (:meth:`MultiPrepareQuorum.values_to_propose`); the
leader then keeps one :class:`AcceptQuorum` per slot in flight.  All classes
are free of I/O, clocks and randomness.
"""

from __future__ import annotations

from typing import Any

import attrs

from smr.quorum import majority

from .acceptor import SlotPromise
from .ballot import Ballot
from .messages import Promise


def next_ballot(node: str, highest_round_seen: int) -> Ballot:
    """Return ``node``'s ballot in the first round above ``highest_round_seen``."""
    return Ballot(highest_round_seen + 1, node)


@attrs.define
class PrepareQuorum:
    """Phase 1 of one ballot: which acceptors promised, and what they had accepted."""

    ballot: Ballot
    quorum: int
    promises: dict[str, Promise] = attrs.field(factory=dict)

    def add(self, src: str, promise: Promise) -> bool:
        """Count ``src``'s promise for this ballot; return True once a majority promised."""
        if promise.ballot == self.ballot:
            self.promises[src] = promise
        return self.reached

    @property
    def reached(self) -> bool:
        """True once a majority of acceptors promised this ballot."""
        return len(self.promises) >= self.quorum

    def value_to_propose(self, own: Any) -> Any:
        """The highest-ballot value any promiser accepted, else ``own`` (Paxos's one rule)."""
        best: tuple[Ballot, Any] | None = None
        for promise in self.promises.values():
            if promise.accepted_ballot is not None and (best is None or promise.accepted_ballot > best[0]):
                best = (promise.accepted_ballot, promise.accepted_value)
        return own if best is None else best[1]


@attrs.define
class AcceptQuorum:
    """Phase 2 of one ballot (and, in multi-Paxos, one slot): which acceptors accepted."""

    ballot: Ballot
    value: Any
    quorum: int
    acceptors: set[str] = attrs.field(factory=set)

    def add(self, src: str, ballot: Ballot) -> bool:
        """Count ``src``'s acceptance of this ballot; return True once a majority accepted (chosen)."""
        if ballot == self.ballot:
            self.acceptors.add(src)
        return self.chosen

    @property
    def chosen(self) -> bool:
        """True once a majority accepted: the value is chosen for ever."""
        return len(self.acceptors) >= self.quorum


@attrs.define
class MultiPrepareQuorum:
    """Multi-slot phase 1: one ballot promised for every slot from ``from_slot`` on.

    With ``voter_sets`` (a reconfigurable log: one set per configuration the
    slots ahead may use) it is reached once a majority of *every* set
    promised; without them, once ``quorum`` acceptors did.
    """

    ballot: Ballot
    quorum: int
    from_slot: int = 0
    promises: dict[str, SlotPromise] = attrs.field(factory=dict)
    voter_sets: tuple[tuple[str, ...], ...] = ()

    def add(self, src: str, promise: SlotPromise) -> bool:
        """Count ``src``'s promise for this ballot; return True once a majority promised."""
        if promise.ballot == self.ballot and promise.from_slot <= self.from_slot:
            self.promises[src] = promise
        return self.reached

    @property
    def reached(self) -> bool:
        """True once a majority of acceptors (of every voter set, if given) promised this ballot."""
        if self.voter_sets:
            return all(sum(v in self.promises for v in voters) >= majority(len(voters))
                       for voters in self.voter_sets)
        return len(self.promises) >= self.quorum

    def values_to_propose(self) -> dict[int, Any]:
        """Per slot >= from_slot, the value of the highest ballot any promiser accepted there."""
        best: dict[int, tuple[Ballot, Any]] = {}
        for promise in self.promises.values():
            for vote in promise.accepted:
                if vote.slot < self.from_slot:
                    continue
                known = best.get(vote.slot)
                if known is None or vote.ballot > known[0]:
                    best[vote.slot] = (vote.ballot, vote.value)
        return {slot: value for slot, (_, value) in sorted(best.items())}

    def highest_round(self) -> int:
        """The highest round reported in any promise (to pick later ballots above it)."""
        rounds = [vote.ballot.round for p in self.promises.values() for vote in p.accepted]
        return max([self.ballot.round, *rounds])
