"""State machines the app tests run in every runtime (importable by name, so TCP servers load them too)."""

from __future__ import annotations

import random

import smr


class Ledger(smr.StateMachine):
    """Accounts whose commands may raise: a failed transfer must fail identically everywhere."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.log: list[tuple[str, int]] = []   # tuples survive snapshots as tuples

    @smr.command
    def credit(self, key: str, amount: int) -> int:
        """Add ``amount`` to account ``key`` (keyed: the checker could split by account)."""
        self.balances[key] = self.balances.get(key, 0) + amount
        self.log.append((key, amount))
        return self.balances[key]

    @smr.command
    def debit(self, key: str, amount: int) -> int:
        """Take ``amount`` from ``key``; ValueError (after recording the attempt) if it is short."""
        self.log.append((key, -amount))  # a change made before raising stays, on every replica
        if self.balances.get(key, 0) < amount:
            raise ValueError(f"{key} holds {self.balances.get(key, 0)}, cannot pay {amount}")
        self.balances[key] -= amount
        return self.balances[key]

    @smr.command
    def echo(self, value: smr.Value) -> smr.Value:
        """Return ``value`` as the replicas got it (the data model's round trip)."""
        return value

    @smr.query
    def blob(self, size: int) -> bytes:
        """``size`` bytes: a result may be larger than a runtime can carry."""
        return b"x" * size

    @smr.query
    def balance(self, key: str) -> int:
        """The balance of ``key``."""
        return self.balances.get(key, 0)

    @smr.query
    def attempts(self) -> int:
        """How many credits and debits were tried (failed debits included)."""
        return len(self.log)


class Dice(smr.StateMachine):
    """BROKEN on purpose: a command that reads the global random generator, so replicas diverge."""

    def __init__(self) -> None:
        self.total = 0

    @smr.command
    def roll(self) -> int:
        """Add a random number (different on every replica)."""
        self.total += random.randint(1, 6)
        return self.total


class Unprintable(Exception):
    """An exception whose message cannot even be rendered."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class Hostile(smr.StateMachine):
    """Commands that misbehave in every way a replica must survive."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.extra: object = None

    @smr.command
    def unprintable(self) -> None:
        """Raise an exception whose str() raises."""
        raise Unprintable()

    @smr.command
    def exit(self) -> None:
        """Raise SystemExit, as careless code might."""
        raise SystemExit(3)

    @smr.command
    def append(self, data: bytes) -> int:
        """Grow a bytearray attribute (it must come back from a snapshot as a bytearray)."""
        self.buffer.extend(data)
        return len(self.buffer)

    @smr.command
    def poison(self) -> None:
        """Store a set: the state stops being snapshottable."""
        self.extra = {1, 2}



class Holder:
    """A namespace: apps may be nested classes."""

    class Nested(smr.StateMachine):
        """The smallest app."""

        @smr.query
        def ping(self) -> str:
            """Answer pong."""
            return "pong"


class Bag(smr.StateMachine):
    """Keeps the list it was given: the log's copy of that argument must not change with it."""

    def __init__(self) -> None:
        self.items: list[smr.Value] = []

    @smr.command
    def init(self, items: list[int]) -> None:
        """Start from ``items`` (kept as given)."""
        self.items = items

    @smr.command
    def add(self, item: int) -> int:
        """Append ``item``; return the count."""
        self.items.append(item)
        return len(self.items)

    @smr.query
    def count(self) -> int:
        """How many items there are (a query: served by ReadIndex in that read mode)."""
        return len(self.items)
