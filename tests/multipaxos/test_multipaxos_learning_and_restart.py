"""Multi-Paxos: learning from a commit point, applying, a replaced voter's hand-off, and restarts.

* A follower learns the slots a heartbeat's commit point covers and, still behind, asks the leader once
  per heartbeat interval: for the slots after its applied prefix, or for the rest of a snapshot it was
  receiving in chunks while that snapshot is still ahead of it.
* Applying a slot ends the leader's bookkeeping for it: a change applied holds back no later slot, and a
  client is answered once even when its request was chosen twice.  The configuration in effect switches
  exactly alpha slots after a change, and a change that leaves the configuration as it was switches nothing.
* A voter demoted or removed keeps campaigning (to hand its slots over) until ``held`` covers its last
  slot; a removed learner retires only once ``held`` covers the last slot naming it.
* A restart restores what it knew (the nodes it may hear from, its highest accepted slot) and, under
  leases, promises nobody for a while.

Every test drives real :class:`multipaxos.MultiPaxosCore` replicas through :class:`smr.testing.Network`
(invariants after every step) or steps one core with hand-made messages.  Deterministic.

Reference: Lamport, "Paxos Made Simple" (2001), section 3; Lamport, Malkhi & Zhou, "Reconfiguring a State
Machine" (SIGACT News 41(1), 2010), section 4.
"""

from __future__ import annotations

import random
from typing import Any

from smr.commands import put
from smr.driver import apply_writes
from smr.hostile import view_of
from smr.membership import membership_command
from smr.replica import TICK, ClientRequest, Receive, ReplicaConfig, ReplicaStatus, ReplyStatus, Role, Start
from smr.state_machines import KVStore
from smr.testing import Network

from multipaxos import SNAPSHOT_KEY, Accept, Heartbeat, MultiPaxosCore, MultiPaxosInvariants, Prepare, Promise
from multipaxos._core import KNOWN_KEY
from multipaxos.messages import Catchup, CatchupRequest, Nack, SlotValue, SnapshotChunk, SnapshotRequest
from synod.ballot import Ballot

B1 = Ballot(1, "n1")


class Unsnapshottable(KVStore):
    """A key-value store whose state can never be snapshotted (the core then keeps its whole log)."""

    def snapshot(self) -> bytes:
        raise RuntimeError("this state cannot be carried")


def _net(size: int = 3, state_machine: Any = KVStore, **options: Any) -> Network:
    """A multi-Paxos network of ``size`` nodes with the given options (nobody elected)."""
    return Network(MultiPaxosCore, size, options, 0, state_machine, invariants=MultiPaxosInvariants())


def _restarted(node: str, durable: dict[str, Any], peers: tuple[str, ...] = ("n1", "n2", "n3"),
               **options: object) -> MultiPaxosCore:
    """A replica of ``peers`` (and ``node``) started from the durable map ``durable``, stepped by hand."""
    others = tuple(n for n in peers if n != node)
    core = MultiPaxosCore(ReplicaConfig(node, others, random.Random(0), KVStore, dict(options)))
    core.step(Start(dict(durable)))
    return core


def _req(seq: int, key: str = "k") -> ClientRequest:
    return ClientRequest("c1", seq, put(key, f"v{seq}"))


def _sent(ready: Any) -> list[tuple[str, Any]]:
    """What a step sent, as (destination, message)."""
    return [(s.dst, s.message) for s in (*ready.eager, *ready.messages)]


#: The membership change in slot 1 of the tests below: learner n4 joins.
ADD_N4 = ClientRequest("admin", 1, membership_command("add_learner", "n4", ""))


def _learner_added(alpha: int) -> Network:
    """n1 leads and has applied the change that adds learner n4 (slot 1), with window ``alpha``."""
    net = _net(alpha=alpha)
    net.elect("n1")
    net.join("n4")
    net.request("n1", ADD_N4.command, "admin", 1)
    net.settle()
    return net


def _recovering(value: ClientRequest, cut_off: str | None = None) -> tuple[Network, MultiPaxosCore]:
    """alpha 1: n3's short leadership left ADD_N4 in slot 1 and ``value`` in slot 2 at n2 alone; n2 has
    won an election since (``cut_off`` isolated first), holding ``value`` until slot 1 is applied."""
    net = _net(alpha=1)
    net.step("n2", Receive("n3", Accept(Ballot(1, "n3"), 1, (ADD_N4, value), 0)))
    net.in_flight.clear()
    if cut_off is not None:
        net.isolate(cut_off)
    net.campaign("n2")
    n2 = net.cores["n2"]
    while n2.role != Role.LEADER:
        net.deliver(0)
    return net, n2


# ------------------------------------------------------------ learning from a commit point
def test_a_follower_behind_a_commit_point_resumes_its_snapshot_transfer_or_asks_for_the_next_slots() -> None:
    """A follower whose heartbeat shows slots it cannot learn asks the leader: while it holds part of a
    snapshot ahead of its applied prefix, for the rest of that snapshot from the offset it holds; once
    that snapshot's slot is applied by other means, for the slots after its applied prefix instead; and
    never twice within a heartbeat interval.

    Reference: Paxos Made Simple, section 3 (a learner asks for the values it missed)
    """
    n3 = _restarted("n3", {})
    interval = n3.opts.heartbeat_ticks
    ready = n3.step(Receive("n1", Heartbeat(B1, 3, 0, 0)))
    assert _sent(ready) == [("n1", CatchupRequest(B1, 1))]
    part = "x" * 40
    ready = n3.step(Receive("n1", SnapshotChunk(B1, 2, 0, part, False)))
    assert _sent(ready) == [("n1", SnapshotRequest(B1, 2, 40))]  # (lost)
    assert _sent(n3.step(Receive("n1", Heartbeat(B1, 3, 0, 0)))) == []  # within the interval: no new request
    for _ in range(interval):
        n3.step(TICK)
    ready = n3.step(Receive("n1", Heartbeat(B1, 3, 0, 0)))
    assert _sent(ready) == [("n1", SnapshotRequest(B1, 2, 40))]  # resume at the offset held
    # slots 1 and 2 arrive as values (the leader's log tail): the snapshot of slot 2 is no longer ahead
    n3.step(Receive("n1", Catchup(B1, (SlotValue(1, _req(1)), SlotValue(2, _req(2))))))
    assert n3.applied == 2 and n3.status().commit_index == 2
    ready = n3.step(Receive("n1", Heartbeat(B1, 3, 0, 0)))
    assert _sent(ready) == [("n1", CatchupRequest(B1, 3))]


# ------------------------------------------------------------ status
def test_a_candidate_reports_its_own_ballot_round_even_after_seeing_a_higher_one() -> None:
    """``status().epoch`` of a candidate is its own ballot's round: a late Nack of its earlier campaign
    carrying a higher promised round raises the highest round it has seen, not the epoch it reports
    while still campaigning; a follower that follows nobody reports that highest round."""
    net = _net(election_ticks_min=10, election_ticks_max=10, backoff_ticks_max=0)
    net.isolate("n3")
    net.campaign("n3")
    n3 = net.cores["n3"]
    first = n3.ballot
    assert first is not None
    net.tick("n3", 10)
    assert n3.role == Role.CANDIDATE and n3.ballot == Ballot(first.round + 1, "n3")
    round_ = n3.ballot.round
    net.step("n3", Receive("n1", Nack(first, Ballot(round_ + 5, "n2"))))
    assert not net.remote_errors and n3.max_round == round_ + 5
    assert n3.status() == ReplicaStatus("n3", Role.CANDIDATE, round_, None, 0)
    net.step("n3", Receive("n2", Nack(n3.ballot, Ballot(round_ + 5, "n2"))))  # its own campaign refused
    assert n3.status() == ReplicaStatus("n3", Role.FOLLOWER, round_ + 5, None, 0)


# ------------------------------------------------------------ applying
def test_an_applied_change_holds_back_no_later_slot() -> None:
    """Once a leader has applied a change (and the alpha slots after it), the configuration of every later
    slot is certain: it proposes a full pipeline of new commands at once, not only the alpha slots past
    its applied prefix.

    Reference: Lamport, Malkhi & Zhou, section 4 (slot i's configuration is the one after slot i - alpha)
    """
    net = _learner_added(alpha=2)
    leader = net.cores["n1"]
    assert leader.applied == 2 and leader.next_slot == 3  # the change, and the no-op filling its window
    net.drop_if = lambda s, d, m: isinstance(m, Accept)  # nothing more is chosen
    for seq in range(1, 6):
        net.step("n1", _req(seq))
    accepts = [m for _, d, m in net.in_flight if d == "n2" and isinstance(m, Accept)]
    assert [a.first_slot for a in accepts] == [3, 4, 5, 6]  # max_inflight batches
    assert leader.next_slot == 7


def test_a_retry_of_a_recovered_request_waits_for_it_instead_of_taking_a_second_slot() -> None:
    """alpha 1: a new leader recovers a change in slot 1 and a client's put in slot 2, which waits until
    slot 1 is applied; the client's retry, arriving meanwhile, waits for the recovered put (no slot of
    its own), and the client gets exactly one reply once slot 2 is applied.  A retry with another
    command under that (client, seq) is refused once the recovered one is applied.

    Reference: Paxos Made Simple, section 3; Raft thesis 6.3 (sessions: each command once)
    """
    wanted = ClientRequest("c1", 1, put("k", "v"))
    net, n2 = _recovering(wanted)
    assert n2.applied == 0 and set(n2.deferred) == {2}  # slot 2's configuration is not certain yet
    net.request("n2", wanted.command, "c1", 1)  # the client retries at the new leader
    net.request("n2", put("k", "other"), "c1", 1)  # and a confused one reuses the seq
    assert not n2.queue and set(n2.deferred) == {2}
    net.settle()
    assert n2.applied == 2 and (n2.log[2].client_id, n2.log[2].seq) == ("c1", 1)
    assert n2.applier.machine.data["k"] == "v"
    replies = [(r.status, r.result if r.status == ReplyStatus.OK else r.result["error"])
               for r in net.replies_to("c1", 1)]
    assert sorted(replies, key=str) == sorted([(ReplyStatus.OK, None), (ReplyStatus.ERROR, "SequenceReused")], key=str)


def test_a_retry_waiting_for_a_recovered_value_a_late_promise_displaces_is_ordered_anew() -> None:
    """alpha 1: the new leader n2 recovers c1's put in slot 2 and c1's retry waits for it; then n3's late
    promise reports c2's put accepted there in a higher ballot, which takes the slot (phase 1's rule).
    c1's put is queued anew and ordered after it, and both clients get one reply each.

    Reference: Paxos Made Simple, section 2.2 (the highest ballot's value); Raft thesis 6.3 (sessions)
    """
    mine, theirs = ClientRequest("c1", 1, put("k", "v")), ClientRequest("c2", 1, put("k", "w"))
    net, n2 = _recovering(mine, cut_off="n3")
    assert n2.ballot is not None and n2.deferred[2] == mine
    net.request("n2", mine.command, "c1", 1)  # the retry waits for the recovered put
    assert not n2.queue and ("c1", 1) in n2.waiting
    late = (SlotValue(1, ADD_N4, Ballot(2, "n1")), SlotValue(2, theirs, Ballot(2, "n1")))  # n1's short leadership
    net.step("n2", Receive("n3", Promise(n2.ballot, 1, late, ())))
    assert n2.deferred[2] == theirs and list(n2.queue) == [("c1", 1)]
    net.settle()
    assert [(n2.log[s].client_id, n2.log[s].command.args) for s in (2, 3)] == [("c2", ("w",)), ("c1", ("v",))]
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]
    assert not n2.waiting and not n2.deferred_keys


def _effect_trace(command: Any) -> tuple[list[tuple[int, tuple[str, ...], int | None]], MultiPaxosCore]:
    """alpha 3, one slot per Accept: the leader n1 applies a put (slot 1), ``command`` (slot 2), then puts;
    every distinct (applied, membership's learners, durable snapshot slot) it passes through, in order."""
    net = _net(alpha=3, max_batch=1, max_inflight=1)
    net.elect("n1")
    net.join("n4")
    n1 = net.cores["n1"]
    seen: list[tuple[int, tuple[str, ...], int | None]] = []

    def deliver_all() -> None:
        while net.in_flight:
            net.deliver(0)
            state = (n1.applied, n1.membership.learners, net.durable["n1"].get(SNAPSHOT_KEY, {}).get("last_slot"))
            if not seen or seen[-1] != state:
                seen.append(state)

    net.request("n1", put("a", "0"), "c1", 1)
    deliver_all()
    net.request("n1", command, "admin", 1)
    deliver_all()
    assert net.replies_to("admin", 1)[-1].status == ReplyStatus.OK
    for i in range(2, 6):
        net.request("n1", put("a", str(i)), "c1", i)
        deliver_all()
    return seen, n1


def test_the_configuration_in_effect_switches_alpha_slots_after_a_change_and_only_for_a_change() -> None:
    """alpha 3, a change applied at slot 2: the configuration of slot 2 + alpha = 5 on is the new one, so
    ``membership`` switches (after a snapshot of slot 4 is durable) exactly when slot 4 is applied, not a
    slot earlier.  A ``set`` that names the configuration as it was is applied (a change like any other) but
    switches nothing: no snapshot is taken for it (snapshot_every 0).

    Reference: Lamport, Malkhi & Zhou, section 4 (alpha window)
    """
    seen, n1 = _effect_trace(membership_command("add_learner", "n4", ""))
    assert seen == [(s, (), None) for s in range(4)] + [(s, ("n4",), 4) for s in range(4, 9)]
    seen, n1 = _effect_trace(membership_command("set", ["n1", "n2", "n3"], []))
    assert seen == [(s, (), None) for s in range(9)]
    assert n1.snapshot_slot == 0 and n1.snapshot_data is None


# ------------------------------------------------------------ a replaced voter's hand-off
def _demoted_n3_campaigns(alpha: int, command: Any) -> tuple[MultiPaxosCore, list[tuple[str, Any]]]:
    """``command`` (chosen in slot 1) takes n3's vote; n3 applies it but never hears a ``held`` past 0,
    then is cut off and ticked through two election timeouts: n3, and the Prepares it sent."""
    net = _net(alpha=alpha, election_ticks_min=10, election_ticks_max=10, backoff_ticks_max=0)
    net.elect("n1")
    net.drop_if = lambda s, d, m: d == "n3" and isinstance(m, Heartbeat) and m.held > 0
    net.request("n1", command, "admin", 1)
    net.settle()
    net.request("n1", put("k", "v"), "c1", 1)  # its Accept tells n3 the commit point
    net.settle()
    n3 = net.cores["n3"]
    assert n3.applied >= 1 and n3.held == 0 and "n3" not in n3.applier.membership.voters
    net.isolate("n3")
    net.in_flight.clear()
    net.tick("n3", 20)
    prepares = [(d, m) for s, d, m in net.in_flight if s == "n3" and isinstance(m, Prepare)]
    return n3, prepares


def test_a_demoted_voter_campaigns_to_hand_over_the_slots_it_still_votes_in() -> None:
    """A voter made a learner (``set``), or removed, at slot 1 still votes in the slots up to 1 + alpha - 1
    (alpha 1: slot 1 itself): not knowing a quorum of the new configuration holds them (``held`` 0), it
    campaigns when it hears no leader, as a proposer, so it can catch the new voters up.

    Reference: Lamport, Malkhi & Zhou, section 4; the module docstring (swarm seed 5565)
    """
    for alpha in (1, 2):
        n3, prepares = _demoted_n3_campaigns(alpha, membership_command("set", ["n1", "n2"], ["n3"]))
        membership = n3.applier.membership
        assert membership is not None and membership.learners == ("n3",)
        assert n3.role == Role.CANDIDATE and prepares, alpha
        assert {d for d, _ in prepares} == {"n1", "n2"}
    n3, prepares = _demoted_n3_campaigns(1, membership_command("remove", "n3"))
    assert n3.role == Role.CANDIDATE and prepares


def test_a_voter_takes_held_only_from_the_leader_it_follows() -> None:
    """A voter refusing a stale leader's heartbeat (it promised a higher ballot) answers with a Nack and
    learns nothing from it -- neither its commit point nor its ``held``: leading later, the first heartbeat
    it sends announces held 0, until its own followers' acks show a quorum applied more."""
    n2 = _restarted("n2", {}, election_ticks_min=10, election_ticks_max=10)
    n2.step(Receive("n3", Prepare(Ballot(5, "n3"), 1)))
    ready = n2.step(Receive("n1", Heartbeat(B1, 2, 0, 2)))
    assert _sent(ready) == [("n1", Nack(B1, Ballot(5, "n3")))] and n2.applied == 0
    for _ in range(10):
        n2.step(TICK)
    assert n2.role == Role.CANDIDATE and n2.ballot == Ballot(6, "n2")
    ready = n2.step(Receive("n1", Promise(n2.ballot, 1, (), (SlotValue(1, _req(1)), SlotValue(2, _req(2))))))
    assert n2.role == Role.LEADER and n2.applied == 2
    heartbeats = [(d, m) for d, m in _sent(ready) if isinstance(m, Heartbeat)]
    assert heartbeats == [("n1", Heartbeat(n2.ballot, 2, 0, 0)), ("n3", Heartbeat(n2.ballot, 2, 0, 0))]


def test_a_removed_learner_retires_only_once_the_slots_naming_it_are_held() -> None:
    """alpha 2: learner n4 (added at slot 1) is removed at slot 3; the configurations of slots up to
    3 + alpha - 1 = 4 still name it, so it is not retired while ``held`` < 4, and is once held reaches 4.

    Reference: Lamport, Malkhi & Zhou, section 4; the module docstring (when a removed node may stop)
    """
    net = _learner_added(alpha=2)
    n4 = net.cores["n4"]
    seen: list[tuple[int, int, bool]] = []

    def deliver_all() -> None:
        while net.in_flight:
            net.deliver(0)
            state = (n4.applied, n4.held, n4.retired)
            if not seen or seen[-1] != state:
                seen.append(state)

    net.request("n1", membership_command("remove", "n4"), "admin", 2)
    deliver_all()
    assert "n4" not in n4.applier.membership.members and n4.applied >= 3
    for _ in range(3):
        net.tick_all(n4.opts.heartbeat_ticks, stabilize=False)
        deliver_all()
    assert seen[-1][2] and seen[-1][1] >= 4
    assert all(not retired for applied, held, retired in seen if held < 4)
    assert any(applied >= 3 and not retired for applied, held, retired in seen)
    assert all(retired for applied, held, retired in seen if held >= 4)


# ------------------------------------------------------------ restarts
def test_a_restart_without_a_snapshot_still_hears_the_nodes_it_learned_of() -> None:
    """A replica whose state cannot be snapshotted restarts at slot 0, its applied configuration back to
    the initial one; yet it takes a Prepare from n4, a voter a change it had applied added (``mp/known``
    is durable), and promises it."""
    net = _net(state_machine=Unsnapshottable, alpha=2)
    net.elect("n1")
    net.join("n4")
    net.request("n1", membership_command("add_learner", "n4", ""), "admin", 1)
    net.request("n1", membership_command("promote", "n4"), "admin", 2)
    net.settle()
    assert net.durable["n2"][KNOWN_KEY] == ["n1", "n2", "n3", "n4"]
    assert SNAPSHOT_KEY not in net.durable["n2"]
    net.crash("n1")
    net.restart("n2")
    n2 = net.cores["n2"]
    assert n2.applied == 0 and n2.applier.membership.voters == ("n1", "n2", "n3")
    net.in_flight.clear()
    high = Ballot(n2.max_round + 1, "n4")
    net.step("n2", Receive("n4", Prepare(high, 1)))
    assert not net.remote_errors
    assert [(d, type(m).__name__, m.ballot) for s, d, m in net.in_flight] == [("n4", "Promise", high)]
    assert n2.acceptor.promised == high


def test_a_restart_finds_its_highest_accepted_slot_and_under_leases_promises_nobody_at_first() -> None:
    """A replica that accepted nothing restarts with no highest accepted slot (0: a peer generator sees
    its last slot as 0).  One that promised a ballot, restarting under leases, promises no proposer --
    whatever its id -- for election_ticks_min of its ticks (it may have acked a leader just before)."""
    fresh = _restarted("n2", {})
    assert fresh.max_accepted == 0 and view_of(fresh, ("n1", "n2", "n3")).last == 0
    # "XXXX": the id a mutant would give the restart's no-leader-yet marker ("") -- it too gets no promise
    for proposer in ("n1", "XXXX"):
        peers = (proposer, "n2", "n3")
        durable: dict[str, Any] = {}
        first = _restarted("n2", {}, peers)
        apply_writes(durable, first.step(Receive(proposer, Prepare(Ballot(1, proposer), 1))).persist)
        n2 = _restarted("n2", durable, peers, read_mode="lease", election_ticks_min=10, election_ticks_max=10)
        assert n2.max_accepted == 0 and n2.acceptor.promised == Ballot(1, proposer)
        ready = n2.step(Receive(proposer, Prepare(Ballot(2, proposer), 1)))
        assert _sent(ready) == [] and n2.acceptor.promised == Ballot(1, proposer), proposer
        for _ in range(10):
            n2.step(TICK)
        ready = n2.step(Receive(proposer, Prepare(Ballot(3, proposer), 1)))
        assert [type(m).__name__ for _, m in _sent(ready)] == ["Promise"], proposer
        assert n2.acceptor.promised == Ballot(3, proposer)
