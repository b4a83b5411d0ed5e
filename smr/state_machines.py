"""The built-in state machines, written on the public API (:mod:`smr.machine`).

* :class:`KVStore` (``kv``) -- a string-keyed map; the workloads' register store;
* :class:`Counter` (``counter``) -- named integer counters;
* :class:`WriteOnceMap` (``write_once``) -- the essay's ``WriteOnce`` per key;
* :class:`ReplDict`, :class:`ReplCounter`, :class:`ReplLockManager` -- the
  ready-made replicated types of a library (a dict, a counter, locks with
  leases), each a plain subclass a user could have written.

Snapshots are the derived default (the attributes as JSON, order kept), so
equal states give equal snapshots.
"""

from __future__ import annotations

from .errors import LocalProtocolError
from .machine import StateMachine, command, query
from .values import Value


class KVStore(StateMachine):
    """A string-keyed map: ``get``, ``put``, ``cas``, ``delete`` and ``append``."""

    name = "kv"

    def __init__(self) -> None:
        self.data: dict[str, Value] = {}

    @query
    def get(self, key: str) -> Value:
        """The value under ``key`` (None if absent)."""
        return self.data.get(key)

    @command
    def put(self, key: str, value: Value) -> None:
        """Set ``key`` to ``value``."""
        self.data[key] = value

    @command
    def cas(self, key: str, expected: Value, new: Value) -> bool:
        """Set ``key`` to ``new`` if it holds ``expected`` (a missing key holds None)."""
        if self.data.get(key) == expected:
            self.data[key] = new
            return True
        return False

    @command
    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        return self.data.pop(key, _MISSING) is not _MISSING

    @command
    def append(self, key: str, suffix: str) -> None:
        """Append ``suffix`` to the string under ``key`` (a missing key, or None, holds ''), as Jepsen's kv does."""
        if not isinstance(suffix, str):
            raise TypeError(f"append takes a string, got {type(suffix).__name__}")
        current = self.data.get(key)
        if current is None:
            current = ""
        if not isinstance(current, str):
            raise TypeError(f"append to {key!r}, which holds a {type(current).__name__}, not a string")
        self.data[key] = current + suffix


_MISSING = object()


def _amount(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"a counter amount must be an int, got {value!r}")
    return value


class Counter(StateMachine):
    """Named integer counters: ``add`` (returns the new total) and ``read``."""

    name = "counter"

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}

    @command
    def add(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to counter ``key``; return the new total."""
        total = self.totals.get(key, 0) + _amount(amount)
        self.totals[key] = total
        return total

    @query
    def read(self, key: str = "") -> int:
        """The total of counter ``key`` (0 if never added to)."""
        return self.totals.get(key, 0)


class WriteOnceMap(StateMachine):
    """The essay's ``WriteOnce`` per key: the first ``try_init`` wins for ever."""

    name = "write_once"

    def __init__(self) -> None:
        self.cells: dict[str, Value] = {}

    @command
    def try_init(self, key: str, value: Value) -> Value:
        """The essay's ``tryInitialize``: set the cell if unset; return its final value."""
        return self.cells.setdefault(key, value)

    @query
    def final_value(self, key: str) -> Value:
        """The essay's ``finalValue``: the cell's value, or None while uninitialised."""
        return self.cells.get(key)


class ReplDict(KVStore):
    """A replicated dict: the KV operations plus the dict methods people reach for."""

    name = "dict"

    @command
    def setdefault(self, key: str, default: Value = None) -> Value:
        """Set ``key`` to ``default`` unless present; return its value."""
        return self.data.setdefault(key, default)

    @command
    def pop(self, key: str, default: Value = None) -> Value:
        """Remove ``key`` and return its value (``default`` if absent)."""
        return self.data.pop(key, default)

    @command
    def update(self, items: dict[str, Value]) -> None:
        """Set every key of ``items``."""
        if not isinstance(items, dict):
            raise TypeError(f"update takes a dict, got {type(items).__name__}")
        self.data.update(items)

    @command
    def clear(self) -> None:
        """Remove every key."""
        self.data.clear()

    @query
    def contains(self, key: str) -> bool:
        """True if ``key`` is present."""
        return key in self.data

    @query
    def keys(self) -> list[str]:
        """Every key, in insertion order."""
        return list(self.data)

    @query
    def items(self) -> dict[str, Value]:
        """The whole dict."""
        return dict(self.data)

    @query
    def size(self) -> int:
        """How many keys there are."""
        return len(self.data)


class ReplCounter(Counter):
    """A replicated counter (named, default ``""``): add, subtract, set, read."""

    name = "repl_counter"

    @command
    def sub(self, key: str, amount: int = 1) -> int:
        """Subtract ``amount`` from counter ``key``; return the new total."""
        return self.add(key, -_amount(amount))

    @command
    def set(self, key: str, value: int) -> int:
        """Set counter ``key`` to ``value``; return it."""
        self.totals[key] = _amount(value)
        return value


class ReplLockManager(StateMachine):
    """Named locks with leases: a holder that stops renewing loses its lock after ``lease`` seconds.

    Time is the log's (:attr:`StateMachine.log_time`), so every replica agrees
    on who holds a lock at every log index; a lease can only run *longer* than
    asked (log time advances when entries are applied), never shorter.
    """

    name = "locks"

    def __init__(self) -> None:
        #: lock -> [holder, log time (s) the lease ends]
        self.locks: dict[str, list[Value]] = {}

    def _live_holder(self, key: str) -> str | None:
        """Who holds ``key`` with a lease still running at this log time (None: free)."""
        held = self.locks.get(key)
        if held is None or not isinstance(held[1], (int, float)) or held[1] <= self.log_time:
            return None
        return held[0] if isinstance(held[0], str) else None

    def _holder(self, key: str) -> str | None:
        """:meth:`_live_holder`, forgetting a lease that ran out (commands only: they may change state)."""
        holder = self._live_holder(key)
        if holder is None:
            self.locks.pop(key, None)
        return holder

    @command
    def acquire(self, key: str, owner: str, lease: float = 10.0) -> bool:
        """Take lock ``key`` for ``owner`` (or renew it) for ``lease`` seconds; False if another holds it."""
        if not isinstance(lease, (int, float)) or isinstance(lease, bool) or lease <= 0:
            raise ValueError(f"a lease is a positive number of seconds, got {lease!r}")
        holder = self._holder(key)
        if holder is not None and holder != owner:
            return False
        self.locks[key] = [owner, self.log_time + lease]
        return True

    @command
    def release(self, key: str, owner: str) -> bool:
        """Give lock ``key`` up; False if ``owner`` did not hold it."""
        if self._holder(key) != owner:
            return False
        del self.locks[key]
        return True

    @query
    def holder(self, key: str) -> str | None:
        """Who holds lock ``key`` now (None: free)."""
        return self._live_holder(key)


#: Built-in state machines by name (read-only for users: pass your class, or ``module:Class``).
STATE_MACHINES: dict[str, type[StateMachine]] = {
    m.name: m for m in (KVStore, Counter, WriteOnceMap, ReplDict, ReplCounter, ReplLockManager)}


def make_state_machine(name: str) -> StateMachine:
    """Return a fresh built-in state machine called ``name`` (kv, counter, write_once, ...)."""
    try:
        return STATE_MACHINES[name]()
    except KeyError:
        raise LocalProtocolError(
            f"unknown state machine {name!r}; choose one of {sorted(STATE_MACHINES)}") from None
