"""The reusable Paxos pieces: acceptor (persist before send), proposer quorums, learner, wire."""

from __future__ import annotations

import random

from smr import wire
from smr.replica import TICK, ReplicaConfig, Receive, Start
from smr.state_machines import WriteOnceMap
from synod import (Accept, Accepted, Acceptor, AcceptQuorum, Ballot, Learner, MultiAcceptor,
                   MultiPrepareQuorum, Nack, PaxosSynod, Prepare, PrepareQuorum, Promise, Propose,
                   SlotPromise, next_ballot, tiebreak)

B1, B2, B3 = Ballot(1, "n1"), Ballot(1, "n2"), Ballot(2, "n1")


def test_ballots_order_by_round_then_node() -> None:
    assert B1 < B2 < B3
    assert Ballot(1, "n10") > Ballot(1, "n9")
    assert next_ballot("n3", 7) == Ballot(8, "n3")
    assert Ballot.from_json(B3.to_json()) == B3


def test_acceptor_promises_accepts_and_refuses_lower_ballots() -> None:
    acceptor = Acceptor()
    assert acceptor.on_prepare(B2) == Promise(B2, None, None)
    assert acceptor.on_prepare(B1) == Nack(B1, B2)
    assert acceptor.on_accept(B1, "x") == Nack(B1, B2)
    assert acceptor.on_accept(B2, "red") == Accepted(B2, "red")
    assert acceptor.on_prepare(B3) == Promise(B3, B2, "red")
    restored = Acceptor.restore({w.key: w.value for w in acceptor.drain_writes()})
    assert (restored.promised, restored.accepted_ballot, restored.accepted_value) == (B3, B2, "red")
    assert acceptor.drain_writes() == ()


def test_multi_acceptor_shares_one_promise_across_slots() -> None:
    acceptor = MultiAcceptor()
    assert isinstance(acceptor.on_prepare(B1, 0), SlotPromise)
    acceptor.on_accept(B1, 1, "a")
    acceptor.on_accept(B1, 2, "b")
    acceptor.on_accept(B1, 5, "e")
    promise = acceptor.on_prepare(B3, from_slot=2)
    assert isinstance(promise, SlotPromise)
    assert [(v.slot, v.value) for v in promise.accepted] == [(2, "b"), (5, "e")]
    assert acceptor.on_accept(B2, 3, "late") == Nack(B2, B3)
    disk = {}
    for w in acceptor.drain_writes():
        disk[w.key] = w.value
    restored = MultiAcceptor.restore(disk)
    assert restored.promised == B3 and restored.accepted == acceptor.accepted
    acceptor.forget_below(3)
    assert sorted(acceptor.accepted) == [5]


def test_proposer_quorums_pick_the_highest_ballot_value() -> None:
    phase1 = PrepareQuorum(B3, quorum=2)
    assert not phase1.add("n1", Promise(B3, B1, "old"))
    assert not phase1.add("n9", Promise(B2, None, None))  # another ballot does not count
    assert phase1.add("n2", Promise(B3, B2, "newer"))
    assert phase1.value_to_propose("mine") == "newer"
    assert PrepareQuorum(B3, 1, {"n1": Promise(B3)}).value_to_propose("mine") == "mine"
    phase2 = AcceptQuorum(B3, "newer", quorum=2)
    assert not phase2.add("n1", B3) and not phase2.add("n2", B1) and phase2.add("n3", B3)
    multi = MultiPrepareQuorum(B3, quorum=2, from_slot=1)
    a, b = MultiAcceptor(), MultiAcceptor()
    a.on_accept(B1, 1, "a1")
    a.on_accept(B1, 2, "a2")
    b.on_accept(B2, 2, "b2")
    assert not multi.add("a", a.on_prepare(B3, 1))  # type: ignore[arg-type]
    assert multi.add("b", b.on_prepare(B3, 1))  # type: ignore[arg-type]
    assert multi.values_to_propose() == {1: "a1", 2: "b2"}


def test_learner_needs_a_majority_in_one_ballot() -> None:
    learner = Learner(quorum=2)
    assert learner.add("n1", B1, "x") is None
    assert learner.add("n2", B2, "x") is None  # different ballots do not add up
    assert learner.add("n3", B1, "x") == "x"


def test_acceptor_persists_before_it_replies() -> None:
    """A Promise or Accepted never leaves in a Ready whose persist lacks it (persist before send)."""
    core = PaxosSynod(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), WriteOnceMap, {}))
    core.step(Start({}))
    disk: dict = {}
    for event, reply_type in ((Receive("n2", Prepare(B2)), Promise),
                              (Receive("n2", Accept(B2, "red")), Accepted),
                              (Receive("n3", Prepare(B3)), Promise)):
        ready = core.step(event)
        replies = [s.message for s in ready.messages if isinstance(s.message, reply_type)]
        assert replies
        assert ready.persist, f"{reply_type.__name__} sent without persisting it first"
        disk.update({w.key: w.value for w in ready.persist})
        on_disk = Acceptor.restore(disk)
        for reply in replies:
            assert on_disk.promised == reply.ballot
            if isinstance(reply, Accepted):
                assert (on_disk.accepted_ballot, on_disk.accepted_value) == (reply.ballot, reply.value)
    # A proposer persists its round before its Prepare leaves, so a restart never reuses a ballot.
    ready = core.step(Propose("blue"))
    prepares = [s.message for s in ready.messages if isinstance(s.message, Prepare)]
    assert prepares and any(w.key == "proposer/round" and w.value == prepares[0].ballot.round
                            for w in ready.persist)
    assert prepares[0].ballot > B3


def test_paxos_without_backoff_retries_at_once_and_with_backoff_waits() -> None:
    def proposer(backoff: bool) -> PaxosSynod:
        core = PaxosSynod(ReplicaConfig("n1", ("n2", "n3"), random.Random(1), WriteOnceMap,
                                        {"backoff": backoff, "backoff_ticks": 5}))
        core.step(Start({}))
        core.step(Propose("red"))
        return core

    eager = proposer(backoff=False)
    ready = eager.step(Receive("n2", Nack(eager.ballot, Ballot(9, "n2"))))  # type: ignore[arg-type]
    assert [type(s.message) for s in ready.messages][0] is Prepare
    assert eager.ballot == Ballot(10, "n1")
    patient = proposer(backoff=True)
    ready = patient.step(Receive("n2", Nack(patient.ballot, Ballot(9, "n2"))))  # type: ignore[arg-type]
    assert not ready.messages and patient.phase == "backoff" and 1 <= patient.timer <= 5
    while patient.phase == "backoff":
        patient.step(TICK)
    assert patient.ballot == Ballot(10, "n1")


def test_messages_round_trip_the_wire() -> None:
    for msg in (Prepare(B1), Promise(B2, B1, "x"), Promise(B2), Accept(B3, 7), Accepted(B3, True),
                Nack(B1, B3)):
        assert wire.decode(wire.encode(msg)) == msg


def test_tiebreak_is_the_bully_rule_over_candidates() -> None:
    assert tiebreak(["red", "green", "blue"]) == "red"
    assert tiebreak({"n2": 1, "n10": 1}) == "n10"
