"""The essay's proposing clients as a simulator workload: each client proposes once, then reads.

Client ``i`` (1-based) calls ``try_init(key, values[i-1 mod len])`` (the
essay's ``tryInitialize``) and afterwards only ``final_value(key)``.  The
simulator starts every client at time 0, client ``i`` talking to node ``n<i>``
first, so ``k`` clients are ``k`` proposals made at the same time on ``k``
different nodes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from smr import commands
from smr.commands import Command
from smr.history import Operation
from workloads import register_workload

#: The essay's three colours.
COLOURS = ("red", "green", "blue")
WORKLOAD = "write_once_proposals"


class ProposalsWorkload:
    """Every client proposes its own value once, then waits on ``final_value``."""

    name = WORKLOAD
    state_machine = "write_once"
    model = "write_once"

    def __init__(self, values: tuple[str, ...] | list[str] = COLOURS, key: str = "x") -> None:
        self.values = tuple(values)
        self.key = key
        self._proposed: set[int] = set()

    def next_command(self, rng: random.Random, client: int) -> Command:
        """Client ``client``'s next command: its proposal first, then reads."""
        if client not in self._proposed:
            self._proposed.add(client)
            return commands.try_init(self.key, self.values[(client - 1) % len(self.values)])
        return commands.final_value(self.key)

    def check(self, history: Sequence[Operation]) -> list[str]:
        """No invariant of its own: the checker's ``write_once`` model judges agreement and validity."""
        return []


register_workload(WORKLOAD, ProposalsWorkload)
