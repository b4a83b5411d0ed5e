"""Multi-Paxos in the deterministic simulator: seeded swarm runs (safety, linearizability, liveness
after the heal) and scripted runs (fault-free service, a leader crash).

The simulator runs :func:`multipaxos.check_invariants` after every step and
checks that every replica commits the same entry at every slot, so each swarm
run checks safety on every step under faults drawn from its seed (loss,
duplication, reordering, crashes with lost unsynced writes, partitions, flapping
links).  The client history is then checked for linearizability against the
key-value model, and, because every swarm schedule heals the network and
restarts every node at 60 % of the run, some operation invoked after the heal
must succeed.  A failure prints the seed and the one command that replays it.
"""

from __future__ import annotations

import pytest

from smr.checker import check, make_model
from smr.history import Outcome
from smr.sim import ClientConfig, FaultEvent, SimConfig, SimResult, simulate

#: Seeds per CI run: multi-Paxos's per-step invariant check (64 slots) makes a seed ~1 s, so 90 keep
#: the suite under CI's 20 minutes (with the 256-byte-bound swarm of tests/test_message_bounds.py);
#: `smr fuzz --backend multipaxos --seeds N` runs more.
SEEDS = 90
DURATION_MS = 2000.0
HEAL_AT = 0.6 * DURATION_MS  # draw_swarm heals and restarts every node here


def _ok_after(result: SimResult, t: float) -> int:
    return sum(1 for op in result.history if op.outcome is Outcome.OK and op.invoke >= t)


def _swarm_failures(seeds: range, options: dict[str, object] | None = None, clients: int | None = None) -> list[str]:
    """Run one swarm simulation per seed (3 or 4 clients by seed unless given); describe every run
    that broke safety, linearizability or liveness after the heal."""
    failures = []
    model = make_model("kv")
    for seed in seeds:
        config = SimConfig(backend="multipaxos", nodes=5, swarm=True, duration_ms=DURATION_MS, trace=False,
                           count_bytes=False, backend_options=dict(options or {}),
                           clients=ClientConfig(count=clients or 3 + seed % 2, workload="kv", timeout_ms=100))
        result = simulate(config, seed)
        problem = None
        if result.violations:
            problem = f"violation: {result.violations[0]}"
        else:
            verdict = check(list(result.history), model)
            if verdict.status.value != "linearizable":
                problem = f"history is {verdict.status.value}"
            elif _ok_after(result, HEAL_AT) == 0:
                problem = f"no operation invoked after the heal at {HEAL_AT} ms succeeded"
        if problem is not None:
            failures.append(f"seed={seed} options={options} {problem}\n  {result.swarm}\n"
                            f"  replay: {result.replay}")
    return failures


@pytest.mark.slow
def test_swarm_runs_are_safe_linearizable_and_live_after_the_heal() -> None:
    """90 seeds of swarm faults, 3 or 4 clients: the invariants hold on every step, every client
    history is linearizable, and once the network heals the cluster serves clients again.

    Reference: Paxos Made Simple, section 3 (safety under any faults; progress once a leader is stable)
    """
    failures = _swarm_failures(range(SEEDS))
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_swarm_runs_with_snapshots_and_small_batches() -> None:
    """20 more seeds with log compaction every 3 slots, batches of 2, a pipeline of 1 and 4 clients:
    snapshot transfer in Catchup and Promise messages under faults.

    Reference: Paxos Made Simple, section 3
    """
    failures = _swarm_failures(range(5000, 5020), {"snapshot_every": 3, "max_batch": 2, "max_inflight": 1},
                               clients=4)
    assert not failures, "\n".join(failures)


def test_fault_free_run_elects_one_leader_and_serves_every_client() -> None:
    """Without faults one leader is elected, keeps its ballot, and every client operation succeeds
    (phase 1 runs once: one Prepare per peer in the whole run).

    Reference: Paxos Made Simple, section 3
    """
    config = SimConfig(backend="multipaxos", nodes=5, duration_ms=1500, trace=False,
                       clients=ClientConfig(count=3, workload="kv"))
    result = simulate(config, 7)
    assert result.ok, f"{result.violations} replay: {result.replay}"
    assert result.leader_changes == 1, result.replay
    assert result.counters.sent["Prepare"] == 4, result.replay
    outcomes = [op.outcome for op in result.history]
    assert outcomes.count(Outcome.OK) > 300, result.replay
    assert outcomes.count(Outcome.OK) >= len(outcomes) - 3, result.replay  # only ops cut off by the end
    assert check(list(result.history), make_model("kv")).status.value == "linearizable", result.replay


def test_after_a_leader_crash_a_new_leader_is_elected_and_commits() -> None:
    """Crash the leader: another replica wins phase 1, recovers the log and commits new commands.

    Reference: Paxos Made Simple, section 3
    """
    config = SimConfig(backend="multipaxos", nodes=5, duration_ms=2000, trace=True,
                       faults=(FaultEvent(500, "crash_leader"),),
                       clients=ClientConfig(count=3, workload="kv"))
    result = simulate(config, 3)
    assert result.ok, f"{result.violations} replay: {result.replay}"
    assert result.leader_changes >= 2, result.replay
    crashed = next(line for line in result.trace if " CRASH " in line).split()[1]
    new_leaders = [line for line in result.trace if " LEADER " in line and float(line[2:].split()[0]) > 500]
    assert new_leaders and crashed not in new_leaders[0], result.replay
    assert _ok_after(result, 800.0) > 100, result.replay
    assert check(list(result.history), make_model("kv")).status.value == "linearizable", result.replay


def test_swarm_runs_are_deterministic() -> None:
    """The same config and seed give the same trace, byte for byte, and the same history."""
    config = SimConfig(backend="multipaxos", nodes=5, swarm=True, duration_ms=600,
                       clients=ClientConfig(count=3, workload="kv", timeout_ms=100))
    first, second = simulate(config, 11), simulate(config, 11)
    assert first.trace == second.trace and first.history == second.history
    assert first.committed == second.committed
