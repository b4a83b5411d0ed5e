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
