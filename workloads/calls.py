"""Calls: a workload for any state machine, drawn from its methods' signatures.

A user who brings a :class:`smr.StateMachine` and no workload still gets
clients in the simulator: each operation is one of the app's commands or
queries, with arguments drawn from their type hints (``str`` from a few
keys, ``int`` small numbers, ``bool``, ``float``, ``bytes``, lists and dicts
of those; an unannotated parameter gets a key or a small int).  There is no
linearizability model for an arbitrary app, so its history is judged by the
simulator's agreement checks: every replica commits the same entries and
reaches the same state.
"""

from __future__ import annotations

import inspect
import random
import typing
from collections.abc import Sequence
from typing import Any

from smr.apps import resolve_app
from smr.commands import Command
from smr.history import Operation
from smr.machine import OpSpec

from .base import register_workload

_KEYS = ("a", "b", "c", "d")


def _draw(hint: Any, rng: random.Random, depth: int = 0) -> Any:
    """A random argument for type hint ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is str:
        return rng.choice(_KEYS)
    if hint is bool:
        return rng.random() < 0.5
    if hint is int:
        return rng.randint(-2, 20)
    if hint is float:
        return round(rng.uniform(-2.0, 20.0), 2)
    if hint is bytes:
        return rng.randbytes(rng.randint(0, 4))
    if hint is type(None):
        return None
    if origin in (list, tuple, Sequence) and depth < 2:
        inner = args[0] if args else int
        return [_draw(inner, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if origin is dict and depth < 2:
        inner = args[1] if len(args) == 2 else int
        return {rng.choice(_KEYS): _draw(inner, rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return _draw(rng.choice(args), rng, depth)
    return rng.choice(_KEYS) if rng.random() < 0.5 else rng.randint(0, 9)


class CallsWorkload:
    """Random calls of ``app``'s commands (``write_ratio`` of the time) and queries."""

    model: str | None = None

    def __init__(self, app: str, write_ratio: float = 0.7) -> None:
        cls = resolve_app(app)
        self.name = "calls"
        self.state_machine = app
        self.write_ratio = write_ratio
        self._owner = cls.__name__
        self._commands = [s for _, s in sorted(cls.operations.items()) if not s.read_only]
        self._queries = [s for _, s in sorted(cls.operations.items()) if s.read_only]
        if not cls.operations:
            raise ValueError(f"{cls.__name__} has no @command or @query methods to call")
        self._hints = {s.name: _hints(s) for s in (*self._commands, *self._queries)}

    def next_command(self, rng: random.Random, client: int) -> Command:
        """Return one call of a command or a query, with arguments drawn from its type hints."""
        writes = rng.random() < self.write_ratio
        pool = (self._commands if writes else self._queries) or self._commands or self._queries
        spec = pool[rng.randrange(len(pool))]
        hints = self._hints[spec.name]
        args = [_draw(h, rng) for h in hints[:spec.min_args + rng.randint(0, spec.max_args - spec.min_args)]]
        if spec.keyed:  # a key is always a str, whatever its annotation says
            args[0] = rng.choice(_KEYS)
        return spec.build(tuple(args), {}, self._owner)

    def check(self, history: Sequence[Operation]) -> list[str]:
        """No invariants of its own: an arbitrary app is judged by the replicas' agreement."""
        return []


def _hints(spec: OpSpec) -> list[Any]:
    """The type hint of each parameter after ``self`` (``Any`` where there is none)."""
    try:
        resolved = typing.get_type_hints(spec.function)
    except Exception:  # hints naming things that do not import: draw untyped values
        resolved = {}
    params = list(spec.signature.parameters.values())[1:]
    return [resolved.get(p.name, Any) if p.annotation is not inspect.Parameter.empty else Any for p in params]


register_workload("calls", CallsWorkload)
