"""Multi-Paxos at its edges: client redirects, membership in effect, removed nodes, reads, and refused input.

Each test drives real :class:`multipaxos.MultiPaxosCore` replicas through the
in-memory :class:`smr.testing.Network` (invariants checked after every step)
and pins one property a caller can observe: the hint a redirected client
gets, when ``membership`` switches after a change, how long a leader keeps
telling a removed node it may retire, when a read may be answered, and which
peer messages are refused as impossible (with the words the runtime logs).

Reference: Lamport, Malkhi & Zhou, "Reconfiguring a State Machine" (SIGACT
News 41(1), 2010), section 4; Ongaro's thesis, section 6.4 (reads).
"""

from __future__ import annotations

from typing import Any

import pytest

from smr.commands import Command, get, put
from smr.membership import membership_command
from smr.errors import LocalProtocolError
from smr.replica import ClientRequest, Receive, ReplicaStatus, ReplyStatus, Role, Start
from smr.state_machines import KVStore
from smr.testing import Network

from smr.bounds import MAX_EPOCH, MAX_EPOCH_JUMP, MAX_INDEX, request_bytes
from smr.membership import MAX_NODE_ID

from multipaxos import ACCEPTOR_PREFIX, SNAPSHOT_KEY, MultiPaxosCore, MultiPaxosInvariants
from multipaxos._core import KNOWN_KEY, MAX_LEAVING_ROUNDS, MAX_PROMISE_PARTS
from multipaxos.messages import (Accept, Accepted, Behind, Catchup, CatchupRequest, Heartbeat, HeartbeatAck, Nack,
                                 Prepare, Promise, PromisePart, SlotValue, Snapshot, SnapshotChunk, SnapshotRequest)
from synod.ballot import Ballot

TIMING = {"election_ticks_min": 10, "election_ticks_max": 10, "heartbeat_ticks": 2, "backoff_ticks_max": 1}
_SEQ = [7000]


class Unsnapshottable(KVStore):
    """A key-value store whose state can never be snapshotted (the core then keeps its whole log)."""

    def snapshot(self) -> bytes:
        raise RuntimeError("this state cannot be carried")


def network(size: int = 3, state_machine: Any = KVStore, elect: str | None = "n1", **options: Any) -> Network:
    """A multi-Paxos network (alpha 4 unless given), with ``elect`` elected."""
    net: Network = Network(MultiPaxosCore, size, {"alpha": 4, **options}, 0, state_machine,
                           invariants=MultiPaxosInvariants())
    if elect:
        net.elect(elect)
    return net


def ask(net: Network, node: str, command: Any, client: str = "admin") -> Any:
    """Send ``command`` to ``node`` under a new sequence number, settle; the last reply (or None)."""
    _SEQ[0] += 1
    net.request(node, command, client=client, seq=_SEQ[0])
    net.settle()
    replies = net.replies_to(client, _SEQ[0])
    return replies[-1] if replies else None


def run(net: Network, ticks: int) -> None:
    """Tick every live node ``ticks`` times, settling after each round."""
    for _ in range(ticks):
        net.tick_all(1)
        net.settle()


# ------------------------------------------------------------------ clients
def test_a_client_is_redirected_to_the_leader_a_replica_follows_or_told_none_is_known() -> None:
    """A follower answers a client REDIRECT naming the leader whose ballot it follows; before any
    leader is heard, and while campaigning itself, it names none."""
    net = network(elect=None)
    (reply,) = net.request("n2", put("k", "v"), "c1", 1)
    assert reply.status == ReplyStatus.REDIRECT and reply.leader is None
    net.elect("n1")
    for follower in ("n2", "n3"):
        (reply,) = net.request(follower, put("k", "v"), "c1", 2)
        assert reply.status == ReplyStatus.REDIRECT and reply.leader == "n1" and reply.result is None
    net.isolate("n3")
    net.campaign("n3")
    assert net.status("n3").role == Role.CANDIDATE
    (reply,) = net.request("n3", put("k", "v"), "c1", 3)
    assert reply.status == ReplyStatus.REDIRECT and reply.leader is None


# ---------------------------------------------------------- membership in effect
def _apply_window(net: Network, leader: str) -> None:
    """Write past the alpha window so the newest change is the configuration in effect."""
    for i in range(6):
        assert ask(net, leader, put(f"w{i}", "v"), client="c1").status == ReplyStatus.OK
    run(net, 6)


def test_without_snapshots_an_addition_takes_effect_but_a_removal_waits_for_one() -> None:
    """With a state that cannot be snapshotted, ``membership`` follows an addition (and a promotion)
    alpha slots after it -- adding a node strands nobody -- but never drops a removed node: a restart
    would replay the log from slot 1 and need the removed node's configuration.

    Reference: Lamport, Malkhi & Zhou, section 4 (the old configuration serves its slots)."""
    net = network(state_machine=Unsnapshottable)
    leader = net.cores["n1"]
    net.join("n4")
    assert ask(net, "n1", membership_command("add", "n4", "")).status == ReplyStatus.OK
    run(net, 12)  # n4 catches up and is promoted
    _apply_window(net, "n1")
    assert leader.snapshot_failures > 0 and leader.snapshot_slot == 0
    for node in ("n1", "n2", "n4"):
        assert net.cores[node].membership.voters == ("n1", "n2", "n3", "n4"), node
    assert ask(net, "n1", membership_command("remove", "n3")).status == ReplyStatus.OK
    _apply_window(net, "n1")
    assert leader.applier.membership.voters == ("n1", "n2", "n4")
    for node in ("n1", "n2", "n4"):
        assert net.cores[node].membership.voters == ("n1", "n2", "n3", "n4"), node


# ---------------------------------------------------------- removed nodes
def test_a_removed_node_that_acks_is_let_go_promptly() -> None:
    """Once a quorum of the new configuration holds a removed node's slots (``held`` reaches the last one,
    even with nothing written after), the leader's next heartbeat round tells it so, and its ack of that
    round ends the heartbeats: it does not wait MAX_LEAVING_ROUNDS rounds."""
    net = network()
    leader = net.cores["n1"]
    to_n3: list[Heartbeat] = []
    assert ask(net, "n1", membership_command("remove", "n3")).status == ReplyStatus.OK
    for i in range(20):  # write until n3 is in no configuration in use, then nothing more
        if "n3" in leader.leaving:
            break
        assert ask(net, "n1", put(f"w{i}", "v"), client="c1").status == ReplyStatus.OK
    assert "n3" in leader.leaving and "n3" not in leader.applier.membership.members
    run(net, 12)
    assert net.cores["n3"].retired and leader.held == leader.applied
    net.drop_if = lambda s, d, m: d == "n3" and isinstance(m, Heartbeat) and bool(to_n3.append(m))
    run(net, 40)
    assert not to_n3 and "n3" not in leader.peers


def test_a_silent_removed_node_is_heartbeated_for_max_leaving_rounds_then_let_go() -> None:
    """A removed node that never acks is told for MAX_LEAVING_ROUNDS heartbeat rounds after it left, then
    no longer (it is down or gone); the count holds however many rounds the leader sent before."""
    net = network(read_mode="read_index", **TIMING)
    leader = net.cores["n1"]
    run(net, 140)  # read_index: every heartbeat interval is a round
    assert leader.hb_round > MAX_LEAVING_ROUNDS
    rounds: list[int] = []

    def silence_n3(src: str, dst: str, msg: Any) -> bool:
        if dst == "n3" and isinstance(msg, Heartbeat) and msg.round:
            rounds.append(msg.round)
        return src == "n3"  # it hears, and never answers

    net.drop_if = silence_n3
    assert ask(net, "n1", membership_command("remove", "n3")).status == ReplyStatus.OK
    _apply_window(net, "n1")
    assert "n3" in leader.leaving
    left_at = leader.leaving["n3"][2]
    run(net, 2 * TIMING["heartbeat_ticks"] * (MAX_LEAVING_ROUNDS + 10))
    assert "n3" not in leader.peers
    later = [r for r in rounds if r > left_at]
    assert later == list(range(left_at + 1, left_at + MAX_LEAVING_ROUNDS + 1))


def test_heartbeat_rounds_count_up_by_one() -> None:
    """Each heartbeat round that asks for acks carries the next round number: 1, 2, 3, ..."""
    net = network(read_mode="read_index", **TIMING)
    rounds: list[int] = []
    net.drop_if = lambda s, d, m: d == "n2" and isinstance(m, Heartbeat) and bool(rounds.append(m.round))
    run(net, 12)
    numbered = [r for r in rounds if r]
    assert numbered == list(range(1, len(numbered) + 1)) and len(numbered) >= 5


# ---------------------------------------------------------- reads
def test_a_lease_read_is_local_strictly_before_the_lease_ends() -> None:
    """A lease read is answered locally at every leader tick t < lease_until, and at t == lease_until it
    needs a heartbeat round again (Ongaro's thesis 6.4.1: the lease is a strict bound)."""
    net = network(read_mode="lease", max_clock_drift=0.2, **TIMING)
    assert ask(net, "n1", put("k", "v"), client="c1").status == ReplyStatus.OK
    net.tick_all(2)
    leader = net.cores["n1"]
    assert leader.lease_until > leader.ticks
    net.isolate("n1")
    while leader.ticks < leader.lease_until - 1:
        net.tick("n1")
    replies = net.request("n1", get("k"), "r", 1)
    assert [(r.status, r.result) for r in replies] == [(ReplyStatus.OK, "v")]
    net.tick("n1")
    assert leader.ticks == leader.lease_until
    assert not net.request("n1", get("k"), "r", 2)


def test_a_read_index_read_waits_for_a_round_sent_after_it_arrived() -> None:
    """A read_index read is answered only once a quorum acks a heartbeat round the leader sent after the
    read arrived; acks of earlier rounds do not confirm it (the leader may have been deposed since)."""
    net = network(read_mode="read_index", **TIMING)
    assert ask(net, "n1", put("k", "v"), client="c1").status == ReplyStatus.OK
    reply = ask(net, "n1", get("k"), client="r")
    assert (reply.status, reply.result) == (ReplyStatus.OK, "v")
    run(net, 4)  # quorum acks of every round so far
    net.isolate("n1")
    assert not net.request("n1", get("k"), "r", 99)
    run(net, 4)
    assert not net.replies_to("r", 99)


# ---------------------------------------------------------- re-added nodes
def test_a_node_removed_and_added_again_is_promoted_afresh() -> None:
    """n4 joins and is promoted; removed, emptied and added again, what the leader heard from its former
    incarnation is forgotten: it must catch up and be promoted again before it votes."""
    net = network(read_mode="read_index", **TIMING)
    leader = net.cores["n1"]
    net.join("n4")
    assert ask(net, "n1", membership_command("add", "n4", "")).status == ReplyStatus.OK
    run(net, 12)
    _apply_window(net, "n1")
    assert leader.applier.membership.voters == ("n1", "n2", "n3", "n4") and "n4" in leader.peer_applied
    net.crash("n4")
    assert ask(net, "n1", membership_command("remove", "n4")).status == ReplyStatus.OK
    _apply_window(net, "n1")
    run(net, 12)
    net.wipe("n4", rejoin_after=leader.applied)
    _SEQ[0] += 1
    net.request("n1", membership_command("add", "n4", ""), client="admin", seq=_SEQ[0])
    for _ in range(500):  # the add enters the log: nothing heard from the former n4 counts
        if "n4" in leader.applier.membership.members:
            break
        net.deliver(0)
    assert "n4" in leader.applier.membership.members and "n4" not in leader.peer_applied
    net.settle()
    run(net, 40)
    assert leader.applier.membership.voters == ("n1", "n2", "n3", "n4")
    assert net.cores["n4"].applied == leader.applied


# ---------------------------------------------------------- impossible input
M = MAX_INDEX
J = MAX_EPOCH_JUMP
REQ = ClientRequest("c1", 1, put("k", "v"))


def verdict(msg: Any, src: str = "n3", node: str = "n2", net: Network | None = None) -> str | None:
    """What ``node`` (of a fresh, leaderless network unless given) says of ``msg`` from ``src``: the
    RemoteProtocolError text the runtime logs, or None if it took the message."""
    net = net if net is not None else network(elect=None)
    before = len(net.remote_errors)
    net.step(node, Receive(src, msg))
    assert len(net.remote_errors) <= before + 1
    return net.remote_errors[before] if len(net.remote_errors) > before else None


def impossible(msg: Any, problem: str, src: str = "n3", node: str = "n2", net: Network | None = None) -> None:
    """``msg`` is refused as impossible, with exactly ``problem`` as the reason."""
    assert verdict(msg, src, node, net) == f"multipaxos {node}: impossible {type(msg).__name__} from {src}: {problem}"


def test_ballots_out_of_range_or_naming_no_node_are_impossible() -> None:
    """A ballot's round lies in 0 .. max_round + MAX_EPOCH_JUMP (capped at MAX_EPOCH) and its node id is
    1..MAX_NODE_ID characters long; any node may own one (it may lead a configuration we have not applied)."""
    b1 = Ballot(1, "n3")
    assert verdict(Nack(Ballot(0, "n2"), Ballot(J, "n1"))) is None
    impossible(Nack(b1, Ballot(J + 1, "n1")),
               f"ballot {J + 1}.'n1' is out of range (0..{J}) or names no node")
    impossible(Nack(Ballot(-1, "n2"), b1), "ballot -1.'n2' is out of range (0..4294967296) or names no node")
    assert verdict(Nack(b1, Ballot(2, "x" * MAX_NODE_ID))) is None
    impossible(Nack(b1, Ballot(2, "y" * (MAX_NODE_ID + 1))),
               f"ballot 2.{'y' * 40!r} is out of range (0..{J}) or names no node")
    impossible(Nack(b1, Ballot(2, "")), f"ballot 2.'' is out of range (0..{J}) or names no node")
    # the bound moves with the highest round seen: J above it
    net = network(elect=None)
    assert verdict(Nack(b1, Ballot(J, "n1")), net=net) is None
    assert verdict(Nack(b1, Ballot(2 * J, "n1")), net=net) is None
    impossible(Nack(b1, Ballot(3 * J + 1, "n1")), f"ballot {3 * J + 1}.'n1' is out of range (0..{3 * J}) or "
               "names no node", net=net)
    # ... and never passes MAX_EPOCH (a restart finds the highest round in its promise)
    net = network(elect=None)
    net.durable["n2"][ACCEPTOR_PREFIX + "promised"] = [MAX_EPOCH - 5, "n1"]
    net.restart("n2")
    assert net.status("n2").epoch == MAX_EPOCH - 5
    assert verdict(Nack(b1, Ballot(MAX_EPOCH, "n1")), net=net) is None
    impossible(Nack(b1, Ballot(MAX_EPOCH + 1, "n1")),
               f"ballot {MAX_EPOCH + 1}.'n1' is out of range (0..{MAX_EPOCH}) or names no node", net=net)


def test_a_proposers_message_carries_the_senders_ballot_and_a_request_ours() -> None:
    """Prepare, Accept, Heartbeat, Catchup and SnapshotChunk come only from their ballot's owner; a
    CatchupRequest or SnapshotRequest names the ballot of the leader it asks (the receiver's)."""
    wrong = "its ballot is not the sender's (or, for a request to the leader, not ours)"
    other = Ballot(1, "n1")
    for msg in (Prepare(other, 1), Accept(other, 1, (), 0), Heartbeat(other, 0), Catchup(other),
                SnapshotChunk(other, 1, 0, "", False)):
        impossible(msg, wrong)
    assert verdict(Prepare(Ballot(1, "n3"), 1)) is None
    assert verdict(Heartbeat(Ballot(1, "n3"), 0)) is None
    for msg in (CatchupRequest(Ballot(1, "n3"), 1), SnapshotRequest(Ballot(1, "n3"), 1, 0)):
        impossible(msg, wrong)
    assert verdict(CatchupRequest(Ballot(1, "n2"), 1)) is None
    assert verdict(SnapshotRequest(Ballot(1, "n2"), 1, 0)) is None
    assert verdict(Accepted(Ballot(1, "n1"), 1, 1)) is None  # replies may answer anyone's ballot


def test_promises_report_values_with_ballots_no_higher_than_the_promise() -> None:
    """A promise reports each accepted value with the ballot it was accepted in, never above the promised
    one (Paxos Made Simple, phase 1b); the same holds for each part of a promise sent in parts."""
    b2, b3 = Ballot(2, "n1"), Ballot(3, "n3")
    for make in (lambda acc: Promise(b3, 1, acc), lambda acc: PromisePart(b3, 1, 0, 1, acc)):
        impossible(make((SlotValue(1, REQ),)), "an accepted value without its ballot")
        impossible(make((SlotValue(1, REQ, Ballot(4, "n1")),)),
                   "it reports a value accepted in a ballot above the one it promises")
        assert verdict(make((SlotValue(1, REQ, b3), SlotValue(2, REQ, b2)))) is None
        impossible(make((SlotValue(1, REQ, Ballot(J + 1, "n1")),)),
                   f"ballot {J + 1}.'n1' is out of range (0..{J}) or names no node")


def test_slots_counts_and_commit_points_lie_in_range() -> None:
    """Every slot a message names lies in 1 .. MAX_INDEX - 1 (a commit point of 0 says nothing is chosen
    yet), every count in 1 .. MAX_INDEX - 1 (a leader sends no Accept without values)."""
    b = Ballot(1, "n3")
    bad = "a slot is out of range"
    for from_slot, ok in ((0, False), (1, True), (M - 1, True), (M, False)):
        for msg in (Prepare(b, from_slot), Promise(b, from_slot), PromisePart(b, from_slot, 0, 1),
                    CatchupRequest(Ballot(1, "n2"), from_slot)):
            if ok:
                assert verdict(msg) is None, msg
            else:
                impossible(msg, bad)
    for commit, ok in ((-1, False), (0, True), (1, True), (M - 1, True), (M, False)):
        for msg in (Accept(Ballot(1, "n3"), 1, (REQ,), commit), Heartbeat(b, commit)):
            if ok:
                assert verdict(msg) is None, msg
            else:
                impossible(msg, bad)
    assert verdict(Accepted(b, 1, 1)) is None and verdict(Accepted(b, M - 2, 1)) is None
    assert verdict(Accepted(b, 1, M - 2)) is None
    impossible(Accepted(b, 0, 1), bad)
    impossible(Accepted(b, M - 1, 1), bad)
    impossible(Accepted(b, 1, M - 1), bad)
    for count in (-1, 0):
        impossible(Accepted(b, 1, count), "its count is out of range")
    impossible(Accept(b, 1, (), 0), "its count is out of range")
    impossible(Accepted(b, 1, M), "its count is out of range")
    impossible(Accept(b, 0, (REQ,), 0), bad)
    impossible(Accept(b, M - 1, (REQ,), 0), bad)
    assert verdict(Accept(b, M - 2, (REQ,), 0)) is None
    for applied, ok in ((-1, False), (0, True), (1, True), (M - 1, True), (M, False)):
        if ok:
            assert verdict(Behind(b, applied)) is None, applied
        else:
            impossible(Behind(b, applied), bad)
    data = network(elect=None).cores["n1"].applier.snapshot().decode()  # a snapshot that restores
    for last, ok in ((0, False), (1, True), (M - 1, True), (M, False)):
        for msg in (SnapshotChunk(b, last, 0, "", False), SnapshotRequest(Ballot(1, "n2"), last, 0),
                    Catchup(b, (), Snapshot(last, data)), Promise(b, 1, (), (), Snapshot(last, data)),
                    PromisePart(b, 1, 0, 1, (), (), Snapshot(last, data)), Catchup(b, (SlotValue(last, REQ),))):
            if ok:
                assert verdict(msg) is None, msg
            else:
                impossible(msg, bad)


def test_heartbeat_rounds_acks_parts_and_offsets_lie_in_range() -> None:
    """A heartbeat's round and held slot lie in 0 .. MAX_INDEX - 1; an ack's round in 1 .. MAX_INDEX - 1
    and its applied slot in 0 .. MAX_INDEX - 1; a promise part in 0 .. parts - 1 of at most
    MAX_PROMISE_PARTS; a snapshot offset is not negative."""
    b = Ballot(1, "n3")
    hb = "its round or held slot is out of range"
    for value, ok in ((-1, False), (0, True), (M - 1, True), (M, False)):
        for msg in (Heartbeat(b, 0, value, 0), Heartbeat(b, 0, 0, value)):
            if ok:
                assert verdict(msg) is None, msg
            else:
                impossible(msg, hb)
    ack = "its round or applied slot is out of range"
    for round_, applied, ok in ((1, 0, True), (M - 1, M - 1, True), (0, 0, False), (M, 0, False),
                                (1, -1, False), (1, M, False), (-1, 0, False)):
        msg = HeartbeatAck(b, round_, applied)
        if ok:
            assert verdict(msg) is None, msg
        else:
            impossible(msg, ack)
    for part, parts, ok in ((0, 1, True), (MAX_PROMISE_PARTS - 1, MAX_PROMISE_PARTS, True), (1, 1, False),
                            (-1, 1, False), (0, 0, False), (0, MAX_PROMISE_PARTS + 1, False)):
        msg = PromisePart(b, 1, part, parts)
        if ok:
            assert verdict(msg) is None, msg
        else:
            impossible(msg, f"part {part} of {parts}")
    for offset in (-1, M):
        impossible(SnapshotChunk(b, 1, offset, "", False), "its offset is out of range")
        impossible(SnapshotRequest(Ballot(1, "n2"), 1, offset), "its offset is out of range")
    assert verdict(SnapshotChunk(b, 1, M - 1, "", False)) is None
    assert verdict(SnapshotRequest(Ballot(1, "n2"), 1, 0)) is None


def test_a_leader_refuses_acks_of_what_it_never_sent() -> None:
    """The leader refuses an Accepted of its ballot for slots it never proposed, and an ack of a heartbeat
    round it has not sent; acks up to what it sent are counted."""
    net = network(read_mode="read_index", **TIMING)
    assert ask(net, "n1", put("k", "v"), client="c1").status == ReplyStatus.OK
    run(net, 3)
    leader = net.cores["n1"]
    ballot, top, rounds = leader.ballot, leader.next_slot, leader.hb_round
    assert rounds >= 1
    assert verdict(Accepted(ballot, top - 1, 1), node="n1", net=net) is None
    impossible(Accepted(ballot, top - 1, 2), f"it acknowledges slots up to {top}, beyond what we proposed",
               node="n1", net=net)
    impossible(Accepted(ballot, top, 1), f"it acknowledges slots up to {top}, beyond what we proposed",
               node="n1", net=net)
    assert verdict(Accepted(Ballot(ballot.round - 1 if ballot.round > 1 else 0, "n3"), top, 5), node="n1",
                   net=net) is None  # another ballot's: not ours to check
    assert verdict(HeartbeatAck(ballot, rounds, leader.applied), node="n1", net=net) is None
    impossible(HeartbeatAck(ballot, rounds + 1, 0),
               f"it acknowledges heartbeat round {rounds + 1}, beyond the {rounds} we sent", node="n1", net=net)
    assert verdict(HeartbeatAck(Ballot(ballot.round + 1, "n2"), rounds + 1, 0), node="n1", net=net) is None


def test_messages_from_ourselves_malformed_ids_or_of_no_kind_are_refused() -> None:
    """The central check: a message from our own id, from an id of 0 or more than MAX_NODE_ID characters, or
    of a type no role has a rule for is refused, naming the sender, the role and the type."""
    b = Ballot(1, "n2")
    assert verdict(Nack(b, b), src="n2") == "multipaxos n2: message from unknown node 'n2'"
    assert verdict(Nack(b, b), src="") == "multipaxos n2: message from unknown node ''"
    long = "z" * (MAX_NODE_ID + 1)
    assert verdict(Nack(b, b), src=long) == f"multipaxos n2: message from unknown node {long!r}"
    assert verdict(Nack(b, b), src="n9") == "multipaxos n2: message from unknown node 'n9'"
    assert verdict(Nack(b, b), src="n1") is None
    assert verdict("hello", src="n1") == "multipaxos n2 (follower): no rule for str from n1"
    net = network()
    assert verdict(17, src="n2", node="n1", net=net) == "multipaxos n1 (leader): no rule for int from n2"


def test_values_carrying_a_command_the_state_machine_refuses_are_impossible() -> None:
    """A leader never proposes a command its state machine refuses, so an Accept, a Promise or a Catchup
    carrying one is refused, naming the refusal."""
    bogus = ClientRequest("c1", 1, Command("nosuch"))
    problem = ("a command that is refused: UnknownCommand: kv has no command or query 'nosuch' "
               "(it has: append, cas, delete, get, put)")
    b = Ballot(1, "n3")
    impossible(Accept(b, 1, (REQ, bogus), 0), problem)
    impossible(Promise(b, 1, (SlotValue(1, bogus, b),)), problem)
    impossible(Catchup(b, (SlotValue(1, bogus),)), problem)
    assert verdict(Accept(b, 1, (REQ,), 0)) is None
    assert verdict(Nack(b, Ballot(2, "x"))) is None  # a one-character node id owns ballots too


def test_a_joining_node_takes_any_well_formed_sender() -> None:
    """A node started to join takes messages from leaders it does not know yet, whose ids are 1 to
    MAX_NODE_ID characters long; an empty or longer id is refused."""
    net = network(elect=None)
    net.join("n4")
    for src in ("a", "b" * MAX_NODE_ID):
        assert verdict(Heartbeat(Ballot(1, src), 0), src=src, node="n4", net=net) is None
        assert net.cores["n4"].leader_ballot == Ballot(1, src)
    for src in ("", "c" * (MAX_NODE_ID + 1)):
        assert verdict(Heartbeat(Ballot(2, "n1"), 0), src=src, node="n4", net=net) == \
            f"multipaxos n4: message from unknown node {src!r}"


def test_an_unknown_leader_ahead_of_us_is_followed_and_heard_again() -> None:
    """A node no configuration we know names, whose heartbeat shows it ahead while we hear no leader, is
    followed; its next heartbeat is taken too (it is the live leader we hear), while another unknown
    node's is refused."""
    net = network(elect=None)
    n2 = net.cores["n2"]
    assert verdict(Heartbeat(Ballot(1, "n9"), 5), src="n9", net=net) is None
    assert n2.leader_ballot == Ballot(1, "n9")
    assert verdict(Heartbeat(Ballot(1, "n9"), 6), src="n9", net=net) is None
    assert verdict(Heartbeat(Ballot(2, "n8"), 7), src="n8", net=net) == "multipaxos n2: message from unknown node 'n8'"


# ---------------------------------------------------------- status
def test_status_reports_role_ballot_round_believed_leader_and_applied_prefix() -> None:
    """``status()``: a leader or candidate reports its own ballot's round, a follower the round of the
    leader it follows, or the highest round it has seen while it follows none; and the applied prefix."""
    net = network(elect=None)
    assert net.cores["n2"].status() == ReplicaStatus("n2", Role.FOLLOWER, 0, None, 0)
    net.elect("n1")
    assert ask(net, "n1", put("k", "v"), client="c1").status == ReplyStatus.OK
    run(net, 4)  # the followers learn the commit point
    round_ = net.cores["n1"].ballot.round
    applied = net.cores["n1"].applied
    assert applied >= 1 and net.cores["n2"].applied == applied
    assert net.cores["n1"].status() == ReplicaStatus("n1", Role.LEADER, round_, "n1", applied)
    net.step("n2", Receive("n3", Nack(Ballot(1, "n2"), Ballot(round_ + 40, "n3"))))  # a higher round seen
    assert net.cores["n2"].status() == ReplicaStatus("n2", Role.FOLLOWER, round_, "n1", applied)
    net.isolate("n3")
    net.campaign("n3")
    n3 = net.cores["n3"]
    assert n3.status() == ReplicaStatus("n3", Role.CANDIDATE, n3.ballot.round, None, n3.applied)
    assert n3.ballot.round == round_ + 1
    net.crash("n1")
    net.restart("n2")
    assert net.cores["n2"].status() == ReplicaStatus("n2", Role.FOLLOWER, round_, None, 0)


# ---------------------------------------------------------- restarts and timers
def test_a_restart_resumes_from_its_snapshot_and_remembers_the_nodes_it_learned() -> None:
    """A restarted replica starts from its durable snapshot (applied prefix, state and configuration) and
    still takes messages from every node a configuration it applied named (``mp/known``); a second Start
    to one incarnation is the caller's error."""
    net = network(snapshot_every=2)
    net.join("n4")
    assert ask(net, "n1", membership_command("add", "n4", "")).status == ReplyStatus.OK
    for i in range(6):
        assert ask(net, "n1", put(f"k{i}", str(i)), client="c1").status == ReplyStatus.OK
    run(net, 12)
    durable = net.durable["n2"]
    assert durable[KNOWN_KEY] == ["n1", "n2", "n3", "n4"]
    snap = durable[SNAPSHOT_KEY]
    assert snap["last_slot"] >= 6
    net.restart("n2")
    n2 = net.cores["n2"]
    assert n2.applied == n2.snapshot_slot == snap["last_slot"] and n2.snapshot_data == snap["data"]
    assert net.status("n2").commit_index == snap["last_slot"]
    assert n2.applier.machine.snapshot() == net.cores["n1"].applier.machine.snapshot()
    assert n2.membership.voters == ("n1", "n2", "n3", "n4") and set(n2.peers) == {"n1", "n3", "n4"}
    assert verdict(Nack(Ballot(1, "n2"), Ballot(1, "n2")), src="n4", net=net) is None
    with pytest.raises(LocalProtocolError, match="^multipaxos n2: Start given twice to one incarnation$"):
        n2.step(Start({}))


def test_a_follower_campaigns_after_its_election_timeout_and_backs_off_after_a_failed_campaign() -> None:
    """Timers are tick counters: a follower hearing no leader campaigns at exactly its election timeout
    (drawn from election_ticks_min..max), a candidate that fails campaigns again after that timeout plus a
    random back-off of 0..backoff_ticks_max ticks, never sooner."""
    net = network(elect=None, election_ticks_min=10, election_ticks_max=10, backoff_ticks_max=0)
    net.isolate("n2")
    n2 = net.cores["n2"]
    net.tick("n2", 9)
    assert n2.role == Role.FOLLOWER
    net.tick("n2")
    assert n2.role == Role.CANDIDATE and n2.ballot.round == 1
    for round_ in (2, 3):
        net.tick("n2", 9)
        assert n2.ballot.round == round_ - 1
        net.tick("n2")
        assert n2.ballot.round == round_
    net = network(elect=None, election_ticks_min=10, election_ticks_max=10, backoff_ticks_max=3)
    net.isolate("n3")
    n3 = net.cores["n3"]
    gaps, last, ticks = [], 0, 0
    while len(gaps) < 12:
        net.tick("n3")
        ticks += 1
        if n3.ballot is not None and n3.ballot.round > last:
            if last:
                gaps.append(ticks)
            last, ticks = n3.ballot.round, 0
    assert all(10 <= gap <= 13 for gap in gaps) and len(set(gaps)) > 1, gaps


def _resent_runs(**options: Any) -> list[tuple[int, int]]:
    """(first slot, count) of the Accepts a leader re-sends n3 for seven unchosen slots of 128 bytes each."""
    net = network(max_inflight=16, **TIMING, **options)
    client = "c" * 50  # request_bytes of put k v from it: 128
    assert request_bytes(ClientRequest(client, 1, put("k", "v"))) == 128
    net.drop_if = lambda s, d, m: isinstance(m, Accept)  # nothing is chosen
    for seq in range(1, 8):
        net.request("n1", put("k", "v"), client, seq)
    net.stabilize()
    resent: list[Accept] = []
    net.drop_if = lambda s, d, m: isinstance(m, Accept) and (d != "n3" or bool(resent.append(m)) or True)
    net.tick("n1", TIMING["heartbeat_ticks"])
    net.stabilize()
    return [(a.first_slot, len(a.values)) for a in resent]


def test_unchosen_slots_are_resent_in_contiguous_runs_within_the_batch_limits() -> None:
    """A leader re-sends the Accepts still short of a quorum in runs of consecutive slots, each at most
    max_batch commands and at most max_batch_bytes of requests (a run of exactly the budget is allowed)."""
    assert _resent_runs(max_batch=3) == [(1, 3), (4, 3), (7, 1)]
    assert _resent_runs(max_batch=8, max_batch_bytes=256) == [(1, 2), (3, 2), (5, 2), (7, 1)]


def test_an_idle_leader_heartbeats_its_commit_point_and_held_slot_every_interval() -> None:
    """An idle leader sends every peer a Heartbeat(ballot, applied, round, held) once per heartbeat
    interval: exactly heartbeat_ticks of its ticks apart, each with its commit point and held slot."""
    net = network(**TIMING)
    assert ask(net, "n1", put("k", "v"), client="c1").status == ReplyStatus.OK
    leader = net.cores["n1"]
    seen: list[tuple[int, Heartbeat, int, int]] = []

    def record(src: str, dst: str, msg: Any) -> bool:
        if dst == "n2" and isinstance(msg, Heartbeat):
            seen.append((leader.ticks, msg, leader.applied, leader.held))
        return False

    net.drop_if = record
    for _ in range(20):
        net.tick("n1")
        net.stabilize()
    assert len(seen) == 10
    assert all(h.ballot == leader.ballot and h.commit == applied and h.held == held for _, h, applied, held in seen)
    assert [t for t, *_ in seen] == [seen[0][0] + 2 * i for i in range(10)]
    assert seen[-1][1].held == leader.applied >= 1 and any(h.round for _, h, *_ in seen)


# ---------------------------------------------------------- following a leader
def test_a_lower_ballot_is_nacked_to_its_sender_and_a_higher_one_is_followed() -> None:
    """An acceptor that promised a higher ballot answers a leader's Heartbeat in a lower one with
    Nack(ballot, promised) to that leader (no ack) and does not follow it; a candidate or a leader hearing
    a leader of a higher ballot gives up and follows it (Paxos Made Simple, section 2.3)."""
    net = network(elect=None)
    n2 = net.cores["n2"]
    net.step("n2", Receive("n3", Prepare(Ballot(5, "n3"), 1)))
    net.in_flight.clear()
    assert verdict(Heartbeat(Ballot(1, "n1"), 0, 3), src="n1", net=net) is None
    assert net.in_flight == [("n2", "n1", Nack(Ballot(1, "n1"), Ballot(5, "n3")))]  # and no HeartbeatAck
    assert n2.leader_ballot is None and n2.status().leader is None
    net.in_flight.clear()
    net.isolate("n2")
    net.campaign("n2")
    assert n2.role == Role.CANDIDATE and n2.ballot == Ballot(6, "n2")
    assert verdict(Heartbeat(Ballot(7, "n1"), 0), src="n1", net=net) is None
    assert n2.status() == ReplicaStatus("n2", Role.FOLLOWER, 7, "n1", 0) and n2.ballot is None
    net = network()
    n1 = net.cores["n1"]
    higher = Ballot(n1.ballot.round + 1, "n2")
    assert verdict(Heartbeat(higher, 0), src="n2", node="n1", net=net) is None
    assert n1.status() == ReplicaStatus("n1", Role.FOLLOWER, higher.round, "n2", 0)


# ---------------------------------------------------------- clients at the leader
def test_the_leader_orders_each_client_request_once_and_answers_retries_from_the_session_table() -> None:
    """A retry of a request still being ordered takes no second slot and gets one answer; one with the same
    (client, seq) but another command is refused once the first is applied; a retry of an applied request
    gets the first outcome again; a command the state machine refuses is answered at once, unordered."""
    net = network(**TIMING)
    leader = net.cores["n1"]
    appended = Command("cas", "log", (None, "ab"))  # True once: a second run would answer False
    net.request("n1", appended, "c1", 1)
    held = net.take(Accept)
    slots = leader.next_slot
    assert not net.request("n1", appended, "c1", 1)  # a retry while it is ordered
    assert not net.request("n1", Command("cas", "log", (None, "zz")), "c1", 1)  # another command, same seq
    assert leader.next_slot == slots and not net.in_flight
    net.inject(held)
    net.settle()
    first = net.replies_to("c1", 1)
    assert [(r.status, r.result) for r in first[:1]] == [(ReplyStatus.OK, True)]
    assert len(first) == 2 and first[1].status == ReplyStatus.ERROR
    assert "SequenceReused" in str(first[1].result)
    assert leader.applied == slots - 1
    again = net.request("n1", appended, "c1", 1)
    assert [(r.status, r.result) for r in again] == [(ReplyStatus.OK, True)] and leader.applied == slots - 1
    (refused,) = net.request("n1", Command("nosuch"), "c1", 2)
    assert refused.status == ReplyStatus.ERROR and refused.result["error"] == "UnknownCommand"
    assert leader.applied == slots - 1 and not net.in_flight
    net.request("n1", get("log"), "c1", 3)  # log reads take a slot
    net.settle()
    assert net.replies_to("c1", 3)[-1].result == "ab" and leader.applied == slots


def test_a_read_at_a_new_leader_waits_until_its_recovered_slots_are_applied() -> None:
    """A read_index read that reaches a new leader before the slots it recovered in phase 1 are chosen
    and applied waits, and is then answered with the recovered write (Ongaro's thesis 6.4: a leader reads
    only once it has committed an entry of its own term); the writer's retry of the recovered write is
    answered once it is applied, without a second slot."""
    net = network(read_mode="read_index", **TIMING)
    net.drop_if = lambda s, d, m: isinstance(m, Accepted)  # accepted by all, chosen by nobody's knowledge
    net.request("n1", put("k", "recovered"), "c1", 1)
    net.stabilize()
    net.drop_if = None
    net.crash("n1")
    net.campaign("n2")
    n2 = net.cores["n2"]
    while n2.role != Role.LEADER:
        net.deliver(0)
    assert n2.applied == 0
    assert not net.request("n2", get("k"), "r", 1)
    assert not net.request("n2", get("k"), "r", 2)
    assert not net.request("n2", put("k", "recovered"), "c1", 1)  # the writer retries at the new leader
    net.settle()
    assert [(r.status, r.result) for r in net.replies_to("r", 1) + net.replies_to("r", 2)] == \
        [(ReplyStatus.OK, "recovered")] * 2
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK] and n2.applied == 1


def test_heartbeats_ask_for_acks_while_a_change_is_in_the_window_even_as_writes_flow() -> None:
    """With log reads and writes keeping the quorum heard, heartbeats ask for no acks; once a configuration
    change is applied (its window under way), they do: ``held`` must follow the new configuration."""
    net = network(**TIMING)
    rounds: list[int] = []
    net.drop_if = lambda s, d, m: d == "n2" and isinstance(m, Heartbeat) and bool(rounds.append(m.round))

    def write_every_tick(ticks: int) -> None:
        for _ in range(ticks):
            _SEQ[0] += 1
            net.request("n1", put("k", "v"), "c1", _SEQ[0])
            net.tick_all(1)

    write_every_tick(6)
    assert not any(rounds)  # Accepts stand for heartbeats, and no round asks for acks
    net.request("n1", membership_command("remove", "n3"), "admin", 1)
    net.settle()
    leader = net.cores["n1"]
    assert len(leader.history) == 2 and not leader.leaving and not leader.applier.membership.joining
    rounds.clear()
    write_every_tick(2)
    assert any(rounds)
