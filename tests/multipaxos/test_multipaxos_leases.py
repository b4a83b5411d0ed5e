"""Multi-Paxos reads: through the log (the baseline), read_index (ReadIndex's multi-Paxos form), and leases.

Scripted schedules on the in-memory :class:`smr.testing.Network`; a node's
clock is the ticks the test gives it, so "a follower's clock runs 10% fast"
is eleven follower ticks for every ten of the leader's.
"""

from __future__ import annotations

from typing import Any

import pytest

from smr.commands import get, put
from smr.errors import LocalProtocolError
from smr.replica import Receive, ReplyStatus
from smr.testing import Network

from multipaxos import MAX_ALPHA, Heartbeat, MultiPaxosCore, MultiPaxosOptions, Prepare, check_invariants
from multipaxos.mutants import build
from synod.ballot import Ballot

ON_OFF = [pytest.param(True, id="mutant"), pytest.param(False, id="correct")]
TIMING = {"election_ticks_min": 10, "election_ticks_max": 10, "heartbeat_ticks": 2, "backoff_ticks_max": 1}


def network(factory: Any = MultiPaxosCore, **options: Any) -> Network:
    net: Network = Network(factory, 3, {**TIMING, **options}, invariants=check_invariants)
    net.elect("n1")
    return net


def put_ok(net: Network, node: str, value: str, seq: int) -> None:
    net.request(node, put("k", value), "w", seq)
    net.settle()
    assert net.replies_to("w", seq)[-1].status == ReplyStatus.OK


def test_read_modes_are_validated() -> None:
    assert MultiPaxosOptions(read_mode="lease").read_mode == "lease"
    with pytest.raises(LocalProtocolError, match="read_mode"):
        MultiPaxosOptions(read_mode="stale")
    with pytest.raises(LocalProtocolError, match="max_clock_drift"):
        MultiPaxosOptions(max_clock_drift=1.5)
    for alpha in (0, MAX_ALPHA + 1, True, 2.0):
        with pytest.raises(LocalProtocolError, match="alpha"):
            MultiPaxosOptions(alpha=alpha)  # type: ignore[arg-type]
    assert MultiPaxosOptions(alpha=MAX_ALPHA).alpha == MAX_ALPHA


def test_a_log_read_takes_a_slot() -> None:
    net = network()
    put_ok(net, "n1", "v", 1)
    net.request("n1", get("k"), "r", 1)
    net.settle()
    assert net.replies_to("r", 1)[-1].result == "v" and net.cores["n1"].applied == 2


def test_read_index_confirms_the_ballot_with_a_quorum_round_and_takes_no_slot() -> None:
    net = network(read_mode="read_index")
    put_ok(net, "n1", "v", 1)
    applied = net.cores["n1"].applied
    assert not net.request("n1", get("k"), "r", 1)  # not before a quorum acked the round
    net.settle()
    assert net.replies_to("r", 1)[-1].result == "v"
    assert net.cores["n1"].applied == applied and net.delivered["HeartbeatAck"] >= 1


def test_read_index_is_not_answered_by_a_deposed_leader() -> None:
    """A leader cut off from a quorum never confirms its round: the read is not answered from stale state."""
    net = network(read_mode="read_index")
    put_ok(net, "n1", "v", 1)
    net.isolate("n1")
    net.campaign("n2")
    net.settle()
    put_ok(net, "n2", "w", 2)
    net.request("n1", get("k"), "r", 1)
    for _ in range(5):
        net.tick_all(1)
    assert not net.replies_to("r", 1)


def test_a_lease_answers_reads_locally_until_it_runs_out() -> None:
    net = network(read_mode="lease", max_clock_drift=0.2)
    put_ok(net, "n1", "v", 1)
    net.tick_all(2)  # a heartbeat round, acked by both: a lease of 10 * 0.8 = 8 ticks from it
    leader = net.cores["n1"]
    assert leader.lease_until == leader.round_tick.get(leader.hb_round, leader.ticks) + 8 or leader.lease_until > 0
    net.isolate("n1")
    sent = len(net.in_flight)
    replies = net.request("n1", get("k"), "r", 1)
    assert replies and replies[0].result == "v" and len(net.in_flight) == sent  # no message for it
    net.tick("n1", 10)
    assert not net.request("n1", get("k"), "r", 2)  # the lease ran out: it falls back to read_index


def test_acceptors_promise_no_other_proposer_within_the_minimum_election_timeout() -> None:
    net = network(read_mode="lease")
    n2 = net.cores["n2"]
    net.tick("n2", 9)
    promised = n2.acceptor.promised
    higher = Ballot(promised.round + 1, "n3")
    net.step("n2", Receive("n3", Prepare(higher, 1)))
    assert n2.acceptor.promised == promised  # 9 ticks after hearing n1: no promise
    net.tick("n2", 1)
    net.step("n2", Receive("n3", Prepare(higher, 1)))
    assert n2.acceptor.promised == higher


def _linearizable_read(replies: list[Any], acknowledged: str) -> None:
    """A read invoked after a write was acknowledged returns that write's value (or is not answered)."""
    for reply in replies:
        if reply.status == ReplyStatus.OK and reply.result != acknowledged:
            raise AssertionError(f"not linearizable: a read returned {reply.result!r} after "
                                 f"{acknowledged!r} was acknowledged")


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_lease_ignores_drift_serves_a_stale_read(mutant: bool) -> None:
    """Followers' clocks run fast: ten of their ticks take nine of the leader's, what
    election_ticks_min * (1 - max_clock_drift) allows with max_clock_drift 0.1.  The leader's heartbeat round at
    its tick t is acked; then it is cut off.  After ten of their ticks (nine of the leader's) n2 and
    n3 elect one of them, which commits a write.  At the leader's tick t + 9 a read comes: a lease of
    election_ticks_min (the mutant) still holds and answers the old value after the new one was
    acknowledged; with the drift bound the lease (9 ticks) has run out, and the read waits for a
    heartbeat round no quorum acks.

    Reference: issue 18, "a lease bounded by the maximum clock drift"
    """
    net = network(build, read_mode="lease", max_clock_drift=0.1, mutant_lease_ignores_drift=mutant)
    put_ok(net, "n1", "old", 1)
    leader = net.cores["n1"]
    net.tick_all(1)
    while leader.heartbeat_elapsed != 0:
        net.tick_all(1)
    start = leader.ticks  # a heartbeat round went out at this tick, and both acked it
    assert leader.round_tick.get(leader.hb_round, start) == start and leader.lease_until > start
    net.isolate("n1")
    for i in range(1, 12):  # ten follower ticks for nine of the leader's
        net.tick("n2")
        net.tick("n3")
        if i % 10:
            net.tick("n1")
        net.settle()
        if net.leader() in ("n2", "n3"):
            break
    new_leader = net.leader()
    assert new_leader in ("n2", "n3") and leader.ticks - start <= 9
    put_ok(net, new_leader, "new", 2)
    while leader.ticks - start < 9:
        net.tick("n1")

    def scenario() -> None:
        _linearizable_read(net.request("n1", get("k"), "r", 1), "new")

    if mutant:
        with pytest.raises(AssertionError, match="not linearizable"):
            scenario()
    else:
        scenario()


def test_heartbeats_ask_for_acks_only_when_something_needs_them() -> None:
    """With log reads and no change under way, heartbeats ask for acks only to learn that a quorum still
    answers (check-quorum) once it has been silent for half the minimum election timeout: a few rounds
    per election timeout in an idle cluster, none while writes flow (their Accepted answers)."""
    sent: list[Heartbeat] = []
    net = network()
    net.drop_if = lambda s, d, m: isinstance(m, Heartbeat) and bool(sent.append(m))  # records, drops nothing
    half = net.cores["n1"].opts.election_ticks_min // 2
    net.tick_all(half - 1)
    assert sent and all(h.round == 0 for h in sent) and net.delivered["HeartbeatAck"] == 0
    sent.clear()
    net.tick_all(6 * half)  # idle: the quorum is silent, so rounds ask, and the acks reset the silence
    rounds = {h.round for h in sent if h.round}
    broadcasts = len({id(h) for h in sent})  # one Heartbeat object per broadcast
    assert 1 <= len(rounds) <= 6 + 1 and 2 * len(rounds) <= broadcasts  # at most one per half timeout
    assert net.delivered["HeartbeatAck"] == 2 * len(rounds)
    acks = net.delivered["HeartbeatAck"]
    sent.clear()
    for seq in range(1, 3 * half):  # a write every tick: Accepted answers keep the quorum heard
        net.request("n1", put("k", str(seq)), "w", seq)
        net.tick_all(1)
    assert all(h.round == 0 for h in sent) and net.delivered["HeartbeatAck"] == acks


def test_a_restarted_acceptor_promises_nobody_for_the_minimum_election_timeout() -> None:
    """It may have acked the leader's heartbeat just before its crash: the lease still counts on it."""
    net = network(read_mode="lease")
    net.tick_all(2)
    net.restart("n2")
    n2 = net.cores["n2"]
    higher = Ballot(n2.acceptor.promised.round + 1, "n3")
    net.step("n2", Receive("n3", Prepare(higher, 1)))
    assert n2.acceptor.promised != higher
    net.drop_if = lambda s, d, m: s == "n1"  # it hears no leader after the restart
    net.tick("n2", 10)
    net.step("n2", Receive("n3", Prepare(higher, 1)))
    assert n2.acceptor.promised == higher
