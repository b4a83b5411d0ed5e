"""Deterministic state machines: what a replicated log drives.

Every state machine promises that ``apply`` is a pure function of its current
state and the command, so replicas that apply the same log reach the same
state and return the same results.  ``snapshot`` and ``restore`` let a backend
compact its log; snapshots are canonical bytes (sorted JSON), so equal states
give equal snapshots.
"""

from __future__ import annotations

import json
from typing import Callable, Protocol, runtime_checkable

from .commands import Command, Scalar
from .errors import LocalProtocolError


@runtime_checkable
class StateMachine(Protocol):
    """The contract every replicated state machine meets."""

    def apply(self, command: Command) -> Scalar:
        """Apply ``command`` deterministically and return its result."""
        ...

    def snapshot(self) -> bytes:
        """Return the whole state as canonical bytes."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the one ``data`` was taken from."""
        ...

    def is_read_only(self, command: Command) -> bool:
        """Return True if ``command`` never changes the state."""
        ...


def _dump(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _unknown(machine: str, command: Command) -> LocalProtocolError:
    return LocalProtocolError(f"{machine} has no operation {command.op!r} (command: {command})")


class KVStore:
    """A string-keyed map: ``get``, ``put``, ``cas``, ``delete``; ``noop`` does nothing."""

    name = "kv"
    _READS = frozenset({"get", "noop"})

    def __init__(self) -> None:
        self.data: dict[str, Scalar] = {}

    def apply(self, command: Command) -> Scalar:
        """Apply a KV command; results: get -> value|None, put -> None, cas/delete -> bool."""
        op, key, args = command.op, command.key, command.args
        if op == "get":
            return self.data.get(key)
        if op == "put":
            self.data[key] = args[0]
            return None
        if op == "cas":
            expected, new = args
            if self.data.get(key) == expected:  # a missing key holds None
                self.data[key] = new
                return True
            return False
        if op == "delete":
            return self.data.pop(key, _MISSING) is not _MISSING
        if op == "noop":
            return None
        raise _unknown("KVStore", command)

    def snapshot(self) -> bytes:
        """Return the map as sorted JSON."""
        return _dump(self.data)

    def restore(self, data: bytes) -> None:
        """Replace the map with the snapshot's."""
        self.data = dict(json.loads(data))

    def is_read_only(self, command: Command) -> bool:
        """``get`` and ``noop`` never change the map."""
        return command.op in self._READS


_MISSING = object()


class Counter:
    """Named integer counters: ``add`` (returns the new total) and ``read``."""

    name = "counter"

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}

    def apply(self, command: Command) -> Scalar:
        """Apply a counter command; results: add -> new total, read -> total."""
        if command.op == "add":
            (amount,) = command.args
            if not isinstance(amount, int) or isinstance(amount, bool):
                raise LocalProtocolError(f"Counter add needs an int amount, got {amount!r}")
            total = self.totals.get(command.key, 0) + amount
            self.totals[command.key] = total
            return total
        if command.op == "read":
            return self.totals.get(command.key, 0)
        if command.op == "noop":
            return None
        raise _unknown("Counter", command)

    def snapshot(self) -> bytes:
        """Return the totals as sorted JSON."""
        return _dump(self.totals)

    def restore(self, data: bytes) -> None:
        """Replace the totals with the snapshot's."""
        self.totals = {k: int(v) for k, v in json.loads(data).items()}

    def is_read_only(self, command: Command) -> bool:
        """``read`` and ``noop`` never change a total."""
        return command.op in ("read", "noop")


class WriteOnceMap:
    """The essay's ``WriteOnce`` per key: the first ``try_init`` wins for ever.

    ``try_init(key, v)`` returns the key's final value (``v`` if it was the
    first); ``final_value(key)`` returns the value or None while uninitialised.
    """

    name = "write_once"

    def __init__(self) -> None:
        self.cells: dict[str, Scalar] = {}

    def apply(self, command: Command) -> Scalar:
        """Apply a write-once command; both ops return the cell's final value (or None)."""
        if command.op == "try_init":
            (value,) = command.args
            return self.cells.setdefault(command.key, value)
        if command.op == "final_value":
            return self.cells.get(command.key)
        if command.op == "noop":
            return None
        raise _unknown("WriteOnceMap", command)

    def snapshot(self) -> bytes:
        """Return the cells as sorted JSON."""
        return _dump(self.cells)

    def restore(self, data: bytes) -> None:
        """Replace the cells with the snapshot's."""
        self.cells = dict(json.loads(data))

    def is_read_only(self, command: Command) -> bool:
        """``final_value`` and ``noop`` never change a cell."""
        return command.op in ("final_value", "noop")


#: Built-in state machines by name; the factories take no arguments.
STATE_MACHINES: dict[str, Callable[[], StateMachine]] = {
    KVStore.name: KVStore,
    Counter.name: Counter,
    WriteOnceMap.name: WriteOnceMap,
}


def make_state_machine(name: str) -> StateMachine:
    """Return a fresh built-in state machine called ``name`` (kv, counter, write_once)."""
    try:
        return STATE_MACHINES[name]()
    except KeyError:
        raise LocalProtocolError(
            f"unknown state machine {name!r}; choose one of {sorted(STATE_MACHINES)}") from None
