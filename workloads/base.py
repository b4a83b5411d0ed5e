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
    #: The state machine the operations run against (an app spec: see smr.apps).
    state_machine: str
    @property
    def model(self) -> str | None:
        """The linearizability checker model that judges its histories (None: agreement checks only)."""
        ...

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


def _imported(spec: str) -> Callable[..., Workload]:
    """The workload factory a ``module:attr`` or ``file.py:attr`` spec names."""
    from smr.apps import import_attribute

    factory = import_attribute(spec, "workload")
    if not callable(factory):
        raise LocalProtocolError(f"workload {spec!r} is not a class or function that makes a workload")
    return factory


def make_workload(name: str, options: Mapping[str, Any] | None = None) -> Workload:
    """Build workload ``name`` (registered, or ``module:attr``) with ``options``; errors are LocalProtocolError."""
    factory = _WORKLOADS.get(name)
    if factory is None:
        if ":" not in name:
            raise LocalProtocolError(f"unknown workload {name!r}; choose one of {sorted(_WORKLOADS)} "
                                     f"or give module:attribute")
        factory = _imported(name)
    try:
        return factory(**dict(options or {}))
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"bad options for workload {name!r}: {exc}") from None


def workload_names() -> list[str]:
    """Return the registered workload names, sorted."""
    return sorted(_WORKLOADS)
