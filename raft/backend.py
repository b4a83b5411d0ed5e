"""The two Raft backends, as plain ``Backend`` objects (:mod:`smr.registry` names them; importing registers nothing).

* ``raft`` -- Raft with the extended paper's features and every option off;
* ``raft-pv-cq`` -- the same with pre-vote (thesis 9.6) and check-quorum
  (thesis 6.2) switched on.

Both build their cores with :func:`raft.mutants.build`: the correct
:class:`~raft._core.RaftCore`, or the deliberately broken subclass a
``mutant_*`` option asks for.
"""

from __future__ import annotations

from smr.replica import Backend

from .invariants import RaftInvariants
from .mutants import build
from .options import DEFAULT_OPTIONS

RAFT = Backend(
    name="raft",
    factory=build,
    description="Raft (extended paper): elections, log replication with fast back-off, "
                "snapshots; reads through the log",
    options=dict(DEFAULT_OPTIONS),
    invariants=RaftInvariants,
)

RAFT_PV_CQ = Backend(
    name="raft-pv-cq",
    factory=build,
    description="Raft with pre-vote (thesis 9.6) and check-quorum (thesis 6.2)",
    options={**DEFAULT_OPTIONS, "pre_vote": True, "check_quorum": True},
    invariants=RaftInvariants,
)
