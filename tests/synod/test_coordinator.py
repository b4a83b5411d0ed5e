"""The essay's single coordinator: correct without faults, stalls (never lies) without its coordinator."""

from __future__ import annotations

from smr.history import Outcome
from smr.backends.coordinator import bully
from smr.sessions import Applier
from smr.sim import ClientConfig, FaultEvent, SimConfig, simulate
from smr.state_machines import KVStore


def replay_results(committed: dict[int, object]) -> dict[tuple[str, int], object]:
    """Apply the canonical log in order; return each (client, seq)'s true result."""
    applier = Applier(KVStore)
    results = {}
    for index in sorted(committed):
        entry = committed[index]
        results[(entry.client_id, entry.seq)] = applier.apply(entry)[1]  # type: ignore[attr-defined]
    return results


def test_bully_picks_the_largest_node_everywhere() -> None:
    assert bully(["n1", "n10", "n2"]) == "n10"
    assert bully(("n3", "n1", "n2")) == "n3"


def test_coordinator_commits_under_no_faults() -> None:
    result = simulate(SimConfig(nodes=5, duration_ms=1000, clients=ClientConfig(count=4)), 3)
    assert result.ok
    done = [op for op in result.history if op.outcome is Outcome.OK]
    assert len(done) > 300
    assert all(op.outcome is not Outcome.FAIL for op in result.history)
    truth = replay_results(result.committed)
    seqs: dict[str, int] = {}
    for op in sorted(result.history, key=lambda o: o.invoke):
        seqs[op.process] = seqs.get(op.process, 0) + 1
        if op.outcome is Outcome.OK:
            assert truth[(op.process, seqs[op.process])] == op.result, op


def test_coordinator_stalls_without_ever_answering_wrongly_when_it_crashes() -> None:
    """Not fault tolerant: with the coordinator down nothing completes, and nothing is answered wrongly."""
    crash_at, restart_at = 300.0, 700.0
    config = SimConfig(nodes=5, duration_ms=1000, clients=ClientConfig(count=4, timeout_ms=50),
                       faults=(FaultEvent(crash_at, "crash", node="n5"),
                               FaultEvent(restart_at, "restart", node="n5")))
    result = simulate(config, 5)
    assert result.ok
    ok = [op for op in result.history if op.outcome is Outcome.OK]
    stalled = [op for op in ok if crash_at + 5 < op.end < restart_at]
    assert not stalled, f"{len(stalled)} operations completed while the coordinator was down"
    assert any(op.outcome is Outcome.UNKNOWN and crash_at < op.invoke < restart_at for op in result.history)
    assert any(op.invoke > restart_at for op in ok), "no progress after the coordinator came back"
    truth = replay_results(result.committed)
    seqs: dict[str, int] = {}
    for op in sorted(result.history, key=lambda o: o.invoke):
        seqs[op.process] = seqs.get(op.process, 0) + 1
        if op.outcome is Outcome.OK:
            assert truth[(op.process, seqs[op.process])] == op.result


def test_coordinator_keeps_its_synced_log_across_a_restart() -> None:
    config = SimConfig(nodes=3, duration_ms=600, clients=ClientConfig(count=2, timeout_ms=40),
                       faults=(FaultEvent(200, "crash", node="n3"), FaultEvent(250, "restart", node="n3")))
    result = simulate(config, 9)
    assert result.ok  # the simulator checks every re-committed index equals the first commit
    restarted = [line for line in result.trace if "n3 RESTART" in line]
    assert restarted and int(restarted[0].split("durable_keys=")[1]) > 0
