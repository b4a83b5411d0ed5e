"""The simulator and a leader's write in parallel: eager messages leave at once, ``after_sync`` comes after the sync.

The probe backend (``eager: true``) sends its probes in ``Ready.eager`` and
asks for a ``Synced`` of every tick's write, so the timing is easy to see.
"""

from __future__ import annotations

import pytest

from probe_backend import ProbeCore  # (importing it registers the "probe" backend)
from smr.sim import ClientConfig, DiskConfig, FaultEvent, Latency, SimConfig, Simulation
from smr.sim.config import parse_scenario
from test_sim_faults import probes

SLOW = DiskConfig(sync=Latency("constant", mean=25.0))


def run(seed: int = 7, **kwargs: object) -> tuple[Simulation, object]:
    base = dict(backend="probe", backend_options={"eager": True}, nodes=3, duration_ms=300,
                clients=ClientConfig(count=0), disk=SLOW)
    base.update(kwargs)
    sim = Simulation(SimConfig(**base), seed)  # type: ignore[arg-type]
    return sim, sim.run()


def test_eager_messages_leave_before_their_batch_is_synced() -> None:
    _, result = run(duration_ms=200)
    first = min(p[0] for p in probes(result.trace))
    assert first < 25.0, "an eager probe waited for the 25 ms sync"


def test_after_sync_is_stepped_once_the_batch_is_durable_and_in_order() -> None:
    seen: list[tuple[str, int, int]] = []

    def on_step(sim: Simulation, node_id: str) -> None:
        node = sim.nodes[node_id]
        core = node.core
        if isinstance(core, ProbeCore) and core.synced and (not seen or seen[-1][:2] != (node_id, len(core.synced))):
            _, ticks = core.synced[-1]
            assert node.durable["ticks"] >= ticks, "Synced came before its write was durable"
            seen.append((node_id, len(core.synced), ticks))

    config = SimConfig(backend="probe", backend_options={"eager": True}, nodes=3, duration_ms=300,
                       clients=ClientConfig(count=0), disk=SLOW)
    sim = Simulation(config, 7, on_step=on_step)
    sim.run()
    for node in sim.nodes.values():
        core = node.core
        assert isinstance(core, ProbeCore)
        assert [t for _, t in core.synced] == sorted(t for _, t in core.synced)
        assert len(core.synced) >= 300 // 25 - 2  # one 25 ms sync after another, each then stepped
    assert seen


def test_a_crash_before_the_sync_loses_the_after_sync_with_the_writes() -> None:
    faults = tuple(FaultEvent(50 + 40 * i, "crash", node="n1") for i in range(5)) + \
        tuple(FaultEvent(55 + 40 * i, "restart", node="n1") for i in range(5))
    sim, result = run(faults=faults)
    core = sim.nodes["n1"].core
    assert isinstance(core, ProbeCore) and core.life > 1
    assert all(life == core.life for life, _ in core.synced), "a Synced of an older incarnation was stepped"
    assert result.counters.lost_writes > 0


def test_a_node_may_have_a_disk_of_its_own_speed() -> None:
    disk = DiskConfig(sync=Latency("constant", mean=0.1), nodes={"n1": Latency("constant", mean=25.0)})
    _, result = run(backend_options={}, disk=disk, duration_ms=200)
    first = {src: min(t for t, s, _, why, _, _ in probes(result.trace) if s == src and why is None)
             for src in ("n1", "n2", "n3")}
    assert first["n1"] >= 25.0 and first["n2"] < 25.0 and first["n3"] < 25.0
    parsed = parse_scenario("disk: {nodes: {n1: {dist: uniform, low: 10, high: 20}}}\n")
    assert parsed.disk.nodes == {"n1": Latency("uniform", low=10.0, high=20.0)}
    with pytest.raises(ValueError, match="unknown nodes n9"):
        SimConfig(nodes=3, disk=DiskConfig(nodes={"n9": Latency()}))


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_a_slow_leader_disk_replays_to_the_same_trace(backend: str) -> None:
    """Same seed, same trace, with eager replication, a slow leader disk and crashes."""
    config = SimConfig(backend=backend, nodes=3, duration_ms=800, clients=ClientConfig(count=3),
                       disk=DiskConfig(sync=Latency("uniform", low=2.0, high=8.0),
                                       nodes={"n1": Latency("uniform", low=10.0, high=20.0)}),
                       faults=(FaultEvent(400, "crash_leader"), FaultEvent(450, "restart_all")))
    first, second = Simulation(config, 3).run(), Simulation(config, 3).run()
    assert first.ok and first.trace == second.trace and len(first.committed) > 10
