"""Client commands and the scalar values they carry.

A :class:`Command` is what a client asks the replicated state machine to do.
It is a frozen attrs value so it can be logged, compared, hashed and sent over
any transport through :mod:`smr.wire`.
"""

from __future__ import annotations

from typing import Union

import attrs

#: The values a command argument or result may hold (JSON-friendly scalars).
Scalar = Union[None, bool, int, str]


@attrs.frozen
class Command:
    """One state machine operation: an op name, an optional key and arguments.

    Examples: ``Command("put", "x", ("1",))``, ``Command("cas", "x", ("1", "2"))``,
    ``Command("add", "", (5,))``, ``Command("try_init", "order-7", ("shipped",))``.
    """

    op: str
    key: str = ""
    args: tuple[Scalar, ...] = ()

    def __str__(self) -> str:
        parts = [self.op]
        if self.key:
            parts.append(self.key)
        parts.extend(repr(a) for a in self.args)
        return " ".join(parts)


#: The no-op a new leader commits to establish its term or fill a log gap.
NOOP = Command("noop")


def get(key: str) -> Command:
    """A KV read of ``key`` (result: the value or None)."""
    return Command("get", key)


def put(key: str, value: Scalar) -> Command:
    """A KV write of ``value`` to ``key`` (result: None)."""
    return Command("put", key, (value,))


def cas(key: str, expected: Scalar, new: Scalar) -> Command:
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


def try_init(key: str, value: Scalar) -> Command:
    """The essay's ``tryInitialize`` on write-once cell ``key`` (result: the final value)."""
    return Command("try_init", key, (value,))


def final_value(key: str) -> Command:
    """The essay's ``finalValue`` on write-once cell ``key`` (result: the value or None)."""
    return Command("final_value", key)
