"""The in-memory test network (:class:`smr.testing.Network`) preset for Raft cores."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from smr.state_machines import KVStore, StateMachine
from smr.testing import Network as _Network

from .invariants import RaftInvariants
from .mutants import build


class Network(_Network):
    """An in-memory Raft cluster whose Raft invariants run after every step (``mutant_*`` options work)."""

    def __init__(self, size: int = 3, options: Mapping[str, Any] | None = None, seed: int = 0,
                 state_machine: Callable[[], StateMachine] = KVStore, check: bool = True,
                 hold_syncs: bool = False) -> None:
        super().__init__(build, size, options, seed, state_machine, RaftInvariants(), check, hold_syncs)

    def log_terms(self, node: str) -> list[int]:
        """The terms of ``node``'s entries after its snapshot (for compact assertions)."""
        return [e.term for e in self.cores[node].log.entries]
