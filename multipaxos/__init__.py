"""multipaxos: multi-Paxos as a log of synod instances behind the smr replica contract.

The ``multipaxos`` backend is defined in :mod:`multipaxos.backend` and listed
in smr's table of built-ins (importing this package registers nothing).
"""

from __future__ import annotations

from ._core import ACCEPTOR_PREFIX as ACCEPTOR_PREFIX
from ._core import SNAPSHOT_KEY as SNAPSHOT_KEY
from ._core import MultiPaxosCore as MultiPaxosCore
from .backend import BACKEND as BACKEND
from .invariants import MultiPaxosInvariants as MultiPaxosInvariants
from .invariants import check_invariants as check_invariants
from .messages import Accept as Accept
from .messages import Accepted as Accepted
from .messages import Behind as Behind
from .messages import Catchup as Catchup
from .messages import CatchupRequest as CatchupRequest
from .messages import Heartbeat as Heartbeat
from .messages import HeartbeatAck as HeartbeatAck
from .messages import Nack as Nack
from .messages import Prepare as Prepare
from .messages import Promise as Promise
from .messages import PromisePart as PromisePart
from .messages import SnapshotChunk as SnapshotChunk
from .messages import SnapshotRequest as SnapshotRequest
from .options import MAX_ALPHA as MAX_ALPHA
from .options import MultiPaxosOptions as MultiPaxosOptions
