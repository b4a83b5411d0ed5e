"""User of the day (the essay's first example): exactly one user per day, whoever asks.

Every client proposes a random user for a day with ``try_init(day, user)``
and gets back the day's user; everyone must get the same one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from smr.commands import Command, final_value, try_init
from smr.history import Operation, Outcome

from .base import register_workload


@attrs.define
class UserOfTheDayWorkload:
    """Many clients propose random users for a sliding window of days."""

    users: int = 1000
    days_in_flight: int = 3
    read_ratio: float = 0.2
    name: str = "user_of_the_day"
    state_machine: str = "write_once"
    model: str = "write_once"
    _issued: int = 0

    def next_command(self, rng: random.Random, client: int) -> Command:
        """Propose a random user for one of the current days (or ask who it is)."""
        self._issued += 1
        day = f"day-{self._issued // 40 + rng.randrange(self.days_in_flight)}"
        if rng.random() < self.read_ratio:
            return final_value(day)
        return try_init(day, f"user-{rng.randrange(self.users)}")

    def check(self, history: Sequence[Operation]) -> list[str]:
        """Exactly one user per day: every answer for a day names the same user, one that was proposed."""
        answers: dict[str, set[object]] = {}
        proposed: dict[str, set[object]] = {}
        for op in history:
            if op.command.op == "try_init":
                proposed.setdefault(op.command.key, set()).add(op.command.args[0])
        problems = []
        for op in history:
            if op.outcome is Outcome.OK and op.result is not None:
                answers.setdefault(op.command.key, set()).add(op.result)
                if op.result not in proposed.get(op.command.key, ()):
                    problems.append(f"op {op.id}: {op.result!r} was never proposed for {op.command.key}")
        for day, users in sorted(answers.items()):
            if len(users) > 1:
                problems.append(f"{day} has {len(users)} users of the day: {sorted(map(str, users))}")
        return problems


register_workload("user_of_the_day", UserOfTheDayWorkload)
