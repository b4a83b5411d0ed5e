"""Deliberately broken Rafts, each caught by the invariants in a hand-built scenario.

A checker that catches no bug proves nothing.  Each test runs one short,
hand-built fault schedule twice on the in-memory network: with the mutant
switched on the Raft invariants (raft.invariants, run after every step) must
raise naming the violated property; with it off the very same schedule is
safe.  Each mutant is a subclass in :mod:`raft.mutants` overriding one rule
of the core; the last tests check that seam.
"""

from __future__ import annotations

import random

import pytest

from smr.commands import put
from smr.replica import ReplicaConfig
from smr.state_machines import KVStore

from raft import AppendEntries, RequestVote
from raft.mutants import MUTANTS, build
from raft.testing import Network

ON_OFF = [pytest.param(True, id="mutant"), pytest.param(False, id="correct")]


def _run(mutant: bool, prop: str, scenario) -> None:
    if mutant:
        with pytest.raises(AssertionError, match=prop):
            scenario()
    else:
        scenario()


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_vote_without_log_check_loses_committed_entries(mutant: bool) -> None:
    """Voting for a candidate with a stale log elects a leader that lacks a committed entry.

    Reference: section 5.4.1
    """
    net = Network(3, {"mutant_vote_without_log_check": mutant})

    def scenario() -> None:
        net.elect("n1")
        net.isolate("n3")                        # n3 misses the next entry
        net.request("n1", put("x", "1"), "c1", 1)
        net.stabilize()
        assert net.cores["n1"].commit_index == 2  # committed by n1 and n2
        net.crash("n1")
        net.recover()
        net.campaign("n3")                       # n3's log ends at index 1
        net.stabilize()
        assert net.cores["n3"].role != "leader"

    _run(mutant, "leader completeness", scenario)


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_commit_previous_term_is_figure_8(mutant: bool) -> None:
    """Committing an old-term entry by counting replicas lets a later leader overwrite it.

    Reference: section 5.4.2 (Figure 8)
    """
    net = Network(3, {"mutant_commit_previous_term": mutant, "max_batch": 1})

    def scenario() -> None:
        net.elect("n1")                          # term 1; index 1 committed everywhere
        net.isolate("n1")
        net.request("n1", put("x", "a"), "c1", 1)  # index 2, term 1, on n1 only
        net.in_flight.clear()
        net.crash("n1")
        net.recover()
        net.campaign("n2")                       # term 2, elected by n3 ...
        net.deliver(0)                           # RequestVote to n1: dropped (down)
        net.deliver(0)                           # RequestVote to n3
        net.deliver(0)                           # its grant: n2 leads term 2
        assert net.cores["n2"].role == "leader"
        net.in_flight.clear()                    # ... but its no-op (index 2, term 2) goes nowhere
        net.crash("n2")
        net.restart("n1")
        net.tick("n1", 50)                       # term 3, elected by n3 (n1's log is longer)
        net.drop_if = lambda s, d, m: isinstance(m, AppendEntries) and any(e.term == 3 for e in m.entries) \
            and net.cores[d].log.last_index >= 2
        net.stabilize()
        n1 = net.cores["n1"]
        assert n1.role == "leader" and n1.term == 3 and net.cores["n3"].log.term_at(2) == 1
        # index 2 (term 1) is now on n1 and n3, a majority; the mutant commits it
        net.crash("n1")
        net.recover()
        net.restart("n2")
        for _ in range(200):                     # n2 (last term 2) can win over n3 (last term 1)
            net.tick("n2")
            net.stabilize()
            if net.cores["n2"].role == "leader":
                break
        assert net.cores["n2"].role == "leader"

    _run(mutant, "leader completeness", scenario)


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_forget_vote_elects_two_leaders_in_one_term(mutant: bool) -> None:
    """A voter that forgets its vote across a restart votes twice in one term: two leaders.

    Reference: section 5.2 (and Figure 2: votedFor is persistent state)
    """
    net = Network(3, {"mutant_forget_vote": mutant})

    def scenario() -> None:
        net.cut("n1", "n2")
        net.campaign("n1")
        net.campaign("n2")                       # both candidates of term 1
        held = net.take(RequestVote, src="n2", dst="n3")
        net.drop_if = lambda s, d, m: isinstance(m, AppendEntries)
        net.stabilize()                          # n3 votes n1: leader of term 1
        assert net.cores["n1"].role == "leader"
        net.restart("n3")
        net.in_flight.clear()
        net.inject(held)                         # n2's request reaches the restarted voter
        net.stabilize()
        assert net.cores["n2"].role == "candidate"

    _run(mutant, "election safety", scenario)


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_truncate_on_stale_append_loses_a_committed_entry(mutant: bool) -> None:
    """A follower that truncates on a stale AppendEntries forgets an entry it acknowledged, which
    was committed on the strength of that acknowledgement.

    Reference: section 5.3
    """
    net = Network(3, {"mutant_truncate_on_stale_append": mutant})

    def scenario() -> None:
        net.elect("n1")
        net.isolate("n3")
        net.request("n1", put("x", "a"), "c1", 1)  # index 2 ...
        stale = [m for m in net.in_flight if m[1] == "n2"]
        net.request("n1", put("y", "b"), "c2", 1)  # ... and 3, pipelined
        net.stabilize()
        assert net.cores["n1"].commit_index == 3 and net.cores["n2"].log.last_index == 3
        net.inject(stale)                        # a delayed duplicate of the first append
        net.stabilize()
        net.crash("n1")
        net.recover()
        for _ in range(200):
            net.tick("n2")
            net.stabilize()
            if net.cores["n2"].role == "leader":
                break
        assert net.cores["n2"].log.term_at(3) == 1

    _run(mutant, "leader completeness", scenario)


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_count_self_before_sync_commits_on_a_minority_of_disks(mutant: bool) -> None:
    """A leader that counts its own append before it is durable commits on one follower's
    acknowledgement while n3 is down and tells that follower so in its next (eager) append; it
    crashes before its write is synced, the follower goes down too, and the leader and n3 -- whose
    logs both lack the entry -- elect a leader without it.

    Reference: Ongaro's thesis, section 10.2.1 (the leader counts itself once its write is durable)
    """
    net = Network(3, {"mutant_count_self_before_sync": mutant}, hold_syncs=True)

    def scenario() -> None:
        net.elect("n1")
        net.crash("n3")
        net.request("n1", put("x", "a"), "c1", 1)  # index 2, sent before n1's own write is synced
        net.stabilize()
        net.sync("n2")                           # n2's acknowledgement reaches n1 ...
        net.stabilize()
        net.request("n1", put("y", "b"), "c1", 2)  # ... and index 3's append carries n1's commit index
        net.stabilize()
        net.sync("n2")
        assert net.cores["n2"].commit_index == (2 if mutant else 1)
        net.crash("n1")                          # with its unsynced appends
        net.crash("n2")
        net.start("n3")
        net.start("n1")
        net.elect("n1")                          # n3 votes for it: both logs end at index 1
        net.request("n1", put("x", "c"), "c2", 1)
        net.settle()
        assert net.cores["n1"].commit_index == 3

    _run(mutant, "leader completeness", scenario)


# ------------------------------------------------------------------ the seam
def _config(**options: object) -> ReplicaConfig:
    return ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, options)


def test_two_mutants_at_once_combine_their_overrides() -> None:
    core = build(_config(mutant_forget_vote=True, mutant_commit_previous_term=True))
    assert isinstance(core, MUTANTS["mutant_forget_vote"])
    assert isinstance(core, MUTANTS["mutant_commit_previous_term"])
    assert core._durable_vote() is None and core._may_commit(99)
