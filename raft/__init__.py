"""Raft: leader election, log replication, snapshots, pre-vote and check-quorum as a sans-IO core.

Importing this package registers two backends with :mod:`smr.replica`:

* ``raft`` -- Raft with the extended paper's features and every option off;
* ``raft-pv-cq`` -- the same with pre-vote (thesis 9.6) and check-quorum
  (thesis 6.2) switched on.

Reads go through the log by default; ``read_mode="read_index"`` serves
read-only commands by ReadIndex (thesis 6.4).  Leases are not implemented.
"""

from __future__ import annotations

from smr.replica import Backend, register_backend

from ._core import CANDIDATE as CANDIDATE
from ._core import FOLLOWER as FOLLOWER
from ._core import LEADER as LEADER
from ._core import PRECANDIDATE as PRECANDIDATE
from ._core import RaftCore as RaftCore
from .invariants import RaftInvariants as RaftInvariants
from .log import RaftLog as RaftLog
from .messages import AppendEntries as AppendEntries
from .messages import AppendEntriesReply as AppendEntriesReply
from .messages import Entry as Entry
from .messages import HardState as HardState
from .messages import InstallSnapshot as InstallSnapshot
from .messages import RequestVote as RequestVote
from .messages import RequestVoteReply as RequestVoteReply
from .messages import SnapshotRecord as SnapshotRecord
from .messages import TimeoutNow as TimeoutNow
from .options import DEFAULT_OPTIONS as DEFAULT_OPTIONS
from .options import RaftOptions as RaftOptions

RAFT = register_backend(Backend(
    name="raft",
    factory=RaftCore,
    description="Raft (extended paper): elections, log replication with fast back-off, "
                "snapshots; reads through the log",
    options=dict(DEFAULT_OPTIONS),
    invariants=RaftInvariants,
))

RAFT_PV_CQ = register_backend(Backend(
    name="raft-pv-cq",
    factory=RaftCore,
    description="Raft with pre-vote (thesis 9.6) and check-quorum (thesis 6.2)",
    options={**DEFAULT_OPTIONS, "pre_vote": True, "check_quorum": True},
    invariants=RaftInvariants,
))
