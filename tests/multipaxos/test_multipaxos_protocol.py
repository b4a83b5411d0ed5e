"""Multi-Paxos as Lamport's "Paxos Made Simple" (section 3) states it: one test per property.

Every test drives real :class:`multipaxos.MultiPaxosCore` replicas through the
in-memory :class:`smr.testing.Network`, which runs
:func:`multipaxos.check_invariants` after every step, compares every applied
entry across nodes (state machine safety) and keeps each node's durable map
across restarts.  The network is deterministic: a failing test replays as is.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smr import wire
from smr.commands import add, put, read_counter
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.replica import TICK, ClientRequest, Ready, Receive, ReplicaConfig, ReplyStatus, Role, Start
from smr.sessions import NOOP_ENTRY
from smr.state_machines import Counter, KVStore
from smr.testing import Message, Network, unstamped

from multipaxos import (ACCEPTOR_PREFIX, SNAPSHOT_KEY, Accept, Accepted, Catchup, MultiPaxosCore, Nack, Prepare,
                        Promise, check_invariants)
from multipaxos._core import _HANDLERS
from multipaxos.messages import CatchupRequest, Heartbeat
from multipaxos.mutants import build
from synod.ballot import Ballot


MESSAGE_TYPES = [Prepare, Promise, Accept, Accepted, Heartbeat, Nack, CatchupRequest, Catchup]


def _net(size: int = 3, seed: int = 0, state_machine: Any = KVStore, **options: object) -> Network:
    return Network(MultiPaxosCore, size, options, seed, state_machine, invariants=check_invariants)


def _elected(size: int = 3, leader: str = "n1", **options: object) -> Network:
    net = _net(size, **options)
    net.elect(leader)
    return net


def _commit(net: Network, leader: str, values: range, client: str = "c1") -> None:
    """Have ``leader`` order one put per value and deliver until quiet."""
    for i in values:
        net.request(leader, put("k", str(i)), client, i)
        net.stabilize()


def _settle(net: Network, leader: str) -> None:
    """Tick everyone for two heartbeat intervals, delivering promptly: followers learn the commit
    index (a heartbeat is skipped when an Accept went out in its interval)."""
    net.tick_all(2 * net.cores[leader].opts.heartbeat_ticks)


def _applied(net: Network, node: str) -> dict[int, ClientRequest]:
    return dict(net.cores[node].log)


def _recorder(kind: type, into: list[Any], dst: str | None = None) -> Callable[[str, str, Any], bool]:
    """A ``Network.drop_if`` that drops nothing but records every ``kind`` message (to ``dst``)."""

    def record(src: str, to: str, msg: Any) -> bool:
        if isinstance(msg, kind) and dst in (None, to):
            into.append(msg)
        return False

    return record


def _slot_key(slot: int) -> str:
    return f"{ACCEPTOR_PREFIX}slot/{slot:012d}"


# ------------------------------------------------------------ phase 1 once per leader
def test_stable_leader_skips_phase_1_for_every_later_command() -> None:
    """Phase-1 skipping: once elected, a stable leader sends no Prepare however many commands it
    orders; each command costs one Accept and one Accepted per follower.

    Reference: Paxos Made Simple, section 3 (phase 1 for infinitely many instances at once)
    """
    net = _elected(3)
    prepares = net.delivered["Prepare"]
    assert prepares == 2  # one election: one Prepare per peer
    ballot = net.cores["n1"].ballot
    for i in range(1, 101):
        net.request("n1", put("k", str(i)), "c1", i)
        net.stabilize()
        net.tick_all(1)
    assert net.delivered["Prepare"] == prepares and net.delivered["Promise"] == 2
    assert net.delivered["Accept"] == 200 and net.delivered["Accepted"] == 200
    assert net.cores["n1"].ballot == ballot and net.cores["n1"].role == "leader"
    assert [r.status for r in net.replies if r.client_id == "c1"] == [ReplyStatus.OK] * 100
    assert net.cores["n1"].applied == 100


def test_batched_commands_share_one_accept_and_one_slot_range() -> None:
    """Batching and pipelining: commands queued while max_inflight batches are outstanding go out
    together in one Accept, in consecutive slots.

    Reference: Paxos Made Simple, section 3 (the leader may propose commands 1..n concurrently)
    """
    net = _elected(3, max_inflight=1, max_batch=8)
    sent: list[Accept] = []
    net.drop_if = _recorder(Accept, sent, dst="n2")
    for i in range(1, 6):
        net.request("n1", put("k", str(i)), "c" + str(i), 1)
    net.stabilize()
    assert [(a.first_slot, len(a.values)) for a in sent] == [(1, 1), (2, 4)]
    assert net.delivered["Accept"] == 4  # two batches, each to two followers
    assert net.cores["n1"].applied == 5 and net.cores["n3"].acceptor.accepted.keys() == {1, 2, 3, 4, 5}


# ------------------------------------------------------------ recovery in phase 1
def _minority_accepted(value: ClientRequest) -> Network:
    """5 nodes; leader n1 gets ``value`` accepted at slot 1 by itself and n2 only, then crashes."""
    net = _elected(5)
    net.drop_if = lambda s, d, m: isinstance(m, Accept) and d in ("n3", "n4", "n5")
    net.step("n1", value)
    net.stabilize()
    assert unstamped(net.cores["n2"].acceptor.accepted[1][1]) == value
    assert net.cores["n1"].applied == 0  # 2 of 5 accepted: not chosen
    net.crash("n1")
    net.recover()
    return net


def test_new_leader_re_proposes_a_value_a_promiser_accepted_under_the_old_leader() -> None:
    """Recovery: a value accepted by a minority (old leader + n2) under a crashed leader is
    re-proposed by the next leader when n2 is among its promisers, and is chosen at that slot.

    Reference: Paxos Made Simple, section 2.2 (P2c) and section 3 (a new leader's phase 1)
    """
    value = ClientRequest("c1", 1, put("x", "old"))
    net = _minority_accepted(value)
    net.cut("n3", "n5")  # promisers: n3 itself, n2 (has the value) and n4
    net.campaign("n3")
    net.stabilize()
    n3 = net.cores["n3"]
    assert n3.role == "leader"
    assert unstamped(n3.log[1]) == value
    net.recover()
    _settle(net, "n3")
    for node in ("n2", "n3", "n4", "n5"):
        assert unstamped(net.cores[node].log[1]) == value, node
    net.restart("n1")  # the old leader learns the same value at slot 1
    _settle(net, "n3")
    assert unstamped(net.cores["n1"].log[1]) == value
    assert unstamped(net.applied[1]) == value


def test_a_value_no_promiser_reports_is_not_recovered_and_its_slot_is_reused() -> None:
    """Recovery: when no promiser reports a value for a slot (n2, which has it, is cut off), nothing
    was chosen there, so the new leader proposes nothing for it and orders its next command in that
    slot; the old leader and n2 then learn that command, not their own accepted value.

    Reference: Paxos Made Simple, section 2.2 (P2c: any value if no acceptor in the majority accepted)
    """
    value = ClientRequest("c1", 1, put("x", "old"))
    net = _minority_accepted(value)
    net.isolate("n2")  # promisers: n3, n4, n5 -- none accepted anything
    net.elect("n3")
    n3 = net.cores["n3"]
    assert n3.next_slot == 1 and n3.proposals == {}
    new = ClientRequest("c2", 1, put("x", "new"))
    net.step("n3", new)
    net.stabilize()
    assert unstamped(n3.log[1]) == new
    net.recover()
    net.restart("n1")
    _settle(net, "n3")
    for node in net.ids:
        assert unstamped(net.cores[node].log[1]) == new, node
    assert unstamped(net.cores["n1"].acceptor.accepted[1]) == (Ballot(1, "n1"), value)  # superseded, not chosen
    net.request("n3", value.command, "c1", 1)  # the old client retries and is ordered after it
    net.stabilize()
    assert unstamped(n3.log[2]) == value and net.replies_to("c1", 1)[-1].status == ReplyStatus.OK


def test_a_gap_below_a_higher_accepted_slot_is_filled_with_a_no_op() -> None:
    """Gap filling: a slot accepted nowhere below a slot a promiser accepted becomes a no-op, so the
    log has no holes and later slots can be applied.

    Reference: Paxos Made Simple, section 3 (a leader fills gaps with no-op commands)
    """
    net = _elected(3, max_batch=1)
    a = ClientRequest("c1", 1, put("a", "1"))
    b = ClientRequest("c2", 1, put("b", "2"))
    net.drop_if = lambda s, d, m: isinstance(m, Accept) and m.first_slot == 1
    net.step("n1", a)
    net.step("n1", b)
    net.stabilize()
    assert unstamped(net.cores["n2"].acceptor.accepted) == {2: (net.cores["n1"].ballot, b)}
    assert net.cores["n1"].applied == 0  # slot 2 chosen, but slot 1 is still open
    net.crash("n1")
    net.recover()
    net.elect("n2")
    n2 = net.cores["n2"]
    assert unstamped(n2.log) == {1: NOOP_ENTRY, 2: b}
    _settle(net, "n2")
    assert unstamped(net.cores["n3"].log) == {1: NOOP_ENTRY, 2: b}
    # a's client retries at the new leader and is ordered after the gap
    replies = net.request("n2", a.command, "c1", 1)
    net.stabilize()
    assert replies == [] and net.replies_to("c1", 1)[-1].status == ReplyStatus.OK
    assert unstamped(n2.log[3]) == a


# ------------------------------------------------------------ duelling proposers
def _run_with_latency(net: Network, rounds: int, latency: int) -> list[tuple[str, ...]]:
    """Tick every node once per round; a message is delivered ``latency`` rounds after it was sent.

    Returns the live leaders after each round.
    """
    queue: list[tuple[int, Message]] = []
    leaders: list[tuple[str, ...]] = []
    for now in range(rounds):
        for node in net.ids:
            net.tick(node)
        queue.extend((now + latency, m) for m in net.take())
        due = [m for t, m in queue if t <= now]
        queue = [(t, m) for t, m in queue if t > now]
        net.inject(due)
        for _ in due:
            net.deliver(0)
        queue.extend((now + latency, m) for m in net.take())
        leaders.append(tuple(n for n, c in sorted(net.cores.items()) if c.role == "leader"))
    return leaders


def test_duelling_proposers_settle_with_randomised_back_off() -> None:
    """Duelling proposers: with n3 down, n1 and n2 keep campaigning against each other (their fixed
    election timeout is shorter than a round trip); without back-off they preempt each other for
    ever, with randomised back-off one of them is leader within a bound of ticks and stays leader.

    Reference: Paxos Made Simple, section 3 (progress needs a distinguished proposer)
    """
    timing = {"election_ticks_min": 6, "election_ticks_max": 6, "heartbeat_ticks": 2}
    rounds, latency, bound = 300, 3, 100
    duel = _net(3, 0, **timing, backoff_ticks_max=0)
    duel.crash("n3")
    leaders = _run_with_latency(duel, rounds, latency)
    assert not any(leaders), "without back-off the duel should never end"
    assert max(c.max_round for c in duel.cores.values()) > 40  # they kept raising ballots ...
    assert duel.delivered["Nack"] > 40  # ... and refusing each other's
    settle_ticks = []
    for seed in range(20):
        net = _net(3, seed, **timing, backoff_ticks_max=10)
        net.crash("n3")
        leaders = _run_with_latency(net, rounds, latency)
        settled = max((i for i in range(1, rounds) if leaders[i] != leaders[i - 1]), default=0)
        assert len(leaders[-1]) == 1 and settled < bound, f"seed={seed}: not settled after {bound} ticks"
        (leader,) = leaders[-1]
        follower = next(n for n in net.cores if n != leader)
        assert net.cores[follower].status().leader == leader, f"seed={seed}"
        settle_ticks.append(settled)
    assert max(settle_ticks) < bound, settle_ticks


# ------------------------------------------------------------ any replica can lead
def _promise_bytes(net: Network, candidate: str) -> int:
    """Campaign ``candidate``, deliver its Prepares; return the encoded size of the Promises it gets."""
    net.campaign(candidate)
    while any(isinstance(m[2], Prepare) for m in net.in_flight):
        net.deliver(next(i for i, m in enumerate(net.in_flight) if isinstance(m[2], Prepare)))
    promises = net.take(Promise, dst=candidate)
    assert promises, f"{candidate} got no promise"
    size = sum(len(wire.encode(m[2])) for m in promises)
    net.inject(promises)
    return size


def test_a_replica_with_a_stale_log_becomes_leader_and_catches_up_in_phase_1() -> None:
    """Any replica can be elected (unlike Raft, no up-to-date check): an isolated replica that missed
    20 chosen commands wins an election and learns them from the promises, before sending a single
    Accept and without any Catchup round trip; the promise bytes carry that catch-up.

    Reference: Paxos Made Simple, section 3; Howard & Mortier, "Paxos vs Raft" (2020), section 4
    """
    net = _elected(3)
    net.isolate("n3")
    _commit(net, "n1", range(1, 21))
    assert net.cores["n3"].applied == 0 and net.cores["n2"].applied >= 19
    net.recover()
    net.crash("n1")
    net.in_flight.clear()
    stale_bytes = _promise_bytes(net, "n3")
    net.deliver(0)  # n2's promise
    n3 = net.cores["n3"]
    assert n3.role == "leader"
    # n2 knew slots 1-19 chosen (they came as chosen values); slot 20 it had only accepted
    assert n3.applied == 19 and n3.log == {s: v for s, v in net.applied.items() if s <= 19}
    assert n3.proposals[20].value == net.cores["n2"].acceptor.accepted[20][1]
    assert net.delivered["Catchup"] == 0 and net.delivered["CatchupRequest"] == 0
    _settle(net, "n3")
    assert n3.applied == 20 and net.cores["n2"].applied == 20
    # the same election by an up-to-date replica carries (almost) nothing
    net.restart("n1")
    _settle(net, "n3")
    assert net.cores["n1"].applied == 20
    net.crash("n3")
    net.in_flight.clear()
    fresh_bytes = _promise_bytes(net, "n2")
    net.stabilize()
    assert net.cores["n2"].role == "leader"
    catchup_bytes = stale_bytes - fresh_bytes
    assert catchup_bytes > 20 * len(wire.encode(net.applied[5])), (stale_bytes, fresh_bytes)


def test_a_lagging_follower_catches_up_from_the_leader() -> None:
    """A follower that missed chosen slots (its Accepts were lost) asks the leader for a Catchup when
    a heartbeat's commit index runs ahead of what it can learn, and applies the same values.

    Reference: Paxos Made Simple, section 3 (learning chosen values)
    """
    net = _elected(3)
    net.isolate("n3")
    _commit(net, "n1", range(1, 11))
    net.recover()
    _settle(net, "n1")
    assert net.delivered["CatchupRequest"] >= 1 and net.delivered["Catchup"] >= 1
    assert _applied(net, "n3") == _applied(net, "n1") and net.cores["n3"].applied == 10


# ------------------------------------------------------------ clients
def test_client_retries_are_applied_exactly_once_across_a_leader_change() -> None:
    """Exactly-once: a retried add (same client and sequence number) is ordered once by the same
    leader, is recovered but applied once by the next leader, and every retry is answered with the
    first result.

    Reference: Raft thesis section 6.3 (client sessions), which multi-Paxos needs just as much
    """
    net = _net(5, state_machine=Counter)
    net.elect("n1")
    request = ClientRequest("c1", 1, add(5))
    net.drop_if = lambda s, d, m: isinstance(m, Accept) and d in ("n3", "n4", "n5")
    net.step("n1", request)
    net.step("n1", request)  # a retry while the first copy is in flight: not ordered twice
    assert len([m for m in net.in_flight if isinstance(m[2], Accept)]) == 4
    net.stabilize()
    assert net.cores["n1"].applied == 0 and net.replies_to("c1", 1) == []
    net.crash("n1")
    net.recover()
    assert net.request("n3", request.command, "c1", 1)[0].status == ReplyStatus.REDIRECT
    net.cut("n3", "n5")
    net.elect("n3")  # promisers n2 (has the add), n3, n4: the add is recovered at slot 1
    net.recover()
    net.request("n3", request.command, "c1", 1)
    net.stabilize()
    net.request("n3", request.command, "c1", 1)
    net.stabilize()
    replies = net.replies_to("c1", 1)
    assert [r.status for r in replies[1:]] == [ReplyStatus.OK, ReplyStatus.OK]
    assert [r.result for r in replies[1:]] == [5, 5]
    net.request("n3", read_counter(), "c1", 2)
    net.stabilize()
    assert net.replies_to("c1", 2)[-1].result == 5
    assert sum(1 for v in net.applied.values() if unstamped(v) == request) == 1


def test_a_retry_of_a_chosen_command_whose_reply_was_lost_is_answered_from_the_session_table() -> None:
    """Exactly-once: a command chosen and applied whose reply never reached the client is answered
    by the next leader from its session table, without ordering it again.

    Reference: Raft thesis section 6.3 (client sessions)
    """
    net = _net(3, state_machine=Counter)
    net.elect("n1")
    net.request("n1", add(3), "c1", 1)
    net.stabilize()
    _settle(net, "n1")
    assert net.cores["n2"].applied == 1
    net.crash("n1")  # its reply is lost with it, as far as the client knows
    net.elect("n2")
    slots = net.cores["n2"].applied
    replies = net.request("n2", add(3), "c1", 1)
    assert [(r.status, r.result) for r in replies] == [(ReplyStatus.OK, 3)]
    net.stabilize()
    assert net.cores["n2"].applied == slots


# ------------------------------------------------------------ durability
class DurabilityAudit(Network):
    """A Network that checks, for every Ready, that each Promise and Accepted it sends is covered by
    the node's durable state once that Ready's writes are applied (persist before you promise)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.promises_checked = 0
        self.accepteds_checked = 0

    def step(self, node: str, event: Any) -> Ready:
        """Step ``node`` and audit the Ready it returned against its durable map."""
        before = dict(self.durable[node])
        ready = super().step(node, event)
        audit_ready(node, before, ready, self.cores[node])
        self.promises_checked += sum(isinstance(s.message, Promise) for s in ready.messages)
        self.accepteds_checked += sum(isinstance(s.message, Accepted) for s in ready.messages)
        return ready


def audit_ready(node: str, before: Mapping[str, Any], ready: Ready, core: MultiPaxosCore) -> None:
    """Raise AssertionError if ``ready`` sends a Promise or Accepted its own persist does not cover."""
    written = {w.key: w.value for w in ready.persist}
    durable = {**before, **written}
    for send in ready.messages:
        msg = send.message
        if isinstance(msg, Promise):
            promised = durable.get(f"{ACCEPTOR_PREFIX}promised")
            assert promised is not None and Ballot.from_json(promised) >= msg.ballot, \
                f"{node} sent Promise({msg.ballot}) with durable promise {promised}"
            if before.get(f"{ACCEPTOR_PREFIX}promised") != promised:
                assert f"{ACCEPTOR_PREFIX}promised" in written
        elif isinstance(msg, Accepted):
            for offset in range(msg.count):
                slot = msg.first_slot + offset
                stored = durable.get(_slot_key(slot))
                live = core.acceptor.accepted.get(slot)
                assert stored is not None and Ballot.from_json(stored[0]) == msg.ballot, \
                    f"{node} sent Accepted({msg.ballot}, slot {slot}) before persisting it: {stored}"
                assert live is not None and stored[1] == live[1]


def _durability_schedule(net: DurabilityAudit) -> None:
    net.elect("n1")
    _commit(net, "n1", range(1, 6))
    net.restart("n2")
    net.campaign("n2")
    held = net.take(Prepare)
    net.inject(held + held)  # duplicated Prepares: the second Promise needs no new write
    net.stabilize()
    _commit(net, "n2", range(6, 12), client="c2")
    net.restart("n3")
    net.restart("n1")
    net.elect("n3")
    _commit(net, "n3", range(12, 15), client="c3")
    _settle(net, "n3")


def test_no_promise_or_accepted_leaves_before_its_write() -> None:
    """Persist before you promise: every Ready that carries a Promise carries the write of that
    promise (or the promise was durable already), and every Accepted is covered by the write of
    the accepted value, across elections, duplicates and restarts.

    Reference: Paxos Made Simple, section 2.3 (an acceptor must remember in stable storage)
    """
    net = DurabilityAudit(MultiPaxosCore, 3, {"max_batch": 2}, 0, KVStore, check_invariants)
    _durability_schedule(net)
    assert net.promises_checked >= 6 and net.accepteds_checked >= 20
    assert {c.applied for c in net.cores.values()} == {len(net.applied)}


def test_the_durability_audit_catches_a_promise_that_is_never_persisted() -> None:
    """The audit above is not vacuous: with ``mutant_forget_promise`` the first Promise is sent in a
    Ready without the write of the promised ballot, and the audit says so."""
    net = DurabilityAudit(build, 3, {"max_batch": 2, "mutant_forget_promise": True}, 0, KVStore,
                          check_invariants)
    with pytest.raises(AssertionError, match=r"n\d sent Promise\(1\.n1\) with durable promise None"):
        _durability_schedule(net)


def test_a_restarted_acceptor_keeps_its_promise_and_its_accepted_values() -> None:
    """Restart: an acceptor rebuilds its promised ballot and every accepted slot from durable state,
    so it refuses a stale Prepare after a crash and reports its accepted values to a new leader.

    Reference: Paxos Made Simple, section 2.3
    """
    net = _elected(3)
    net.isolate("n3")
    _commit(net, "n1", range(1, 4))
    before = net.cores["n2"].acceptor
    promised, accepted = before.promised, dict(before.accepted)
    assert promised == Ballot(1, "n1") and len(accepted) == 3
    net.restart("n2")
    after = net.cores["n2"]
    assert after.acceptor.promised == promised and after.acceptor.accepted == accepted
    assert after.max_round == 1 and after.applied == 0  # the chosen prefix is relearned, not stored
    stale = net.step("n2", Receive("n3", Prepare(Ballot(0, "n3"), 1)))
    assert [type(s.message) for s in stale.messages] == [Nack]
    assert stale.messages[0].message.promised == promised
    fresh = net.step("n2", Receive("n3", Prepare(Ballot(2, "n3"), 1)))
    (reply,) = [s.message for s in fresh.messages]
    assert isinstance(reply, Promise)
    assert {sv.slot: (sv.ballot, sv.value) for sv in reply.accepted} == accepted


def test_a_leader_counts_its_own_acceptance_and_persists_it_with_the_accept() -> None:
    """The leader is also an acceptor: the Ready that sends an Accept (eagerly) also writes the
    leader's own acceptance of it, and asks to be told when it is durable, the moment it counts;
    a restarted leader still reports the value.

    Reference: Paxos Made Simple, section 3 (each server plays every role)
    """
    net = _elected(3)
    ready = net.step("n1", ClientRequest("c1", 1, put("x", "1")))
    assert any(isinstance(s.message, Accept) for s in ready.eager)
    assert _slot_key(1) in {w.key for w in ready.persist}
    assert ready.after_sync is not None and ready.after_sync.index == 1
    net.in_flight.clear()
    net.restart("n1")
    assert unstamped(net.cores["n1"].acceptor.accepted[1][1]) == ClientRequest("c1", 1, put("x", "1"))


# ------------------------------------------------------------ snapshots
def test_snapshots_compact_the_log_and_the_acceptor() -> None:
    """Compaction: every ``snapshot_every`` applied slots a replica snapshots its state machine,
    forgets the accepted values below it and the log below a short tail (``catchup_batch`` slots at
    most, for replicas a little behind), and restarts from the snapshot.

    Reference: Paxos Made Simple, section 3 (a server need not remember chosen commands for ever)
    """
    net = _elected(3, snapshot_every=5, catchup_batch=3)
    _commit(net, "n1", range(1, 13))
    _settle(net, "n1")
    for node in net.ids:
        core = net.cores[node]
        assert core.applied == 12 and core.snapshot_slot == 10, node
        assert set(core.log) == {8, 9, 10, 11, 12} and min(core.acceptor.accepted) > 10, node
        assert net.durable[node][SNAPSHOT_KEY]["last_slot"] == 10
        assert not any(k.startswith(f"{ACCEPTOR_PREFIX}slot/") and int(k.rsplit("/", 1)[1]) <= 10
                       for k in net.durable[node])
    state = net.cores["n1"].applier.snapshot()
    net.restart("n2")
    n2 = net.cores["n2"]
    assert n2.applied == n2.snapshot_slot == 10
    _settle(net, "n1")
    assert n2.applied == 12 and n2.applier.snapshot() == state


def test_a_lagging_replica_catches_up_from_a_snapshot() -> None:
    """A replica that missed slots the others compacted away receives a snapshot in a Catchup,
    installs it, then learns the slots after it, and ends with the same state.

    Reference: Paxos Made Simple, section 3; Raft section 7 for the analogous InstallSnapshot
    """
    net = _elected(3, snapshot_every=4, catchup_batch=2)  # a log tail of 2 slots past each snapshot
    net.isolate("n3")
    _commit(net, "n1", range(1, 11))
    assert net.cores["n1"].snapshot_slot == 8 and net.cores["n3"].applied == 0
    snapshots: list[Catchup] = []
    net.recover()
    net.drop_if = _recorder(Catchup, snapshots)
    _settle(net, "n1")
    net.recover()
    assert snapshots and snapshots[0].snapshot is not None and snapshots[0].snapshot.last_slot == 8
    assert [sv.slot for sv in snapshots[0].chosen] == [9, 10]
    _settle(net, "n1")
    n3 = net.cores["n3"]
    assert n3.applied == 10 and n3.snapshot_slot == 8
    assert n3.applier.snapshot() == net.cores["n1"].applier.snapshot()
    assert net.durable["n3"][SNAPSHOT_KEY]["last_slot"] == 8


def test_a_stale_replica_elected_leader_installs_a_snapshot_from_a_promise() -> None:
    """Phase-1 catch-up through a snapshot: a stale replica elected leader gets the compacted prefix
    as a snapshot inside a Promise, and the later chosen values alongside it.

    Reference: Howard & Mortier, "Paxos vs Raft" (2020), section 4
    """
    net = _elected(3, snapshot_every=4)
    net.isolate("n3")
    _commit(net, "n1", range(1, 11))
    net.recover()
    net.crash("n1")
    net.in_flight.clear()
    net.campaign("n3")
    net.deliver(1)  # the Prepare to n2 (n1's is first, and is lost)
    (promise,) = [m[2] for m in net.in_flight if isinstance(m[2], Promise)]
    assert promise.snapshot is not None and promise.snapshot.last_slot >= 8
    net.stabilize()
    _settle(net, "n3")
    n3 = net.cores["n3"]
    assert n3.role == "leader" and n3.applied == 10 and n3.snapshot_slot >= 8
    assert n3.applier.snapshot() == net.cores["n2"].applier.snapshot()
    assert net.delivered["Catchup"] == 0


# ------------------------------------------------------------ surface
def test_a_message_from_a_stranger_is_a_remote_protocol_error() -> None:
    """The core rejects messages from nodes outside the cluster (a RemoteProtocolError, recorded by
    the network), and changes nothing."""
    net = _elected(3)
    net.step("n2", Receive("n9", Prepare(Ballot(9, "n9"), 1)))
    assert net.remote_errors and "n9" in net.remote_errors[0]
    assert net.cores["n2"].acceptor.promised == Ballot(1, "n1")


def test_caller_and_peer_errors_are_split_by_blame() -> None:
    """Misuse by the caller raises LocalProtocolError (as Raft does); garbage from a peer a remote error."""
    core = MultiPaxosCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
    with pytest.raises(LocalProtocolError, match="Start"):
        core.step(TICK)
    core.step(Start({}))
    with pytest.raises(LocalProtocolError, match="twice"):
        core.step(Start({}))
    with pytest.raises(LocalProtocolError, match="cannot step"):
        core.step("hello")  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError, match=r"multipaxos n1 \(follower\): no rule for str from n2"):
        core.step(Receive("n2", "hello"))
    assert core.step(TICK) is not None  # still serving


@given(st.sampled_from([Role.FOLLOWER, Role.CANDIDATE, Role.LEADER]), st.sampled_from(MESSAGE_TYPES))
def test_every_role_has_a_rule_for_every_message(role: Role, kind: type) -> None:
    """The handler table is total: each (role, message) pair is handled or explicitly ignored."""
    assert (role, kind) in _HANDLERS


def test_the_same_seed_gives_the_same_campaign_times() -> None:
    """Determinism: a lone replica campaigns at the same ticks for the same seed (its randomness
    comes only from the rng in its ReplicaConfig), and at other ticks for another seed."""

    def campaigns(seed: int) -> list[int]:
        core = MultiPaxosCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(seed), KVStore, {}))
        core.step(Start({}))
        return [t for t in range(300) if any(isinstance(s.message, Prepare) for s in core.step(TICK).messages)]

    assert len(campaigns(4)) >= 5
    assert campaigns(4) == campaigns(4)
    assert campaigns(4) != campaigns(5)
