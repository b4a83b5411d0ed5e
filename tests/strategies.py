"""Hypothesis strategies for swarm testing: fault settings and schedules as catalogue entries.

A drawn entry has two phases, like the simulator's own swarm mode: faults
(crashes, restarts, partitions, flapping, loss changes) during the first
part of the run, then at ``heal_ms`` every link heals, loss and duplication
stop and every node restarts, and the cluster has ``liveness_bound_ms`` to
make progress.  Every choice shrinks towards "no fault": fewer events,
earlier times, no loss, the first node, so a failing draw shrinks to a short
schedule a person can read (:func:`describe_failure` prints it as catalogue
YAML with the command that replays it).

This module needs Hypothesis (the ``test`` extra).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from smr.sim import ClientConfig, DiskConfig, FaultEvent, Latency, NetworkConfig, SimConfig
from smr.conformance.catalogue import ConformanceScenario, to_yaml
from smr.conformance.judging import CellReport

#: The actions a drawn schedule may use before the heal (the heal itself is always appended).
ACTIONS = ("crash", "restart", "crash_leader", "isolate", "isolate_leader", "partition",
           "partition_halves", "bridge", "heal", "flap", "network", "restart_all")


@st.composite
def fault_events(draw: Any, node_ids: tuple[str, ...], heal_ms: int) -> FaultEvent:
    """One fault strictly before ``heal_ms``, of any kind, on drawn nodes."""
    at = draw(st.integers(1, heal_ms - 1))
    action = draw(st.sampled_from(ACTIONS))
    node = draw(st.sampled_from(node_ids))
    if action in ("crash", "restart", "isolate", "bridge"):
        return FaultEvent(at, action, node=node)
    if action == "partition":
        side = draw(st.sets(st.sampled_from(node_ids), min_size=1, max_size=len(node_ids) - 1))
        return FaultEvent(at, "partition", groups=(tuple(sorted(side)),
                                                   tuple(n for n in node_ids if n not in side)))
    if action == "flap":
        period = draw(st.integers(20, 300))
        until = draw(st.integers(at + 1, heal_ms))
        return FaultEvent(at, "flap", period_ms=period, until_ms=until)
    if action == "network":
        return FaultEvent(at, "network", loss=draw(st.sampled_from([0.0, 0.05, 0.2, 0.5])),
                          duplicate=draw(st.sampled_from([0.0, 0.1, 0.3])))
    return FaultEvent(at, action)


@st.composite
def swarm_entries(draw: Any, nodes: int = 3, duration_ms: int = 3500, heal_ms: int = 1500,
                  liveness_bound_ms: int = 1000, max_faults: int = 8) -> ConformanceScenario:
    """A catalogue entry with drawn network, disk and clock settings and a drawn fault schedule."""
    node_ids = SimConfig(nodes=nodes).node_ids
    network = NetworkConfig(loss=draw(st.sampled_from([0.0, 0.01, 0.05, 0.2])),
                            duplicate=draw(st.sampled_from([0.0, 0.02, 0.1])),
                            reorder=draw(st.sampled_from([0.0, 0.1, 0.5])))
    slow_disk = draw(st.booleans())
    disk = DiskConfig(sync=Latency("uniform", low=1.0, high=5.0) if slow_disk else DiskConfig().sync,
                      lose_unsynced=draw(st.booleans()))
    skew = draw(st.sampled_from([0.0, 0.2, 0.5]))
    faults = draw(st.lists(fault_events(node_ids, heal_ms), max_size=max_faults))
    faults = sorted(faults, key=lambda f: f.at) + [
        FaultEvent(heal_ms, "heal"), FaultEvent(heal_ms, "network", loss=0.0, duplicate=0.0),
        FaultEvent(heal_ms, "restart_all")]
    config = SimConfig(nodes=nodes, duration_ms=duration_ms, clock_skew=skew, network=network, disk=disk,
                       clients=ClientConfig(count=3, timeout_ms=200, max_attempts=4),
                       faults=tuple(faults), name="swarm")
    return ConformanceScenario("swarm", float(liveness_bound_ms), config,
                               description="a schedule drawn by Hypothesis")


def seeds() -> st.SearchStrategy[int]:
    """Simulator seeds; they shrink towards 0."""
    return st.integers(0, 2**16)


def describe_failure(entry: ConformanceScenario, report: CellReport, path: str | None = None) -> str:
    """The failing schedule as catalogue YAML, what failed, and the command that replays it."""
    target = path or "swarm-failure.yaml"
    replay = (f"smr conformance {target} --backends {report.backend} --first-seed {report.seed} --seeds 1"
              + (f" --mutant {report.mutant}" if report.mutant else ""))
    saved = f"written to {path}" if path else f"save it as {target}"
    return "\n".join([
        f"{report.backend} seed {report.seed} failed {sorted(report.judgement.failed)}:",
        *(f"  {p}" for p in report.judgement.problems()),
        f"the schedule ({saved}):", to_yaml(entry).rstrip(), f"replay: {replay}"])
