"""Deliberately broken variants of a core, selected by ``mutant_*`` options.

A backend keeps its mutants as subclasses of its correct core, each
overriding one rule, and hands them to a :class:`MutantSet`: the set maps
every option to its class, builds the class for any combination (several
mutants combine their overrides), and is the backend's factory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from .replica import ReplicaConfig


class _BuiltFromConfig(Protocol):
    def __init__(self, config: ReplicaConfig) -> None: ...


CoreT = TypeVar("CoreT", bound=_BuiltFromConfig)


class MutantSet(Generic[CoreT]):
    """The mutants of one core: ``by_option[name]`` is the class an option selects.

    Args:
        correct: the correct core class.
        mutants: its mutant subclasses, each naming the options it implements in ``mutants``.
        selected: reads the switched-on ``mutant_*`` option names from a config's options.
    """

    def __init__(self, correct: type[CoreT], mutants: Iterable[type[CoreT]],
                 selected: Callable[[Mapping[str, Any]], Iterable[str]]) -> None:
        self.correct = correct
        self.by_option: dict[str, type[CoreT]] = {
            option: cls for cls in mutants for option in getattr(cls, "mutants")}
        self._selected = selected
        self.core_class = functools.lru_cache(maxsize=None)(self._core_class)

    def _core_class(self, mutants: frozenset[str]) -> type[CoreT]:
        """The core class implementing exactly ``mutants`` (several at once combine their overrides)."""
        if not mutants:
            return self.correct
        classes = tuple(self.by_option[name] for name in sorted(mutants))
        if len(classes) == 1:
            return classes[0]
        name = "".join(cls.__name__ for cls in classes)
        return type(name, classes, {"mutants": frozenset(mutants)})

    def build(self, config: ReplicaConfig) -> CoreT:
        """Build the core ``config`` asks for: the correct one, or the mutant its options switch on."""
        return self.core_class(frozenset(self._selected(config.options)))(config)
