"""Sequential specifications the linearizability checker judges histories against.

A model describes the sequential behaviour of *one independent piece* of
state: ``init()`` gives its starting state and ``step(state, command, result)``
gives the state after ``command`` returned ``result`` -- or None if that
result is impossible in that state (so no state is ever None).  ``result`` is :data:`UNKNOWN` for an
operation whose outcome the client never learned; it then constrains nothing.
States must be hashable: the search memoises (operations done, state) pairs.

``partition_key(command)`` names the piece a command touches.  Because
linearizability is local (Herlihy & Wing's P-compositionality), a history is
linearizable exactly when every per-piece sub-history is, so the checker
splits a history by this key and checks each piece on its own.

Values are compared strictly by type as well as value (``True`` is not ``1``,
``1.0`` is not ``1``): a client that put ``1`` and read ``True`` saw
something else, and memoised states must not confuse the two either.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import ClassVar

from smr.commands import Command
from smr.errors import LocalProtocolError


class _Unknown(enum.Enum):
    UNKNOWN = "unknown"

    def __repr__(self) -> str:
        return "UNKNOWN"


#: The ``result`` passed to :meth:`Model.step` for an operation with an unknown outcome.
UNKNOWN = _Unknown.UNKNOWN


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "<absent>"


#: The state of a KV key or write-once cell that holds nothing yet.
ABSENT = _Absent.ABSENT


class _Nil(enum.Enum):
    NIL = "nil"

    def __repr__(self) -> str:
        return "None"


#: How a model state holds the value None (a state itself is never None: None means impossible).
NIL = _Nil.NIL

_PLAIN_TYPES = (int, str)


def _tag(value: object) -> Hashable:
    """Return a hashable, never-None form of ``value`` equal only to values of the same type."""
    if value.__class__ in _PLAIN_TYPES:
        return value
    if value is None:
        return NIL
    if isinstance(value, list):
        value = tuple(value)
    return (value.__class__.__name__, value)


def _untag(value: Hashable) -> object:
    """Invert :func:`_tag` for display."""
    if value is NIL:
        return None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return value[1]
    return value


class Model:
    """The sequential specification of one independent piece of state.

    Subclasses set ``name`` and ``arities`` (op name -> number of arguments)
    and implement :meth:`init` and :meth:`step`; they may override
    :meth:`partition_key` to let the checker split histories.
    """

    name: ClassVar[str] = "model"
    arities: ClassVar[dict[str, int]] = {}

    def init(self) -> Hashable:
        """Return the state of a piece before any operation."""
        raise NotImplementedError

    def step(self, state: Hashable, command: Command, result: object) -> Hashable | None:
        """Return the state after ``command`` returned ``result`` in ``state``, or None if it cannot."""
        raise NotImplementedError

    def partition_key(self, command: Command) -> Hashable:
        """Return the independent piece ``command`` touches (one piece unless overridden)."""
        return None

    def preserves_state(self, command: Command, result: object) -> bool:
        """Return True only if ``command`` returning ``result`` never changes a state it fits in.

        The search places such operations as soon as they fit (a pure
        optimisation); False is always a safe answer.
        """
        return command.op == "noop"

    def validate(self, command: Command) -> None:
        """Raise LocalProtocolError unless this model defines ``command``'s op with that many arguments."""
        arity = self.arities.get(command.op)
        if arity is None:
            raise LocalProtocolError(
                f"model {self.name!r} has no operation {command.op!r} (command: {command}); "
                f"it knows {', '.join(sorted(self.arities))}")
        if len(command.args) != arity:
            raise LocalProtocolError(
                f"model {self.name!r}: {command.op!r} takes {arity} argument(s), "
                f"got {len(command.args)} (command: {command})")

    def describe(self, state: Hashable) -> str:
        """Return a short human-readable rendering of ``state``."""
        if state is ABSENT:
            return "absent"
        return repr(_untag(state))


def _noop(state: Hashable, result: object) -> Hashable | None:
    return state if result is UNKNOWN or result is None else None


class RegisterModel(Model):
    """A read/write/cas register starting at None; one register per key.

    ``read`` returns the value, ``write(v)`` returns None, ``cas(expected,
    new)`` returns True and writes ``new`` exactly when the value is
    ``expected``.  These are Jepsen's register ops, so its histories map on
    directly; independent Jepsen keys become separate registers.
    """

    name = "register"
    arities = {"read": 0, "write": 1, "cas": 2, "noop": 0}

    def init(self) -> Hashable:
        """Return NIL: a register starts holding None."""
        return NIL

    def step(self, state: Hashable, command: Command, result: object) -> Hashable | None:
        """Apply read/write/cas to the register value ``state``."""
        op = command.op
        if op == "read":
            return state if result is UNKNOWN or _tag(result) == state else None
        if op == "write":
            return _tag(command.args[0]) if result is UNKNOWN or result is None else None
        if op == "cas":
            matched = _tag(command.args[0]) == state
            if result is not UNKNOWN and _tag(result) != _tag(matched):
                return None
            return _tag(command.args[1]) if matched else state
        if op == "noop":
            return _noop(state, result)
        raise LocalProtocolError(f"model 'register' has no operation {op!r}")

    def preserves_state(self, command: Command, result: object) -> bool:
        """Reads, and cas operations known to have failed, never change the register."""
        return command.op in ("read", "noop") or (command.op == "cas" and result is False)

    def partition_key(self, command: Command) -> Hashable:
        """Return the command's key: each key is an independent register."""
        return command.key


class KVModel(Model):
    """The :class:`smr.state_machines.KVStore` map, checked as one register-like cell per key.

    ``get`` returns the value or None, ``put(v)`` returns None, ``cas(e, n)``
    returns True (and writes) exactly when the key holds ``e`` (a missing key
    holds None), ``delete`` returns True exactly when the key existed,
    ``append(s)`` returns None and appends the string ``s`` to the key's string
    (a missing key, or None, holds ''; an append to a non-string fails, so an
    ok one cannot follow it).  ``read``/``write`` are accepted as Jepsen
    spellings of ``get``/``put``.
    """

    name = "kv"
    arities = {"get": 0, "put": 1, "cas": 2, "delete": 0, "append": 1, "read": 0, "write": 1, "noop": 0}

    def init(self) -> Hashable:
        """Return ABSENT: every key starts missing."""
        return ABSENT

    def step(self, state: Hashable, command: Command, result: object) -> Hashable | None:
        """Apply get/put/cas/delete to one key's cell ``state``."""
        op = command.op
        if op == "get" or op == "read":
            current = NIL if state is ABSENT else state
            return state if result is UNKNOWN or _tag(result) == current else None
        if op == "put" or op == "write":
            return _tag(command.args[0]) if result is UNKNOWN or result is None else None
        if op == "cas":
            current = NIL if state is ABSENT else state
            matched = _tag(command.args[0]) == current
            if result is not UNKNOWN and _tag(result) != _tag(matched):
                return None
            return _tag(command.args[1]) if matched else state
        if op == "delete":
            existed = state is not ABSENT
            if result is not UNKNOWN and _tag(result) != _tag(existed):
                return None
            return ABSENT
        if op == "append":
            current = "" if state is ABSENT or state is NIL else state
            if current.__class__ is not str or (result is not UNKNOWN and result is not None):
                return None
            return current + command.args[0]  # type: ignore[operator]
        if op == "noop":
            return _noop(state, result)
        raise LocalProtocolError(f"model 'kv' has no operation {op!r}")

    def validate(self, command: Command) -> None:
        """As :meth:`Model.validate`, and an ``append`` must carry a string."""
        super().validate(command)
        if command.op == "append" and command.args[0].__class__ is not str:
            raise LocalProtocolError(f"model 'kv': append takes a string, got {command.args[0]!r} "
                                     f"(command: {command})")

    def preserves_state(self, command: Command, result: object) -> bool:
        """Reads, failed cas and deletes of a missing key never change the key."""
        return (command.op in ("get", "read", "noop")
                or (command.op in ("cas", "delete") and result is False))

    def partition_key(self, command: Command) -> Hashable:
        """Return the command's key: keys are independent."""
        return command.key


class CounterModel(Model):
    """The :class:`smr.state_machines.Counter`: ``add(n)`` returns the new total, ``read`` the total."""

    name = "counter"
    arities = {"add": 1, "read": 0, "noop": 0}

    def init(self) -> Hashable:
        """Return 0: every counter starts at zero."""
        return 0

    def step(self, state: Hashable, command: Command, result: object) -> Hashable | None:
        """Apply add/read to one counter's total ``state``."""
        op = command.op
        if op == "add":
            total = state + command.args[0]  # type: ignore[operator]
            return total if result is UNKNOWN or _tag(result) == total else None
        if op == "read":
            return state if result is UNKNOWN or _tag(result) == state else None
        if op == "noop":
            return _noop(state, result)
        raise LocalProtocolError(f"model 'counter' has no operation {op!r}")

    def preserves_state(self, command: Command, result: object) -> bool:
        """Reads never change a counter."""
        return command.op in ("read", "noop")

    def validate(self, command: Command) -> None:
        """Also insist that ``add`` carries an int amount."""
        super().validate(command)
        if command.op == "add" and command.args[0].__class__ is not int:
            raise LocalProtocolError(f"model 'counter': add needs an int amount (command: {command})")

    def partition_key(self, command: Command) -> Hashable:
        """Return the command's key: counters are independent."""
        return command.key


class WriteOnceModel(Model):
    """The essay's ``WriteOnce`` per key: the first ``try_init`` linearized wins for ever.

    ``try_init(v)`` returns the cell's final value (``v`` if it was first);
    ``final_value`` returns that value, or None only before any ``try_init``.
    """

    name = "write_once"
    arities = {"try_init": 1, "final_value": 0, "noop": 0}

    def init(self) -> Hashable:
        """Return ABSENT: every cell starts uninitialised."""
        return ABSENT

    def step(self, state: Hashable, command: Command, result: object) -> Hashable | None:
        """Apply try_init/final_value to one cell ``state``."""
        op = command.op
        if op == "try_init":
            final = _tag(command.args[0]) if state is ABSENT else state
            return final if result is UNKNOWN or _tag(result) == final else None
        if op == "final_value":
            current = NIL if state is ABSENT else state
            return state if result is UNKNOWN or _tag(result) == current else None
        if op == "noop":
            return _noop(state, result)
        raise LocalProtocolError(f"model {self.name!r} has no operation {op!r}")

    def preserves_state(self, command: Command, result: object) -> bool:
        """final_value, and a try_init that returns another value (it lost), never change the cell."""
        if command.op in ("final_value", "noop"):
            return True
        return (command.op == "try_init" and result is not UNKNOWN
                and _tag(result) != _tag(command.args[0]))

    def partition_key(self, command: Command) -> Hashable:
        """Return the command's key: cells are independent."""
        return command.key


#: The only values an order's write-once cell may take.
ORDER_STATES = ("shipped", "cancelled")


class OrderModel(WriteOnceModel):
    """The essay's order cancellation: each order goes pending -> shipped xor cancelled, once.

    ``try_init("shipped"|"cancelled")`` returns the order's final state;
    ``final_value`` returns it, or None while the order is pending.  An order
    is never both shipped and cancelled; any other value is an input error.
    """

    name = "order"

    def validate(self, command: Command) -> None:
        """Also insist that ``try_init`` proposes "shipped" or "cancelled"."""
        super().validate(command)
        if command.op == "try_init" and command.args[0] not in ORDER_STATES:
            raise LocalProtocolError(
                f"model 'order': try_init must propose 'shipped' or 'cancelled', got "
                f"{command.args[0]!r} (command: {command})")

    def describe(self, state: Hashable) -> str:
        """Render the order's state, "pending" before any try_init."""
        return "pending" if state is ABSENT else repr(_untag(state))


#: Built-in models by name; the factories take no arguments.
MODELS: dict[str, type[Model]] = {
    m.name: m for m in (RegisterModel, KVModel, CounterModel, WriteOnceModel, OrderModel)
}


def make_model(name: str) -> Model:
    """Return a fresh model: a built-in (register, kv, counter, write_once, order) or a user's ``module:Class``."""
    model = MODELS.get(name)
    if model is None and ":" in name:  # a user's model, named the way apps are (smr.apps)
        from ..apps import import_attribute

        found = import_attribute(name, "model")
        if not callable(found):
            raise LocalProtocolError(f"model {name!r} is not a class that makes a checker model")
        return found()
    if model is None:
        raise LocalProtocolError(f"unknown model {name!r}; choose one of {sorted(MODELS)} or give module:Class")
    return model()

