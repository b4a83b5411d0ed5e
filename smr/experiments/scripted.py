"""A :class:`~smr.sim.Simulation` an experiment can script and observe: timed actions, injections, a tap.

The engine schedules faults from a fixed list, which is not enough for an
experiment that must act *relative to what it observes* (crash the leader a
random fraction of a heartbeat interval after it sent one).  This subclass adds
two small hooks on top of the engine's one seeded event queue, so scripted
actions keep the run deterministic:

* :meth:`ScriptedSimulation.call_at` runs a callback at a virtual time, ordered
  with every other event of the queue;
* :meth:`ScriptedSimulation.submit` hands a client request to a replica now, as
  if it had just arrived from a client;
* ``on_send(sim, src, dst, message)``, when given, sees every message as it is
  sent (before loss or partitions decide its fate), to count what travels.

All three reach into the engine's private queue (``_push``/``_fault``/``_step``):
the engine has no public scheduling hook yet, and this module is the one place
that depends on those names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import attrs

from ..replica import ClientRequest
from ..sim import SimConfig
from ..sim.engine import _FAULT, Simulation


@attrs.frozen
class _Call:
    """A scripted callback travelling through the engine's fault queue."""

    action: Callable[["ScriptedSimulation"], None]


class ScriptedSimulation(Simulation):
    """A Simulation with callbacks at chosen virtual times, injected client requests and a message tap."""

    def __init__(self, config: SimConfig, seed: int,
                 on_step: Callable[["ScriptedSimulation", str], None] | None = None,
                 on_send: Callable[["ScriptedSimulation", str, str, Any], None] | None = None,
                 timeline: bool = False) -> None:
        # The engine calls on_step with itself, which is this ScriptedSimulation.
        super().__init__(config, seed, on_step=cast("Callable[[Simulation, str], None] | None", on_step),
                         timeline=timeline)
        self.on_send = on_send

    def call_at(self, time: float, action: Callable[["ScriptedSimulation"], None]) -> None:
        """Run ``action(self)`` at virtual time ``time`` (after events already queued for that time)."""
        self._push(max(time, self.now), _FAULT, _Call(action))

    def submit(self, node_id: str, request: ClientRequest) -> None:
        """Give ``request`` to live node ``node_id`` now; replies go to ``request.client_id``.

        The client id must belong to a configured client (an idle one will do:
        ``ClientConfig(count=1, stop_ms=0)``), or the reply has nowhere to go.
        """
        node = self.nodes[node_id]
        if not node.alive:
            raise ValueError(f"cannot submit to {node_id}: it is down")
        self._step(node, request)

    def _send(self, src: str, dst: str, msg: Any) -> None:
        if self.on_send is not None:
            self.on_send(self, src, dst, msg)
        super()._send(src, dst, msg)

    def _fault(self, fault: Any) -> None:
        if isinstance(fault, _Call):
            fault.action(self)
        else:
            super()._fault(fault)
