"""Raft in the deterministic simulator: seeded swarm runs (safety) and fault-free runs (liveness).

The simulator calls the backend's invariants (raft.invariants) after every
step, so each swarm run checks election safety, leader append-only, log
matching, leader completeness and state machine safety on every step, under
faults drawn from the seed.  A failure prints the seed and the one command
that replays it.
"""

from __future__ import annotations

import pytest

from smr.history import Outcome
from smr.sim import ClientConfig, FaultEvent, SimConfig, simulate

SEEDS = 150
DURATION_MS = 1000.0


def _swarm(backend: str, seeds: range, options: dict | None = None) -> None:
    failures = []
    for seed in seeds:
        config = SimConfig(backend=backend, nodes=5, swarm=True, duration_ms=DURATION_MS, trace=False,
                           backend_options=dict(options or {}),
                           clients=ClientConfig(count=3, workload="kv"))
        result = simulate(config, seed)
        if result.violations:
            failures.append(f"seed={seed} options={options} {result.violations[0]}\n"
                            f"  replay: {result.replay}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["raft", "raft-pv-cq"])
def test_swarm_runs_keep_raft_safety_properties_on_every_step(backend: str) -> None:
    """150 seeds of swarm faults (loss, duplication, reordering, crashes, partitions) per backend:
    the invariants never fail.

    Reference: section 5 (Figure 3, the five properties)
    """
    _swarm(backend, range(SEEDS))


@pytest.mark.slow
def test_swarm_runs_with_snapshots_read_index_and_small_windows() -> None:
    """The same, with log compaction, ReadIndex reads, batches of 2 and a pipeline of 1.

    Reference: sections 7 and 8
    """
    _swarm("raft", range(1000, 1060), {"snapshot_every": 4, "read_mode": "read_index",
                                       "max_batch": 2, "max_inflight": 1})
    _swarm("raft-pv-cq", range(2000, 2040), {"snapshot_every": 3, "leadership_transfer": True})


def _ok_after(result, t: float) -> int:
    return sum(1 for op in result.history if op.outcome is Outcome.OK and op.invoke >= t)


@pytest.mark.parametrize("backend", ["raft", "raft-pv-cq"])
def test_fault_free_run_elects_one_leader_and_serves_every_client(backend: str) -> None:
    """Without faults one leader is elected and every client operation succeeds.

    Reference: section 5.2
    """
    result = simulate(SimConfig(backend=backend, nodes=5, duration_ms=1500, trace=False,
                                clients=ClientConfig(count=3, workload="kv")), 7)
    assert result.ok, result.violations
    assert result.leader_changes == 1
    outcomes = [op.outcome for op in result.history]
    assert outcomes.count(Outcome.OK) > 300
    assert outcomes.count(Outcome.OK) >= len(outcomes) - 3  # only the ops cut off by the end


@pytest.mark.parametrize("backend", ["raft", "raft-pv-cq"])
def test_after_a_leader_crash_a_new_leader_is_elected_and_commits(backend: str) -> None:
    """Crash the leader: the others elect a new one, which commits new client commands.

    Reference: section 5.2
    """
    config = SimConfig(backend=backend, nodes=5, duration_ms=2000, trace=True,
                       faults=(FaultEvent(500, "crash_leader"),),
                       clients=ClientConfig(count=3, workload="kv"))
    result = simulate(config, 3)
    assert result.ok, result.violations
    assert result.leader_changes >= 2
    crashed = next(line for line in result.trace if " CRASH " in line).split()[1]
    new_leaders = [line for line in result.trace if " LEADER " in line and float(line[2:].split()[0]) > 500]
    assert new_leaders and crashed not in new_leaders[0]
    assert _ok_after(result, 800.0) > 100


def test_swarm_runs_are_deterministic() -> None:
    """Same config and seed give the same trace, byte for byte."""
    config = SimConfig(backend="raft-pv-cq", nodes=5, swarm=True, duration_ms=500,
                       clients=ClientConfig(count=3, workload="kv"))
    assert simulate(config, 11).trace == simulate(config, 11).trace
