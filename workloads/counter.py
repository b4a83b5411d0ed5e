"""Counter: increments that must be applied exactly once despite retries."""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from smr.commands import Command, add, read_counter
from smr.history import Operation, Outcome

from .base import register_workload


@attrs.define
class CounterWorkload:
    """Increments of 1..``max_step`` with an occasional read of the total."""

    read_ratio: float = 0.1
    max_step: int = 3
    name: str = "counter"
    state_machine: str = "counter"
    model: str = "counter"

    def next_command(self, rng: random.Random, client: int) -> Command:
        """Return an ``add`` or, with probability ``read_ratio``, a ``read``."""
        if rng.random() < self.read_ratio:
            return read_counter()
        return add(rng.randint(1, self.max_step))

    def check(self, history: Sequence[Operation]) -> list[str]:
        """Exactly once: every total seen lies between the acknowledged increments that
        completed before it was read and all increments (acknowledged or unknown) invoked
        before it completed; the last total is at least the sum of all acknowledged ones."""
        adds = [op for op in history if op.command.op == "add"]
        problems = []
        for op in history:
            if op.outcome is not Outcome.OK or not isinstance(op.result, int):
                continue
            low = sum(_amount(a) for a in adds if a.outcome is Outcome.OK and a.end < op.invoke)
            high = sum(_amount(a) for a in adds if a.outcome is not Outcome.FAIL and a.invoke < op.end)
            if not low <= op.result <= high:
                problems.append(f"op {op.id}: total {op.result} outside [{low}, {high}] "
                                "(an increment was lost or applied twice)")
        return problems


register_workload("counter", CounterWorkload)


def _amount(op: Operation) -> int:
    """How much an ``add`` operation adds (the workload made it, so it is an int)."""
    amount = op.command.args[0]
    assert isinstance(amount, int), f"op {op.id}: add of {amount!r}"
    return amount
