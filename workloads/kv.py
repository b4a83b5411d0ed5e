"""Linearizable KV: reads, writes and compare-and-set over a small key space."""

from __future__ import annotations

import random

import attrs

from smr.commands import Command, cas, get, put

from .base import register_workload


@attrs.define
class KVWorkload:
    """Uniform random get / put / cas over ``keys`` keys with unique written values."""

    keys: int = 3
    read_ratio: float = 0.5
    cas_ratio: float = 0.2
    name: str = "kv"
    state_machine: str = "kv"
    model: str = "kv"
    _counter: int = 0

    def next_command(self, rng: random.Random, client: int) -> Command:
        """Return a get, put or cas; written values are unique so lost writes show."""
        key = f"k{rng.randrange(self.keys)}"
        draw = rng.random()
        if draw < self.read_ratio:
            return get(key)
        self._counter += 1
        value = f"{client}.{self._counter}"
        if draw < self.read_ratio + self.cas_ratio:
            return cas(key, None if rng.random() < 0.3 else f"{rng.randrange(8)}.{rng.randrange(1, 4)}", value)
        return put(key, value)


register_workload("kv", lambda opts: KVWorkload(**opts))
