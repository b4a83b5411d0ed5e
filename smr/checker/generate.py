"""Random histories that are linearizable by construction, for tests and benchmarks.

Simulated clients each run one operation at a time with random think times
and durations.  Every operation that takes effect does so at a random instant
inside its interval (an operation with an unknown outcome, at a random
instant after its invocation, or not at all), and the results are what the
real state machine of :mod:`smr.state_machines` returns when the commands are
applied in the order of those instants.  The same ``random.Random`` seed
always gives the same history.
"""

from __future__ import annotations

import heapq
import random

from smr.commands import Command
from smr.errors import LocalProtocolError
from smr.history import Operation, Outcome
from smr.machine import StateMachine
from smr.state_machines import Counter, KVStore, WriteOnceMap
from smr.values import Value

from .models import ORDER_STATES

#: Models :func:`generate_history` can produce histories for.
GENERATED_MODELS = ("register", "kv", "counter", "write_once", "order")

_REGISTER_TO_KV = {"read": "get", "write": "put", "cas": "cas"}


#: The suffixes an ``append`` history's writes draw from (never spelling "never-written").
_LETTERS = "abcdefghij"


def _command(rng: random.Random, model: str, keys: int, values: int, append: bool = False) -> Command:
    key = f"k{rng.randrange(keys)}"
    value = rng.randrange(values)
    roll = rng.random()
    if append:  # get/put/append on strings (Porcupine's and Jepsen's kv workloads)
        letter = _LETTERS[value % len(_LETTERS)]
        if roll < 0.4:
            return Command("get", key)
        if roll < 0.6:
            return Command("put", key, (letter,))
        return Command("append", key, (letter,))
    if model == "register":
        if roll < 0.45:
            return Command("read")
        if roll < 0.8:
            return Command("write", "", (value,))
        return Command("cas", "", (rng.randrange(values), value))
    if model == "kv":
        if roll < 0.4:
            return Command("get", key)
        if roll < 0.7:
            return Command("put", key, (value,))
        if roll < 0.9:
            return Command("cas", key, (rng.randrange(values), value))
        return Command("delete", key)
    if model == "counter":
        if roll < 0.5:
            return Command("read", key)
        return Command("add", key, (1 + rng.randrange(values),))
    if model == "write_once":
        if roll < 0.5:
            return Command("final_value", key)
        return Command("try_init", key, (value,))
    if roll < 0.5:
        return Command("final_value", key)
    return Command("try_init", key, (rng.choice(ORDER_STATES),))


def _machine(model: str) -> StateMachine:
    if model in ("register", "kv"):
        return KVStore()
    if model == "counter":
        return Counter()
    return WriteOnceMap()


def _apply(machine: StateMachine, model: str, command: Command) -> Value:
    if model == "register":
        return machine.apply(Command(_REGISTER_TO_KV[command.op], command.key, command.args))
    return machine.apply(command)


def generate_history(rng: random.Random, *, operations: int, clients: int, model: str = "kv",
                     keys: int = 3, values: int = 5, unknown_rate: float = 0.0,
                     fail_rate: float = 0.0, append: bool = False) -> list[Operation]:
    """Return a linearizable history of ``operations`` operations by ``clients`` concurrent clients.

    Args:
        rng: the only source of randomness.
        operations: how many operations in all.
        clients: how many clients run concurrently (each one operation at a time).
        model: one of :data:`GENERATED_MODELS`.
        keys: how many keys (ignored by ``register``, which has only ``""``).
        values: how many distinct values writes draw from (small: the search works harder).
        unknown_rate: the chance an operation's outcome is unknown (it then takes effect half the time).
        fail_rate: the chance an operation fails (it then never takes effect).
        append: for ``kv``, draw get/put/append on string values instead of get/put/cas/delete.
    """
    if model not in GENERATED_MODELS:
        raise LocalProtocolError(f"cannot generate {model!r} histories; choose one of {GENERATED_MODELS}")
    if clients < 1 or operations < 0 or keys < 1 or values < 1:
        raise LocalProtocolError("generate_history needs clients, keys, values >= 1 and operations >= 0")
    if append and model != "kv":
        raise LocalProtocolError(f"append histories are kv histories, not {model!r}")
    # Each planned op: (id, process, command, invoke, complete, outcome, effect instant or None).
    planned: list[tuple[int, str, Command, float, float | None, Outcome, float | None]] = []
    ready = [(rng.uniform(0.0, 1.0), c) for c in range(clients)]
    heapq.heapify(ready)
    for op_id in range(operations):
        now, client = heapq.heappop(ready)
        command = _command(rng, model, keys, values, append)
        invoke = now + rng.uniform(0.0, 1.0)
        duration = rng.uniform(0.1, 3.0)
        roll = rng.random()
        if roll < unknown_rate:
            outcome, complete = Outcome.UNKNOWN, None
            effect = invoke + rng.uniform(0.0, 3.0 * duration) if rng.random() < 0.5 else None
        elif roll < unknown_rate + fail_rate:
            outcome, complete, effect = Outcome.FAIL, invoke + duration, None
        else:
            outcome, complete = Outcome.OK, invoke + duration
            effect = rng.uniform(invoke, complete)
        planned.append((op_id, f"c{client}", command, round(invoke, 6),
                        None if complete is None else round(complete, 6), outcome, effect))
        heapq.heappush(ready, (invoke + duration, client))
    machine = _machine(model)
    results: dict[int, Value] = {}
    for effect, op_id, command in sorted((p[6], p[0], p[2]) for p in planned if p[6] is not None):
        results[op_id] = _apply(machine, model, command)
    return [
        Operation(op_id, process, command, invoke, complete, outcome,
                  results.get(op_id) if outcome is Outcome.OK else None)
        for op_id, process, command, invoke, complete, outcome, _ in planned
    ]
