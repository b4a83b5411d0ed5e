"""How much work a check may do before it must answer ``unknown``.

Deciding linearizability is NP-complete, so a search can run for ever on a
pathological history.  A :class:`Budget` bounds it by model steps and/or wall
seconds; a :class:`Meter` spends one budget across every partition of a check.
An exhausted budget always yields the verdict ``unknown``, never a pass.
"""

from __future__ import annotations

import time

import attrs

from smr.errors import LocalProtocolError


def _positive_or_none(instance: object, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not value > 0:
        raise LocalProtocolError(f"Budget.{attribute.name} must be positive or None, got {value!r}")


@attrs.frozen
class Budget:
    """Limits on one check: ``max_steps`` model steps, ``timeout`` wall seconds (None: no limit)."""

    max_steps: int | None = attrs.field(default=None, validator=_positive_or_none)
    timeout: float | None = attrs.field(default=None, validator=_positive_or_none)


#: How many model steps a search takes between two looks at the meter.
CHECK_EVERY = 1024


class Meter:
    """Counts the steps spent against one :class:`Budget`."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.steps = 0
        self.started = time.monotonic()
        self.deadline = None if budget.timeout is None else self.started + budget.timeout
        self.exhausted_by: str | None = None

    def spend(self, steps: int) -> bool:
        """Record ``steps`` more model steps; return False if no further step may be taken."""
        self.steps += steps
        if self.budget.max_steps is not None and self.steps >= self.budget.max_steps:
            self.exhausted_by = f"the budget of {self.budget.max_steps} model steps was exhausted"
            return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.exhausted_by = f"the budget of {self.budget.timeout:g} wall seconds was exhausted"
            return False
        return True

    def allowance(self) -> int:
        """Return how many steps may be taken before the meter must be consulted again."""
        if self.budget.max_steps is None:
            return CHECK_EVERY
        return max(0, min(CHECK_EVERY, self.budget.max_steps - self.steps))

    def elapsed(self) -> float:
        """Return the wall seconds since the meter started."""
        return time.monotonic() - self.started
