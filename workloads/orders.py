"""Order cancellation (the essay's example): ship and cancel race; never both.

Each order is a write-once cell.  The warehouse calls ``try_init(order,
"shipped")``, the customer ``try_init(order, "cancelled")``; whichever is
ordered first wins and both are told the outcome.  Readers ask
``final_value(order)`` (None means still pending).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from smr.commands import Command, final_value, try_init
from smr.history import Operation, Outcome

from .base import register_workload

SHIPPED, CANCELLED = "shipped", "cancelled"


@attrs.define
class OrderWorkload:
    """Races ship against cancel on ``orders`` orders, with status reads in between."""

    orders: int = 20
    read_ratio: float = 0.3
    name: str = "orders"
    state_machine: str = "write_once"
    model: str = "order"

    def next_command(self, rng: random.Random, client: int) -> Command:
        """Return a ship, a cancel or a status read of a random order."""
        order = f"order-{rng.randrange(self.orders)}"
        if rng.random() < self.read_ratio:
            return final_value(order)
        return try_init(order, SHIPPED if client % 2 else CANCELLED)

    def check(self, history: Sequence[Operation]) -> list[str]:
        """No order is ever seen both shipped and cancelled, and every outcome is one of the two."""
        seen: dict[str, set[object]] = {}
        problems = []
        for op in history:
            if op.outcome is Outcome.OK and op.result is not None:
                if op.result not in (SHIPPED, CANCELLED):
                    problems.append(f"op {op.id}: {op.command.key} is {op.result!r}")
                seen.setdefault(op.command.key, set()).add(op.result)
        for order, states in sorted(seen.items()):
            if len(states) > 1:
                problems.append(f"{order} was seen {' and '.join(sorted(map(str, states)))}")
        return problems


register_workload("orders", OrderWorkload)
