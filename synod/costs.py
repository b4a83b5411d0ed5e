"""Message and delay costs of the Paxos synod algorithm, measured on the shared simulator.

With a constant one-way link latency and instant disk syncs, the time from the
proposal reaching its node to the first learner's decision, divided by the
latency, is the number of one-way message delays.  Cold (nobody ran phase 1):
prepare, promise, accept, accepted = 4.  Warm (the proposer already holds a
majority of promises, like a multi-Paxos leader): accept, accepted = 2.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from smr.sim import ClientConfig, DiskConfig, LinkLatency, NetworkConfig, SimConfig, Simulation
from smr.sim.latency import constant

from .core import WriteOnceCore
from .workload import WORKLOAD

_PROTOCOL = ("Prepare", "Promise", "Accept", "Accepted")


@attrs.frozen
class PaxosCost:
    """One measured proposal: one-way delays to the first decision and messages by type."""

    delays: float
    messages_to_decide: dict[str, int]
    messages_total: dict[str, int]
    proposed_at: float
    decided_at: float

    def to_json(self) -> dict[str, Any]:
        """The cost as JSON data."""
        return attrs.asdict(self)


@attrs.frozen
class Costs:
    """Cold-start and pre-established-leader costs for an ``nodes``-node cluster."""

    nodes: int
    latency_ms: float
    cold: PaxosCost
    warm: PaxosCost

    def format(self) -> str:
        """The costs as a few readable lines."""
        lines = [f"Paxos synod costs: {self.nodes} nodes, constant one-way latency {self.latency_ms:g} ms"]
        for name, cost in (("cold start (phase 1 + phase 2)", self.cold),
                           ("pre-established leader (phase 2 only)", self.warm)):
            total = sum(cost.messages_total.values())
            lines.append(f"  {name}: {cost.delays:g} one-way delays; messages until the first decision "
                         f"{dict(cost.messages_to_decide)}; all protocol messages {total} "
                         f"{dict(cost.messages_total)}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The costs as JSON data."""
        return {"nodes": self.nodes, "latency_ms": self.latency_ms,
                "cold": self.cold.to_json(), "warm": self.warm.to_json()}


def _protocol_counts(counter: Counter[str], minus: Counter[str] | None = None) -> dict[str, int]:
    base = minus or Counter()
    return {name: counter[name] - base[name] for name in _PROTOCOL if counter[name] - base[name]}


def _measure(nodes: int, latency_ms: float, warm: bool) -> PaxosCost:
    # Warm: n1 campaigns at boot; the client's proposal arrives long after phase 1 finished.
    client_latency = 10 * latency_ms if warm else latency_ms
    config = SimConfig(
        backend="synod-paxos",
        backend_options={"campaign_on_start": "n1"} if warm else {},
        nodes=nodes,
        duration_ms=client_latency + 8 * latency_ms,
        tick_ms=1000.0,  # no timeouts, asks or back-off during the measurement
        network=NetworkConfig(latency=constant(latency_ms),
                              links=(LinkLatency("c1", "n1", constant(client_latency)),)),
        disk=DiskConfig(sync=constant(0.0)),
        clients=ClientConfig(count=1, workload=WORKLOAD),
        trace=False,
        count_bytes=False,
    )
    marks: dict[str, Any] = {}

    def observe(sim: Simulation, node_id: str) -> None:
        core = sim.nodes[node_id].core
        if not isinstance(core, WriteOnceCore):
            return
        if "phase1" not in marks and getattr(core, "phase", None) == "prepared":
            marks["phase1"] = Counter(sim.counters.sent)  # the leader's phase 1 is done
        if "proposed" not in marks and core.proposal is not None:
            marks["proposed"] = sim.now
        if "decided" not in marks and core.decided is not None:
            marks["decided"] = sim.now
            marks["sent_at_decision"] = Counter(sim.counters.sent)

    sim = Simulation(config, 0, on_step=observe)
    result = sim.run()
    if "decided" not in marks:
        raise AssertionError("the measured proposal was never decided")
    before = marks.get("phase1") if warm else None
    if warm and before is None:
        raise AssertionError("the leader never finished phase 1 before the proposal")
    return PaxosCost(
        delays=round((marks["decided"] - marks["proposed"]) / latency_ms, 9),
        messages_to_decide=_protocol_counts(marks["sent_at_decision"], before),
        messages_total=_protocol_counts(result.counters.sent, before),
        proposed_at=marks["proposed"],
        decided_at=marks["decided"],
    )


def measure_costs(nodes: int = 5, latency_ms: float = 1.0) -> Costs:
    """Measure one uncontended Paxos proposal cold and with a pre-established leader."""
    return Costs(nodes, latency_ms, _measure(nodes, latency_ms, warm=False),
                 _measure(nodes, latency_ms, warm=True))
