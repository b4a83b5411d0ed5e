"""Raft: leader election, log replication, snapshots, pre-vote and check-quorum as a sans-IO core.

Two backends, defined in :mod:`raft.backend` and listed in smr's table of
built-ins (importing this package registers nothing):

* ``raft`` -- Raft with the extended paper's features and every option off;
* ``raft-pv-cq`` -- the same with pre-vote (thesis 9.6) and check-quorum
  (thesis 6.2) switched on.

Reads go through the log by default; ``read_mode="read_index"`` serves
read-only commands by ReadIndex (thesis 6.4).  Leases are not implemented.
"""

from __future__ import annotations

from ._core import CANDIDATE as CANDIDATE
from ._core import FOLLOWER as FOLLOWER
from ._core import LEADER as LEADER
from ._core import PRECANDIDATE as PRECANDIDATE
from ._core import RaftCore as RaftCore
from .backend import RAFT as RAFT
from .backend import RAFT_PV_CQ as RAFT_PV_CQ
from .invariants import RaftInvariants as RaftInvariants
from .log import RaftLog as RaftLog
from .messages import AppendEntries as AppendEntries
from .messages import AppendEntriesReply as AppendEntriesReply
from .messages import Entry as Entry
from .messages import HardState as HardState
from .messages import InstallSnapshot as InstallSnapshot
from .messages import InstallSnapshotReply as InstallSnapshotReply
from .messages import RequestVote as RequestVote
from .messages import RequestVoteReply as RequestVoteReply
from .messages import SnapshotRecord as SnapshotRecord
from .messages import TimeoutNow as TimeoutNow
from .options import DEFAULT_OPTIONS as DEFAULT_OPTIONS
from .options import RaftOptions as RaftOptions
