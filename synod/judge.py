"""The property judge: agreement, validity and termination of one simulated WriteOnce run.

* **Agreement** -- no two nodes ever decide different values, and no node
  changes its decision (checked after every step, across crashes and restarts,
  by :class:`DecisionLog`; the simulator's commit check adds a second opinion).
* **Validity** -- every decided value was proposed by some ``try_init``.
* **Termination** -- every node alive at the end has decided; the run ends
  a fixed bound after the network stabilised (the last fault), so this means
  "decides within the bound after the last fault heals".

Fault tolerance is judged one level up (:mod:`synod.essay`): the other three
must hold in runs where fewer than half of the nodes crash.
"""

from __future__ import annotations

from typing import Any

import attrs

from smr.commands import Scalar
from smr.sim import SimResult, Simulation

from .core import WriteOnceCore


@attrs.define
class DecisionLog:
    """A simulator ``on_step`` observer that records each node's decisions and flags disagreement."""

    first: dict[str, tuple[float, Scalar]] = attrs.field(factory=dict)
    problems: list[str] = attrs.field(factory=list)
    chosen: tuple[str, Scalar] | None = None

    def __call__(self, sim: Simulation, node_id: str) -> None:
        """Look at ``node_id``'s core after it stepped."""
        core = sim.nodes[node_id].core
        if not isinstance(core, WriteOnceCore):
            return
        value = core.decided
        if value is None:
            return
        known = self.first.get(node_id)
        if known is None:
            self.first[node_id] = (sim.now, value)
            if self.chosen is None:
                self.chosen = (node_id, value)
            elif value != self.chosen[1]:
                self.problems.append(f"agreement: at t={sim.now:.3f} {node_id} decided {value!r} but "
                                     f"{self.chosen[0]} decided {self.chosen[1]!r}")
        elif known[1] != value:
            self.problems.append(f"agreement: at t={sim.now:.3f} {node_id} changed its decision "
                                 f"from {known[1]!r} to {value!r}")


@attrs.frozen
class RunVerdict:
    """The three properties of one run, with the reasons for any violation."""

    agreement: bool
    validity: bool
    termination: bool
    problems: tuple[str, ...]
    proposed: tuple[Scalar, ...]
    decisions: tuple[tuple[str, Scalar], ...]

    @property
    def ok(self) -> bool:
        """True if all three properties held."""
        return self.agreement and self.validity and self.termination


def proposed_values(result: SimResult) -> tuple[Scalar, ...]:
    """Every value some client passed to ``try_init`` in the run, sorted by first use."""
    seen: dict[Any, None] = {}
    for op in result.history:
        if op.command.op == "try_init" and op.command.args:
            seen.setdefault(op.command.args[0], None)
    return tuple(seen)


def judge(sim: Simulation, result: SimResult, log: DecisionLog) -> RunVerdict:
    """Judge agreement, validity and termination of a finished run observed by ``log``."""
    problems = list(log.problems)
    problems.extend(f"agreement: simulator: {v}" for v in result.violations)
    agreement = not problems
    proposed = proposed_values(result)
    validity = True
    for node, (at, value) in sorted(log.first.items()):
        if value not in proposed:
            validity = False
            problems.append(f"validity: {node} decided {value!r} at t={at:.3f}, "
                            f"but only {list(proposed)} were proposed")
    undecided = sorted(n for n, node in sim.nodes.items()
                       if node.alive and isinstance(node.core, WriteOnceCore) and node.core.decided is None)
    termination = not undecided
    if undecided:
        problems.append(f"termination: live nodes {','.join(undecided)} still undecided at "
                        f"t={result.end_time:.3f}")
    decisions = tuple(sorted((n, v) for n, (_, v) in log.first.items()))
    return RunVerdict(agreement, validity, termination, tuple(problems), proposed, decisions)


def run_judged(sim: Simulation, log: DecisionLog) -> tuple[SimResult, RunVerdict]:
    """Run ``sim`` (built with ``on_step=log``) to the end and judge it."""
    result = sim.run()
    return result, judge(sim, result, log)
