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
"""

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
