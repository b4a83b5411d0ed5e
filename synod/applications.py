"""The essay's two applications, written once against any ``WriteOnce``.

* **User of the day**: every node proposes a random user; ``try_initialize``
  keeps the first, so every reader gets the same user.
* **Order cancellation**: the warehouse's ``try_ship`` and the customer's
  ``try_cancel`` race to initialize the order's result; the first wins and
  the other is ignored, so an order is never both shipped and cancelled.

Pass a :class:`synod.write_once.LocalWriteOnce` (threads) or a
:class:`synod.cluster.ClusterWriteOnce` (a node of a simulated algorithm):
the application code does not change.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .write_once import WriteOnce


def user_of_the_day(user_of_the_day: WriteOnce[str], users: Sequence[str], rng: random.Random) -> str:
    """Propose a random user and return the day's user: the same for every caller of this variable."""
    user_of_the_day.try_initialize(rng.choice(list(users)))
    return user_of_the_day.final_value()


class OrderState:
    """The essay's ``OrderState`` enum."""

    PENDING = "pending"      # not yet shipped, can be cancelled
    SHIPPED = "shipped"      # no longer cancellable
    CANCELLED = "cancelled"  # no longer shippable


class Order:
    """An order whose fate is one write-once variable: shipped or cancelled, never both."""

    def __init__(self, order_result: WriteOnce[str]) -> None:
        self.order_result = order_result

    def try_cancel(self) -> None:
        """Cancel the order unless it was already shipped (or cancelled)."""
        self.order_result.try_initialize(OrderState.CANCELLED)

    def try_ship(self) -> None:
        """Ship the order unless it was already cancelled (or shipped)."""
        self.order_result.try_initialize(OrderState.SHIPPED)

    def state(self, timeout: float = 0.0) -> str:
        """The order's final state if known within ``timeout``, else PENDING."""
        try:
            return self.order_result.final_value(timeout)
        except TimeoutError:
            return OrderState.PENDING
