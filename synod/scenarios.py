"""The essay's scenarios as seeded simulator configurations.

Each :class:`Scenario` names a situation from the essay (no faults, a split
vote, the coordinator crashing, a voter crashing before it votes, message
loss, a healing partition, a crash and restart), a default size (nodes and
simultaneous proposals) and how to draw its fault schedule from a seed.
:func:`build_config` turns (scenario, algorithm, seed, size) into a
:class:`smr.sim.SimConfig` whose run lasts ``bound_ms`` past the last fault.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import attrs

from smr.backends.coordinator import bully
from smr.sim import ClientConfig, FaultEvent, NetworkConfig, SimConfig

from .workload import WORKLOAD

#: How long after the last fault every live node must have decided (ms of virtual time).
DEFAULT_BOUND_MS = 400.0

Faults = Callable[[tuple[str, ...], int, random.Random], tuple[FaultEvent, ...]]


def _no_faults(nodes: tuple[str, ...], proposers: int, rng: random.Random) -> tuple[FaultEvent, ...]:
    return ()


def _crash_coordinator(nodes: tuple[str, ...], proposers: int, rng: random.Random) -> tuple[FaultEvent, ...]:
    return (FaultEvent(round(rng.uniform(0.0, 2.0), 3), "crash", node=bully(nodes)),)


def _crash_voter(nodes: tuple[str, ...], proposers: int, rng: random.Random) -> tuple[FaultEvent, ...]:
    voters = nodes[proposers:] or nodes
    return (FaultEvent(0.0, "crash", node=rng.choice(voters)),)


def _message_loss(nodes: tuple[str, ...], proposers: int, rng: random.Random) -> tuple[FaultEvent, ...]:
    return (FaultEvent(0.0, "network", loss=0.3),
            FaultEvent(round(rng.uniform(50.0, 100.0), 3), "network", loss=0.0))


def _partition(nodes: tuple[str, ...], proposers: int, rng: random.Random) -> tuple[FaultEvent, ...]:
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    minority = max(1, (len(nodes) - 1) // 2)
    groups = (tuple(sorted(shuffled[:minority])), tuple(sorted(shuffled[minority:])))
    return (FaultEvent(0.0, "partition", groups=groups),
            FaultEvent(round(rng.uniform(40.0, 100.0), 3), "heal"))


def _crash_restart(nodes: tuple[str, ...], proposers: int, rng: random.Random) -> tuple[FaultEvent, ...]:
    node = rng.choice(nodes)
    at = round(rng.uniform(0.0, 3.0), 3)
    return (FaultEvent(at, "crash", node=node),
            FaultEvent(round(at + rng.uniform(20.0, 80.0), 3), "restart", node=node))


@attrs.frozen
class Scenario:
    """One essay situation: default size, fault schedule, and which property it exercises.

    ``judges`` is ``"termination"`` for scenarios where every fault heals
    (termination is required after the last one) and ``"fault_tolerance"``
    for scenarios with crashes (agreement, validity and termination must all
    survive them).  A scenario can do both.
    """

    name: str
    title: str
    nodes: int
    proposers: int
    judges: tuple[str, ...]
    faults: Faults
    min_nodes: int = 3

    def schedule(self, seed: int, nodes: int | None = None,
                 proposers: int | None = None) -> tuple[FaultEvent, ...]:
        """The fault schedule this scenario draws for ``seed`` at the given size."""
        n = self.nodes if nodes is None else nodes
        p = self.proposers if proposers is None else proposers
        ids = tuple(f"n{i}" for i in range(1, n + 1))
        return self.faults(ids, p, random.Random(f"{seed}/scenario/{self.name}"))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("no_faults", "no faults, two proposals", 5, 2, ("termination",), _no_faults),
    Scenario("split_vote", "25 nodes, three colours proposed at the same time", 25, 3,
             ("termination",), _no_faults),
    Scenario("coordinator_crash", "the coordinator (bully choice) crashes", 5, 2,
             ("fault_tolerance",), _crash_coordinator),
    Scenario("voter_crash", "one voter crashes before it votes; three proposals", 5, 3,
             ("fault_tolerance",), _crash_voter),
    Scenario("message_loss", "30% message loss, then a clean network", 5, 2,
             ("termination",), _message_loss),
    Scenario("partition", "minority/majority partition, healed later", 5, 2,
             ("termination",), _partition),
    Scenario("crash_restart", "one node crashes and restarts from its disk", 5, 2,
             ("termination", "fault_tolerance"), _crash_restart),
)

SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}


def build_config(scenario: Scenario, backend: str, seed: int, *, nodes: int | None = None,
                 proposers: int | None = None, trace: bool = False,
                 bound_ms: float = DEFAULT_BOUND_MS,
                 backend_options: dict[str, Any] | None = None) -> SimConfig:
    """The simulator configuration of ``scenario`` for ``backend`` and ``seed`` (size overridable)."""
    n = scenario.nodes if nodes is None else nodes
    p = scenario.proposers if proposers is None else proposers
    faults = scenario.schedule(seed, n, p)
    stable_at = max((f.at for f in faults), default=0.0)
    return SimConfig(
        backend=backend,
        backend_options=dict(backend_options or {}),
        nodes=n,
        duration_ms=stable_at + bound_ms,
        tick_ms=10.0,
        network=NetworkConfig(),
        clients=ClientConfig(count=p, workload=WORKLOAD, timeout_ms=100.0, max_attempts=5,
                             think_ms=50.0),
        faults=faults,
        trace=trace,
        count_bytes=False,
        name=f"{scenario.name}/{backend}",
    )
