"""Every catalogue scenario on every replicated-log backend, judged five ways against the expected matrix.

Each run must be linearizable, keep the backend's invariants and the
workload's, make progress within the scenario's bound after its last fault,
and complete nothing while no majority is up.  The expected-result matrix
(each entry's ``expect``) lists the judgements that must fail instead: the
coordinator baseline stalls for good when its coordinator crashes for good.
An expected failure that does not happen fails the test too.
"""

from __future__ import annotations

import pytest

from smr.conformance import ConformanceScenario, builtin_catalogue, conformance_backends, run_cell

SEEDS = (1,)  # seed 2 and beyond: the mutant hunt (seeds 1-10) and the swarms; CI time is capped
CATALOGUE = builtin_catalogue()
BACKENDS = conformance_backends()


def test_the_suite_covers_every_built_in_replicated_log_backend() -> None:
    assert {"coordinator", "raft", "raft-pv-cq", "multipaxos"} <= set(BACKENDS)


#: Every (entry, backend) the catalogue runs (an entry for some backends only runs on those).
CELLS = [(e, b) for e in CATALOGUE for b in BACKENDS if e.runs_on(b)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("entry", "backend"), CELLS, ids=[f"{e.name}-{b}" for e, b in CELLS])
def test_scenario_outcome_matches_the_expected_matrix(entry: ConformanceScenario, backend: str, seed: int) -> None:
    report, _ = run_cell(entry, backend, seed)
    assert report.judgement.failed == report.expected, report.describe()
