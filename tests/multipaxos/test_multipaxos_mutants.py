"""Deliberately broken multi-Paxos, each caught in a hand-built scenario.

A checker that catches no bug proves nothing.  Each test runs one short,
hand-built fault schedule twice on the in-memory network: with the mutant
switched on, :func:`multipaxos.check_invariants` (run after every step) or the
network's comparison of applied entries must raise naming the violated
property; with it off the very same schedule is safe, and ends with every
replica holding the value that was really chosen.  Each mutant is a subclass in
:mod:`multipaxos.mutants` overriding one rule of the core; the last tests
check that seam.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from smr.commands import put
from smr.replica import ClientRequest, Receive, ReplicaConfig, Start
from smr.state_machines import KVStore
from smr.testing import Network, unstamped

from multipaxos import Accept, MultiPaxosInvariants, check_invariants
from multipaxos.mutants import build
from synod.ballot import Ballot

ON_OFF = [pytest.param(True, id="mutant"), pytest.param(False, id="correct")]
V = ClientRequest("c1", 1, put("x", "v"))
W = ClientRequest("c2", 1, put("x", "w"))


#: The stateless check over the whole window, and the simulator's incremental one: each must catch every mutant.
CHECKERS = {"full": lambda: check_invariants, "incremental": MultiPaxosInvariants}
_checker = CHECKERS["full"]


@pytest.fixture(autouse=True, params=sorted(CHECKERS))
def checker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run each test with both checkers."""
    global _checker
    _checker = CHECKERS[request.param]
    yield
    _checker = CHECKERS["full"]


def _net(size: int, **options: object) -> Network:
    return Network(build, size, options, 0, invariants=_checker())


def _run(mutant: bool, prop: str, scenario: Callable[[], None]) -> None:
    if mutant:
        with pytest.raises(AssertionError, match=prop):
            scenario()
    else:
        scenario()


def _settle(net: Network, leader: str) -> None:
    net.recover()
    net.tick_all(2 * net.cores[leader].opts.heartbeat_ticks + 1)


def _preempted_accept(net: Network) -> list:
    """n1 leads ballot 1.n1 and sends Accept(V) for slot 1, which is held back; n2 then wins ballot
    2.n2 with n3's promise and gets W chosen at slot 1 (by n2 and n3).  Returns the held Accepts."""
    net.elect("n1")
    net.step("n1", V)
    held = net.take(Accept, src="n1")
    net.isolate("n1")
    net.elect("n2")
    net.step("n2", W)
    net.stabilize()
    assert unstamped(net.cores["n2"].log[1]) == W  # chosen by n2 and n3, applied by n2
    return held


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_accept_lower_ballot_lets_a_deposed_leader_overwrite_a_chosen_value(mutant: bool) -> None:
    """An acceptor that accepts below its promise lets the old leader's delayed Accept(V) join n1's
    own acceptance into a second majority for slot 1, where W was already chosen.

    Reference: Paxos Made Simple, section 2.2 (P1a: accept only if no higher prepare was promised)
    """
    net = _net(3, mutant_accept_lower_ballot=mutant)

    def scenario() -> None:
        held = _preempted_accept(net)
        net.inject([m for m in held if m[1] == "n3"])
        net.stabilize()
        assert unstamped(net.cores["n3"].acceptor.accepted[1][1]) == W
        _settle(net, "n2")
        assert all(unstamped(core.log[1]) == W for core in net.cores.values())

    _run(mutant, "chosen values stick", scenario)


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_ignore_promised_values_lets_a_new_leader_replace_a_chosen_value(mutant: bool) -> None:
    """A new leader that ignores the values reported in promises proposes W at a slot where V was
    already chosen (accepted by n1 and n2 in ballot 1.n1, applied by n1).

    Reference: Paxos Made Simple, section 2.2 (P2c: propose the highest-numbered accepted value)
    """
    net = _net(3, mutant_ignore_promised_values=mutant)

    def scenario() -> None:
        net.elect("n1")
        net.step("n1", V)
        net.stabilize()
        assert unstamped(net.cores["n1"].log[1]) == V and net.cores["n2"].applied == 0  # n2 has not learned it yet
        net.isolate("n1")                        # n1 stays up: its acceptance of V is visible
        net.elect("n3")                          # promises: n3 (nothing) and n2 (V in 1.n1)
        net.step("n3", W)
        net.stabilize()
        assert unstamped(net.cores["n3"].log) == {1: V, 2: W}
        _settle(net, "n3")
        assert all(unstamped(core.log[1]) == V for core in net.cores.values())

    _run(mutant, "chosen values stick", scenario)


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_forget_promise_accepts_an_old_ballot_after_a_restart(mutant: bool) -> None:
    """An acceptor whose promise is not made durable forgets it in a crash, then accepts the deposed
    leader's delayed Accept(V) in ballot 1.n1: a second majority at a slot where W was chosen.

    Reference: Paxos Made Simple, section 2.3 (an acceptor records its promise in stable storage)
    """
    net = _net(3, mutant_forget_promise=mutant)

    def scenario() -> None:
        held = _preempted_accept(net)
        net.restart("n3")
        assert (net.cores["n3"].acceptor.promised is None) == mutant
        net.inject([m for m in held if m[1] == "n3"])
        net.stabilize()
        assert unstamped(net.cores["n3"].acceptor.accepted[1][1]) == W
        _settle(net, "n2")
        assert all(unstamped(core.log[1]) == W for core in net.cores.values())

    _run(mutant, "chosen values stick", scenario)


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_apply_unchosen_applies_a_value_only_a_minority_accepted(mutant: bool) -> None:
    """A replica that applies every value it accepts applies V, accepted by 2 of 5; the next leader,
    whose promisers never saw V, rightly chooses W at that slot: two replicas applied different
    values at slot 1.

    Reference: Paxos Made Simple, section 2.3 (a value is chosen only once a majority accepted it)
    """
    net = _net(5, mutant_apply_unchosen=mutant)

    def scenario() -> None:
        net.elect("n1")
        net.drop_if = lambda s, d, m: isinstance(m, Accept) and d != "n2"
        net.step("n1", V)
        net.stabilize()
        net.crash("n1")
        net.recover()
        net.isolate("n2")
        net.elect("n3")                          # promisers n3, n4, n5: slot 1 is free
        net.step("n3", W)
        net.stabilize()
        assert unstamped(net.cores["n3"].log[1]) == W
        _settle(net, "n3")
        assert all(unstamped(core.log[1]) == W for core in net.cores.values())

    _run(mutant, "state machine safety", scenario)


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_count_self_before_sync_chooses_on_a_minority_of_disks(mutant: bool) -> None:
    """A leader that counts its own acceptance before it is durable takes V as chosen on n2's
    Accepted alone while n3 is down, and says so in its next (eager) Accept, so n2 applies V; the
    leader crashes before its acceptance is synced, n2 goes down too, and n3 wins with the promises
    of n3 and the restarted leader -- neither holds V -- and chooses W at V's slot.

    Reference: Paxos Made Simple, section 2.3 (an acceptance counts once it is in stable storage)
    """
    net = Network(build, 3, {"mutant_count_self_before_sync": mutant}, 0, invariants=_checker(),
                  hold_syncs=True)

    def scenario() -> None:
        net.elect("n1")
        net.crash("n3")
        net.step("n1", V)                        # slot 1, sent before n1's acceptance is synced
        net.stabilize()
        net.sync("n2")                           # n2's Accepted reaches n1 ...
        net.stabilize()
        net.step("n1", ClientRequest("c3", 1, put("y", "u")))  # ... and slot 2's Accept says commit=1
        net.stabilize()
        net.sync("n2")
        assert net.cores["n2"].applied == (1 if mutant else 0)
        net.crash("n1")                          # with its unsynced acceptances
        net.crash("n2")
        net.start("n3")
        net.start("n1")
        net.elect("n3")                          # promises: n3 and n1, neither holds V
        net.step("n3", W)
        net.settle()
        assert unstamped(net.cores["n3"].log[1]) == W

    _run(mutant, "state machine safety", scenario)


# ------------------------------------------------------------------ the seam
def _config(**options: object) -> ReplicaConfig:
    return ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, options)


def test_the_accept_lower_ballot_mutant_goes_through_the_acceptor() -> None:
    """The broken acceptance is the acceptor's own (unsafe) operation: its durable key is the acceptor's."""
    core = build(_config(mutant_accept_lower_ballot=True))
    core.step(Start({}))
    core.acceptor.on_prepare(Ballot(5, "n3"))
    core.step(Receive("n2", Accept(Ballot(2, "n2"), 1, (V,), 0)))
    assert core.acceptor.accepted[1] == (Ballot(2, "n2"), V)
    assert core.acceptor.promised == Ballot(5, "n3")  # the promise itself is untouched
