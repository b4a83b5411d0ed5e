"""Raft as the paper states it: one test per claim of sections 5.1-5.4, 7 and 8.

Every test drives real :class:`raft.RaftCore` instances through the
in-memory :class:`raft.testing.Network`, which runs the Raft invariants after
every step and keeps each node's durable state across restarts.
"""

from __future__ import annotations

import random

from smr.commands import get, put
from smr.replica import TICK, ClientRequest, Receive, ReplicaConfig, ReplyStatus, Start
from smr.sessions import NOOP_ENTRY
from smr.state_machines import KVStore
from smr.testing import unstamped

from raft import (AppendEntries, AppendEntriesReply, Entry, HardState, RaftCore,
                  RequestVote, RequestVoteReply, SnapshotRecord)
from raft.messages import HARD_KEY, SNAPSHOT_KEY, log_key
from raft.testing import Network


def _core(node: str = "n1", peers: tuple[str, ...] = ("n2", "n3"), seed: int = 0, **options: object) -> RaftCore:
    core = RaftCore(ReplicaConfig(node, peers, random.Random(seed), KVStore, options))
    core.step(Start({}))
    return core


def _sent(ready, kind: type) -> list:
    return [s for s in ready.messages if isinstance(s.message, kind)]


def _elected(size: int = 3, leader: str = "n1", **options: object) -> Network:
    net = Network(size, options)
    net.elect(leader)
    net.tick_all(net.cores[leader].opts.heartbeat_ticks)  # followers learn the commit index
    return net


# ------------------------------------------------------------------ 5.1 basics
def test_server_adopts_larger_term_and_reverts_to_follower() -> None:
    """A server that sees a larger term updates its term; a leader or candidate becomes follower.

    Reference: section 5.1
    """
    net = _elected()
    leader = net.cores["n1"]
    ready = net.step("n1", Receive("n2", AppendEntriesReply(term=7, success=False, index=0)))
    assert (leader.role, leader.term, leader.voted_for) == ("follower", 7, None)
    assert HardState(7, None) in [w.value for w in ready.persist]


def test_request_with_stale_term_is_rejected() -> None:
    """A request with a stale term is rejected, and the reply carries the newer term.

    Reference: section 5.1
    """
    net = _elected()
    net.cores["n2"].term = 5  # n2 moved on (e.g. it heard a later election)
    ready = net.step("n2", Receive("n1", AppendEntries(1, 0, 0, (), 0)))
    (reply,) = _sent(ready, AppendEntriesReply)
    assert reply.message.term == 5 and not reply.message.success
    net.stabilize()
    assert net.cores["n1"].role == "follower" and net.cores["n1"].term == 5


# ------------------------------------------------------------------ 5.2 leader election
def test_follower_times_out_and_starts_election() -> None:
    """A follower that hears nothing for an election timeout increments its term, votes for itself
    and asks every other server for its vote.

    Reference: section 5.2
    """
    core = _core()
    ready = None
    for _ in range(core.opts.election_ticks_max):
        ready = core.step(TICK)
        if core.role != "follower":
            break
    assert core.role == "candidate" and core.term == 1 and core.voted_for == "n1"
    assert sorted(s.dst for s in _sent(ready, RequestVote)) == ["n2", "n3"]
    assert ready.persist[0].value == HardState(1, "n1")


def test_election_timeouts_are_randomized_per_election() -> None:
    """Election timeouts are drawn at random from a fixed range, per election, from the node's rng.

    Reference: section 5.2
    """
    core = _core(election_ticks_min=10, election_ticks_max=40)
    draws = set()
    for _ in range(30):
        core._reset_election_timer()
        draws.add(core.randomized_timeout)
    assert min(draws) >= 10 and max(draws) <= 40 and len(draws) > 5
    # the same seed gives the same draws: no global random
    a, b = _core(seed=3), _core(seed=3)
    assert a.randomized_timeout == b.randomized_timeout


def test_candidate_with_majority_becomes_leader_and_asserts_authority() -> None:
    """A candidate that wins votes from a majority becomes leader and sends heartbeats to all.

    Reference: section 5.2
    """
    net = Network(5)
    net.campaign("n1")
    for _ in range(4):  # deliver the four RequestVotes
        net.deliver(0)
    assert net.cores["n1"].role == "candidate"
    net.deliver(0)
    net.deliver(0)  # two grants + its own vote = 3 of 5
    assert net.cores["n1"].role == "leader"
    assert {dst for src, dst, m in net.in_flight if isinstance(m, AppendEntries)} == {"n2", "n3", "n4", "n5"}


def test_each_server_votes_for_at_most_one_candidate_per_term() -> None:
    """First come, first served: a server grants at most one vote per term.

    Reference: section 5.2
    """
    core = _core(peers=("n2", "n3", "n4", "n5"))
    r1 = core.step(Receive("n2", RequestVote(1, 0, 0)))
    r2 = core.step(Receive("n3", RequestVote(1, 0, 0)))
    assert _sent(r1, RequestVoteReply)[0].message.granted
    assert not _sent(r2, RequestVoteReply)[0].message.granted
    # asking again for the same candidate is answered the same way (a retried RPC)
    r3 = core.step(Receive("n2", RequestVote(1, 0, 0)))
    assert _sent(r3, RequestVoteReply)[0].message.granted


def test_vote_is_persisted_in_the_same_ready_as_the_reply() -> None:
    """Term and vote reach stable storage before the vote reply leaves (same Ready, persist first).

    Reference: section 5.2 (Figure 2, "Persistent state on all servers")
    """
    core = _core()
    ready = core.step(Receive("n2", RequestVote(3, 0, 0)))
    assert ready.persist[0].key == HARD_KEY and ready.persist[0].value == HardState(3, "n2")
    assert _sent(ready, RequestVoteReply)[0].message == RequestVoteReply(3, True)


def test_candidate_steps_down_on_append_from_leader_of_its_term() -> None:
    """A candidate that hears AppendEntries from a leader of its own term returns to follower.

    Reference: section 5.2
    """
    core = _core()
    while core.role != "candidate":
        core.step(TICK)
    core.step(Receive("n2", AppendEntries(core.term, 0, 0, (), 0)))
    assert core.role == "follower" and core.leader == "n2"


def test_split_vote_resolves_with_a_new_election() -> None:
    """When votes split, candidates time out and start new elections; eventually one wins.

    Reference: section 5.2
    """
    net = Network(4)
    net.cut("n1", "n4")
    net.cut("n2", "n3")
    net.campaign("n1")
    net.campaign("n2")
    net.stabilize()
    assert net.leader() is None  # n3 voted n1, n4 voted n2: 2 of 4 each, no majority
    net.recover()
    for _ in range(200):
        net.tick_all(1)
        if net.leader():
            break
    assert net.leader() is not None and net.cores[net.leader()].term >= 2


# ------------------------------------------------------------------ 5.3 log replication
def test_leader_commits_entry_replicated_on_majority_and_answers_client() -> None:
    """The leader appends a command, replicates it, commits it once a majority stores it, applies it
    and answers the client.

    Reference: section 5.3
    """
    net = _elected()
    assert net.request("n1", put("x", "1"), "c1", 1) == []
    net.deliver(0)  # AppendEntries to n2
    net.drop(0)     # the one to n3 is lost
    assert net.cores["n1"].commit_index == 1
    net.deliver(0)  # n2's acknowledgement: 2 of 3
    assert net.cores["n1"].commit_index == 2
    (reply,) = net.replies_to("c1", 1)
    assert reply.status == ReplyStatus.OK
    assert net.cores["n1"].applier.machine.data == {"x": "1"}


def test_followers_apply_entries_once_they_learn_the_commit_index() -> None:
    """Followers learn the commit index from later AppendEntries and apply in log order.

    Reference: section 5.3
    """
    net = _elected()
    net.request("n1", put("x", "1"), "c1", 1)
    net.stabilize()
    assert net.cores["n2"].commit_index == 1
    net.tick_all(net.cores["n1"].opts.heartbeat_ticks)
    assert all(c.commit_index == 2 and c.applier.machine.data == {"x": "1"} for c in net.cores.values())


def test_follower_rejects_append_that_fails_the_consistency_check() -> None:
    """A follower refuses AppendEntries whose (prev_index, prev_term) it does not hold, and hints
    the leader where to go back to.

    Reference: section 5.3
    """
    core = _core()
    ready = core.step(Receive("n2", AppendEntries(2, 5, 2, (Entry(2, NOOP_ENTRY),), 0)))
    (reply,) = _sent(ready, AppendEntriesReply)
    assert not reply.message.success and reply.message.conflict_term == 0
    assert reply.message.conflict_index == 1  # our log is empty: start at 1
    assert core.log.last_index == 0


def test_follower_deletes_conflicting_entries_and_appends_new_ones() -> None:
    """If an existing entry conflicts with a new one (same index, different term), the follower
    deletes it and all that follow, then appends the leader's entries; the deletes are persisted.

    Reference: section 5.3
    """
    core = _core()
    a, b = ClientRequest("c", 1, put("x", "a")), ClientRequest("c", 2, put("x", "b"))
    core.step(Receive("n2", AppendEntries(1, 0, 0, (Entry(1, a), Entry(1, b)), 0)))
    ready = core.step(Receive("n3", AppendEntries(2, 1, 1, (Entry(2, NOOP_ENTRY),), 0)))
    assert [e.term for e in core.log.entries] == [1, 2]
    keys = [(w.key, w.value) for w in ready.persist if w.key.startswith("raft/log/")]
    assert keys == [(log_key(2), None), (log_key(2), Entry(2, NOOP_ENTRY))]


def test_stale_or_duplicate_append_never_truncates() -> None:
    """An AppendEntries whose entries the follower already holds (a delayed duplicate) changes
    nothing: only a real conflict truncates.

    Reference: section 5.3
    """
    core = _core()
    a, b = ClientRequest("c", 1, put("x", "a")), ClientRequest("c", 2, put("x", "b"))
    core.step(Receive("n2", AppendEntries(1, 0, 0, (Entry(1, a), Entry(1, b)), 0)))
    ready = core.step(Receive("n2", AppendEntries(1, 0, 0, (Entry(1, a),), 0)))
    assert core.log.last_index == 2 and not ready.persist
    assert _sent(ready, AppendEntriesReply)[0].message.index == 1


def test_follower_persists_entries_before_acknowledging() -> None:
    """A follower's acknowledgement leaves in the same Ready as the writes of the entries it covers.

    Reference: section 5.3 (Figure 2)
    """
    core = _core()
    a = ClientRequest("c", 1, put("x", "a"))
    ready = core.step(Receive("n2", AppendEntries(1, 0, 0, (Entry(1, a),), 0)))
    assert (log_key(1), Entry(1, a)) in [(w.key, w.value) for w in ready.persist]
    assert _sent(ready, AppendEntriesReply)[0].message.success


def _diverged_n3() -> Network:
    """n3 led term 1 cut off and holds 20 entries nobody else has; n1 then won term 2 and wrote 29 more
    (n3 still cut off): the follower with a long conflicting tail of the tests below."""
    net = Network(3)
    net.elect("n3")                       # term 1: n3 leads ...
    net.isolate("n3")
    for seq in range(1, 21):              # ... and collects 20 entries nobody else has
        net.request("n3", put("z", str(seq)), "z", seq)
    net.in_flight.clear()
    for _ in range(200):                  # n1 wins term 2 and commits 29 more
        net.tick("n1")
        net.stabilize()
        if net.cores["n1"].role == "leader":
            break
    for seq in range(1, 30):
        net.request("n1", put("x", str(seq)), "c1", seq)
        net.stabilize()
    return net


def test_leader_backs_off_a_whole_conflicting_term_per_round_trip() -> None:
    """With the conflict term in the rejection, the leader skips each conflicting term in one
    round trip instead of one entry at a time.

    Reference: section 5.3 (the optimisation at the end of the section)
    """
    net = _diverged_n3()
    assert net.cores["n3"].log.last_index == 21 and net.cores["n1"].log.last_index == 31
    net.recover()
    rejections = 0
    for _ in range(5):
        net.tick("n1", net.cores["n1"].opts.heartbeat_ticks)
        while net.in_flight:
            src, dst, msg = net.in_flight[0]
            if isinstance(msg, AppendEntriesReply) and not msg.success and src == "n3":
                rejections += 1
            net.deliver(0)
    assert net.cores["n3"].log.entries == net.cores["n1"].log.entries
    assert rejections <= 2


def test_leader_resends_from_exactly_where_the_follower_agrees_and_exactly_what_it_lacks() -> None:
    """What a leader resends after a conflict, message by message: a safe but wasteful back-off (one entry
    too far, one term at a time, whole logs) changes these numbers, so it shows here.

    n3 led term 1 alone and holds entries 1-21 of term 1 (only entry 1 was replicated); n1 then led term 2
    and wrote entries 2-31; n2 now leads term 3 (its no-op is entry 32) with n3's next index at 32.
    1. probe at 31 (term 2) with entry 32: n3's log ends at 21, so it answers conflict_index 22;
    2. probe at 21 (term 2) with entries 22-32: n3 has term 1 there, the term's first index is 1;
    3. n2 holds term 1 only at index 1: probe at 1 (term 1) with all 31 entries 2-32 -- accepted.

    Reference: section 5.3 (the optimisation at the end of the section)
    """
    net = _diverged_n3()
    net.elect("n2")
    assert (net.cores["n2"].term, net.cores["n2"].log.last_index, net.cores["n2"].progress["n3"].next) == (3, 32, 32)
    net.recover()
    sent, answers = [], []
    for _ in range(3):
        net.tick("n2", net.cores["n2"].opts.heartbeat_ticks)
        while net.in_flight:
            src, dst, msg = net.in_flight[0]
            if (src, dst) == ("n2", "n3") and isinstance(msg, AppendEntries) and msg.entries:
                sent.append((msg.prev_index, msg.prev_term, len(msg.entries)))
            elif (src, dst) == ("n3", "n2") and isinstance(msg, AppendEntriesReply) and not msg.success:
                answers.append((msg.conflict_term, msg.conflict_index))
            net.deliver(0)
    assert sent == [(31, 2, 1), (21, 2, 11), (1, 1, 31)]
    assert answers == [(0, 22), (1, 1)]
    assert net.cores["n3"].log.entries == net.cores["n2"].log.entries


def test_leader_never_overwrites_its_own_log() -> None:
    """A leader only appends: an AppendEntries claiming its own term from another node is refused
    as a protocol error and the log is untouched.

    Reference: section 5.3 (Leader Append-Only, Figure 3)
    """
    net = _elected()
    before = list(net.cores["n1"].log.entries)
    net.step("n1", Receive("n2", AppendEntries(net.cores["n1"].term, 0, 0, (Entry(1, NOOP_ENTRY),), 0)))
    assert net.remote_errors and net.cores["n1"].log.entries == before


# ------------------------------------------------------------------ 5.4 safety
def test_voter_denies_candidate_whose_log_is_less_up_to_date() -> None:
    """A voter denies its vote if its own log is more up-to-date (last term, then length).

    Reference: section 5.4.1
    """
    core = _core()
    core.step(Receive("n2", AppendEntries(2, 0, 0, (Entry(1, NOOP_ENTRY), Entry(2, NOOP_ENTRY)), 0)))
    shorter = core.step(Receive("n3", RequestVote(3, 1, 2)))
    older = core.step(Receive("n3", RequestVote(4, 5, 1)))
    assert not _sent(shorter, RequestVoteReply)[0].message.granted
    assert not _sent(older, RequestVoteReply)[0].message.granted
    ok = core.step(Receive("n3", RequestVote(5, 2, 2)))
    assert _sent(ok, RequestVoteReply)[0].message.granted


def test_leader_commits_previous_term_entries_only_with_a_current_term_entry() -> None:
    """Figure 8: an entry of an earlier term stored on a majority is not committed by counting;
    it is committed only indirectly, once an entry of the current term is.

    Reference: section 5.4.2
    """
    net = Network(3, {"max_batch": 1})
    net.elect("n1")
    net.isolate("n1")
    net.request("n1", put("x", "old"), "c1", 1)  # index 2 of term 1 on n1 alone
    net.in_flight.clear()
    net.recover()
    net.crash("n1")
    net.restart("n1")
    net.campaign("n1")
    # deliver the votes, but hold every AppendEntries carrying the term-2 no-op (index 3)
    net.drop_if = lambda s, d, m: (isinstance(m, AppendEntries) and any(e.term == 2 for e in m.entries)
                                   and net.cores[d].log.last_index >= 2)
    net.stabilize()
    for _ in range(3):
        net.tick("n1", net.cores["n1"].opts.heartbeat_ticks)
        net.stabilize()
    core = net.cores["n1"]
    assert core.role == "leader" and core.term == 2
    assert core.progress["n2"].match >= 2  # index 2 (term 1) is on n1 and n2: a majority
    assert core.commit_index < 2            # ... yet not committed by counting
    net.drop_if = None
    net.tick("n1", core.opts.heartbeat_ticks)
    net.stabilize()
    assert core.commit_index == 3 and core.log.term_at(3) == 2


def test_new_leader_appends_a_noop_of_its_term() -> None:
    """A new leader appends a no-op of its term at once, to learn which entries are committed.

    Reference: section 8 (and 5.4.2)
    """
    net = Network(3)
    net.elect("n2")
    core = net.cores["n2"]
    assert unstamped(core.log.entry(core.log.last_index)) == Entry(core.term, NOOP_ENTRY)
    assert core.commit_index == core.log.last_index


def test_committed_entries_survive_leader_crash() -> None:
    """Leader completeness: whoever wins the next election holds every committed entry.

    Reference: section 5.4 (Leader Completeness, Figure 3)
    """
    net = _elected(5)
    for seq in range(1, 4):
        net.request("n1", put("k", str(seq)), "c1", seq)
        net.stabilize()
    committed = net.cores["n1"].commit_index
    net.crash("n1")
    for _ in range(200):
        net.tick_all(1)
        if net.leader():
            break
    new = net.cores[net.leader()]
    assert new.log.last_index > committed
    assert [new.log.entry(i) for i in range(1, committed + 1)] == \
        [net.cores["n2"].log.entry(i) for i in range(1, committed + 1)]


def test_restart_recovers_term_vote_and_log() -> None:
    """A restarted server recovers its term, vote and log from stable storage.

    Reference: section 5.6 (Figure 2, "Persistent state")
    """
    net = _elected()
    net.request("n1", put("x", "1"), "c1", 1)
    net.stabilize()
    before = (net.cores["n2"].term, net.cores["n2"].voted_for, list(net.cores["n2"].log.entries))
    net.restart("n2")
    core = net.cores["n2"]
    assert (core.term, core.voted_for, list(core.log.entries)) == before
    assert core.commit_index == 0  # volatile: relearnt from the leader
    net.tick("n1", core.opts.heartbeat_ticks)
    net.stabilize()
    assert core.commit_index == 2 and core.applier.machine.data == {"x": "1"}


# ------------------------------------------------------------------ 7 log compaction
def test_snapshot_replaces_applied_prefix_and_deletes_its_log_keys() -> None:
    """After applying snapshot_every entries a server writes a snapshot (last included index and
    term, state machine and sessions) and deletes the log entries it covers.

    Reference: section 7
    """
    net = _elected(3, snapshot_every=4)
    for seq in range(1, 8):
        net.request("n1", put("x", str(seq)), "c1", seq)
        net.stabilize()
    core = net.cores["n1"]
    snap = net.durable["n1"][SNAPSHOT_KEY]
    assert isinstance(snap, SnapshotRecord) and snap.index == core.log.snapshot_index >= 4
    assert snap.term == 1
    assert not [k for k in net.durable["n1"] if k.startswith("raft/log/") and int(k[9:]) <= snap.index]


def test_snapshots_are_off_by_default() -> None:
    """With snapshot_every = 0 the log is never compacted.

    Reference: section 7
    """
    net = _elected(3)
    for seq in range(1, 8):
        net.request("n1", put("x", str(seq)), "c1", seq)
        net.stabilize()
    assert SNAPSHOT_KEY not in net.durable["n1"] and net.cores["n1"].log.snapshot_index == 0


def test_leader_sends_install_snapshot_to_follower_behind_its_log() -> None:
    """A follower whose next entry was compacted away receives InstallSnapshot, discards its log
    and catches up.

    Reference: section 7
    """
    net = _elected(3, snapshot_every=3)
    net.isolate("n3")
    for seq in range(1, 10):
        net.request("n1", put("x", str(seq)), "c1", seq)
        net.stabilize()
    net.recover()
    net.tick("n1", net.cores["n1"].opts.heartbeat_ticks)
    net.stabilize()
    assert net.delivered["InstallSnapshot"] == 1
    n3 = net.cores["n3"]
    assert n3.applier.machine.data == {"x": "9"}
    assert n3.log.snapshot_index == net.cores["n1"].log.snapshot_index
    assert n3.applier.sessions == net.cores["n1"].applier.sessions


def test_restart_recovers_from_snapshot_and_log() -> None:
    """A restarted server rebuilds its state machine from its snapshot and keeps its later entries.

    Reference: section 7
    """
    net = _elected(3, snapshot_every=3)
    for seq in range(1, 5):
        net.request("n1", put("x", str(seq)), "c1", seq)
        net.stabilize()
    core = net.cores["n1"]
    snap_index, last = core.log.snapshot_index, core.log.last_index
    assert 0 < snap_index < last
    net.restart("n1")
    core = net.cores["n1"]
    assert (core.log.snapshot_index, core.log.last_index) == (snap_index, last)
    assert core.commit_index == snap_index == 3
    assert core.applier.machine.data == {"x": "2"} and core.applier.sessions["c1"][0] == 2


# ------------------------------------------------------------------ 8 client interaction
def test_retried_command_is_applied_once_and_answered_from_the_session() -> None:
    """Clients tag commands with serial numbers; a retry of an applied command is not re-executed
    but answered with the saved result.

    Reference: section 8
    """
    net = _elected()
    net.request("n1", put("x", "1"), "c1", 1)
    net.stabilize()
    applied = net.cores["n1"].applier.applied
    replies = net.request("n1", put("x", "1"), "c1", 1)
    assert [r.status for r in replies] == [ReplyStatus.OK]
    assert net.cores["n1"].applier.applied == applied  # nothing appended, nothing applied


def test_retry_of_command_in_flight_is_not_appended_twice() -> None:
    """A retry that arrives while its entry is still uncommitted does not get a second entry,
    and is answered when the first commits.

    Reference: section 8
    """
    net = _elected()
    net.isolate("n1")
    net.request("n1", put("x", "1"), "c1", 1)
    last = net.cores["n1"].log.last_index
    net.request("n1", put("x", "1"), "c1", 1)
    assert net.cores["n1"].log.last_index == last
    net.recover()
    net.tick("n1", net.cores["n1"].opts.heartbeat_ticks)
    net.stabilize()
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]


def test_command_committed_twice_is_applied_once() -> None:
    """If a retried command ends up in the log twice (different leaders), it takes effect once.

    Reference: section 8
    """
    net = _elected()
    net.partition(["n1"], ["n2", "n3"])
    net.request("n1", put("x", "1"), "c1", 1)  # stays in n1's log, uncommitted
    net.in_flight.clear()
    net.recover()
    net.cut("n1", "n2")
    net.cut("n1", "n3")
    for _ in range(200):
        net.tick("n2")
        net.tick("n3")
        net.stabilize()
        if net.leader() in ("n2", "n3"):
            break
    new = net.leader()
    net.request(new, put("x", "1"), "c1", 1)      # the client's retry
    net.request(new, put("x", "2"), "c2", 1)
    net.stabilize()
    net.tick(new, 3)
    net.stabilize()
    assert net.cores[new].applier.machine.data == {"x": "2"}


def test_non_leader_redirects_client_to_its_best_guess() -> None:
    """A server that is not the leader rejects the request and names the leader it knows.

    Reference: section 8
    """
    net = _elected()
    (reply,) = net.request("n2", put("x", "1"), "c1", 1)
    assert reply.status == ReplyStatus.REDIRECT and reply.leader == "n1"
    fresh = Network(3)
    (reply,) = fresh.request("n2", put("x", "1"), "c1", 1)
    assert reply.status == ReplyStatus.REDIRECT and reply.leader is None


def test_reads_go_through_the_log_by_default() -> None:
    """By default a read is a log entry like any command, so it is linearizable.

    Reference: section 8
    """
    net = _elected()
    last = net.cores["n1"].log.last_index
    net.request("n1", get("x"), "c1", 1)
    assert net.cores["n1"].log.last_index == last + 1


def test_read_index_answers_after_a_heartbeat_round_without_a_log_entry() -> None:
    """ReadIndex: the leader notes its commit index, confirms leadership with a heartbeat round
    and answers once it has applied up to that index -- without appending anything.

    Reference: section 8 (thesis section 6.4)
    """
    net = _elected(3, read_mode="read_index")
    net.request("n1", put("x", "1"), "c1", 1)
    net.stabilize()
    last = net.cores["n1"].log.last_index
    assert net.request("n1", get("x"), "c1", 2) == []  # not before a heartbeat round
    assert net.cores["n1"].log.last_index == last
    net.deliver(0)  # the heartbeat reaches n2
    net.drop(0)     # the one to n3 is lost
    net.deliver(0)  # n2's answer: with the leader, a majority confirms
    (reply,) = net.replies_to("c1", 2)
    assert (reply.status, reply.result) == (ReplyStatus.OK, "1")


def test_read_index_waits_for_an_entry_of_the_leaders_term() -> None:
    """A new leader serves no ReadIndex read before an entry of its own term is committed.

    Reference: section 8 (thesis section 6.4, step 1)
    """
    net = Network(3, {"read_mode": "read_index"})
    net.campaign("n1")
    for _ in range(2):
        net.deliver(0)  # vote requests
    net.deliver(0)  # n2's grant: n1 leads, its no-op is in flight
    assert net.cores["n1"].role == "leader"
    net.request("n1", get("x"), "c1", 1)
    assert len(net.cores["n1"].reads_waiting) == 1
    net.stabilize()
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]


def test_deposed_leader_cannot_serve_read_index_reads() -> None:
    """A leader cut off from the majority cannot confirm its leadership, so it answers no read.

    Reference: section 8 (thesis section 6.4)
    """
    net = _elected(3, read_mode="read_index")
    net.isolate("n1")
    net.request("n1", get("x"), "c1", 1)
    net.tick("n1", 10)
    net.stabilize()
    assert net.replies_to("c1", 1) == []
