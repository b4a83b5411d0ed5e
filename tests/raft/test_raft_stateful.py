"""Raft's five properties under arbitrary schedules: a Hypothesis state machine drives the cores.

The rules of :class:`stateful_network.NetworkSchedules` deliver, drop,
duplicate and reorder messages, tick nodes, crash and restart them (durable
state kept) and partition and heal the network, while clients submit and
retry commands.  The Raft invariants run after every single step inside
:class:`raft.testing.Network` (election safety, leader append-only, log
matching, leader completeness, state machine safety) and again as
``@invariant``, with the shared ones: committed prefixes agree, and every
replica equals the reference model.  Hypothesis shrinks any failure to a
short program.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize

from smr.replica import ClientRequest

from raft.testing import Network
from stateful_network import NODES, NetworkSchedules

FAST = {"election_ticks_min": 4, "election_ticks_max": 8, "heartbeat_ticks": 1, "max_batch": 2,
        "max_inflight": 2}


class RaftSchedules(NetworkSchedules):
    """Random schedules of messages, time, crashes and partitions against a 3-node Raft cluster."""

    @initialize(pre_vote=st.booleans(), check_quorum=st.booleans(),
                snapshot_every=st.sampled_from([0, 0, 2, 3]),
                read_mode=st.sampled_from(["log", "read_index"]),
                leader=st.sampled_from([None, *NODES]))
    def boot_raft(self, pre_vote: bool, check_quorum: bool, snapshot_every: int, read_mode: str,
                  leader: str | None) -> None:
        """Three Raft nodes with the features drawn, optionally with a leader elected first."""
        self.boot(Network(3, {**FAST, "pre_vote": pre_vote, "check_quorum": check_quorum,
                              "snapshot_every": snapshot_every, "read_mode": read_mode}), leader)

    def committed_entries(self, core: Any) -> Iterable[tuple[int, ClientRequest]]:
        """The entries after the snapshot, up to the commit index."""
        for index in range(core.log.snapshot_index + 1, core.commit_index + 1):
            yield index, core.log.entry(index).request


RaftSchedules.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
test_raft_schedules = RaftSchedules.TestCase
