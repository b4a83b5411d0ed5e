"""Raft's five properties under arbitrary schedules: a Hypothesis state machine drives the cores.

Rules deliver, drop, duplicate and reorder messages, tick nodes, crash and
restart them (durable state kept) and partition and heal the network, while
clients submit commands.  The Raft invariants run after every single step
inside :class:`raft.testing.Network` (election safety, leader append-only,
log matching, leader completeness, state machine safety) and again as
``@invariant``; Hypothesis shrinks any failure to a short program.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from smr.commands import get, put

from raft.testing import Network

NODES = ("n1", "n2", "n3")
FAST = {"election_ticks_min": 4, "election_ticks_max": 8, "heartbeat_ticks": 1, "max_batch": 2,
        "max_inflight": 2}


class RaftSchedules(RuleBasedStateMachine):
    """Random schedules of messages, time, crashes and partitions against a 3-node cluster."""

    net: Network

    @initialize(pre_vote=st.booleans(), check_quorum=st.booleans(),
                snapshot_every=st.sampled_from([0, 0, 2, 3]),
                read_mode=st.sampled_from(["log", "read_index"]))
    def boot(self, pre_vote: bool, check_quorum: bool, snapshot_every: int, read_mode: str) -> None:
        self.net = Network(3, {**FAST, "pre_vote": pre_vote, "check_quorum": check_quorum,
                               "snapshot_every": snapshot_every, "read_mode": read_mode})
        self.seq = 0

    @rule(node=st.sampled_from(NODES), key=st.sampled_from(["a", "b"]), read=st.booleans())
    def client_request(self, node: str, key: str, read: bool) -> None:
        if node in self.net.cores:
            self.seq += 1
            self.net.request(node, get(key) if read else put(key, str(self.seq)), "c1", self.seq)

    @precondition(lambda self: self.net.in_flight)
    @rule(i=st.integers(0, 1000))
    def deliver(self, i: int) -> None:
        self.net.deliver(i % len(self.net.in_flight))

    @precondition(lambda self: self.net.in_flight)
    @rule(i=st.integers(0, 1000))
    def drop(self, i: int) -> None:
        self.net.drop(i % len(self.net.in_flight))

    @precondition(lambda self: self.net.in_flight)
    @rule(i=st.integers(0, 1000))
    def duplicate(self, i: int) -> None:
        self.net.duplicate(i % len(self.net.in_flight))

    @rule()
    def deliver_all(self) -> None:
        self.net.stabilize()

    @rule(node=st.sampled_from(NODES), n=st.integers(1, 10))
    def tick(self, node: str, n: int) -> None:
        self.net.tick(node, n)

    @rule(n=st.integers(1, 12))
    def run_for(self, n: int) -> None:
        """Let time pass on every node with prompt delivery (elections and commits happen)."""
        self.net.tick_all(n)

    @precondition(lambda self: len(self.net.cores) > 1)
    @rule(node=st.sampled_from(NODES))
    def crash(self, node: str) -> None:
        if node in self.net.cores:
            self.net.crash(node)

    @rule(node=st.sampled_from(NODES))
    def restart(self, node: str) -> None:
        if node not in self.net.cores:
            self.net.restart(node)

    @rule(node=st.sampled_from(NODES))
    def isolate(self, node: str) -> None:
        self.net.isolate(node)

    @rule()
    def heal(self) -> None:
        self.net.recover()

    @invariant()
    def raft_safety_properties(self) -> None:
        """Election safety, leader append-only, log matching, leader completeness, state machine safety."""
        if hasattr(self, "net"):
            self.net.check()

    @invariant()
    def committed_prefixes_agree(self) -> None:
        """Every live node's committed entries equal the canonical committed history."""
        if not hasattr(self, "net"):
            return
        for core in self.net.cores.values():
            for index in range(core.log.snapshot_index + 1, core.commit_index + 1):
                assert self.net.applied[index] == core.log.entry(index).request


RaftSchedules.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
test_raft_schedules = RaftSchedules.TestCase
