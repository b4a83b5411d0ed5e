"""The ``multipaxos`` backend, as a plain ``Backend`` object (:mod:`smr.registry` names it; importing registers nothing).

It builds its cores with :func:`multipaxos.mutants.build`: the correct
:class:`~multipaxos._core.MultiPaxosCore`, or the broken subclass a
``mutant_*`` option asks for.
"""

from __future__ import annotations

from smr.replica import Backend

from .invariants import MultiPaxosInvariants
from .mutants import build

BACKEND = Backend(
    name="multipaxos",
    factory=build,
    description="multi-Paxos on synod instances: stable leader, phase 1 once per leader, no-op gap filling",
    invariants=MultiPaxosInvariants,
)
