"""Client commands: an operation name, an optional key and argument values.

A :class:`Command` is what a client asks the replicated state machine to do.
It is a frozen attrs value so it can be logged, compared and sent over any
transport through :mod:`smr.wire`.  Its arguments are checked and made
canonical when it is built (:func:`smr.values.canonical_args`), so a value no
runtime can carry is a ``TypeError`` at the call site in every runtime.
"""

from __future__ import annotations

from typing import Union

import attrs

from .values import Value, canonical_args

#: The scalar values (the older name for the simplest arguments; any :data:`Value` is carried).
Scalar = Union[None, bool, int, str]


@attrs.frozen
class Command:
    """One state machine operation: an op name, an optional key and arguments.

    Examples: ``Command("put", "x", ("1",))``, ``Command("cas", "x", ("1", "2"))``,
    ``Command("add", "", (5,))``, ``Command("try_init", "order-7", ("shipped",))``.
    """

    op: str = attrs.field(validator=attrs.validators.instance_of(str))
    key: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    args: tuple[Value, ...] = ()

    def __attrs_post_init__(self) -> None:
        # Here rather than as a converter: a codec that builds the object without __init__
        # (msgspec on the wire) still runs this, so decoded arguments are checked too.
        object.__setattr__(self, "args", canonical_args(self.args))

    def __str__(self) -> str:
        parts = [self.op]
        if self.key:
            parts.append(self.key)
        parts.extend(repr(a) for a in self.args)
        return " ".join(parts)


#: The no-op a new leader commits to establish its term or fill a log gap.
NOOP = Command("noop")

#: Opens a client session: applied, it answers the session id the cluster assigned (Raft thesis 6.3).
#: No app method can have this name (it is not an identifier).
REGISTER_SESSION = Command("smr.register_session")


def get(key: str) -> Command:
    """A KV read of ``key`` (result: the value or None)."""
    return Command("get", key)


def put(key: str, value: Value) -> Command:
    """A KV write of ``value`` to ``key`` (result: None)."""
    return Command("put", key, (value,))


def cas(key: str, expected: Value, new: Value) -> Command:
    """A KV compare-and-set (result: True if ``key`` held ``expected`` and now holds ``new``)."""
    return Command("cas", key, (expected, new))


def delete(key: str) -> Command:
    """A KV delete of ``key`` (result: True if it existed)."""
    return Command("delete", key)


def add(amount: int = 1, key: str = "") -> Command:
    """A counter increment by ``amount`` (result: the new total)."""
    return Command("add", key, (amount,))


def read_counter(key: str = "") -> Command:
    """A counter read (result: the total)."""
    return Command("read", key)


def try_init(key: str, value: Value) -> Command:
    """The essay's ``tryInitialize`` on write-once cell ``key`` (result: the final value)."""
    return Command("try_init", key, (value,))


def final_value(key: str) -> Command:
    """The essay's ``finalValue`` on write-once cell ``key`` (result: the value or None)."""
    return Command("final_value", key)
