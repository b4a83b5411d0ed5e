"""Counter: increments that must be applied exactly once despite retries."""

from __future__ import annotations

import random

import attrs

from smr.commands import Command, add, read_counter

from .base import register_workload


@attrs.define
class CounterWorkload:
    """Increments of 1..``max_step`` with an occasional read."""

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


register_workload("counter", lambda opts: CounterWorkload(**opts))
