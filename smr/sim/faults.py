"""Fault schedules: written out in a scenario, or drawn from the seed ("swarm").

In swarm mode the fault *settings* themselves come from the seed (how lossy
the network is, how many crashes, which partition shapes), so thousands of
seeds explore thousands of different worlds.  Every swarm schedule has two
phases, as in TigerBeetle's VOPR: faults during the first 60 % of the run,
then everything heals and every node restarts, so the cluster must converge.

With ``swarm_membership`` the seed also draws one to four membership changes
in the fault phase (adds, removes and replaces, some of them of the leader),
keeping the planned cluster between 1 and :data:`MAX_SWARM_NODES` nodes, and
may crash a node it added while it catches up.  The admin client carries the
changes out one after another (:mod:`smr.sim.admin`), and a remove or replace
that names no node removes a voter the seed picks when its turn comes, so the
plan holds whatever the earlier changes turned out to be.  These draws come
after all the others, so a seed draws the same network and faults with or
without them.

With ``swarm_storage`` the seed also draws one to three storage faults
(:mod:`smr.sim.disk`), after all the others: wipes, bit flips and lost tails
on at most a minority of the nodes, and full disks on any.  A damaged node is
found damaged when it restarts, stays out, and comes back empty through a
membership change (removed, then added again), so every backend is judged
under them by the same checks.
"""

from __future__ import annotations

import random

import attrs

from .config import FaultAction, FaultEvent, NetworkConfig, SimConfig

#: The most nodes a swarm run with membership changes plans to have at once.
MAX_SWARM_NODES = 7

#: The fault kinds a swarm run draws its schedule from (the heal at the end is always added).
_SWARM_ACTIONS: tuple[FaultAction, ...] = ("crash", "crash_leader", "restart", "partition_halves", "isolate",
                                           "isolate_leader", "bridge", "heal", "flap")
#: The storage faults a swarm run with ``swarm_storage`` draws from.
_STORAGE_KINDS: tuple[FaultAction, ...] = ("wipe", "flip", "lose_tail", "disk_full")


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
    if config.swarm_membership:
        faults += _draw_membership(config, rng, heal_at)
    faults.sort(key=lambda f: f.at)
    lose_unsynced = rng.random() < 0.7
    if config.swarm_storage:  # drawn last of all, so the rest of the draw is the same without them
        faults = sorted(faults + _draw_storage(config, rng, heal_at), key=lambda f: f.at)
    faults.append(FaultEvent(heal_at, "heal"))
    faults.append(FaultEvent(heal_at, "network", loss=0.0, duplicate=0.0))
    faults.append(FaultEvent(heal_at, "restart_all"))
    return SwarmDraw(network, tuple(faults), lose_unsynced)


def _draw_storage(config: SimConfig, rng: random.Random, heal_at: float) -> list[FaultEvent]:
    """One to three storage faults in the fault phase (smr.sim.disk): wipes, bit flips and lost tails on at
    most a minority of the nodes (each restarted a little later, when its damage is found), and full disks
    on any node until some time before the heal."""
    nodes = list(config.node_ids)
    budget = (len(nodes) - 1) // 2
    damaged: set[str] = set()
    out: list[FaultEvent] = []
    for _ in range(rng.randint(1, 3)):
        at = round(rng.uniform(0.05, 0.55) * config.duration_ms, 3)
        kind: FaultAction = rng.choice(_STORAGE_KINDS)
        node = rng.choice(nodes)
        if kind != "disk_full" and node not in damaged and len(damaged) >= budget:
            kind = "disk_full"  # the damaged nodes stay a minority: a majority's loss is unrecoverable
        if kind == "disk_full":
            out.append(FaultEvent(at, "disk_full", node=node, until_ms=round(min(heal_at, at + rng.uniform(20, 1000)), 3)))
            continue
        damaged.add(node)
        batches = rng.randint(1, 20) if kind == "lose_tail" else None
        out.append(FaultEvent(at, kind, node=node, batches=batches))
        out.append(FaultEvent(round(min(at + rng.uniform(10, 300), heal_at - 1), 3), "restart", node=node))
    return out


def _draw_membership(config: SimConfig, rng: random.Random, heal_at: float) -> list[FaultEvent]:
    """One to four membership changes in the fault phase, keeping 1..MAX_SWARM_NODES nodes planned."""
    count = config.nodes
    next_id = config.nodes + 1
    out: list[FaultEvent] = []
    times = sorted(round(rng.uniform(0.05, 0.55) * config.duration_ms, 3) for _ in range(rng.randint(1, 4)))
    for at in times:
        kinds = [k for k, ok in (("add", count < MAX_SWARM_NODES), ("remove", count > 1), ("replace", True)) if ok]
        kind = rng.choice(kinds)
        leader = rng.random() < 0.3
        if kind == "remove":
            out.append(FaultEvent(at, "remove_leader") if leader else FaultEvent(at, "remove_node"))
            count -= 1
            continue
        new = f"n{next_id}"
        next_id += 1
        if kind == "add":
            out.append(FaultEvent(at, "add_node", node=new))
            count += 1
        else:
            out.append(FaultEvent(at, "replace_leader", new=new) if leader else FaultEvent(at, "replace_node", new=new))
        if rng.random() < 0.3:  # the new node crashes while it catches up (restart_all brings it back)
            out.append(FaultEvent(round(min(at + rng.uniform(5, 100), heal_at - 1), 3), "crash", node=new))
    return out
