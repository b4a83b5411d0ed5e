"""Raft lease reads (thesis 6.4.1): answered without messages while a quorum's heartbeat holds, and safe
only as long as clocks drift less than ``max_clock_drift`` says."""

from __future__ import annotations

from typing import Any

import pytest

from raft import RaftInvariants
from raft.mutants import build
from smr.commands import get, put
from smr.errors import LocalProtocolError
from smr.replica import ReplyStatus, Role
from smr.testing import Network

LEASE = {"pre_vote": True, "check_quorum": True, "read_mode": "lease", "election_ticks_min": 15,
         "election_ticks_max": 30, "heartbeat_ticks": 3}
#: The network seed of the clock-rate tests: n2 times out well before n3, so one election decides it.
SEED = 4


def network(**options: Any) -> Network[Any]:
    """Three Raft nodes with leases, n1 elected and x = old committed everywhere."""
    net: Network[Any] = Network(build, 3, {**LEASE, **options}, seed=SEED, invariants=RaftInvariants())
    net.elect("n1")
    net.request("n1", put("x", "old"), client="w", seq=1)
    net.settle()
    net.tick_all(4)  # a heartbeat round: the lease starts from it
    return net


def test_a_leader_with_a_lease_answers_reads_without_a_message() -> None:
    net = network()
    sent_before = sum(net.delivered.values())
    replies = net.request("n1", get("x"), client="r", seq=1)
    assert [r.result for r in replies] == ["old"]
    assert not net.in_flight and sum(net.delivered.values()) == sent_before


def test_without_a_lease_a_read_waits_for_a_quorum_round() -> None:
    net = network()
    net.isolate("n1")
    net.tick("n1", 20)  # past the lease: the read falls back to ReadIndex, which no quorum confirms
    assert net.status("n1").role == Role.FOLLOWER or not net.request("n1", get("x"), client="r", seq=1)


def test_lease_turns_check_quorum_on() -> None:
    net: Network[Any] = Network(build, 3, {**LEASE, "check_quorum": False})
    assert net.cores["n1"].opts.check_quorum
    with pytest.raises(LocalProtocolError, match="max_clock_drift"):
        Network(build, 3, {**LEASE, "max_clock_drift": 1.5})


def _old_leader_reads_after_a_new_leader_wrote(options: dict[str, Any], leader_rate: float) -> list[Any]:
    """Cut n1 off from its followers; its clock runs at ``leader_rate`` of theirs.  Once n2 or n3 leads and
    has committed x = new, a client asks n1 for x: return what n1 answered at once."""
    net = network(**options)
    net.partition(["n1"], ["n2", "n3"])
    leader_ticks = 0.0
    for step in range(1, 200):
        net.tick("n2")
        net.tick("n3")
        leader_ticks += leader_rate
        while leader_ticks >= 1:
            leader_ticks -= 1
            net.tick("n1")
        net.settle()
        new = [n for n in ("n2", "n3") if net.status(n).role == Role.LEADER]
        if new:
            net.request(new[0], put("x", "new"), client="w", seq=2)
            net.settle()
            assert net.replies_to("w", 2)[-1].status == ReplyStatus.OK
            if net.status("n1").role != Role.LEADER:
                return []
            return [r.result for r in net.request("n1", get("x"), client="r", seq=1)]
    raise AssertionError("no new leader was elected")


@pytest.mark.parametrize("rate", [1.0, 0.9, 0.85, 0.82])
def test_a_lease_within_the_drift_bound_never_answers_a_stale_read(rate: float) -> None:
    # max_clock_drift 0.1 allows n1's clock to run at (1 - 0.1) / (1 + 0.1) = 0.818 of a follower's
    assert _old_leader_reads_after_a_new_leader_wrote({}, rate) == []


@pytest.mark.parametrize("rate", [0.9, 0.85, 0.82])
def test_the_mutant_lease_that_ignores_drift_answers_a_stale_read(rate: float) -> None:
    answered = _old_leader_reads_after_a_new_leader_wrote({"mutant_lease_ignores_drift": True}, rate)
    assert answered == ["old"]


@pytest.mark.parametrize("drift, rate", [(0.0, 0.9), (0.1, 0.7)])
def test_a_drift_bound_set_too_small_answers_a_stale_read(drift: float, rate: float) -> None:
    # the bound says clocks agree better than they do: n1's runs slower than it allows
    assert _old_leader_reads_after_a_new_leader_wrote({"max_clock_drift": drift}, rate) == ["old"]


def test_a_restarted_follower_ignores_votes_for_a_timeout() -> None:
    net = network()
    net.restart("n2")
    core = net.cores["n2"]
    assert core._in_lease()
    net.tick("n2", 15)
    assert not core._in_lease() or core.leader is not None


def test_the_checker_judges_the_stale_lease_read_not_linearizable() -> None:
    """The history of the drift-bound-too-small run, as clients saw it: x = old acknowledged, then x = new
    acknowledged by the new leader, then a read invoked after that answered by the old leader's lease."""
    from smr.checker import check
    from smr.checker.models import make_model
    from smr.history import Operation, Outcome

    answered = _old_leader_reads_after_a_new_leader_wrote({"max_clock_drift": 0.0}, 0.9)
    assert answered, "the old leader answered nothing"
    history = [Operation(1, "w", put("x", "old"), 0.0, 1.0, Outcome.OK, None),
               Operation(2, "w", put("x", "new"), 2.0, 3.0, Outcome.OK, None),
               Operation(3, "r", get("x"), 4.0, 5.0, Outcome.OK, answered[0])]
    verdict = check(history, make_model("kv"))
    assert verdict.status.value == "not linearizable", verdict.describe()
    correct = _old_leader_reads_after_a_new_leader_wrote({}, 0.9)
    assert correct == []  # within the bound the old leader answers nothing, so there is nothing stale to judge


def test_a_single_voter_holds_its_lease_and_keeps_no_growing_list_of_rounds() -> None:
    net: Network[Any] = Network(build, 1, LEASE, invariants=RaftInvariants())
    net.elect("n1")
    net.tick("n1", 300)
    core = net.cores["n1"]
    assert len(core.round_started) <= 2
    assert [r.result for r in net.request("n1", get("x"), client="r", seq=1)] == [None]
