"""Linearizable KV: reads, writes and compare-and-set under a chosen key distribution."""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from smr.commands import Command, cas, get, put
from smr.history import Operation, Outcome

from .base import register_workload
from .keys import Distribution, KeyChooser


@attrs.define
class KVWorkload:
    """get / put / cas over ``keys`` keys; every written value is unique, so lost writes show.

    ``conflict_ratio`` is the share of cas operations (which conflict when
    clients race on a key); ``value_size`` pads values to that many characters.
    """

    keys: int = 3
    read_ratio: float = 0.5
    conflict_ratio: float = 0.2
    distribution: Distribution = "uniform"
    value_size: int = 0
    name: str = "kv"
    state_machine: str = "kv"
    model: str = "kv"
    _chooser: KeyChooser = attrs.field(init=False)
    _written: int = 0
    _last: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.read_ratio + self.conflict_ratio <= 1:
            raise ValueError("read_ratio + conflict_ratio must be within [0, 1]")
        self._chooser = KeyChooser(self.keys, self.distribution)

    def _value(self, client: int) -> str:
        self._written += 1
        value = f"{client}.{self._written}"
        return value.ljust(self.value_size, "_") if self.value_size > len(value) else value

    def next_command(self, rng: random.Random, client: int) -> Command:
        """Return a get, put or cas; cas expects a value some client wrote to that key."""
        key = f"k{self._chooser.pick(rng)}"
        draw = rng.random()
        if draw < self.read_ratio:
            return get(key)
        value = self._value(client)
        if draw < self.read_ratio + self.conflict_ratio:
            expected = self._last.get(key)
            self._last[key] = value
            return cas(key, expected, value)
        self._last[key] = value
        return put(key, value)

    def check(self, history: Sequence[Operation]) -> list[str]:
        """Every value read was written by some put or cas (reads of thin air are violations)."""
        written: dict[str, set[object]] = {}
        for op in history:
            if op.command.op == "put":
                written.setdefault(op.command.key, set()).add(op.command.args[0])
            elif op.command.op == "cas":
                written.setdefault(op.command.key, set()).add(op.command.args[1])
        problems = []
        for op in history:
            if op.outcome is Outcome.OK and op.command.op == "get" and op.result is not None:
                if op.result not in written.get(op.command.key, ()):
                    problems.append(f"op {op.id}: read {op.result!r} from {op.command.key}, never written")
        return problems


register_workload("kv", KVWorkload)
