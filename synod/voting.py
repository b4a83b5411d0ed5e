"""The essay's voting algorithms: ``MajorityRulesVoting`` and ``TiebreakVoting``.

``tryInitialize(value)`` broadcasts ``Candidate(value)``.  A node votes once,
for the first candidate it hears, and broadcasts ``Vote(value)``; its vote is
durable before it leaves, so a restarted node never votes twice.  Every node
tallies votes by voter and decides a value once it has a strict majority.
As the essay asks, candidates and votes are rebroadcast every
``rebroadcast_ticks`` ticks so nodes that were down or cut off catch up.

* Majority rules: agreement and validity hold; a split vote (no candidate
  with a majority once everyone voted) never terminates.
* Tie-break: additionally, once the votes of ALL nodes are in without a
  majority, every node applies the bully rule to the tallied candidates.  It
  terminates without faults, but one node crashing before it votes blocks it
  for ever: it is not fault tolerant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from smr import wire
from smr.commands import Scalar
from smr.errors import RemoteProtocolError
from smr.replica import Role

from .ballot import node_key
from .core import WriteOnceCore

_VOTE_KEY = "voting/vote"
_CANDIDATE_KEY = "voting/candidate"


@wire.message
@attrs.frozen
class Candidate:
    """``onCandidate(value)``: somebody proposed ``value``."""

    value: Scalar


@wire.message
@attrs.frozen
class Vote:
    """``onVote(value)``: the sender voted for ``value`` (once and for ever)."""

    value: Scalar


def tiebreak(candidates: Iterable[Scalar]) -> Scalar:
    """The essay's bully rule over candidate values: every node picks the same, the largest."""
    return max(candidates, key=lambda v: (type(v).__name__, node_key(v) if isinstance(v, str) else v))


class MajorityRulesVoting(WriteOnceCore):
    """One node of the essay's ``MajorityRulesVoting``; see the module docstring."""

    backend = "synod-majority"
    essay_name = "MajorityRulesVoting"
    uses_tiebreak = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.rebroadcast_ticks = int(self.options.get("rebroadcast_ticks", 5))
        self.my_vote: Scalar = None
        self.tally: dict[str, Scalar] = {}

    def role(self) -> Role:
        """Return VOTER until this node has cast its one vote, then VOTED."""
        return Role.VOTER if self.my_vote is None else Role.VOTED

    def on_start(self, durable: Mapping[str, Any]) -> None:
        """Recover the persisted vote and candidate, and announce them again."""
        self.my_vote = durable.get(_VOTE_KEY)
        self.proposal = durable.get(_CANDIDATE_KEY)
        self._rebroadcast()

    def on_propose(self, value: Scalar) -> None:
        """Persist ``value`` as this node's candidate and broadcast it."""
        self.persist(_CANDIDATE_KEY, value)
        self.broadcast(Candidate(value))

    def on_tick(self) -> None:
        """Every ``rebroadcast_ticks`` ticks, repeat the candidate and vote (messages may be lost)."""
        if self.ticks % self.rebroadcast_ticks == 0:
            self._rebroadcast()

    def on_message(self, src: str, msg: Any) -> None:
        """Vote once, for the first candidate heard (persisted before the vote leaves); tally votes."""
        if isinstance(msg, Candidate):
            if self.my_vote is None and msg.value is not None:
                self.my_vote = msg.value
                self.persist(_VOTE_KEY, msg.value)
                self.broadcast(Vote(msg.value))
        elif isinstance(msg, Vote):
            known = self.tally.get(src)
            if known is not None and known != msg.value:
                raise RemoteProtocolError(f"{self.node}: {src} voted {known!r} and then {msg.value!r}")
            self.tally[src] = msg.value
            self._count()
        else:
            super().on_message(src, msg)

    def _rebroadcast(self) -> None:
        if self.proposal is not None:
            self.broadcast(Candidate(self.proposal))
        if self.my_vote is not None:
            self.broadcast(Vote(self.my_vote))

    def _count(self) -> None:
        if self.decided is not None:
            return
        counts = Counter(self.tally.values())
        for value, votes in counts.items():
            if votes > len(self.members) // 2:
                self.decide(value)
                return
        if self.uses_tiebreak and len(self.tally) == len(self.members):
            self.decide(tiebreak(counts))


class TiebreakVoting(MajorityRulesVoting):
    """One node of the essay's ``TiebreakVoting``: majority, else the bully rule once all votes are in."""

    backend = "synod-tiebreak"
    essay_name = "TiebreakVoting"
    uses_tiebreak = True
