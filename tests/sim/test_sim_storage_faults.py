"""Storage faults in the simulator: wiped disks, bit flips, lost tails and full disks (smr.sim.disk).

A damaged node is found damaged when it starts, stays out, and comes back
empty through a membership change (removed, then added again) -- the
simulator's ``smr serve --rejoin-empty``.  With the start-up checks off the
same faults lose acknowledged writes: that is what makes the checks trusted.
"""

from __future__ import annotations

import random

import attrs
import pytest

from smr.compare import judge
from smr.conformance.fuzz import FuzzSettings, run_seed
from smr.errors import ConfigError, LocalProtocolError
from smr.sim import ClientConfig, DiskConfig, FaultEvent, SimConfig, Simulation, parse_scenario
from smr.sim.disk import DiskState
from smr.sim.faults import draw_swarm
from smr.sim.engine import workload_for

BACKENDS = ("raft", "multipaxos")
CLIENTS = ClientConfig(count=3, workload="kv", timeout_ms=200, max_attempts=4)

#: Commits go to n1 and n2 while n3 is cut off; then n2's disk is emptied and n1 crashes, so only an
#: empty n2 and a stale n3 are up.  Voting with the empty disk would let them choose other values at the
#: indices n1 and n2 committed; n1's restart then shows it.
LOSS = (FaultEvent(100, "partition", groups=(("n3",), ("n1", "n2"))),
        FaultEvent(800, "wipe", node="n2"),
        FaultEvent(805, "crash", node="n1"),
        FaultEvent(820, "heal"),
        FaultEvent(830, "restart", node="n2"),
        FaultEvent(1500, "restart", node="n1"))


def _run(backend: str, *faults: FaultEvent, checks: bool = True, duration_ms: float = 3000,
         seed: int = 1) -> Simulation:
    config = SimConfig(backend=backend, duration_ms=duration_ms, clients=CLIENTS, faults=faults,
                       disk=DiskConfig(checks=checks))
    sim = Simulation(config, seed)
    sim.result = sim.run()  # type: ignore[attr-defined]
    return sim


def _verdict(sim: Simulation) -> str:
    result = sim.result  # type: ignore[attr-defined]
    return judge(result, workload_for(result.config))[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wiped_node_stays_out_then_rejoins_empty_through_a_membership_change(backend: str) -> None:
    sim = _run(backend, *LOSS)
    result = sim.result  # type: ignore[attr-defined]
    assert result.ok, result.violations
    assert _verdict(sim) == "linearizable"
    trace = "\n".join(result.trace)
    assert "n2 STAYS OUT: its start found its state damaged: wiped" in trace
    done = [(c.action, c.change, c.outcome) for c in result.changes]
    assert done == [("remove_node", "remove n2", "done"), ("add_node", "add n2", "done")], done
    # n2 is a voter again, with the log: the last committed entry reached it
    node = sim.nodes["n2"]
    assert node.alive and node.core is not None and getattr(node.core, "readmitted")
    assert getattr(node.core, "applier").membership.votes_in("n2")
    assert sim.ledger.last("n2") > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_the_start_up_checks_a_wiped_disk_loses_acknowledged_writes(backend: str) -> None:
    """The broken variant: the emptied node votes and accepts as if it had promised nothing."""
    sim = _run(backend, *LOSS, checks=False)
    result = sim.result  # type: ignore[attr-defined]
    verdict = _verdict(sim)
    assert result.violations or verdict != "linearizable", (
        f"{backend}: a wiped voter loaded as empty lost nothing; the scenario no longer exercises the checks")
    assert "n2 RESTART durable_keys=0 (damage not checked: wiped" in "\n".join(result.trace)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fault", [FaultEvent(600, "flip", node="n1"),
                                   FaultEvent(600, "lose_tail", node="n1", batches=5)])
def test_a_flipped_bit_or_a_lost_tail_is_found_at_start(backend: str, fault: FaultEvent) -> None:
    sim = _run(backend, fault, FaultEvent(700, "restart", node="n1"), duration_ms=2500)
    result = sim.result  # type: ignore[attr-defined]
    assert result.ok, result.violations
    assert _verdict(sim) == "linearizable"
    trace = "\n".join(result.trace)
    found = "fails its checksum" if fault.action == "flip" else "fewer synced batches than were acknowledged"
    assert f"n1 STAYS OUT: its start found its state damaged: " in trace and found in trace
    assert [c.outcome for c in result.changes] == ["done", "done"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_full_disk_makes_its_node_sit_out_until_space_returns(backend: str) -> None:
    faults = tuple(FaultEvent(400, "disk_full", node=n, until_ms=900) for n in ("n1", "n2", "n3"))[:1]
    sim = _run(backend, *faults, FaultEvent(400, "crash_leader"), FaultEvent(450, "restart", node="n1"),
               duration_ms=2500)
    result = sim.result  # type: ignore[attr-defined]
    assert result.ok, result.violations
    assert _verdict(sim) == "linearizable"
    trace = "\n".join(result.trace)
    assert "n1 DISK REFUSED a write; it sits out until t=900.000" in trace
    assert "t=900.000 n1 RESTART" in trace
    assert sim.nodes["n1"].alive and not result.changes  # nothing was damaged: no membership change


def test_the_disk_model_undoes_exactly_the_lost_batches() -> None:
    from collections import deque

    from smr.replica import Write

    disk, durable = DiskState(journal=deque(maxlen=8)), {"a": 1}
    disk.sync(durable, [Write("a", 2), Write("b", 1)])
    disk.sync(durable, [Write("a", None), Write("c", 3)])
    assert durable == {"b": 1, "c": 3}
    disk.lose_tail(durable, 1)
    assert durable == {"a": 2, "b": 1}
    disk.lose_tail(durable, 5)  # more than were recorded: back to before the first
    assert durable == {"a": 1} and disk.damage is not None
    flipped = {"term": 6}
    DiskState().flip(flipped, random.Random(3))
    assert flipped != {"term": 6}


def test_storage_faults_read_from_yaml_with_their_errors() -> None:
    config = parse_scenario("""
faults:
  - {at: 100, action: wipe, node: n2}
  - {at: 200, action: lose_tail, node: n1, batches: 3}
  - {at: 300, action: disk_full, node: n3, until_ms: 500}
disk: {checks: false, rejoin: false}
""", "disks.yaml")
    assert config.faults[1] == FaultEvent(200, "lose_tail", node="n1", batches=3)
    assert not config.disk.checks and not config.disk.rejoin
    with pytest.raises(ConfigError) as info:
        parse_scenario("""faults:
  - {at: 100, action: wipe}
  - {at: 200, action: flip, node: n1, batches: 3}
  - {at: 300, action: disk_full, node: n3}
""", "bad.yaml")
    text = str(info.value)
    assert "bad.yaml:2" in text and "faults[0].node" in text and "wipe needs a node" in text
    assert "bad.yaml:3" in text and "faults[1].batches" in text and "only lose_tail" in text
    assert "bad.yaml:4" in text and "faults[2].until_ms" in text


def test_swarm_storage_draws_come_after_the_others_and_damage_a_minority() -> None:
    base = SimConfig(backend="raft", nodes=5, duration_ms=5000, swarm=True)
    storage = attrs.evolve(base, swarm_storage=True)
    for seed in range(1, 200):
        plain = draw_swarm(base, random.Random(seed))
        drawn = draw_swarm(storage, random.Random(seed))
        assert drawn.network == plain.network and drawn.lose_unsynced == plain.lose_unsynced
        assert [f for f in drawn.faults if f.action not in ("wipe", "flip", "lose_tail", "disk_full")
                and not (f.action == "restart" and f not in plain.faults)] == list(plain.faults)
        damaged = {f.node for f in drawn.faults if f.action in ("wipe", "flip", "lose_tail")}
        assert len(damaged) <= 2
    with pytest.raises(LocalProtocolError):
        FuzzSettings(storage=True, membership=True).config()


@pytest.mark.parametrize("backend", BACKENDS)
def test_storage_swarm_seeds_pass_and_replay(backend: str) -> None:
    settings = FuzzSettings(backend=backend, storage=True)
    assert settings.replay(7).endswith("--storage")
    assert FuzzSettings.from_json(settings.to_json()) == settings
    for seed in (1, 2, 3):
        report, _ = run_seed(settings, seed)
        assert report.passed, (seed, report.judgement.problems(), settings.replay(seed))
    first, second = run_seed(settings, 2, trace=True)[1], run_seed(settings, 2, trace=True)[1]
    assert first.trace == second.trace and any("STAYS OUT" in line or "DISK" in line for line in first.trace)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_damaged_nodes_of_five_both_rejoin(backend: str) -> None:
    """A node that stays out holds up nobody's removal (the admin once waited for it to come back)."""
    config = SimConfig(backend=backend, nodes=5, duration_ms=4000, clients=CLIENTS,
                       faults=(FaultEvent(200, "wipe", node="n3"), FaultEvent(300, "restart", node="n3"),
                               FaultEvent(310, "wipe", node="n4"), FaultEvent(400, "restart", node="n4")))
    sim = Simulation(config, 1)
    result = sim.run()
    assert result.ok, result.violations
    assert [(c.change, c.outcome) for c in result.changes] == [
        ("remove n3", "done"), ("add n3", "done"), ("remove n4", "done"), ("add n4", "done")]
    assert all(getattr(sim.nodes[n].core, "readmitted") for n in ("n3", "n4"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rejoined_node_restarted_votes_at_once(backend: str) -> None:
    """Readmission survives a restart (a snapshot records it): with the leader down too, the rejoined node and
    the third one elect a leader instead of waiting for the leader to catch the rejoined one up (review)."""
    config = SimConfig(backend=backend, duration_ms=3000, clients=CLIENTS,
                       faults=(FaultEvent(200, "wipe", node="n3"), FaultEvent(300, "restart", node="n3"),
                               FaultEvent(1000, "crash", node="n3"), FaultEvent(1040, "crash_leader"),
                               FaultEvent(1050, "restart", node="n3")))
    sim = Simulation(config, 1)
    result = sim.run()
    assert result.ok, result.violations
    assert [c.outcome for c in result.changes] == ["done", "done"] and result.changes[-1].finished_at < 1000
    late = [op for op in result.history if op.invoke > 1100 and op.outcome.name == "OK"]
    assert late, "no operation completed after the rejoined node restarted with the leader down"
    assert _verdict_of(result) == "linearizable"


def _verdict_of(result: object) -> str:
    return judge(result, workload_for(getattr(result, "config")))[0]
