"""Multi-Paxos at the moment a candidate wins and while it leads: what a new leader installs, learns and
announces, when it gives up a recovery too large, which snapshot it keeps, how its window cuts batches
(by bytes and at a configuration change), when it re-sends an Accept, when its heartbeats ask for acks,
and when a leader no longer a voter steps down.

Each test drives real :class:`multipaxos.MultiPaxosCore` replicas through the in-memory
:class:`smr.testing.Network`, injects hand-made messages with ``Receive(src, msg)`` and pins what the
core sends (slots, values, ballots, heartbeat rounds), writes and answers.  Deterministic: a failing
test replays as is.

Reference: Lamport, "Paxos Made Simple" (2001), sections 2.2 and 3; Lamport, Malkhi & Zhou,
"Reconfiguring a State Machine" (SIGACT News 41(1), 2010), section 4.
"""

from __future__ import annotations

from typing import Any

from smr.bounds import request_bytes
from smr.commands import get, put
from smr.membership import membership_command
from smr.replica import TICK, ClientRequest, Receive, ReplyStatus, Role
from smr.state_machines import KVStore
from smr.testing import Network, unstamped

from multipaxos import SNAPSHOT_KEY, Accept, Accepted, MultiPaxosCore, Nack, Prepare, Promise, check_invariants
from multipaxos._core import MAX_RECOVERY_SLOTS
from multipaxos.mutants import build
from multipaxos.messages import Heartbeat, SlotValue, Snapshot
from synod.ballot import Ballot

#: A fixed election timeout of 10 ticks and a back-off of 0..30 ticks on top after a campaign given up.
BACKOFF = {"election_ticks_min": 10, "election_ticks_max": 10, "backoff_ticks_max": 30}
OLD = Ballot(5, "n3")  # the ballot the reported values were accepted in, under a leader n3 that is gone
NEW = Ballot(6, "n1")  # n1's ballot once it campaigns after hearing round 5


def _net(size: int = 3, **options: object) -> Network:
    return Network(MultiPaxosCore, size, options, 0, KVStore, invariants=check_invariants)


def _req(seq: int, key: str = "k") -> ClientRequest:
    return ClientRequest("c1", seq, put(key, f"v{seq}"))


def _sent(net: Network, kind: type, src: str | None = None, dst: str | None = None) -> list[Any]:
    """Take the in-flight ``kind`` messages (from ``src``, to ``dst``) and return them, in order."""
    return [m for _, _, m in net.take(kind=kind, src=src, dst=dst)]


def _accepts(net: Network, dst: str) -> list[tuple[int, list[ClientRequest]]]:
    """Take the Accept batches in flight to ``dst``: (first slot, unstamped values) each."""
    return [(a.first_slot, [unstamped(v) for v in a.values]) for a in _sent(net, Accept, dst=dst)]


def _candidate(size: int = 3, **options: object) -> Network:
    """n1 promised n3's round 5 and now campaigns (ballot NEW), its Prepares taken out of flight."""
    net = _net(size, **options)
    net.step("n1", Receive("n3", Prepare(OLD, 1)))
    net.take()
    net.campaign("n1")
    assert net.cores["n1"].ballot == NEW
    net.take()
    return net


def _snapshot_data(*values: str) -> str:
    """The snapshot text of a replica that applied put("k", value) for each of ``values`` (one slot each)."""
    source = _net(3, snapshot_every=len(values))
    source.elect("n1")
    for seq, value in enumerate(values, 1):
        source.request("n1", put("k", value), "src", seq)
        source.settle()
    data = source.cores["n1"].snapshot_data
    assert data is not None and source.cores["n1"].snapshot_slot == len(values)
    return data


def _ticks_until_prepare(net: Network, node: str, limit: int = 100) -> int:
    """Tick ``node`` alone until it sends a Prepare (it campaigns); how many ticks that took."""
    for ticks in range(1, limit + 1):
        ready = net.step(node, TICK)
        if any(isinstance(s.message, Prepare) for s in ready.messages):
            return ticks
    raise AssertionError(f"{node} sent no Prepare in {limit} ticks")


def _read(net: Network, node: str, key: str) -> Any:
    """What ``node``'s state machine holds under ``key`` (a local query, no protocol step)."""
    return net.cores[node].applier.query(get(key))[1]


# ------------------------------------------------------------ what a new leader recovers
def test_a_new_leader_recovers_up_to_max_recovery_slots_and_gives_up_beyond_backing_off() -> None:
    """A winner recovers every slot up to the last any promiser reported as long as that is at most
    MAX_RECOVERY_SLOTS past its applied prefix (it leads and proposes there); one slot more and it
    gives its ballot up: a follower that proposes nothing and, like any proposer giving up a
    campaign, waits a random back-off on top of its election timeout before it campaigns again.

    Reference: Paxos Made Simple, section 3 (the leader re-proposes every later slot); Howard &
    Mortier, "Paxos vs Raft" (2020) (one closer to the front should lead)
    """
    change = ClientRequest("admin", 1, membership_command("add", "n4", ""))
    # at the bound: it leads; slot 1 holds a change (alpha 1), so nothing past it may go out yet
    net = _candidate(alpha=1)
    net.step("n1", Receive("n2", Promise(NEW, 1, (SlotValue(1, change, OLD),
                                                  SlotValue(MAX_RECOVERY_SLOTS, _req(9), OLD)))))
    assert net.status("n1").role == Role.LEADER and net.status("n1").leader == "n1"
    assert _accepts(net, "n2") == [(1, [change])]
    # one slot beyond: it gives up, sends nothing, and backs off before its next campaign
    net = _candidate(alpha=1, **BACKOFF)
    net.step("n1", Receive("n2", Promise(NEW, 1, (SlotValue(1, change, OLD),
                                                  SlotValue(MAX_RECOVERY_SLOTS + 1, _req(9), OLD)))))
    assert net.status("n1").role == Role.FOLLOWER and net.status("n1").leader is None
    assert not net.in_flight and net.cores["n1"].applied == 0
    assert 10 < _ticks_until_prepare(net, "n1") <= 10 + BACKOFF["backoff_ticks_max"]


def test_a_candidate_far_along_through_a_promised_snapshot_leads_from_there() -> None:
    """The recovery bound counts slots past the applied prefix, not slot numbers: a candidate that
    installs a promiser's snapshot of slot MAX_RECOVERY_SLOTS + 5 has nothing left to recover, so it
    leads and announces itself with a heartbeat whose commit point is that slot.

    Reference: Howard & Mortier, "Paxos vs Raft" (2020) (Paxos catches the winner up in phase 1)
    """
    far = MAX_RECOVERY_SLOTS + 5
    net = _candidate()
    net.step("n1", Receive("n2", Promise(NEW, 1, snapshot=Snapshot(far, _snapshot_data("a", "b")))))
    assert net.status("n1").role == Role.LEADER
    assert net.cores["n1"].applied == far and _read(net, "n1", "k") == "b"
    assert sorted((dst, m) for _, dst, m in net.take(kind=Heartbeat)) == [
        (dst, Heartbeat(NEW, far, 0, 0)) for dst in ("n2", "n3")]
    assert net.durable["n1"][SNAPSHOT_KEY]["last_slot"] == far


def test_a_promised_snapshot_no_newer_than_the_candidate_s_applied_prefix_is_not_installed() -> None:
    """A candidate installs a promise's snapshot only if it is ahead of what it applied: one of the very
    slot it applied is not installed (a correct acceptor sends a snapshot only of a slot at or past
    the Prepare's from_slot, applied + 1), so its state, its log of applied slots and its durable
    snapshot stay as they were.

    Reference: Paxos Made Simple, section 3 (a leader learns in phase 1 only what it lacks)
    """
    net = _net(3)
    net.elect("n1")
    for seq in (1, 2):
        net.request("n1", put("k", f"v{seq}"), "c1", seq)
        net.settle()
    net.tick_all(6)
    assert net.cores["n2"].applied == 2
    net.crash("n1")
    net.take()
    net.campaign("n2")
    ballot = net.cores["n2"].ballot
    assert ballot is not None
    net.take()
    net.step("n2", Receive("n3", Promise(ballot, 3, snapshot=Snapshot(2, _snapshot_data("x", "y")))))
    n2 = net.cores["n2"]
    assert net.status("n2").role == Role.LEADER and n2.applied == 2
    assert _read(net, "n2", "k") == "v2" and sorted(n2.log) == [1, 2] and n2.snapshot_slot == 0
    assert SNAPSHOT_KEY not in net.durable["n2"]


def test_of_promised_snapshots_of_one_slot_the_first_heard_is_kept() -> None:
    """A candidate keeps the newest snapshot the promises carry; a later promise's snapshot replaces it
    only if it is strictly newer, so of two of the same slot the first heard is the one installed.

    Reference: Paxos Made Simple, section 3 (a leader learns chosen values in phase 1)
    """
    first, second = _snapshot_data("a", "b"), _snapshot_data("c", "d")
    net = _candidate(5)
    net.step("n1", Receive("n2", Promise(NEW, 1, snapshot=Snapshot(2, first))))
    assert net.status("n1").role == Role.CANDIDATE
    net.step("n1", Receive("n3", Promise(NEW, 1, snapshot=Snapshot(2, second))))
    assert net.status("n1").role == Role.LEADER
    assert _read(net, "n1", "k") == "b"
    assert net.durable["n1"][SNAPSHOT_KEY] == {"last_slot": 2, "data": first}


def test_a_chosen_value_the_promised_snapshot_covers_is_not_kept_as_chosen() -> None:
    """A winner learns chosen values only above what it applied once it installed the newest promised
    snapshot: a reported chosen value at the snapshot's own slot is covered by it, so after applying
    the value after it nothing is left chosen-but-unapplied.

    Reference: Paxos Made Simple, section 3 (a leader learns chosen values in phase 1)
    """
    net = _candidate(5)
    net.step("n1", Receive("n2", Promise(NEW, 1, snapshot=Snapshot(2, _snapshot_data("v1", "v2")))))
    chosen = tuple(SlotValue(s, _req(s)) for s in (1, 2, 3))
    net.step("n1", Receive("n3", Promise(NEW, 1, chosen=chosen)))
    n1 = net.cores["n1"]
    assert net.status("n1").role == Role.LEADER
    assert n1.applied == 3 and n1.snapshot_slot == 2 and unstamped(n1.log[3]) == _req(3)
    assert n1.chosen == {}
    assert _read(net, "n1", "k") == "v3"


def test_a_new_leader_with_nothing_to_recover_announces_its_commit_point_and_held_slot() -> None:
    """A winner with no value to re-propose sends every peer a heartbeat of its ballot carrying the
    slot it applied (the commit point) and the slot it knows a quorum holds (``held``), round 0 (no
    ack asked).

    Reference: Paxos Made Simple, section 3 (a leader with nothing to propose)
    """
    net = _net(3)
    net.elect("n1")
    for seq in (1, 2):
        net.request("n1", put("k", f"v{seq}"), "c1", seq)
        net.settle()
    net.tick_all(20)
    n2 = net.cores["n2"]
    assert n2.applied == 2 and n2.held == 2
    net.crash("n1")
    net.take()
    net.campaign("n2")
    ballot = n2.ballot
    assert ballot is not None
    net.take()
    net.step("n2", Receive("n3", Promise(ballot, 3)))
    assert net.status("n2").role == Role.LEADER
    assert not _sent(net, Accept)
    assert sorted((dst, m) for _, dst, m in net.take(kind=Heartbeat)) == [
        (dst, Heartbeat(ballot, 2, 0, 2)) for dst in ("n1", "n3")]


def test_a_new_leader_holds_no_read_lease_before_a_quorum_acks_one_of_its_rounds() -> None:
    """With read_mode lease a new leader answers no read locally at once: its lease starts only when a
    quorum acks a heartbeat round it sent; the first read sends that round and is answered after it.

    Reference: Chandra, Griesemer & Redstone, "Paxos Made Live" (2007), section 5.2 (master leases)
    """
    net = _candidate(read_mode="lease")
    net.step("n1", Receive("n2", Promise(NEW, 1)))
    assert net.status("n1").role == Role.LEADER
    net.take()
    assert net.request("n1", get("k"), "r", 1) == []
    rounds = _sent(net, Heartbeat, src="n1")
    assert [(h.ballot, h.round) for h in rounds] == [(NEW, 1), (NEW, 1)]
    net.inject(("n1", dst, h) for dst, h in zip(("n2", "n3"), rounds))
    net.settle()
    assert [r.status for r in net.replies_to("r", 1)] == [ReplyStatus.OK]


def test_a_leader_deposed_before_its_first_tick_counts_the_lease_hold_from_its_election() -> None:
    """With read_mode lease an acceptor promises no other proposer for election_ticks_min of its ticks
    after it last heard a leader; a node that won and was preempted before its first tick heard itself
    lead at its election, so it promises a third proposer only from that many ticks on.

    Reference: Chandra, Griesemer & Redstone, "Paxos Made Live" (2007), section 5.2 (master leases)
    """
    net = _candidate(read_mode="lease", **BACKOFF)
    net.step("n1", Receive("n2", Promise(NEW, 1)))
    assert net.status("n1").role == Role.LEADER
    net.step("n1", Receive("n2", Nack(NEW, Ballot(7, "n2"))))
    assert net.status("n1").role == Role.FOLLOWER
    net.take()
    net.tick("n1", BACKOFF["election_ticks_min"] - 1)
    assert net.status("n1").role == Role.FOLLOWER
    net.step("n1", Receive("n3", Prepare(Ballot(8, "n3"), 1)))
    assert not _sent(net, Promise)
    net.tick("n1")
    net.step("n1", Receive("n3", Prepare(Ballot(8, "n3"), 1)))
    assert [(p.ballot, p.from_slot) for p in _sent(net, Promise, src="n1")] == [(Ballot(8, "n3"), 1)]


# ------------------------------------------------------------ the window
def test_a_batch_holds_as_many_requests_as_max_batch_bytes_allows_and_no_more() -> None:
    """Batching by bytes: a batch takes queued requests while their estimated sizes sum to at most
    max_batch_bytes (a request that would exceed it starts the next batch), so with room for exactly
    two, the queue goes out two by two.

    Reference: Paxos Made Simple, section 3 (the leader may propose many commands at once)
    """
    requests = [ClientRequest("c1", seq, put("k", f"{seq}" + "x" * 120)) for seq in range(1, 7)]
    cost = request_bytes(requests[0])
    assert all(request_bytes(r) == cost for r in requests) and 2 * cost >= 256
    net = _net(3, max_inflight=1, max_batch=8, max_batch_bytes=2 * cost)
    net.elect("n1")
    net.take()
    for request in requests:
        net.step("n1", request)
    assert _accepts(net, "n2") == [(1, requests[:1])]  # the window holds one batch
    ballot = net.cores["n1"].ballot
    assert ballot is not None
    net.take()
    net.step("n1", Receive("n2", Accepted(ballot, 1, 1)))
    assert _accepts(net, "n3") == [(2, requests[1:3])]
    net.take()
    net.step("n1", Receive("n2", Accepted(ballot, 2, 2)))
    assert _accepts(net, "n3") == [(4, requests[3:5])]


def test_a_batch_stops_at_the_slot_whose_configuration_a_change_in_it_leaves_uncertain() -> None:
    """A batch goes out only as far as the leader may propose: with alpha 1 the slot after a membership
    change has the configuration that change makes, unknown until it is applied, so the batch ends
    with the change and the requests after it wait until it is.

    Reference: Lamport, Malkhi and Zhou, "Reconfiguring a State Machine", section 4 (alpha window)
    """
    net = _net(3, alpha=1, max_inflight=1, max_batch=8)
    net.elect("n1")
    net.take()
    change = ClientRequest("admin", 1, membership_command("add_learner", "n4", ""))
    for request in (_req(1), _req(2), change, _req(3), _req(4)):
        net.step("n1", request)
    assert _accepts(net, "n2") == [(1, [_req(1)])]
    ballot = net.cores["n1"].ballot
    assert ballot is not None
    net.take()
    net.step("n1", Receive("n2", Accepted(ballot, 1, 1)))
    assert _accepts(net, "n2") == [(2, [_req(2), change])]
    net.take()
    net.step("n1", Receive("n2", Accepted(ballot, 2, 2)))
    assert net.cores["n1"].applied == 3
    assert _accepts(net, "n2") == [(4, [_req(3), _req(4)])]


def test_an_accept_is_sent_again_a_heartbeat_interval_after_its_own_batch_went_out() -> None:
    """Each slot's Accept is timed from when its own batch last went out: at a heartbeat interval the
    leader re-sends the slots sent at least that long ago, not those a later batch sent since, and
    a later batch does not restart the clock of the slots before it.

    Reference: Paxos Made Simple, section 3 (messages may be lost; the leader retries)
    """
    net = _net(3)
    net.elect("n1")
    net.take()
    interval = net.cores["n1"].opts.heartbeat_ticks
    assert interval == 3
    net.step("n1", _req(1))
    net.tick("n1", 2)
    net.step("n1", _req(2))
    assert _accepts(net, "n2") == [(1, [_req(1)]), (2, [_req(2)])]
    net.take()
    net.tick("n1")  # the first heartbeat interval: slot 1 went out 3 ticks ago, slot 2 only 1
    assert _accepts(net, "n2") == [(1, [_req(1)])] and _accepts(net, "n3") == [(1, [_req(1)])]
    assert not net.in_flight
    net.take()
    net.tick("n1", interval)  # both are due now
    assert _accepts(net, "n2") == [(1, [_req(1), _req(2)])]


def test_a_lone_leader_chooses_a_batch_only_once_its_own_copy_is_durable_unless_broken() -> None:
    """A one-node cluster's leader is its own quorum, and its own acceptance counts only once synced:
    the correct core answers a request in the batch after the one that writes its slot; the broken
    variant mutant_count_self_before_sync counts itself at once, so the slot is chosen when proposed
    and answered in the very batch that writes it (applied before it is on any disk).

    Reference: Paxos Made Simple, section 2.3 (an acceptance counts once it is in stable storage)
    """
    for broken in (False, True):
        net = Network(build, 1, {"mutant_count_self_before_sync": broken}, 0, KVStore,
                      invariants=check_invariants, hold_syncs=True)
        net.elect("n1")
        ready = net.step("n1", _req(1))
        assert ready.persist
        assert [(r.seq, r.status) for r in ready.replies] == ([(1, ReplyStatus.OK)] if broken else [])
        assert net.cores["n1"].applied == (1 if broken else 0)
        net.sync("n1")
        assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]
        assert net.cores["n1"].applied == 1


# ------------------------------------------------------------ heartbeats that ask for acks
def _heartbeat_rounds(net: Network, node: str, ticks: int) -> list[tuple[int, int]]:
    """Tick ``node`` alone ``ticks`` times; each (tick, round) of the heartbeats it sends n2 meanwhile."""
    rounds = []
    for tick in range(1, ticks + 1):
        net.tick(node)
        rounds += [(tick, h.round) for h in _sent(net, Heartbeat, src=node, dst="n2")]
        net.take()
    return rounds


def test_a_leader_asks_for_acks_once_no_quorum_answered_for_half_the_election_timeout() -> None:
    """A leader whose quorum has not answered for election_ticks_min // 2 of its ticks asks for acks
    (a heartbeat of a new round) at that heartbeat interval, not before: with an odd minimum of 13,
    6 ticks of silence are enough.

    Reference: the module docstring of multipaxos._core (a leader counts as live only while a quorum
    answers it)
    """
    net = _net(3, election_ticks_min=13, election_ticks_max=20, heartbeat_ticks=3)
    net.elect("n1")
    net.take()
    assert _heartbeat_rounds(net, "n1", 9) == [(3, 0), (6, 1), (9, 2)]


def test_a_leader_asks_for_acks_while_a_learner_waits_to_be_promoted() -> None:
    """A leader whose newest configuration lists a joining learner asks for acks at every heartbeat
    interval (it promotes the learner once its acks show it caught up), even while its quorum
    answers and no configuration change is in its window any more.

    Reference: Ongaro's thesis, section 4.2.1 (a new server catches up as a non-voting member first)
    """
    net = _net(3, alpha=1)
    net.elect("n1")
    net.request("n1", membership_command("add", "n4", ""), "admin", 1)  # n4 never runs: it never catches up
    net.settle()
    net.request("n1", put("k", "v"), "c1", 1)
    net.settle()
    n1 = net.cores["n1"]
    assert n1.applied == 2 and n1.membership.joining == (("n4", ""),) and len(n1.history) == 1
    net.take()
    before = n1.hb_round
    assert _heartbeat_rounds(net, "n1", 6) == [(3, before + 1), (6, before + 2)]


# ------------------------------------------------------------ a leader no longer a voter
def test_a_leader_made_a_learner_steps_down_once_its_voting_slots_are_held() -> None:
    """A leader that a change keeps only as a learner no longer votes: once every slot it votes in is
    applied and held by a quorum of the new voters it steps down, and one of them leads.

    Reference: Lamport, Malkhi and Zhou, "Reconfiguring a State Machine", section 4 (a removed
    leader fills its last slots and stops)
    """
    net = _net(3, alpha=2)
    net.elect("n1")
    net.request("n1", membership_command("set", ["n2", "n3"], ["n1"]), "admin", 1)
    net.settle()
    for _ in range(80):
        net.tick_all(1)
        if net.status("n1").role != Role.LEADER and net.leader() not in (None, "n1"):
            break
    assert net.cores["n1"].membership.learners == ("n1",)
    assert net.status("n1").role == Role.FOLLOWER
    assert net.leader() in ("n2", "n3")
