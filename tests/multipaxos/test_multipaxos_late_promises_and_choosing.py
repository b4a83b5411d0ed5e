"""Multi-Paxos: what a leader recovers from a promise that arrives after it won, when it counts a slot
chosen, what its idle ticks do, and how a follower resumes a snapshot transfer.

* A late promise (or one from a voter of a configuration entering the window) is recovered from like
  phase 1: a value the promiser knows chosen is re-proposed as is, otherwise the value of the highest
  ballot reported for each slot, gaps below the last reported slot are filled with no-ops, and the slots
  recovered count toward the recovery bound (``MAX_RECOVERY_SLOTS``) and toward what a read must see.
* A slot is counted chosen once a quorum of its configuration accepted it in the leader's ballot; a slot
  whose configuration is not certain yet waits and is counted the moment slot i - alpha is applied.
* Each heartbeat interval an idle leader asks again, with ``Prepare``, the voters of a configuration in
  its window whose quorum has not promised its ballot.

Each test steps one real :class:`multipaxos.MultiPaxosCore` by hand (n1, elected with ballot NEW on
hand-made promises) or a small :class:`smr.testing.Network`, and pins what it sends, applies and answers.
Deterministic: a failing test replays as is.

Reference: Lamport, "Paxos Made Simple" (2001), sections 2.2, 2.3 and 3; Lamport, Malkhi & Zhou,
"Reconfiguring a State Machine" (SIGACT News 41(1), 2010), section 4; Ongaro's thesis, section 6.4
(read-only queries).
"""

from __future__ import annotations

import random
from typing import Any

from smr.commands import get, put
from smr.membership import membership_command
from smr.replica import (TICK, ClientRequest, Ready, Receive, ReplicaConfig, Reply, ReplyStatus, Role, Start,
                         Synced)
from smr.sessions import NOOP_ENTRY
from smr.state_machines import KVStore
from smr.testing import Network, unstamped

from multipaxos import Accept, Accepted, Heartbeat, HeartbeatAck, MultiPaxosCore, Prepare, Promise
from multipaxos._core import MAX_RECOVERY_SLOTS
from multipaxos.messages import CatchupRequest, SlotValue, Snapshot, SnapshotChunk, SnapshotRequest
from synod.ballot import Ballot

OLD = Ballot(5, "n3")   # a ballot of an earlier leader, n3, that is gone
LOWER = Ballot(4, "n2")  # an even earlier one
NEW = Ballot(6, "n1")   # n1's ballot once it campaigns after hearing round 5
#: A fixed election timeout of 10 ticks and a back-off of 0..30 ticks on top after a campaign given up.
BACKOFF: dict[str, Any] = {"election_ticks_min": 10, "election_ticks_max": 10, "backoff_ticks_max": 30}


def _req(seq: int, key: str = "k", client: str = "c1") -> ClientRequest:
    return ClientRequest(client, seq, put(key, f"v{seq}"))


def _change(seq: int, kind: str, *args: Any) -> ClientRequest:
    return ClientRequest("admin", seq, membership_command(kind, *args))


def _candidate(size: int = 3, **options: Any) -> MultiPaxosCore:
    """n1 of n1..n<size>, stepped by hand: it promised n3's round 5, then campaigned with ballot NEW."""
    peers = tuple(f"n{i}" for i in range(2, size + 1))
    core = MultiPaxosCore(ReplicaConfig("n1", peers, random.Random(0), KVStore, dict(options)))
    core.step(Start({}))
    core.step(Receive("n3", Prepare(OLD, 1)))
    while core.role != Role.CANDIDATE:
        core.step(TICK)
    assert core.ballot == NEW
    return core


def _leader(size: int = 3, accepted: tuple[SlotValue, ...] = (), snapshot: Snapshot | None = None,
            **options: Any) -> tuple[MultiPaxosCore, Ready]:
    """n1 elected on the promises of n2 (reporting ``accepted`` and ``snapshot``) and, of five, n3 (empty);
    the Ready of the step that made it leader."""
    core = _candidate(size, **options)
    ready = core.step(Receive("n2", Promise(NEW, 1, accepted, (), snapshot)))
    if size == 5:
        ready = core.step(Receive("n3", Promise(NEW, 1)))
    assert core.role == Role.LEADER
    return core, ready


def _propose(core: MultiPaxosCore, request: ClientRequest) -> Ready:
    """Step a client request into leader ``core`` and its own acceptance's Synced; the request's Ready."""
    ready = core.step(request)
    if ready.after_sync is not None:
        core.step(ready.after_sync)
    return ready


def _sent(ready: Ready, kind: type, dst: str | None = None) -> list[Any]:
    """The ``kind`` messages of ``ready`` (eager ones first), to ``dst`` if given."""
    return [s.message for s in ready.all_messages if isinstance(s.message, kind) and dst in (None, s.dst)]


def _accepts(ready: Ready, dst: str = "n2") -> list[tuple[int, tuple[ClientRequest, ...]]]:
    """The Accept batches ``ready`` sends ``dst``: (first slot, unstamped values) each."""
    return [(m.first_slot, unstamped(m.values)) for m in _sent(ready, Accept, dst)]


def _prepared_to(ready: Ready) -> list[str]:
    """Whom ``ready`` sends a Prepare, sorted."""
    return sorted(s.dst for s in ready.all_messages if isinstance(s.message, Prepare))


def _ticks_until_prepare(core: MultiPaxosCore, limit: int = 100) -> int:
    """Tick ``core`` until it campaigns; how many ticks that took."""
    for ticks in range(1, limit + 1):
        if _prepared_to(core.step(TICK)):
            return ticks
    raise AssertionError(f"no Prepare in {limit} ticks")


def _snapshot_of(*changes: ClientRequest) -> tuple[int, str]:
    """alpha 2: a cluster of n1..n3 chooses ``changes`` in slots 1.. (and no-ops up to where the new
    voters would have to promise); the slot and text of its leader's last snapshot (one per slot)."""
    net = Network(MultiPaxosCore, 3, {"alpha": 2, "snapshot_every": 1}, 0, KVStore)
    net.elect("n1")
    for change in changes:
        net.step("n1", change)
    net.settle()
    leader = net.cores["n1"]
    assert leader.snapshot_data is not None and leader.snapshot_slot == leader.applied == 2
    return leader.snapshot_slot, leader.snapshot_data


# ------------------------------------------------------------ late promises: what is re-proposed
def test_a_late_promise_is_recovered_from_chosen_values_first_then_accepted_ones_gaps_as_no_ops() -> None:
    """n3's promise arrives after n1 won on n2's: slot 1 it knows chosen (a) -- and also reports
    accepted with another value in an older ballot --, slots 2 and 4 accepted (b, d).  The idle leader
    re-proposes a at its next slot 1 (the chosen value, not the accepted one), b at 2, a no-op in the gap
    at 3 and d at 4, in one batch; and applies a, the value it now knows chosen.

    Reference: Paxos Made Simple, section 3 (a new leader re-proposes what phase 1 reports, no-ops in gaps)
    """
    leader, _ = _leader()
    a, w, b, d = _req(1, "a"), _req(9, "w"), _req(2, "b"), _req(4, "d")
    accepted = (SlotValue(1, w, LOWER), SlotValue(2, b, OLD), SlotValue(4, d, OLD))
    late = Promise(NEW, 1, accepted, (SlotValue(1, a),))
    ready = leader.step(Receive("n3", late))
    assert leader.role == Role.LEADER and "n3" in leader.prepared
    assert _accepts(ready, "n2") == _accepts(ready, "n3") == [(1, (a, b, NOOP_ENTRY, d))]
    assert leader.next_slot == 5 and [c.index for c in ready.committed] == [1] and leader.log[1] == a


def test_of_two_late_promises_the_value_of_the_higher_ballot_wins_whichever_comes_first() -> None:
    """Five nodes, alpha 1: a change waits unchosen in slot 1, so slots 2 and 3 may not be proposed yet.
    n4's late promise reports slot 2 accepted in ballot OLD and slot 3 in the lower ballot LOWER; n5's the
    other way round, with other values.  Once slot 1 is chosen the leader proposes, per slot, the value of
    the higher ballot: n4's at slot 2 (a later, lower report does not replace it) and n5's at slot 3.

    Reference: Paxos Made Simple, section 2.2 (the value of the highest-numbered proposal reported)
    """
    leader, _ = _leader(5, alpha=1)
    _propose(leader, _change(1, "add_learner", "n6", ""))
    assert leader.next_slot == 2
    n4_2, n4_3, n5_2, n5_3 = _req(1, "x"), _req(2, "y"), _req(3, "x"), _req(4, "y")
    first = leader.step(Receive("n4", Promise(NEW, 1, (SlotValue(2, n4_2, OLD), SlotValue(3, n4_3, LOWER)))))
    second = leader.step(Receive("n5", Promise(NEW, 1, (SlotValue(2, n5_2, LOWER), SlotValue(3, n5_3, OLD)))))
    assert not _sent(first, Accept) and not _sent(second, Accept) and leader.next_slot == 2
    leader.step(Receive("n2", Accepted(NEW, 1, 1)))
    ready = leader.step(Receive("n3", Accepted(NEW, 1, 1)))
    assert leader.applied == 1
    assert _accepts(ready, "n2") == [(2, (n4_2, n5_3))]


def test_a_slot_recovered_late_at_the_next_slot_is_read_only_once_applied() -> None:
    """read_index: n3's late promise reports slot 1 accepted (put x late).  The leader re-proposes it; a
    read of x arriving before slot 1 is chosen is not answered from the state without it -- not even once
    a quorum acked a heartbeat round --, only after slot 1 is applied, with "late".

    Reference: Ongaro's thesis, section 6.4 (a leader serves reads once its recovered entries are
    committed); Paxos Made Simple, section 3
    """
    leader, _ = _leader(read_mode="read_index")
    late = ClientRequest("c7", 1, put("x", "late"))
    recovered = leader.step(Receive("n3", Promise(NEW, 1, (SlotValue(1, late, OLD),))))
    assert _accepts(recovered) == [(1, (late,))]
    read = ClientRequest("c9", 1, get("x"))
    replies: list[Reply] = []

    def step(event: Any) -> None:
        ready = leader.step(event)
        replies.extend(ready.replies)
        for msg in _sent(ready, Heartbeat, "n2"):  # n2 acks every round asking for acks
            if msg.round:
                step(Receive("n2", HeartbeatAck(NEW, msg.round, 0)))

    step(read)
    assert replies == []
    assert recovered.after_sync is not None
    step(recovered.after_sync)
    step(Receive("n2", Accepted(NEW, 1, 1)))
    assert leader.applied == 1
    assert [(r.client_id, r.status, r.result) for r in replies] == [("c9", ReplyStatus.OK, "late")]


# ------------------------------------------------------------ late promises: the recovery bound
def test_a_late_promise_reaching_max_recovery_slots_past_applied_keeps_the_leader_one_more_deposes_it() -> None:
    """alpha 1, slot 1 applied, a change waiting in slot 2: a late promise reporting a value at slot
    1 + MAX_RECOVERY_SLOTS (exactly the bound past the applied prefix) is recovered -- the leader leads on,
    proposing nothing past the change yet; one reporting slot 2 + MAX_RECOVERY_SLOTS makes it give its
    ballot up and back off before it campaigns again, so one closer to the front leads.

    Reference: Howard & Mortier, "Paxos vs Raft" (2020) (one closer to the front should lead)
    """
    for beyond, stays in ((0, True), (1, False)):
        leader, _ = _leader(alpha=1, **BACKOFF)
        _propose(leader, _req(1))
        leader.step(Receive("n2", Accepted(NEW, 1, 1)))
        _propose(leader, _change(1, "add_learner", "n4", ""))
        assert leader.applied == 1 and leader.next_slot == 3
        slot = leader.applied + MAX_RECOVERY_SLOTS + beyond
        ready = leader.step(Receive("n3", Promise(NEW, 2, (SlotValue(slot, _req(2), OLD),))))
        assert not _sent(ready, Accept)
        if stays:
            assert leader.role == Role.LEADER and leader.next_slot == 3 and "n3" in leader.prepared
        else:
            assert leader.role == Role.FOLLOWER and leader.status().leader is None and not ready.messages
            assert 10 < _ticks_until_prepare(leader) <= 10 + BACKOFF["backoff_ticks_max"]


def test_a_late_promise_deposes_a_leader_with_more_than_max_recovery_slots_proposed_past_applied() -> None:
    """The bound counts the slots the leader proposed, too: elected recovering slot MAX_RECOVERY_SLOTS (it
    proposes every slot up to there) and given one more command, n1 has MAX_RECOVERY_SLOTS + 1 slots open
    past its applied prefix; a late promise reporting nothing then makes it step down.

    Reference: the module docstring (as a new leader: let one closer to the front lead)
    """
    leader, _ = _leader(accepted=(SlotValue(MAX_RECOVERY_SLOTS, _req(1), OLD),))
    ready = leader.step(_req(2))
    assert _accepts(ready) == [(MAX_RECOVERY_SLOTS + 1, (_req(2),))] and leader.applied == 0
    leader.step(Receive("n3", Promise(NEW, 1)))
    assert leader.role == Role.FOLLOWER and leader.status().leader is None


# ------------------------------------------------------------ when a slot counts as chosen
def test_a_batch_waiting_for_its_configuration_is_counted_whole_once_slot_alpha_before_it_is_applied() -> None:
    """alpha 2, max_inflight 1: slot 1, recovered at election, is open (its Accept to n2 is lost); a
    client batch at slot 2 is chosen.  That frees the pipeline at once (slot 1 was never one of its
    batches): the two commands queued behind go out together in slots 3 and 4.  n2 accepts them, but
    their configuration is not certain while slot 1 is unapplied, so neither is counted chosen; the
    moment n2 accepts slot 1 the leader applies 1 and 2 and counts the whole waiting batch: it applies
    1..4 in that one step.

    Reference: Lamport, Malkhi & Zhou, section 4 (slot i is chosen by the configuration after slot
    i - alpha); Paxos Made Simple, section 3 (later slots may be proposed before earlier ones are chosen)
    """
    a = _req(1, "a")
    leader, won = _leader(accepted=(SlotValue(1, a, OLD),), alpha=2, max_inflight=1)
    assert _accepts(won) == [(1, (a,))] and won.after_sync is not None
    leader.step(won.after_sync)
    _propose(leader, _req(2))
    assert not _sent(leader.step(_req(3)), Accept) and not _sent(leader.step(_req(4)), Accept)
    freed = leader.step(Receive("n2", Accepted(NEW, 2, 1)))
    assert leader.applied == 0 and 2 in leader.chosen
    assert _accepts(freed) == [(3, (_req(3), _req(4)))]
    assert freed.after_sync is not None
    leader.step(freed.after_sync)
    leader.step(Receive("n2", Accepted(NEW, 3, 2)))
    assert leader.applied == 0 and not {3, 4} & set(leader.chosen)
    ready = leader.step(Receive("n2", Accepted(NEW, 1, 1)))
    assert [c.index for c in ready.committed] == [1, 2, 3, 4] and leader.applied == 4


def test_a_synced_counts_the_leaders_copy_past_a_slot_the_followers_chose_without_it() -> None:
    """Recovered slots 1 and 2 go out in separate Accepts (max_batch 1) from one step, whose Synced covers
    both.  n2 and n3 choose slot 1 before the leader's copy is durable; n2 alone accepts slot 2.  The
    Synced then counts the leader's copy of slot 2 too: 2 is chosen and applied.

    Reference: Paxos Made Simple, section 2.3 (an acceptance counts once in stable storage); Ongaro's
    thesis, section 10.2.1 (the leader's write in parallel)
    """
    a, b = _req(1, "a"), _req(2, "b")
    leader, won = _leader(accepted=(SlotValue(1, a, OLD), SlotValue(2, b, OLD)), max_batch=1)
    assert _accepts(won) == [(1, (a,)), (2, (b,))] and won.after_sync == Synced(NEW.round, 2)
    leader.step(Receive("n2", Accepted(NEW, 1, 1)))
    leader.step(Receive("n3", Accepted(NEW, 1, 1)))
    leader.step(Receive("n2", Accepted(NEW, 2, 1)))
    assert leader.applied == 1
    ready = leader.step(won.after_sync)
    assert [c.index for c in ready.committed] == [2] and leader.applied == 2


def test_a_leader_with_a_full_pipeline_fills_no_window_slot_before_its_queued_commands() -> None:
    """alpha 3, one batch of one command in flight: a change at slot 1 and commands A and B queued behind
    it.  When the change is applied the leader proposes A at slot 2; B waits for the pipeline, and no
    no-op is proposed ahead of it (the window is filled with no-ops only when nothing is queued).

    Reference: Lamport, Malkhi & Zhou, section 4 (filling the alpha window)
    """
    leader, _ = _leader(alpha=3, max_inflight=1, max_batch=1)
    _propose(leader, _change(1, "add_learner", "n4", ""))
    assert not _sent(leader.step(_req(1)), Accept) and not _sent(leader.step(_req(2)), Accept)
    ready = leader.step(Receive("n2", Accepted(NEW, 1, 1)))
    assert leader.applied == 1
    assert _accepts(ready) == [(2, (_req(1),))] and leader.next_slot == 3
    assert ready.after_sync is not None
    leader.step(ready.after_sync)
    ready = leader.step(Receive("n2", Accepted(NEW, 2, 1)))
    assert leader.applied == 2 and _accepts(ready) == [(3, (_req(2),))]


# ------------------------------------------------------------ an idle leader's ticks
def test_an_idle_leader_asks_a_window_configuration_without_a_quorum_of_promises_again_each_interval() -> None:
    """alpha 2: n1 wins on n2's promise carrying a snapshot of slot 2 after changes that make {n1, n4, n5}
    the configuration of slot 3 on, none of whose other voters promised.  Nothing is queued; the leader
    sends n4 and n5 a Prepare at once, and again at each heartbeat interval: whether it is filling its
    window with a no-op (a second change, back to {n1, n2, n3}, at slot 2) or holding a value recovered
    for slot 3 (no second change).

    Reference: Lamport, Malkhi & Zhou, section 4 (phase 1 for a new configuration's slots)
    """
    new = _change(1, "set", ["n1", "n4", "n5"], [])
    back = _change(2, "set", ["n1", "n2", "n3"], [])
    scenarios = {"filling the window": ((new, back), ()),
                 "holding a recovered value": ((new,), (SlotValue(3, _req(1), OLD),))}
    for label, (changes, accepted) in scenarios.items():
        slot, data = _snapshot_of(*changes)
        leader, won = _leader(accepted=accepted, snapshot=Snapshot(slot, data), alpha=2)
        assert leader.applied == 2 and leader.next_slot == 3 and _prepared_to(won) == ["n4", "n5"], label
        hb = leader.opts.heartbeat_ticks
        asked: list[tuple[int, list[str]]] = []
        for tick in range(1, 3 * hb + 1):
            ready = leader.step(TICK)
            assert not _sent(ready, Accept), label
            if _prepared_to(ready):
                asked.append((tick, _prepared_to(ready)))
        assert asked == [(hb, ["n4", "n5"]), (2 * hb, ["n4", "n5"]), (3 * hb, ["n4", "n5"])], label


# ------------------------------------------------------------ a follower resumes a snapshot transfer
def test_a_follower_behind_resumes_a_snapshot_transfer_where_it_stopped() -> None:
    """n2 learns slot 8 is chosen and asks to catch up; the leader starts sending a snapshot of slot 8 in
    chunks and the answer to n2's pull is lost.  At the next heartbeat after its cool-down n2 pulls the
    same snapshot from the 256 characters it holds, instead of asking from slot 1 again.

    Reference: Paxos Made Simple, section 3 (a learner catches up on chosen values)
    """
    n2 = MultiPaxosCore(ReplicaConfig("n2", ("n1", "n3"), random.Random(0), KVStore, {}))
    n2.step(Start({}))
    b1 = Ballot(1, "n1")
    first = n2.step(Receive("n1", Heartbeat(b1, 8)))
    assert _sent(first, CatchupRequest) == [CatchupRequest(b1, 1)]
    pulled = n2.step(Receive("n1", SnapshotChunk(b1, 8, 0, "x" * 256, False)))
    assert _sent(pulled, SnapshotRequest) == [SnapshotRequest(b1, 8, 256)]
    for _ in range(n2.opts.heartbeat_ticks):
        n2.step(TICK)
    again = n2.step(Receive("n1", Heartbeat(b1, 8)))
    assert [s.message for s in again.messages] == [SnapshotRequest(b1, 8, 256)]
