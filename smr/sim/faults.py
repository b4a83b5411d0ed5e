"""Fault schedules: written out in a scenario, or drawn from the seed ("swarm").

In swarm mode the fault *settings* themselves come from the seed (how lossy
the network is, how many crashes, which partition shapes), so thousands of
seeds explore thousands of different worlds.  Every swarm schedule has two
phases, as in TigerBeetle's VOPR: faults during the first 60 % of the run,
then everything heals and every node restarts, so the cluster must converge.
"""

from __future__ import annotations

import random

import attrs

from .config import FaultAction, FaultEvent, NetworkConfig, SimConfig

#: The fault kinds a swarm run draws its schedule from (the heal at the end is always added).
_SWARM_ACTIONS: tuple[FaultAction, ...] = ("crash", "crash_leader", "restart", "partition_halves", "isolate",
                                           "isolate_leader", "bridge", "heal", "flap")


@attrs.frozen
class SwarmDraw:
    """What the seed chose: the network settings and the fault schedule."""

    network: NetworkConfig
    faults: tuple[FaultEvent, ...]
    lose_unsynced: bool

    def describe(self) -> str:
        """One line naming the drawn settings (printed at the top of a trace)."""
        actions = ",".join(f.action for f in self.faults) or "none"
        return (f"swarm: loss={self.network.loss:.2f} dup={self.network.duplicate:.2f} "
                f"reorder={self.network.reorder:.2f} lose_unsynced={self.lose_unsynced} faults={actions}")


def draw_swarm(config: SimConfig, rng: random.Random) -> SwarmDraw:
    """Draw network settings and a two-phase fault schedule from ``rng``."""
    nodes = list(config.node_ids)
    heal_at = round(config.duration_ms * 0.6, 3)
    network = attrs.evolve(
        config.network,
        loss=rng.choice([0.0, 0.0, 0.01, 0.05, 0.2]),
        duplicate=rng.choice([0.0, 0.0, 0.02, 0.1]),
        reorder=rng.choice([0.0, 0.1, 0.5]),
    )
    faults: list[FaultEvent] = []
    for _ in range(rng.randint(0, 6)):
        at = round(rng.uniform(0.05, 0.55) * config.duration_ms, 3)
        kind: FaultAction = rng.choice(_SWARM_ACTIONS)
        node = rng.choice(nodes)
        if kind == "flap":
            faults.append(FaultEvent(at, "flap", period_ms=round(rng.uniform(20, 200), 3),
                                     until_ms=min(heal_at, at + rng.uniform(100, 800))))
        elif kind in ("crash", "restart", "isolate", "bridge"):
            faults.append(FaultEvent(at, kind, node=node))
        else:
            faults.append(FaultEvent(at, kind))
    faults.sort(key=lambda f: f.at)
    faults.append(FaultEvent(heal_at, "heal"))
    faults.append(FaultEvent(heal_at, "network", loss=0.0, duplicate=0.0))
    faults.append(FaultEvent(heal_at, "restart_all"))
    return SwarmDraw(network, tuple(faults), rng.random() < 0.7)
