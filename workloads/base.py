"""What a workload is: a generator of client commands that knows its state machine,
its checker model and its own invariants."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Protocol

from smr.commands import Command
from smr.errors import LocalProtocolError
from smr.history import Operation


class Workload(Protocol):
    """Generates client operations and says how to judge them."""

    name: str
    #: The built-in state machine the operations run against (see smr.state_machines).
    state_machine: str
    #: The linearizability checker model that judges its histories.
    model: str

    def next_command(self, rng: random.Random, client: int) -> Command:
        """Return the next command client number ``client`` should issue."""
        ...

    def check(self, history: Sequence[Operation]) -> list[str]:
        """Return a description of every violation of the workload's own invariants."""
        ...


_WORKLOADS: dict[str, Callable[..., Workload]] = {}


def register_workload(name: str, factory: Callable[..., Workload]) -> None:
    """Make a workload constructible by name with keyword options."""
    _WORKLOADS[name] = factory


def make_workload(name: str, options: Mapping[str, Any] | None = None) -> Workload:
    """Build workload ``name`` with ``options``; unknown names or options are a LocalProtocolError."""
    try:
        factory = _WORKLOADS[name]
    except KeyError:
        raise LocalProtocolError(f"unknown workload {name!r}; choose one of {sorted(_WORKLOADS)}") from None
    try:
        return factory(**dict(options or {}))
    except TypeError as exc:
        raise LocalProtocolError(f"bad options for workload {name!r}: {exc}") from None


def workload_names() -> list[str]:
    """Return the registered workload names, sorted."""
    return sorted(_WORKLOADS)
