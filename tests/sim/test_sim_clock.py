"""The clock_leader fault: a leader's clock slowed, the others' sped up, as far as a lease's drift bound allows."""

from __future__ import annotations

import pytest

from smr.conformance import parse_entry, run_cell

ENTRY = """
name: lease-slow-leader
description: the leader's ticks last 1.3x, the others' 0.7x (max_clock_drift 0.3 allows it), then it is cut
  off from its peers while clients still reach it and read under its lease
liveness_bound_ms: 500
backends: [raft, multipaxos]
scenario:
  nodes: 3
  duration_ms: 2000
  backend_options: {read_mode: lease, heartbeat_ticks: 1, max_clock_drift: 0.3}
  clients: {count: 8, workload: kv, workload_options: {read_ratio: 0.8}, timeout_ms: 10, max_attempts: 2}
  faults:
    - {at: 800, action: clock_leader, rate: 1.3, others: 0.7}
    - {at: 1000, action: isolate_leader}
"""


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_a_lease_within_its_drift_bound_stays_linearizable_when_the_leader_is_slow_and_cut_off(backend: str) -> None:
    report, result = run_cell(parse_entry(ENTRY), backend, 1, trace=True)
    assert any(" CLOCK " in line and "x1.3" in line and "others x0.7" in line for line in result.trace)
    assert report.judgement.passed, report.describe()


def test_clock_leader_needs_a_rate_in_range() -> None:
    from smr.errors import ConfigError
    with pytest.raises(ConfigError, match="rate"):
        parse_entry(ENTRY.replace("rate: 1.3, others: 0.7", "others: 0.7"))
    with pytest.raises(ConfigError, match="clock rate"):
        parse_entry(ENTRY.replace("rate: 1.3", "rate: 40"))
