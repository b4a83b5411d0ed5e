"""multipaxos: multi-Paxos as a log of synod instances behind the smr replica contract.

Importing the package registers the ``multipaxos`` backend.
"""

from smr.replica import Backend, register_backend

from ._core import ACCEPTOR_PREFIX as ACCEPTOR_PREFIX
from ._core import SNAPSHOT_KEY as SNAPSHOT_KEY
from ._core import MultiPaxosCore as MultiPaxosCore
from .invariants import check_invariants as check_invariants
from .messages import Accept as Accept
from .messages import Accepted as Accepted
from .messages import Catchup as Catchup
from .messages import CatchupRequest as CatchupRequest
from .messages import Heartbeat as Heartbeat
from .messages import Nack as Nack
from .messages import Prepare as Prepare
from .messages import Promise as Promise
from .options import MultiPaxosOptions as MultiPaxosOptions

BACKEND = register_backend(Backend(
    name="multipaxos",
    factory=MultiPaxosCore,
    description="multi-Paxos on synod instances: stable leader, phase 1 once per leader, no-op gap filling",
    invariants=lambda: check_invariants,
))
