"""The essay's write-once algorithms as backends, as plain ``Backend`` objects.

:mod:`smr.registry` names each of them in its table of built-ins and imports
this module the first time one is asked for; importing it registers nothing.
Each serves one write-once variable (``replicated_log=False``), so comparisons
of replicated logs leave them out.
"""

from __future__ import annotations

from smr.replica import Backend

from .coordinator import CoordinatorWriteOnce
from .paxos import PaxosSynod
from .voting import MajorityRulesVoting, TiebreakVoting

_VOTING_OPTIONS = {"key": "x", "rebroadcast_ticks": 5}

COORDINATOR = Backend(
    replicated_log=False,
    name=CoordinatorWriteOnce.backend,
    factory=CoordinatorWriteOnce,
    description="essay: one write-once variable held by the bully-chosen coordinator (not fault tolerant)",
    options={"key": "x", "ask_ticks": 3},
)

MAJORITY = Backend(
    replicated_log=False,
    name=MajorityRulesVoting.backend,
    factory=MajorityRulesVoting,
    options=_VOTING_OPTIONS,
    description="essay: majority-rules voting (a split vote never terminates)",
)

TIEBREAK = Backend(
    replicated_log=False,
    name=TiebreakVoting.backend,
    factory=TiebreakVoting,
    options=_VOTING_OPTIONS,
    description="essay: voting with a bully tie-break once all votes are in (not fault tolerant)",
)

PAXOS = Backend(
    replicated_log=False,
    name=PaxosSynod.backend,
    factory=PaxosSynod,
    description="essay: the Paxos synod algorithm (single-decree Paxos) as a write-once variable",
    options={"key": "x", "retry_ticks": 6, "backoff": True, "backoff_ticks": 6, "ask_ticks": 3},
)
