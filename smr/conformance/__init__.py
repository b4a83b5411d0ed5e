"""Conformance: one fault catalogue and one swarm campaign, judged the same way for every backend.

* :mod:`.catalogue` -- the YAML scenario catalogue with its liveness bounds
  and the expected-result matrix;
* :mod:`.judging` -- the five judgements of a run (linearizability, backend
  invariants, workload invariants, liveness, no progress without a quorum);
* :mod:`.fuzz` -- seeded swarm campaigns over processes (``smr fuzz``);
* :mod:`.cli` -- ``smr conformance`` and ``smr fuzz``.
"""

from .catalogue import CHECKS as CHECKS
from .catalogue import ConformanceScenario as ConformanceScenario
from .catalogue import NoProgress as NoProgress
from .catalogue import builtin_catalogue as builtin_catalogue
from .catalogue import load_entry as load_entry
from .catalogue import parse_entry as parse_entry
from .catalogue import to_yaml as to_yaml
from .judging import CellReport as CellReport
from .judging import Judgement as Judgement
from .judging import conformance_backends as conformance_backends
from .judging import judge_result as judge_result
from .judging import mutants_of as mutants_of
from .judging import run_cell as run_cell
