"""Experiments that reproduce published figures, and benchmarks that count what protocols send.

* :mod:`.election` -- one trial of Figure 16 of the extended Raft paper
  (time to replace a crashed leader), :mod:`.election_campaign` runs many in
  parallel, :mod:`.election_report` and :mod:`.election_plot` turn them into
  a table, raw data files and a CDF plot;
* :mod:`.messages` -- peer messages per committed command against the
  ``2(N-1)/b`` optimum;
* :mod:`.scripted` -- the simulator hooks these need (timed callbacks,
  injected requests, a message tap);
* :mod:`.cli` -- ``smr experiment election`` and ``smr bench messages``.
"""

from .election import DEFAULT_RANGES as DEFAULT_RANGES
from .election import ElectionSetup as ElectionSetup
from .election import ElectionTrial as ElectionTrial
from .election import run_trial as run_trial
from .election_campaign import run_campaign as run_campaign
from .election_campaign import trial_seed as trial_seed
from .election_report import RangeSummary as RangeSummary
from .election_report import summarize as summarize
from .messages import MessageCount as MessageCount
from .messages import count_messages as count_messages
from .scripted import ScriptedSimulation as ScriptedSimulation
