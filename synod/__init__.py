"""synod: the essay "Consensus, FLP and Paxos" made executable.

The essay's ``WriteOnce`` interface (``try_initialize``, ``final_value``) and
its algorithms, as sans-IO cores on the shared simulator:

* :class:`LocalWriteOnce` -- the thread-safe reference (a lock);
* :class:`CoordinatorWriteOnce` -- ``DistributedWriteOnce``: one coordinator chosen by the bully algorithm;
* :class:`MajorityRulesVoting` and :class:`TiebreakVoting` -- the voting algorithms;
* :class:`PaxosSynod` -- the Paxos synod algorithm, built from the reusable
  :class:`Acceptor` / :class:`MultiAcceptor`, :class:`PrepareQuorum` /
  :class:`AcceptQuorum` / :class:`MultiPrepareQuorum` and :class:`Learner`
  (multi-Paxos reuses them; see :mod:`synod.acceptor`).

:func:`run_essay_table` judges every algorithm under every scenario of the
essay; :func:`measure_costs` measures Paxos's message delays.

Importing :mod:`synod` loads none of this: every name above is imported from
its module on first use (PEP 562), so multi-Paxos can use
:mod:`synod.acceptor` and :mod:`synod.ballot` without the essay's machinery.
The four algorithms' backends are in :mod:`synod.backends`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .acceptor import Acceptor as Acceptor
    from .acceptor import MultiAcceptor as MultiAcceptor
    from .acceptor import SlotAccepted as SlotAccepted
    from .acceptor import SlotPromise as SlotPromise
    from .acceptor import SlotVote as SlotVote
    from .applications import Order as Order
    from .applications import OrderState as OrderState
    from .applications import user_of_the_day as user_of_the_day
    from .ballot import Ballot as Ballot
    from .cluster import ClusterWriteOnce as ClusterWriteOnce
    from .cluster import CoreCluster as CoreCluster
    from .coordinator import CoordinatorWriteOnce as CoordinatorWriteOnce
    from .coordinator import TryInitialize as TryInitialize
    from .core import Propose as Propose
    from .core import WriteOnceCore as WriteOnceCore
    from .costs import Costs as Costs
    from .costs import PaxosCost as PaxosCost
    from .costs import measure_costs as measure_costs
    from .essay import ALGORITHMS as ALGORITHMS
    from .essay import EXPECTED as EXPECTED
    from .essay import PROPERTIES as PROPERTIES
    from .essay import Cell as Cell
    from .essay import Counterexample as Counterexample
    from .essay import EssayTable as EssayTable
    from .essay import replay as replay
    from .essay import run_essay_table as run_essay_table
    from .essay import run_once as run_once
    from .judge import DecisionLog as DecisionLog
    from .judge import RunVerdict as RunVerdict
    from .judge import judge as judge
    from .learner import Learner as Learner
    from .messages import Accept as Accept
    from .messages import Accepted as Accepted
    from .messages import AskDecided as AskDecided
    from .messages import Decided as Decided
    from .messages import Nack as Nack
    from .messages import Prepare as Prepare
    from .messages import Promise as Promise
    from .paxos import Campaign as Campaign
    from .paxos import PaxosSynod as PaxosSynod
    from .proposer import AcceptQuorum as AcceptQuorum
    from .proposer import MultiPrepareQuorum as MultiPrepareQuorum
    from .proposer import PrepareQuorum as PrepareQuorum
    from .proposer import next_ballot as next_ballot
    from .scenarios import SCENARIOS as SCENARIOS
    from .scenarios import Scenario as Scenario
    from .voting import Candidate as Candidate
    from .voting import MajorityRulesVoting as MajorityRulesVoting
    from .voting import TiebreakVoting as TiebreakVoting
    from .voting import Vote as Vote
    from .voting import tiebreak as tiebreak
    from .write_once import LocalWriteOnce as LocalWriteOnce
    from .write_once import WriteOnce as WriteOnce
    from .adversary import DuelAdversary as DuelAdversary
    from .adversary import RandomNetwork as RandomNetwork
    from .adversary import Scheduler as Scheduler
    from .flp import fit_geometric as fit_geometric
    from .flp import run_flp as run_flp

#: Every public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(('Acceptor', 'MultiAcceptor', 'SlotAccepted', 'SlotPromise', 'SlotVote'), 'acceptor'),
    **dict.fromkeys(('Order', 'OrderState', 'user_of_the_day'), 'applications'),
    **dict.fromkeys(('Ballot',), 'ballot'),
    **dict.fromkeys(('ClusterWriteOnce', 'CoreCluster'), 'cluster'),
    **dict.fromkeys(('CoordinatorWriteOnce', 'TryInitialize'), 'coordinator'),
    **dict.fromkeys(('Propose', 'WriteOnceCore'), 'core'),
    **dict.fromkeys(('Costs', 'PaxosCost', 'measure_costs'), 'costs'),
    **dict.fromkeys(('ALGORITHMS', 'EXPECTED', 'PROPERTIES', 'Cell', 'Counterexample', 'EssayTable', 'replay',
                     'run_essay_table', 'run_once'), 'essay'),
    **dict.fromkeys(('DecisionLog', 'RunVerdict', 'judge'), 'judge'),
    **dict.fromkeys(('Learner',), 'learner'),
    **dict.fromkeys(('Accept', 'Accepted', 'AskDecided', 'Decided', 'Nack', 'Prepare', 'Promise'), 'messages'),
    **dict.fromkeys(('Campaign', 'PaxosSynod'), 'paxos'),
    **dict.fromkeys(('AcceptQuorum', 'MultiPrepareQuorum', 'PrepareQuorum', 'next_ballot'), 'proposer'),
    **dict.fromkeys(('SCENARIOS', 'Scenario'), 'scenarios'),
    **dict.fromkeys(('Candidate', 'MajorityRulesVoting', 'TiebreakVoting', 'Vote', 'tiebreak'), 'voting'),
    **dict.fromkeys(('LocalWriteOnce', 'WriteOnce'), 'write_once'),
    **dict.fromkeys(('DuelAdversary', 'RandomNetwork', 'Scheduler'), 'adversary'),
    **dict.fromkeys(('fit_geometric', 'run_flp'), 'flp'),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name from its submodule on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """This package's module: ``synod.judge`` stays the function when the submodule of that name loads."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value = getattr(value, name)  # the import system binds a loaded submodule on its parent
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
