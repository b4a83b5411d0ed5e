"""Raft replication, heartbeats, elections and reads, pinned message by message.

Most rules here are about efficiency as much as safety: what a leader sends to
each follower (entries, prev index, commit index, heartbeat round), when it
presumes a message lost, and when a follower's flow-control state switches
between probe and replicate (etcd raft's ``Progress``).  A change that only
costs messages still shows here, because the tests compare the exact messages.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from smr.commands import get, put
from smr.membership import membership_command
from smr.replica import TICK, Receive, ReplicaConfig, ReplyStatus, Role, Send, Start
from smr.sessions import NOOP_ENTRY
from smr.state_machines import KVStore

from smr.bounds import MAX_EPOCH
from smr.errors import LocalProtocolError, RemoteProtocolError

from raft import (AppendEntries, AppendEntriesReply, Entry, HardState, InstallSnapshot, RaftCore, RequestVote,
                  RequestVoteReply, TimeoutNow)
from raft.messages import HARD_KEY, SNAPSHOT_KEY, log_key
from raft.testing import Network


def _core(node: str = "n1", peers: tuple[str, ...] = ("n2", "n3"), **options: object) -> RaftCore:
    core = RaftCore(ReplicaConfig(node, peers, random.Random(0), KVStore, options))
    core.step(Start({}))
    return core


def _leader(size: int = 3, **options: object) -> Network:
    """n1 elected (the no-op at index 1 committed everywhere it could reach), nothing in flight."""
    net = Network(size, options)
    net.elect("n1")
    return net


def _out(net: Network, src: str = "n1") -> list[tuple[str, Any]]:
    """Take the messages ``src`` has in flight, as (destination, message), in the order sent."""
    return [(dst, m) for _, dst, m in net.take(src=src)]


def _sent_kind(ready: Any, kind: type) -> list[Any]:
    return [s.message for s in ready.messages if isinstance(s.message, kind)]


def _shape(m: AppendEntries) -> tuple[int, int, int, int, int, int]:
    """An AppendEntries without its entries' payloads: (term, prev, prev term, entry count, commit, round)."""
    return (m.term, m.prev_index, m.prev_term, len(m.entries), m.commit, m.round)


# ------------------------------------------------------------------ heartbeats
def test_heartbeats_leave_each_interval_with_a_fresh_round_and_the_followers_commit_index() -> None:
    """A leader sends one heartbeat per follower every heartbeat_ticks, numbered by consecutive rounds,
    each carrying prev = the follower's match and commit = min(commit, match); a heartbeat leaves a caught-up
    follower pipelining, so an entry proposed before the heartbeat is answered goes out at once, stamped
    with the round.

    Reference: section 5.2 (heartbeats), thesis 6.4 (rounds), etcd raft progress
    """
    net = _leader()
    leader = net.cores["n1"]
    assert leader.commit_index == 1
    for tick in range(1, 10):
        net.tick("n1")
        sent = _out(net)
        if tick % 3:
            assert sent == []
        else:
            beat = AppendEntries(1, 1, 1, (), 1, tick // 3)
            assert sent == [("n2", beat), ("n3", beat)]
            net.inject((("n1", dst, m) for dst, m in sent))
            net.stabilize()
    net.tick("n1", 3)  # round 4 goes out; its acknowledgements are still on the way
    heartbeats = _out(net)
    assert [_shape(m) for _, m in heartbeats] == [(1, 1, 1, 0, 1, 4)] * 2
    assert all(pr.state == "replicate" for pr in leader.progress.values())
    net.request("n1", put("x", "1"))
    assert [(dst, _shape(m)) for dst, m in _out(net)] == [("n2", (1, 1, 1, 1, 1, 4)), ("n3", (1, 1, 1, 1, 1, 4))]


def test_a_read_heartbeat_to_a_probed_follower_is_empty_and_leaves_the_loss_clock_alone() -> None:
    """A ReadIndex heartbeat sends a follower still being probed an empty AppendEntries at its match
    (prev index 0, prev term 0 for an empty log), not the probe again: only tick-driven heartbeats retry.

    Reference: thesis 6.4 (ReadIndex), section 5.3
    """
    net = Network(3, {"read_mode": "read_index"})
    net.isolate("n3")
    net.elect("n1")
    assert net.cores["n1"].progress["n3"].state == "probe"
    net.request("n1", get("x"), client="r")
    assert sorted(_out(net)) == [("n2", AppendEntries(1, 1, 1, (), 1, 1)),
                                 ("n3", AppendEntries(1, 0, 0, (), 0, 1))]


def test_an_unacknowledged_append_is_presumed_lost_after_one_whole_heartbeat_interval() -> None:
    """With resend_ticks 0, an append still unacknowledged at the first heartbeat after it is not resent
    (that heartbeat is a plain one at the follower's match); at the second, the follower is probed again
    from its match with the missing entry.

    Reference: section 5.3 (retry), etcd raft progress
    """
    net = _leader()
    net.tick_all(3)
    net.cut("n1", "n3")
    net.request("n1", put("x", "1"))
    net.stabilize()  # n2 acknowledges; the append to n3 is lost
    leader = net.cores["n1"]
    assert leader.commit_index == 2 and leader.progress["n3"].match == 1
    net.tick("n1", 3)
    assert [(dst, _shape(m)) for dst, m in _out(net)] == [("n2", (1, 2, 1, 0, 2, 2)), ("n3", (1, 1, 1, 0, 1, 2))]
    assert leader.progress["n3"].state == "replicate"
    net.tick("n1", 3)
    sent = dict(_out(net))
    assert _shape(sent["n3"]) == (1, 1, 1, 1, 2, 3) and sent["n3"].entries[0].request.command == put("x", "1")
    assert leader.progress["n3"].state == "probe"


# ------------------------------------------------------------------ leader timers
def test_check_quorum_leader_steps_down_at_the_end_of_the_second_silent_election_timeout() -> None:
    """A check-quorum leader counts its followers every election_ticks_min ticks; cut off right after
    winning, it passes the first count (they answered its election) and steps down exactly at the second.

    Reference: thesis 6.2
    """
    net = _leader(check_quorum=True)
    net.isolate("n1")
    leader = net.cores["n1"]
    ticks = 0
    while leader.role == Role.LEADER:
        net.tick("n1")
        ticks += 1
    assert ticks == 2 * leader.opts.election_ticks_min


def test_a_leadership_transfer_that_cannot_finish_is_abandoned_after_election_ticks_min() -> None:
    """While a transfer is on, the leader redirects clients; a transfer whose target never catches up is
    abandoned exactly election_ticks_min ticks after it began, and the leader takes requests again.

    Reference: thesis 3.10
    """
    net = _leader(leadership_transfer=True)
    net.cut("n1", "n3")
    net.request("n1", put("x", "1"))
    net.stabilize()
    leader = net.cores["n1"]
    leader.transfer_leadership("n3")  # its catch-up probe to n3 would be lost anyway: n3 is cut off
    for seq in range(1, leader.opts.election_ticks_min):
        net.tick("n1")
        net.in_flight.clear()
        (reply,) = net.request("n1", put("y", str(seq)), client="w", seq=seq)
        assert reply.status == ReplyStatus.REDIRECT and reply.leader == "n3"
    net.tick("n1")
    net.in_flight.clear()
    assert net.request("n1", put("y", "last"), client="w", seq=99) == []
    assert leader.transferee is None and leader.log.last_index == 3


# ------------------------------------------------------------------ roles
def test_a_follower_that_learns_a_newer_term_from_a_reply_restarts_its_election_timer() -> None:
    """A follower that adopts a newer term from any message (here a late vote reply) draws a new election
    timeout and starts it over, so it does not campaign at the next tick.

    Reference: section 5.1, Figure 2 (convert to follower)
    """
    core = _core()
    while core.election_elapsed < core.randomized_timeout - 1:
        core.step(TICK)
    core.step(Receive("n2", RequestVoteReply(3, False)))
    assert (core.term, core.role, core.leader) == (3, Role.FOLLOWER, None)  # a reply names no leader
    for _ in range(core.opts.election_ticks_min - 1):
        core.step(TICK)
    assert core.role == Role.FOLLOWER and core.term == 3


def test_a_follower_times_out_exactly_one_election_timeout_after_the_last_append() -> None:
    """Hearing the leader restarts the follower's election timer from zero: it campaigns exactly
    randomized_timeout ticks after the last AppendEntries, not a tick sooner.

    Reference: section 5.2
    """
    core = _core()
    core.step(Receive("n2", AppendEntries(1, 0, 0, (), 0)))
    for _ in range(core.randomized_timeout - 1):
        core.step(TICK)
    assert core.role == Role.FOLLOWER
    core.step(TICK)
    assert core.role == Role.CANDIDATE and core.term == 2


def test_a_deposed_leader_redirects_the_clients_it_was_serving() -> None:
    """A leader that learns of a newer term becomes a follower and answers its pending requests with a
    redirect (their entries may never commit), and forgets its followers' progress.

    Reference: section 5.1; thesis 6.2 (client interaction)
    """
    net = _leader()
    net.isolate("n1")
    net.request("n1", put("x", "1"))
    assert net.replies_to("c1", 1) == []
    net.step("n1", Receive("n2", AppendEntriesReply(5, False, 0)))
    leader = net.cores["n1"]
    assert (leader.role, leader.term, leader.progress) == (Role.FOLLOWER, 5, {})
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.REDIRECT]


def test_a_timeout_now_that_brings_a_newer_term_is_obeyed() -> None:
    """A TimeoutNow of a newer term makes its sender this follower's leader in that term first, so the
    follower campaigns at once, skipping pre-vote.

    Reference: thesis 3.10
    """
    net = _leader(leadership_transfer=True, pre_vote=True)
    net.step("n2", Receive("n1", TimeoutNow(2)))
    n2 = net.cores["n2"]
    assert (n2.role, n2.term, n2.voted_for) == (Role.CANDIDATE, 3, "n2")
    assert {dst for dst, m in _out(net, "n2") if isinstance(m, RequestVote) and not m.pre_vote} == {"n1", "n3"}


def test_a_follower_drops_an_append_reply_it_cannot_use_without_judging_it() -> None:
    """An AppendEntries reply reaching a follower (of the same term) is dropped: only a leader of that term
    checks a reply against what it sent, so a follower records no peer error for it."""
    net = _leader()
    ready = net.step("n2", Receive("n3", AppendEntriesReply(1, True, 999, round=50)))
    assert net.remote_errors == [] and not ready.messages
    assert net.cores["n2"].role == Role.FOLLOWER and net.cores["n2"].log.last_index == 1


# ------------------------------------------------------------------ votes
def test_a_rejoining_node_refuses_a_pre_vote_with_a_pre_vote_reply() -> None:
    """A node rejoining from an emptied directory grants nothing until it holds its removal; it still
    answers a pre-vote with a pre-vote refusal (so the candidate counts it in its pre-vote tally).

    Reference: thesis 9.6, 4.2
    """
    net = _leader(pre_vote=True)
    net.wipe("n3", rejoin_after=100)
    ready = net.step("n3", Receive("n2", RequestVote(2, 1, 1, pre_vote=True)))
    assert ready.messages == (Send("n2", RequestVoteReply(0, False, pre_vote=True)),)
    net.tick("n3", 3 * net.cores["n3"].opts.election_ticks_max)  # nor does it campaign
    assert (net.cores["n3"].role, net.cores["n3"].term) == (Role.FOLLOWER, 0)


def test_a_pre_vote_for_our_own_term_is_refused() -> None:
    """A pre-vote is granted only for a term above ours: a candidate a term behind us (pre-voting for the
    term we are in) is refused with our term.

    Reference: thesis 9.6
    """
    core = _core(pre_vote=True)
    core.step(Receive("n3", AppendEntriesReply(2, False, 0)))  # a newer term, no leader known
    assert (core.term, core.leader) == (2, None)
    ready = core.step(Receive("n2", RequestVote(2, 0, 0, pre_vote=True)))
    assert ready.messages == (Send("n2", RequestVoteReply(2, False, pre_vote=True)),)
    ready = core.step(Receive("n2", RequestVote(3, 0, 0, pre_vote=True)))
    assert ready.messages == (Send("n2", RequestVoteReply(3, True, pre_vote=True)),)


# ------------------------------------------------------------------ follower replies
def test_a_follower_echoes_the_round_in_every_kind_of_append_reply() -> None:
    """Every AppendEntries reply echoes the message's round: an acceptance, an acceptance of a message
    below our commit index (success at our commit index), and a rejection with its back-off hint.

    Reference: section 5.3; thesis 6.4 (ReadIndex rounds)
    """
    core = _core("n2", ("n1", "n3"))
    ready = core.step(Receive("n1", AppendEntries(1, 0, 0, (Entry(1, NOOP_ENTRY), Entry(1, NOOP_ENTRY)), 2, 3)))
    assert ready.messages == (Send("n1", AppendEntriesReply(1, True, 2, round=3)),)
    assert core.commit_index == 2
    ready = core.step(Receive("n1", AppendEntries(1, 1, 1, (), 2, 4)))
    assert ready.messages == (Send("n1", AppendEntriesReply(1, True, 2, round=4)),)
    ready = core.step(Receive("n1", AppendEntries(1, 5, 1, (), 2, 5)))
    assert ready.messages == (Send("n1", AppendEntriesReply(1, False, 5, 0, 3, round=5)),)


def _ask(net: Network, kind: str, *args: object, seq: int = 1) -> None:
    """Ask n1 for a membership change (answered later, once it commits)."""
    net.request("n1", membership_command(kind, *args), client="admin", seq=seq)


# ------------------------------------------------------------------ probe and replicate
def test_a_new_member_whose_first_probe_is_lost_is_probed_again_at_the_next_heartbeat() -> None:
    """The empty probe a new member gets at once is retried, still empty and at the leader's last index,
    by the next tick-driven heartbeat: a probed follower always hears something each interval.

    Reference: thesis section 4.2.1; etcd raft progress (probe)
    """
    net = _leader()
    net.tick_all(3)
    net.join("n4")
    net.isolate("n4")
    _ask(net, "add_learner", "n4", "")
    net.stabilize()
    last = net.cores["n1"].log.last_index
    for _ in range(2):
        net.tick("n1")
        assert [m for dst, m in _out(net) if dst == "n4"] == []
    net.tick("n1")
    (probe,) = [m for dst, m in _out(net) if dst == "n4"]
    assert (probe.prev_index, probe.prev_term, probe.entries) == (last, 1, ())


def test_a_probe_is_answered_by_pipelining_once_the_follower_confirms_the_probed_prefix() -> None:
    """A probed follower whose acknowledgement reaches exactly the entry before ``next`` (here a heartbeat
    answer at its match) switches to replicate and gets the missing entry at once; a success short of that
    (an answer to something older) leaves it probing, with nothing sent.

    Reference: section 5.3; etcd raft progress (probe -> replicate)
    """
    net = _leader()
    net.tick_all(3)
    net.cut("n1", "n3")
    net.request("n1", put("x", "1"))
    net.stabilize()
    net.tick("n1", 6)  # the append to n3 is presumed lost: n3 is probed from its match (lost again)
    _out(net)
    pr = net.cores["n1"].progress["n3"]
    assert (pr.state, pr.next, pr.match, pr.probe_sent) == ("probe", 2, 1, True)
    net.step("n1", Receive("n3", AppendEntriesReply(1, True, 1, round=3)))
    assert pr.state == "replicate"
    (append,) = _out(net)
    assert append[0] == "n3" and _shape(append[1]) == (1, 1, 1, 1, 2, 3)

    # a new leader probes at its last index; a success acknowledging two entries short keeps it probing
    net = _leader()
    net.request("n1", put("x", "1"))
    net.settle()
    net.campaign("n2")
    n2 = net.cores["n2"]
    while n2.role != Role.LEADER:
        net.deliver(0)
    held = net.take(src="n2")  # its first probes, at prev 2, are still on the way
    pr = n2.progress["n3"]
    assert (n2.log.last_index, pr.state, pr.next, pr.probe_sent) == (3, "probe", 3, True)
    ready = net.step("n2", Receive("n3", AppendEntriesReply(2, True, 1, round=0)))
    assert (pr.state, pr.match) == ("probe", 1) and not ready.all_messages
    net.inject(held)
    net.settle()
    assert pr.state == "replicate" and pr.match == 3


def test_a_stale_rejection_changes_nothing() -> None:
    """A rejection of a prev index at or below what the follower already acknowledged answers an older
    message: the leader neither falls back to probing nor sends anything.

    Reference: section 5.3; etcd raft progress (stale rejections)
    """
    net = _leader()
    net.tick_all(3)
    pr = net.cores["n1"].progress["n2"]
    assert (pr.state, pr.match) == ("replicate", 1)
    ready = net.step("n1", Receive("n2", AppendEntriesReply(1, False, 1, 0, 1, round=1)))
    assert not ready.all_messages and (pr.state, pr.next, pr.match) == ("replicate", 2, 1)


def test_an_acknowledgement_past_next_moves_next_just_past_the_match() -> None:
    """A success reply acknowledging entries beyond ``next`` (however the follower came to hold them)
    moves ``next`` to just past the new match, so the next append carries exactly the entries after it.

    Reference: section 5.3; etcd raft progress (MaybeUpdate)
    """
    net = _leader(max_inflight=1)
    net.tick_all(3)
    for seq in (1, 2, 3):
        net.request("n1", put("x", str(seq)), seq=seq)  # index 2 goes out; 3 and 4 wait for the window
    _out(net)
    pr = net.cores["n1"].progress["n2"]
    assert (pr.next, pr.match, len(pr.inflight)) == (3, 1, 1)
    net.step("n1", Receive("n2", AppendEntriesReply(1, True, 3, round=1)))
    (append,) = _out(net)
    assert append[0] == "n2" and _shape(append[1]) == (1, 3, 1, 1, 3, 1)
    assert append[1].entries[0].request.command == put("x", "3") and (pr.next, pr.match) == (5, 3)


def test_a_byte_bounded_batch_advances_next_by_what_it_carried() -> None:
    """When max_batch_bytes cuts an append short, ``next`` advances past the entries it carried only,
    so the pipelined appends to a follower cover consecutive indexes, each entry sent exactly once.

    Reference: etcd raft (MaxSizePerMsg, pipelining)
    """
    net = _leader(max_inflight=2, max_batch_bytes=256)
    net.tick_all(3)
    net.cut("n1", "n3")
    for seq in range(1, 5):
        net.request("n1", put("k", "v" * 300), seq=seq)  # each entry alone is over the byte bound
    prevs = []
    while net.in_flight:
        src, dst, m = net.in_flight[0]
        if (src, dst) == ("n1", "n2") and isinstance(m, AppendEntries):
            prevs.append((m.prev_index, len(m.entries)))
        net.deliver(0)
    assert prevs == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert net.cores["n2"].log.last_index == 5


# ------------------------------------------------------------------ snapshots in flight
def _snapshot_in_flight() -> tuple[Network, RaftCore]:
    """n3 missed a compacted prefix; its first snapshot chunk arrived and the second (offset 256) is lost."""
    net = _leader(snapshot_every=2, snapshot_chunk_bytes=256)
    net.tick_all(3)
    net.cut("n1", "n3")
    for seq in range(1, 8):
        net.request("n1", put(f"k{seq}", "v" * 100), seq=seq)
        net.stabilize()
    net.recover()
    net.tick("n1", 3)
    while not any(isinstance(m, InstallSnapshot) and m.offset for _, _, m in net.in_flight):
        net.deliver(0)
    net.in_flight.clear()
    net.cut("n1", "n3")
    leader = net.cores["n1"]
    pr = leader.progress["n3"]
    assert (pr.state, pr.match, pr.next, pr.snapshot_offset) == ("snapshot", 1, 2, 256)
    return net, leader


def test_a_snapshot_chunk_is_presumed_lost_after_election_ticks_min_and_resent_from_its_offset() -> None:
    """While a snapshot travels the follower gets plain heartbeats (at the snapshot index); a chunk left
    unanswered for election_ticks_min ticks (five heartbeat intervals of 3) is resent from its own offset.

    Reference: section 7; thesis 5.4.1 (chunked snapshots)
    """
    net, leader = _snapshot_in_flight()
    kinds = []
    for _ in range(18):
        net.tick("n1")
        for dst, m in _out(net):
            if dst == "n3":
                kinds.append((leader.lead_ticks, type(m).__name__,
                              m.offset if isinstance(m, InstallSnapshot) else m.prev_index))
        net.stabilize()
    start = kinds[0][0] - 3
    assert [(t - start, kind, at) for t, kind, at in kinds] == [
        (3, "AppendEntries", 8), (6, "AppendEntries", 8), (9, "AppendEntries", 8), (12, "AppendEntries", 8),
        (15, "InstallSnapshot", 256), (18, "AppendEntries", 8)]


def test_a_late_acknowledgement_below_the_snapshot_leaves_the_snapshot_in_flight() -> None:
    """A success reply for the follower's old match while its snapshot travels changes nothing: the leader
    keeps waiting for the snapshot and does not start it over.

    Reference: section 7
    """
    net, leader = _snapshot_in_flight()
    ready = net.step("n1", Receive("n3", AppendEntriesReply(1, True, 1, round=1)))
    assert not ready.all_messages and leader.progress["n3"].state == "snapshot"


# ------------------------------------------------------------------ reads
LEASE: dict[str, Any] = {"read_mode": "lease", "election_ticks_min": 5, "election_ticks_max": 10, "heartbeat_ticks": 3,
         "max_clock_drift": 0}


def test_an_acknowledged_round_extends_the_lease_at_once_and_it_ends_exactly_on_time() -> None:
    """The lease runs from the start of the latest round a quorum acknowledged, extended as soon as the
    acknowledgement arrives (not at the next heartbeat): a lease of 4 ticks with heartbeats every 3 never
    lapses while followers answer; cut off, the leader reads locally until exactly 4 ticks after the start
    of the last acknowledged round.

    Reference: thesis 6.4.1
    """
    net = _leader(**LEASE)
    net.tick("n1", 2)  # the first heartbeat round starts at tick 3: no lease before it
    seq = 0
    for _ in range(7):
        net.tick("n1")
        net.stabilize()
        seq += 1
        assert [r.status for r in net.request("n1", get("x"), client="r", seq=seq)] == [ReplyStatus.OK]
        assert not net.in_flight
    leader = net.cores["n1"]
    assert leader.lead_ticks == 9  # round 3 started at 9 and was acknowledged
    net.isolate("n1")
    for tick in range(10, 14):
        net.tick("n1")
        net.in_flight.clear()
        seq += 1
        local = net.request("n1", get("x"), client="r", seq=seq)
        assert [r.status for r in local] == ([ReplyStatus.OK] if tick < 13 else []), tick


def test_a_confirmed_read_is_answered_even_while_a_later_read_waits_for_its_round() -> None:
    """ReadIndex reads confirmed by a quorum's acknowledgement of their round are answered at once, even
    when a later read (a later round) is still unconfirmed.

    Reference: thesis 6.4
    """
    net = _leader(read_mode="read_index")
    net.tick_all(3)
    net.request("n1", get("x"), client="r", seq=1)
    first = net.take(src="n1")
    net.request("n1", get("x"), client="r", seq=2)
    second = net.take(src="n1")
    assert {m.round for _, _, m in first} == {2} and {m.round for _, _, m in second} == {3}
    net.inject(first[:1])
    net.deliver(0)  # n2 takes round 2
    net.deliver(0)  # n2's acknowledgement: with n1, a quorum for the first read
    assert [r.status for r in net.replies_to("r", 1)] == [ReplyStatus.OK]
    assert net.replies_to("r", 2) == []


# ------------------------------------------------------------------ membership entries in appends
def _deliver_only(net: Network, dst: str) -> None:
    """Deliver what n1 has in flight to ``dst``; lose everything else, the answers included."""
    messages = net.take(src="n1", dst=dst)
    net.in_flight.clear()
    net.inject(messages)
    while net.in_flight and net.in_flight[0][0] == "n1":
        net.deliver(0)
    net.in_flight.clear()


def test_a_follower_whose_uncommitted_change_is_overwritten_returns_to_the_previous_configuration() -> None:
    """A membership change takes effect when appended; when a new leader's entry overwrites it (same index,
    no growth of the log), the follower recomputes its configuration without it.

    Reference: thesis 4.1 (the latest configuration in the log, committed or not, is in effect)
    """
    net = _leader(5)
    net.tick_all(3)
    for node in ("n2", "n4", "n5"):
        net.cut("n1", node)
    _ask(net, "remove", "n5")
    _deliver_only(net, "n3")  # the change reaches n3 alone; its acknowledgement is lost
    n3 = net.cores["n3"]
    assert n3.log.last_index == 2 and "n5" not in n3.membership.voters
    net.isolate("n1")
    net.cut("n2", "n3")
    net.campaign("n2")
    net.settle()
    assert net.cores["n2"].role == Role.LEADER and net.cores["n2"].log.last_index == 2
    net.recover()
    net.isolate("n1")
    net.tick("n2", 3)  # a heartbeat probes n3 again
    net.settle()
    assert n3.log.last_index == 2 and n3.log.term_at(2) == 2
    assert n3.membership.voters == ("n1", "n2", "n3", "n4", "n5")


def _removal_only_n4_received(**options: object) -> Network:
    """Four nodes, n1 leading; n1 appends the removal of n4, which reaches n4 alone (its acknowledgement
    is lost), then n1 crashes."""
    net = _leader(4, **options)
    net.request("n1", put("x", "1"))
    net.settle()
    net.tick_all(3)
    net.cut("n1", "n2")
    net.cut("n1", "n3")
    _ask(net, "remove", "n4")
    _deliver_only(net, "n4")
    n4 = net.cores["n4"]
    assert (n4.log.last_index, n4.commit_index, n4.membership.voters) == (3, 2, ("n1", "n2", "n3"))
    net.crash("n1")
    return net


def _a_leader_emerges(net: Network, ticks: int = 300) -> bool:
    """Tick every node once at a time, up to ``ticks`` times, until there is a leader."""
    for _ in range(ticks):
        net.tick_all(1)
        if net.leader() is not None:
            return True
    return False


def test_a_follower_holding_its_own_uncommitted_removal_campaigns_to_finish_it() -> None:
    """A voter removed by a change only it received (the leader then lost) still campaigns, counting votes
    in the new configuration, so the others, which cannot win without its vote, get a leader.

    Reference: thesis 4.2.2
    """
    net = _removal_only_n4_received()
    net.recover()
    assert _a_leader_emerges(net)


def test_a_restarted_follower_holding_its_own_uncommitted_removal_still_campaigns() -> None:
    """As above, after a restart from a snapshot: the configuration recomputed at boot still marks the
    removal uncommitted, so the removed voter campaigns and the cluster gets a leader.

    Reference: thesis 4.2.2
    """
    net = _removal_only_n4_received(snapshot_every=1)
    net.restart("n4")
    n4 = net.cores["n4"]
    assert (n4.log.snapshot_index, n4.log.last_index, n4.membership.voters) == (2, 3, ("n1", "n2", "n3"))
    net.recover()
    assert _a_leader_emerges(net)


def test_a_new_leader_finishes_a_joint_change_it_received_as_a_follower() -> None:
    """A follower that received a joint change (alone in an append) and then wins an election leaves the
    joint configuration as soon as its own term commits, without waiting for any client write.

    Reference: thesis 4.3
    """
    net = _leader(4)
    net.request("n1", put("x", "1"))
    net.settle()
    net.tick_all(3)
    _ask(net, "set", ["n2", "n3"], [])
    messages = net.take(src="n1")
    assert all(len(m.entries) == 1 for _, _, m in messages)
    net.inject(messages)
    for _ in messages:
        net.deliver(0)
    net.crash("n1")  # before any acknowledgement: the joint entry is uncommitted
    net.in_flight.clear()
    n2 = net.cores["n2"]
    assert n2.membership.joint and n2.log.last_index == 3
    net.elect("n2")
    net.tick_all(3)
    assert not n2.membership.joint and n2.membership.voters == ("n2", "n3")
    assert n2.log.last_index == 5


# ------------------------------------------------------------------ elections and new leaders
def test_a_stale_leader_is_answered_with_our_term_and_its_round() -> None:
    """An AppendEntries of an older term is refused with our term, echoing the message's prev index and
    round, so the stale leader steps down.

    Reference: section 5.1
    """
    core = _core("n2", ("n1", "n3"))
    core.step(Receive("n3", AppendEntries(2, 0, 0, (), 0)))
    ready = core.step(Receive("n1", AppendEntries(1, 0, 0, (), 0, 7)))
    assert ready.messages == (Send("n1", AppendEntriesReply(2, False, 0, round=7)),)


def test_no_campaign_past_the_last_term() -> None:
    """A server at the largest term a peer accepts never campaigns: it could not ask for votes.

    Reference: section 5.2 (terms), smr.bounds.MAX_EPOCH
    """
    core = RaftCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
    core.step(Start({HARD_KEY: HardState(MAX_EPOCH, None)}))
    for _ in range(3 * core.opts.election_ticks_max):
        ready = core.step(TICK)
        assert not _sent_kind(ready, RequestVote)
    assert (core.role, core.term) == (Role.FOLLOWER, MAX_EPOCH)


def test_a_candidate_hears_no_leader_so_a_newer_candidate_is_not_ignored_under_check_quorum() -> None:
    """A candidate knows no leader, so check-quorum (which ignores votes only while a live leader is heard)
    does not stop it from adopting a newer candidate's term and voting for it.

    Reference: thesis 6.2
    """
    core = _core(check_quorum=True)
    while core.role != Role.CANDIDATE:
        core.step(TICK)
    assert (core.term, core.leader) == (1, None)
    ready = core.step(Receive("n3", RequestVote(2, 0, 0)))
    assert ready.messages == (Send("n3", RequestVoteReply(2, True)),)


def test_a_new_leader_recognizes_a_retry_of_an_uncommitted_entry_in_its_log() -> None:
    """A new leader indexes the client entries after its commit index, so a client's retry of a request
    already in its log (uncommitted) is answered when that entry commits instead of being appended again.

    Reference: thesis 6.3 (client sessions)
    """
    net = _leader()
    net.tick_all(3)
    net.request("n1", put("x", "1"), client="c", seq=1)
    for _, dst, m in net.take(src="n1"):
        if dst == "n2":
            net.step("n2", Receive("n1", m))  # n2 stores it; nobody hears that it did
    net.in_flight.clear()
    net.crash("n1")
    net.campaign("n2")
    n2 = net.cores["n2"]
    while n2.role != Role.LEADER:
        net.deliver(0)
    assert (n2.log.last_index, n2.commit_index) == (3, 1)
    assert net.request("n2", put("x", "1"), client="c", seq=1) == []
    assert n2.log.last_index == 3  # not appended again
    net.settle()
    assert [r.status for r in net.replies_to("c", 1)] == [ReplyStatus.OK]
    assert n2.log.last_index == 3


def test_a_lease_starts_with_the_election_and_lasts_until_its_first_round() -> None:
    """Winning the election is the lease's first confirmation (round 0 starts at lead tick 0): cut off at
    once, the leader reads locally after its first heartbeat (tick 3) and no longer at tick 4 (a lease of 4).

    Reference: thesis 6.4.1
    """
    net = _leader(**LEASE)
    net.isolate("n1")
    net.tick("n1", 3)
    net.in_flight.clear()
    assert [r.status for r in net.request("n1", get("x"), client="r", seq=1)] == [ReplyStatus.OK]
    net.tick("n1")
    assert net.request("n1", get("x"), client="r", seq=2) == []


def test_a_learner_never_campaigns_even_with_a_change_pending() -> None:
    """A learner holding an uncommitted change (its own addition) never campaigns when it stops hearing the
    leader: only voters, or a voter the pending change removes, do.

    Reference: thesis 4.2.1
    """
    net = _leader()
    net.tick_all(3)
    net.join("n4")
    net.cut("n1", "n2")
    net.cut("n1", "n3")
    _ask(net, "add_learner", "n4", "")
    net.stabilize()  # n4 catches up with n1; the change cannot commit without n2 or n3
    n4 = net.cores["n4"]
    assert (n4.log.last_index, n4.commit_index, n4.membership.learners) == (2, 1, ("n4",))
    net.isolate("n4")
    net.tick("n4", 3 * n4.opts.election_ticks_max)
    assert (n4.role, n4.term) == (Role.FOLLOWER, 1)
    assert net.take(src="n4") == []


def test_a_new_leader_keeps_the_log_clock_of_its_last_entry() -> None:
    """A new leader's clock starts at the time stamped on its last entry, even when that entry is the only
    one after its snapshot and not yet applied, so stamps never decrease along the log.

    Reference: smr.log_core (log time)
    """
    net = _leader(snapshot_every=1)
    net.tick_all(30)
    net.request("n1", put("x", "1"), client="c", seq=1)
    for _, dst, m in net.take(src="n1"):
        if dst == "n2":
            net.step("n2", Receive("n1", m))
    net.in_flight.clear()
    net.crash("n1")
    n2 = net.cores["n2"]
    assert (n2.log.snapshot_index, n2.log.last_index) == (1, 2)
    stamped = n2.log.entry(2).request.time
    assert stamped > 0
    net.campaign("n2")
    while n2.role != Role.LEADER:
        net.deliver(0)
    noop = n2.log.entry(3).request
    assert noop.command == NOOP_ENTRY.command and noop.time >= stamped


# ------------------------------------------------------------------ start
def test_a_rejoining_node_persists_its_starting_term_and_a_bad_durable_record_is_named() -> None:
    """A node rejoining from an emptied directory starts at its rejoin epoch and writes that term (no vote)
    in the Ready of its Start; a durable hard state of the wrong type is a LocalProtocolError naming it.

    Reference: section 5.1 (persistent state)
    """
    core = RaftCore(ReplicaConfig("n3", ("n1", "n2"), random.Random(0), KVStore, {}, rejoin_after=9,
                                  rejoin_epoch=5))
    ready = core.step(Start({}))
    assert core.term == 5 and [w.value for w in ready.persist if w.key == HARD_KEY] == [HardState(5, None)]
    core = RaftCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
    with pytest.raises(LocalProtocolError, match=f"raft n1: durable {HARD_KEY} holds 'junk'"):
        core.step(Start({HARD_KEY: "junk"}))


def test_an_impossible_message_is_a_remote_error_naming_node_type_sender_and_problem() -> None:
    """A message no correct peer could send is refused with a RemoteProtocolError that says which node got
    what kind of message from whom, and why it is impossible."""
    core = _core()
    with pytest.raises(RemoteProtocolError, match="raft n1: impossible AppendEntries from n2: term"):
        core.step(Receive("n2", AppendEntries(MAX_EPOCH + 1, 0, 0, (), 0)))


def test_a_restart_keeps_the_snapshot_and_every_entry_after_it() -> None:
    """Restarting from durable state restores the snapshot (kept, to send to lagging followers) and the log
    entries after it, even when the entry at the snapshot's own index is still on disk; a snapshot or log
    record of the wrong type is a LocalProtocolError naming its key.

    Reference: section 7
    """
    net = _leader(snapshot_every=2)
    for seq in (1, 2, 3):
        net.request("n1", put("x", str(seq)), seq=seq)
        net.settle()
    durable = dict(net.durable["n2"])
    snap, last = durable[SNAPSHOT_KEY], net.cores["n2"].log.last_index
    assert last > snap.index
    durable[log_key(snap.index)] = Entry(snap.term, NOOP_ENTRY)  # compacted, its delete lost in a crash
    core = RaftCore(ReplicaConfig("n2", ("n1", "n3"), random.Random(0), KVStore, {"snapshot_every": 2}))
    core.step(Start(durable))
    assert core.snapshot == snap and (core.log.snapshot_index, core.log.last_index) == (snap.index, last)
    for key in (SNAPSHOT_KEY, log_key(1)):
        core = RaftCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
        with pytest.raises(LocalProtocolError, match=f"raft n1: durable {key} holds 'junk'"):
            core.step(Start({key: "junk"}))


def test_a_restarted_node_recomputes_its_configuration_from_every_change_in_its_log() -> None:
    """After a restart without a snapshot, the configuration in effect folds every change in the log into the
    initial one (here a joint change and the entry leaving it, followed by a write).

    Reference: thesis 4.1, 4.3
    """
    net = _leader(4)
    _ask(net, "set", ["n1", "n2"], [])
    net.settle()
    net.request("n1", put("x", "1"))
    net.settle()
    assert net.cores["n2"].log.last_index == 4 and net.cores["n2"].membership.voters == ("n1", "n2")
    net.restart("n2")
    n2 = net.cores["n2"]
    assert n2.last_applied == 0 and n2.membership.voters == ("n1", "n2") and not n2.membership.joint


def test_a_fresh_server_times_out_exactly_at_its_drawn_election_timeout() -> None:
    """A server's election timer starts from zero at boot: it campaigns on exactly the randomized_timeout-th
    tick.

    Reference: section 5.2
    """
    core = _core()
    for _ in range(core.randomized_timeout - 1):
        core.step(TICK)
    assert core.role == Role.FOLLOWER
    core.step(TICK)
    assert core.role == Role.CANDIDATE
