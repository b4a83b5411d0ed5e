"""The Paxos synod algorithm (single-decree Paxos) as a WriteOnce core.

Every node is proposer, acceptor and learner:

* **Proposer.**  ``tryInitialize(value)`` starts a ballot (round, node) above
  every round seen, persisted before its ``Prepare`` leaves.  With promises
  from a majority it sends ``Accept(ballot, v)`` where ``v`` is the value of
  the highest-ballot acceptance the promises reported, else its own value.  A
  ``Nack`` or ``retry_ticks`` ticks without a decision abandon the ballot; it
  retries after a random back-off of 1..``backoff_ticks`` ticks drawn from the
  node's own ``config.rng`` (``backoff=False`` retries at once, which lets two
  proposers duel for ever: the FLP window).
* **Acceptor.**  :class:`synod.acceptor.Acceptor`; its promise and acceptance
  are in ``Ready.persist`` of the very batch that carries the reply.
* **Learner.**  Acceptors send ``Accepted`` to every node; a value accepted by
  a majority in one ballot is chosen (:class:`synod.learner.Learner`).  A node
  that has not learned yet asks its peers every ``ask_ticks`` ticks.

The local input :class:`Campaign` runs phase 1 with no value yet, so a later
proposal needs only phase 2 (a pre-established leader, as in multi-Paxos);
option ``campaign_on_start`` names a node that does so at boot.

Agreement and validity hold under any loss, duplication, reordering, crash and
restart; it terminates once a majority can talk and proposers stop colliding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from smr.commands import Scalar
from smr.replica import Role

from .acceptor import Acceptor
from .ballot import Ballot
from .core import Propose, WriteOnceCore
from .learner import Learner
from .messages import Accept, Accepted, AskDecided, Decided, Nack, Prepare, Promise
from .proposer import PrepareQuorum, next_ballot

_ROUND_KEY = "proposer/round"


@attrs.frozen
class Campaign:
    """Local input: run phase 1 now, before any value is proposed (become a leader)."""


class Phase:
    """The proposer's phases."""

    IDLE = "idle"            # nothing to propose
    PREPARING = "preparing"  # phase 1 in flight
    PREPARED = "prepared"    # phase 1 done, waiting for a value (a leader)
    ACCEPTING = "accepting"  # phase 2 in flight
    BACKOFF = "backoff"      # ballot abandoned, waiting to retry
    DONE = "done"            # the value is known


class PaxosSynod(WriteOnceCore):
    """One node of the Paxos synod algorithm; see the module docstring."""

    backend = "synod-paxos"
    essay_name = "Paxos"
    local_inputs = (Propose, Campaign)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.retry_ticks = int(self.options.get("retry_ticks", 6))
        self.backoff = bool(self.options.get("backoff", True))
        self.backoff_ticks = int(self.options.get("backoff_ticks", 6))
        self.ask_ticks = int(self.options.get("ask_ticks", 3))
        self.acceptor = Acceptor()
        self.learner = Learner(self.quorum)
        self.round_seen = 0
        self.phase = Phase.IDLE
        self.ballot: Ballot | None = None
        self.prepare_quorum: PrepareQuorum | None = None
        self.accept_value: Scalar = None
        self.timer = 0
        self.ballots_started = 0

    def role(self) -> Role:
        """Return PROPOSER during a ballot, LEADER once phase 1 succeeded, else ACCEPTOR."""
        return Role.PROPOSER if self.phase in (Phase.PREPARING, Phase.ACCEPTING, Phase.BACKOFF) else (
            Role.LEADER if self.phase == Phase.PREPARED else Role.ACCEPTOR)

    def epoch(self) -> int:
        """The highest ballot round this node has seen."""
        return self.round_seen

    # ------------------------------------------------------------------ inputs
    def on_start(self, durable: Mapping[str, Any]) -> None:
        """Restore the acceptor's promise and accepted value and the highest round seen."""
        self.acceptor = Acceptor.restore(durable)
        rounds = [int(durable.get(_ROUND_KEY, 0))]
        if self.acceptor.promised is not None:
            rounds.append(self.acceptor.promised.round)
        self.round_seen = max(rounds)
        if self.options.get("campaign_on_start") == self.node:
            self._start_ballot()

    def on_local(self, event: Any) -> None:
        """A ``Campaign`` starts a ballot when this node is idle or backing off."""
        if isinstance(event, Campaign):
            if self.phase in (Phase.IDLE, Phase.BACKOFF):
                self._start_ballot()
        else:
            super().on_local(event)

    def on_propose(self, value: Scalar) -> None:
        """Propose ``value`` (or the value phase 1 forces) if prepared, else start a ballot."""
        if self.phase == Phase.PREPARED:
            assert self.prepare_quorum is not None
            self._accept(self.prepare_quorum.value_to_propose(value))
        elif self.phase == Phase.IDLE:
            self._start_ballot()

    def on_tick(self) -> None:
        """Until decided: ask peers for the decision now and then, and time out or retry ballots."""
        if self.decided is not None:
            return
        if self.ticks % self.ask_ticks == 0:
            self.broadcast(AskDecided(), include_self=False)
        if self.phase in (Phase.PREPARING, Phase.ACCEPTING, Phase.BACKOFF):
            self.timer -= 1
            if self.timer <= 0:
                if self.phase == Phase.BACKOFF:
                    self._start_ballot()
                else:
                    self._abandon()

    def on_message(self, src: str, msg: Any) -> None:
        """Acceptor, proposer and learner roles: each reply leaves only after its state is persisted."""
        if isinstance(msg, Prepare):
            self._see(msg.ballot)
            reply = self.acceptor.on_prepare(msg.ballot)
            self.persist_all(self.acceptor.drain_writes())
            self.send(src, reply)
        elif isinstance(msg, Accept):
            self._see(msg.ballot)
            answer = self.acceptor.on_accept(msg.ballot, msg.value)
            self.persist_all(self.acceptor.drain_writes())
            if isinstance(answer, Accepted):
                self.broadcast(answer)
            else:
                self.send(src, answer)
        elif isinstance(msg, Promise):
            self._on_promise(src, msg)
        elif isinstance(msg, Accepted):
            self._see(msg.ballot)
            chosen = self.learner.add(src, msg.ballot, msg.value)
            if chosen is not None:
                self.decide(chosen)
        elif isinstance(msg, Nack):
            self._see(msg.promised)
            if msg.ballot == self.ballot and self.phase in (Phase.PREPARING, Phase.ACCEPTING):
                self._abandon()
        elif isinstance(msg, AskDecided):
            if self.decided is not None:
                self.send(src, Decided(self.decided))
        elif isinstance(msg, Decided):
            self.decide(msg.value)
        else:
            super().on_message(src, msg)

    def decide(self, value: Scalar) -> None:
        """Learn the chosen value; the proposer stops."""
        super().decide(value)
        if self.decided is not None:
            self.phase = Phase.DONE

    # ---------------------------------------------------------------- proposer
    def _see(self, ballot: Ballot) -> None:
        if ballot.round > self.round_seen:
            self.round_seen = ballot.round

    def _start_ballot(self) -> None:
        self.ballot = next_ballot(self.node, self.round_seen)
        self.round_seen = self.ballot.round
        self.ballots_started += 1
        self.persist(_ROUND_KEY, self.ballot.round)  # never reuse a ballot after a restart
        self.prepare_quorum = PrepareQuorum(self.ballot, self.quorum)
        self.phase = Phase.PREPARING
        self.timer = self.retry_ticks
        self.broadcast(Prepare(self.ballot))

    def _on_promise(self, src: str, msg: Promise) -> None:
        self._see(msg.ballot)
        if self.phase != Phase.PREPARING or msg.ballot != self.ballot:
            return
        assert self.prepare_quorum is not None
        if self.prepare_quorum.add(src, msg):
            if self.proposal is None:
                self.phase = Phase.PREPARED
            else:
                self._accept(self.prepare_quorum.value_to_propose(self.proposal))

    def _accept(self, value: Scalar) -> None:
        assert self.ballot is not None
        self.phase = Phase.ACCEPTING
        self.accept_value = value
        self.timer = self.retry_ticks
        self.broadcast(Accept(self.ballot, value))

    def _abandon(self) -> None:
        if self.proposal is None:
            self.phase = Phase.IDLE
        elif self.backoff:
            self.phase = Phase.BACKOFF
            self.timer = self.rng.randint(1, self.backoff_ticks)
        else:
            self._start_ballot()
