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

SEEDS = (1, 2)
CATALOGUE = builtin_catalogue()
BACKENDS = conformance_backends()


def test_the_suite_covers_every_built_in_replicated_log_backend() -> None:
    assert {"coordinator", "raft", "raft-pv-cq", "multipaxos"} <= set(BACKENDS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.name for e in CATALOGUE])
def test_scenario_outcome_matches_the_expected_matrix(entry: ConformanceScenario, backend: str, seed: int) -> None:
    if not entry.runs_on(backend):
        pytest.skip(f"{entry.name} is only for {', '.join(entry.backends)}")
    report, _ = run_cell(entry, backend, seed)
    assert report.judgement.failed == report.expected, report.describe()
