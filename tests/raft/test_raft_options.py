"""Every Raft option both on and off, plus the core's surface: errors, wire format, restart rules.

Pre-vote follows thesis section 9.6, check-quorum thesis section 6.2,
leadership transfer thesis section 3.10; batching and pipelining are the
flow control of etcd raft.
"""

from __future__ import annotations

import random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smr import wire
from smr.commands import put
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.replica import (TICK, ClientRequest, Receive, ReplicaConfig, ReplyStatus, Role, Start, Write,
                         get_backend)
from smr.sessions import NOOP_ENTRY
from smr.state_machines import KVStore

from raft import (AppendEntries, AppendEntriesReply, Entry, HardState, InstallSnapshot, RaftCore,
                  RaftOptions, RequestVote, RequestVoteReply, SnapshotRecord, TimeoutNow)
from raft._core import _HANDLERS, CANDIDATE, FOLLOWER, LEADER, PRECANDIDATE
from raft.messages import HARD_KEY, RaftMessage, log_key
from raft.testing import Network


def _net(size: int = 3, **options: object) -> Network:
    net = Network(size, options)
    net.elect("n1")
    return net


# ------------------------------------------------------------------ pre-vote (thesis 9.6)
@pytest.mark.parametrize("pre_vote", [True, False])
def test_pre_vote_keeps_a_rejoining_partitioned_node_from_bumping_the_term(pre_vote: bool) -> None:
    """With pre-vote, a node cut off from the cluster never raises its term, so when it rejoins the
    leader keeps its term; without it, the rejoining node's inflated term deposes the leader.

    Reference: thesis section 9.6
    """
    net = _net(3, pre_vote=pre_vote)
    net.isolate("n3")
    for _ in range(100):
        net.tick("n3")
    net.in_flight.clear()
    if pre_vote:
        assert net.cores["n3"].term == 1 and net.cores["n3"].role == "precandidate"
    else:
        assert net.cores["n3"].term > 2
    net.recover()
    net.tick_all(net.cores["n1"].opts.heartbeat_ticks)
    if pre_vote:
        assert net.cores["n1"].role == "leader" and net.cores["n1"].term == 1
        assert net.cores["n3"].role == "follower" and net.cores["n3"].leader == "n1"
    else:
        assert net.cores["n1"].term > 2 and net.cores["n1"].role != "leader"


def test_pre_vote_is_granted_only_without_a_live_leader_and_changes_no_term() -> None:
    """A pre-vote is granted only if the voter has heard from no leader for an election timeout;
    granting it changes neither the voter's term nor its vote.

    Reference: thesis section 9.6
    """
    net = _net(3, pre_vote=True)
    n2 = net.cores["n2"]
    ready = net.step("n2", Receive("n3", RequestVote(2, 5, 1, pre_vote=True)))
    assert not ready.messages[0].message.granted  # n1 is a live leader
    net.tick("n2", n2.opts.election_ticks_min)   # ... until it is not
    ready = net.step("n2", Receive("n3", RequestVote(2, 5, 1, pre_vote=True)))
    assert ready.messages[0].message == RequestVoteReply(2, True, pre_vote=True)
    assert (n2.term, n2.voted_for) == (1, "n1") and not ready.persist


# ------------------------------------------------------------------ check-quorum (thesis 6.2)
@pytest.mark.parametrize("check_quorum", [True, False])
def test_check_quorum_makes_an_isolated_leader_step_down(check_quorum: bool) -> None:
    """With check-quorum a leader that hears from no majority for an election timeout steps down;
    without it, it stays leader for ever.

    Reference: thesis section 6.2
    """
    net = _net(3, check_quorum=check_quorum)
    net.isolate("n1")
    for _ in range(3 * net.cores["n1"].opts.election_ticks_min):
        net.tick("n1")
        net.stabilize()
    assert net.cores["n1"].role == ("follower" if check_quorum else "leader")
    assert net.cores["n1"].term == 1


@pytest.mark.parametrize("check_quorum", [True, False])
def test_check_quorum_followers_ignore_votes_while_the_leader_is_live(check_quorum: bool) -> None:
    """With check-quorum a follower that hears from a live leader ignores a RequestVote of a higher
    term (no reply, no term change); without it, the vote request disrupts it.

    Reference: thesis section 6.2
    """
    net = _net(3, check_quorum=check_quorum)
    ready = net.step("n2", Receive("n3", RequestVote(5, 9, 1)))
    if check_quorum:
        assert not ready and net.cores["n2"].term == 1
    else:
        assert net.cores["n2"].term == 5 and ready.messages[0].message.granted


@pytest.mark.parametrize("pre_vote", [True, False])
def test_a_vote_request_of_an_older_term_is_refused_with_our_term(pre_vote: bool) -> None:
    """A RequestVote (pre-vote or real) of a term below ours is answered with a refusal carrying our term,
    so a candidate that the voter's configuration does not name -- and which it therefore never
    campaigns at -- still learns the term it must pass (`smr fuzz --backend raft --membership` seed 6026).

    Reference: Raft paper, Figure 2 (RequestVote: reply false if term < currentTerm)
    """
    net = _net(3)
    net.step("n2", Receive("n3", RequestVote(7, 0, 0)))  # n2 moves to term 7
    ready = net.step("n2", Receive("n3", RequestVote(4, 9, 1, pre_vote=pre_vote)))
    assert [m.message for m in ready.messages] == [RequestVoteReply(7, False, pre_vote=pre_vote)]
    assert net.cores["n2"].term == 7


# ------------------------------------------------------------------ leadership transfer (thesis 3.10)
def test_leadership_transfer_hands_over_to_the_chosen_follower() -> None:
    """The leader catches the target up, sends TimeoutNow, and the target wins the next term at once.

    Reference: thesis section 3.10
    """
    net = _net(3, leadership_transfer=True, check_quorum=True, pre_vote=True)
    net.isolate("n3")
    net.request("n1", put("x", "1"), "c1", 1)
    net.stabilize()
    net.recover()  # n3 lags behind: the leader must catch it up first
    net._handle("n1", net.cores["n1"].transfer_leadership("n3"))
    (reply,) = net.request("n1", put("x", "2"), "c1", 2)
    assert reply.status == ReplyStatus.REDIRECT and reply.leader == "n3"  # no proposals meanwhile
    net.stabilize()
    assert net.delivered["TimeoutNow"] == 1
    assert net.cores["n3"].role == "leader" and net.cores["n3"].term == 2
    assert net.cores["n1"].role == "follower"


def test_leadership_transfer_is_off_by_default() -> None:
    """Without the option, asking for a transfer is a caller error and TimeoutNow a remote error.

    Reference: thesis section 3.10
    """
    net = _net(3)
    with pytest.raises(LocalProtocolError, match="leadership_transfer"):
        net.cores["n1"].transfer_leadership("n2")
    with pytest.raises(RemoteProtocolError):
        net.cores["n2"].step(Receive("n1", TimeoutNow(1)))


# ------------------------------------------------------------------ batching and pipelining
@pytest.mark.parametrize("max_batch", [1, 3, 64])
def test_max_batch_bounds_entries_per_append(max_batch: int) -> None:
    """A lagging follower is caught up with AppendEntries of at most max_batch entries each."""
    net = _net(3, max_batch=max_batch)
    net.isolate("n3")
    for seq in range(1, 11):
        net.request("n1", put("x", str(seq)), "c1", seq)
        net.stabilize()
    net.recover()
    sizes = []
    for _ in range(10):
        net.tick("n1", 3)
        while net.in_flight:
            src, dst, msg = net.in_flight[0]
            if dst == "n3" and isinstance(msg, AppendEntries) and msg.entries:
                sizes.append(len(msg.entries))
            net.deliver(0)
    assert net.cores["n3"].log.last_index == net.cores["n1"].log.last_index
    assert max(sizes) == min(max_batch, 10)


@pytest.mark.parametrize("max_inflight", [1, 4])
def test_pipelining_keeps_at_most_max_inflight_appends_outstanding(max_inflight: int) -> None:
    """In replicate state the leader sends up to max_inflight AppendEntries before any reply."""
    net = _net(3, max_inflight=max_inflight)
    net.tick_all(3)
    for seq in range(1, 8):
        net.request("n1", put("x", str(seq)), "c1", seq)
    to_n2 = [m for _, d, m in net.in_flight if d == "n2" and isinstance(m, AppendEntries) and m.entries]
    assert len(to_n2) == max_inflight
    net.stabilize()
    net.tick_all(3)
    assert net.cores["n2"].log.last_index == net.cores["n1"].log.last_index == 8


def test_pipeline_falls_back_to_probing_on_rejection_and_on_loss() -> None:
    """A rejection (or a whole heartbeat interval without acknowledgement) turns a pipelined
    follower back to probing from its match index; it then catches up."""
    net = _net(3, max_inflight=4)
    net.tick_all(3)
    net.request("n1", put("x", "1"), "c1", 1)
    net.take(AppendEntries, dst="n2")  # lost
    net.request("n1", put("x", "2"), "c1", 2)
    pr = net.cores["n1"].progress["n2"]
    assert pr.state == "replicate" and len(pr.inflight) == 2
    net.stabilize()  # n2 rejects the second one: it lacks the first
    assert net.cores["n2"].log.last_index == 3 and pr.state == "replicate" and pr.match == 3
    net.request("n1", put("x", "3"), "c1", 3)
    net.take(AppendEntries, dst="n2")  # lost, and nothing follows it
    net.tick("n1", 3)
    net.tick("n1", 3)
    assert pr.state == "probe"
    net.stabilize()
    assert net.cores["n2"].log.last_index == 4


# ------------------------------------------------------------------ options, errors, wire
def test_options_reject_unknown_names_and_bad_values() -> None:
    """Unknown or inconsistent options are caller errors naming the option."""
    with pytest.raises(LocalProtocolError, match="pre_vot"):
        RaftOptions.from_mapping({"pre_vot": True})
    with pytest.raises(LocalProtocolError, match="election_ticks_max"):
        RaftOptions(election_ticks_min=20, election_ticks_max=10)
    with pytest.raises(LocalProtocolError, match="read_mode"):
        RaftOptions(read_mode="leases")
    assert RaftOptions().mutants == ()
    assert RaftOptions(mutant_forget_vote=True).mutants == ("mutant_forget_vote",)


def test_backends_are_registered_with_their_options() -> None:
    """Importing raft registers "raft" (all options off) and "raft-pv-cq"."""
    assert get_backend("raft").options["pre_vote"] is False
    pv = get_backend("raft-pv-cq")
    assert pv.options["pre_vote"] and pv.options["check_quorum"] and pv.invariants is not None


def test_messages_and_durable_records_round_trip_through_the_wire_converter() -> None:
    """Every message and durable record encodes to bytes and back unchanged."""
    request = ClientRequest("c1", 3, put("x", "1"))
    samples = [
        RequestVote(3, 4, 2, pre_vote=True), RequestVoteReply(3, True),
        AppendEntries(3, 4, 2, (Entry(3, request), Entry(3, NOOP_ENTRY)), 4, 7),
        AppendEntriesReply(3, False, 4, 2, 3, 7), TimeoutNow(3),
        InstallSnapshot(3, SnapshotRecord(9, 3, '{"machine": "{}"}')),
        HardState(3, "n2"), HardState(3, None),
    ]
    for msg in samples:
        assert wire.decode(wire.encode(msg)) == msg


def test_caller_and_peer_errors_are_split_by_blame() -> None:
    """Misuse by the caller raises LocalProtocolError; garbage from a peer RemoteProtocolError."""
    core = RaftCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
    with pytest.raises(LocalProtocolError, match="Start"):
        core.step(TICK)
    core.step(Start({}))
    with pytest.raises(LocalProtocolError, match="twice"):
        core.step(Start({}))
    with pytest.raises(RemoteProtocolError, match="this node"):
        core.step(Receive("n1", RequestVote(1, 0, 0)))
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        core.step(Receive("n2", "hello"))
    assert core.step(TICK) is not None  # still serving


@attrs.frozen
class _OddTimeoutNow(TimeoutNow):
    """A message type the handler table has no rule for."""


def test_a_message_with_no_rule_for_the_role_is_a_remote_error_naming_node_role_and_type() -> None:
    core = RaftCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
    core.step(Start({}))
    with pytest.raises(RemoteProtocolError, match=r"raft n1 \(follower\): no rule for _OddTimeoutNow from n2"):
        core.step(Receive("n2", _OddTimeoutNow(0)))


@given(st.sampled_from([FOLLOWER, PRECANDIDATE, CANDIDATE, LEADER]), st.sampled_from(RaftMessage))
def test_every_role_has_a_rule_for_every_message(role: Role, kind: type) -> None:
    """The handler table is total: each (role, message) pair is handled or explicitly ignored."""
    assert (role, kind) in _HANDLERS


def test_a_leader_told_of_a_rival_leader_of_its_own_term_rejects_it() -> None:
    """Election safety seen from the inside: a second leader of our term is a remote protocol error."""
    net = _net()
    term = net.cores["n1"].term
    with pytest.raises(RemoteProtocolError, match="claims to lead term"):
        net.cores["n1"].step(Receive("n2", AppendEntries(term, 0, 0, (), 0)))


def test_restart_ignores_log_entries_beyond_a_hole() -> None:
    """Entries after a hole (a crash kept only part of a truncation) are not part of the log; the
    restart deletes them so they can never resurface."""
    request = ClientRequest("c1", 1, put("x", "1"))
    durable = {HARD_KEY: HardState(2, None), log_key(1): Entry(1, NOOP_ENTRY),
               log_key(3): Entry(1, request)}
    core = RaftCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
    ready = core.step(Start(durable))
    assert core.log.last_index == 1 and core.term == 2
    assert ready.persist == (Write(log_key(3), None),)


def test_single_node_cluster_elects_itself_and_commits_alone() -> None:
    """A cluster of one is its own majority."""
    net = Network(1)
    net.elect("n1")
    (reply,) = net.request("n1", put("x", "1"), "c1", 1)
    assert reply.status == ReplyStatus.OK
    net2 = Network(1, {"read_mode": "read_index"})
    net2.elect("n1")
    (reply,) = net2.request("n1", put("x", "1"), "c1", 1)
    assert reply.status == ReplyStatus.OK


@pytest.mark.parametrize("data", ["not json", "[]", '{"machine": 3}', '{"machine": "{}", "sessions": 7}'])
def test_a_malformed_snapshot_is_a_remote_error_and_the_follower_keeps_serving(data: str) -> None:
    """InstallSnapshot with garbage is dropped and counted; the follower's state is untouched."""
    net = _net()
    net.request("n1", put("k", "v"), "c1", 1)
    net.tick_all(3)  # a heartbeat carries the new commit index to the followers
    leader_term = net.cores["n1"].term
    bad = InstallSnapshot(leader_term, SnapshotRecord(50, leader_term, data), 99)
    net.step("n2", Receive("n1", bad))
    assert net.remote_errors and "bad snapshot" in net.remote_errors[-1]
    assert net.cores["n2"].applier.machine.data == {"k": "v"}
    net.request("n1", put("k", "w"), "c1", 2)
    net.tick_all(3)
    assert net.cores["n2"].applier.machine.data == {"k": "w"}


def test_a_refusal_of_an_older_request_does_not_withdraw_a_granted_vote() -> None:
    """A candidate's RequestVote of term 4 arrives late, after the voter granted its term-5 request: the
    voter's refusal carries term 5, and must not count against the candidate in term 5."""
    net = _net(5)
    net.isolate("n1")
    n3 = net.cores["n3"]
    net.campaign("n3")
    term = n3.term
    n3.votes["n2"] = True
    net.step("n3", Receive("n2", RequestVoteReply(term, False)))
    assert n3.votes["n2"] is True
