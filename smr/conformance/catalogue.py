"""The conformance catalogue: fault scenarios every replicated-log backend must survive.

A catalogue entry is a YAML mapping that wraps an ordinary simulator
scenario (structured into :class:`~smr.sim.SimConfig` by the same cattrs
converter) with what a conformance run needs on top::

    name: leader-crash
    description: the leader crashes for good; the others elect a new one
    liveness_bound_ms: 800          # after the last fault, progress within this
    no_progress:                    # optional: nothing may complete in here
      - {from_ms: 950, until_ms: 1800}
    expect:                         # the expected-result matrix, this row of it
      coordinator: [liveness]       # these judgements must fail; all others pass
    backends: [raft, multipaxos]    # optional: only these run it (default: every backend)
    scenario:                       # a SimConfig mapping, minus backend/source
      nodes: 3
      faults: [{at: 1000, action: crash_leader}]
    repeat:                         # optional: periodic faults, added to scenario.faults
      - {every_ms: 7, from_ms: 250, until_ms: 2500,
         faults: [{at: 0, action: crash, node: n3}, {at: 1, action: restart, node: n3}]}

The backend is chosen per run, so ``scenario`` must not name one.  Every
error names the file, the line and the field (``scenario.faults[1].node``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import cattrs
import yaml

from ..errors import ConfigError, LocalProtocolError
from ..sim import FaultEvent, SimConfig
from ..sim.config import MEMBERSHIP_ACTIONS, converter, fault_problems, scenario_problems
from ..yamlfiles import (LOADER_FIELDS, Problem, explain_structure_error, problems_error, read_config_text,
                         read_yaml_mapping, refuse_loader_fields)

#: The judgements of a run, in the order they are reported.
CHECKS: tuple[str, ...] = ("linearizability", "invariants", "workload", "liveness", "quorum")


@attrs.frozen
class NoProgress:
    """A window with no live majority: an operation invoked in it must not complete OK before it ends."""

    from_ms: float
    until_ms: float


@attrs.frozen
class Repeat:
    """Faults repeated every ``every_ms`` from ``from_ms`` (inclusive) to ``until_ms`` (exclusive).

    Each fault's ``at`` (and a flap's ``until_ms``) is an offset from the
    start of its round.
    """

    every_ms: float
    from_ms: float
    until_ms: float
    faults: tuple[FaultEvent, ...]

    def expand(self) -> list[FaultEvent]:
        """The faults of every round, at absolute times."""
        out = []
        rounds = int(math.ceil((self.until_ms - self.from_ms) / self.every_ms))
        for k in range(max(rounds, 0)):
            start = self.from_ms + k * self.every_ms
            for f in self.faults:
                shifted = attrs.evolve(f, at=round(start + f.at, 6))
                if f.action == "flap":
                    shifted = attrs.evolve(shifted, until_ms=round(start + f.until_ms, 6))
                out.append(shifted)
        return out


#: At most this many faults may come out of one entry's ``repeat`` blocks.
MAX_REPEATED = 20_000


@attrs.frozen
class ConformanceScenario:
    """One catalogue entry: a simulator scenario plus its liveness bound and expected failures.

    Args:
        name: the entry's name, used in test ids and replay commands.
        liveness_bound_ms: after the last fault (see :attr:`heal_ms`), some
            operation must complete within this many ms, and no operation
            invoked later than this stays unanswered.
        scenario: the simulation, with any backend chosen per run.
        description: one line saying what the entry exercises.
        no_progress: windows in which no majority is up.
        expect: backend name -> the judgements that must fail for it.
        backends: the backends the entry is for (empty: every one); a
            membership change needs a backend that changes its membership.
        repeat: periodic faults; the loader adds them to ``scenario.faults``
            (sorted by time, a tie kept in file order) and leaves this empty.
        source: the file it was read from, set by the loader.
    """

    name: str
    liveness_bound_ms: float
    scenario: SimConfig
    description: str = ""
    no_progress: tuple[NoProgress, ...] = ()
    expect: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    backends: tuple[str, ...] = ()
    repeat: tuple[Repeat, ...] = ()
    source: str | None = None

    @property
    def heal_ms(self) -> float:
        """When the last fault happens (a flap counts until it stops): the liveness phase starts here."""
        times = [max(f.at, f.until_ms) if f.action == "flap" else f.at for f in self.scenario.faults]
        return max(times, default=0.0)

    def runs_on(self, backend: str) -> bool:
        """True if the entry is for ``backend`` (every backend when ``backends`` is empty)."""
        return not self.backends or backend in self.backends

    def expected_failures(self, backend: str) -> frozenset[str]:
        """The judgements that must fail when ``backend`` runs this entry (empty: all must pass)."""
        return frozenset(self.expect.get(backend, ()))

    def for_backend(self, backend: str, options: dict[str, Any] | None = None) -> SimConfig:
        """The simulator config for one run on ``backend`` with extra backend ``options``."""
        merged = {**self.scenario.backend_options, **(options or {})}
        return attrs.evolve(self.scenario, backend=backend, backend_options=merged, name=self.name)


_SCENARIO_FORBIDDEN = {"backend": "the backend is chosen per run; remove 'backend'",
                       **LOADER_FIELDS,
                       "name": "name the entry at the top level, not inside 'scenario'"}


def parse_entry(text: str, source: str = "<conformance>") -> ConformanceScenario:
    """Parse one catalogue entry, or raise ConfigError naming the file, line and field."""
    data, lines = read_yaml_mapping(text, source, "conformance scenario")

    def fail(message: str, path: str) -> ConfigError:
        return ConfigError(message, file=source, line=lines.get(f"$.{path}"), field=path)

    refuse_loader_fields(data, lines, source)
    expect = data.get("expect", {})
    if not isinstance(expect, dict) or not all(
            isinstance(v, list) and all(isinstance(c, str) for c in v) for v in expect.values()):
        # checked here because a cattrs error under a mapping key names no line we can find
        raise fail("expect maps backend names to lists of judgements", "expect")
    inner = data.get("scenario")
    if isinstance(inner, dict):
        for key, why in _SCENARIO_FORBIDDEN.items():
            if key in inner:
                raise fail(why, f"scenario.{key}")
    try:
        entry = converter.structure(data, ConformanceScenario)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise explain_structure_error(exc, lines, source) from None
    problems = [Problem(p, m) for p, m in scenario_problems(entry.scenario, "$.scenario", backend=False)]
    problems += [Problem(p, m) for i, block in enumerate(entry.repeat) for j, f in enumerate(block.faults)
                 for p, m in fault_problems(f, entry.scenario.all_node_ids, f"$.repeat[{i}].faults[{j}]")]
    problems += [Problem(f"$.repeat[{i}].faults[{j}].action", f"{f.action} cannot repeat (a membership change "
                                                               f"happens once; list each in scenario.faults)")
                 for i, block in enumerate(entry.repeat) for j, f in enumerate(block.faults)
                 if f.action in MEMBERSHIP_ACTIONS]
    if problems:
        raise problems_error(problems, lines, source)
    entry = _expand(entry, fail)
    _validate(entry, fail)
    return attrs.evolve(entry, source=source,
                        scenario=attrs.evolve(entry.scenario, name=entry.name))


def _expand(entry: ConformanceScenario, fail: Callable[[str, str], ConfigError]) -> ConformanceScenario:
    extra: list[FaultEvent] = []
    for i, block in enumerate(entry.repeat):
        if block.every_ms <= 0 or block.until_ms <= block.from_ms or not block.faults:
            raise fail("a repeat needs every_ms > 0, from_ms < until_ms and some faults", f"repeat[{i}]")
        extra += block.expand()
        if len(extra) > MAX_REPEATED:
            raise fail(f"repeat blocks add more than {MAX_REPEATED} faults", f"repeat[{i}]")
    if not extra:
        return attrs.evolve(entry, repeat=())
    faults = sorted([*entry.scenario.faults, *extra], key=lambda f: f.at)
    return attrs.evolve(entry, repeat=(), scenario=attrs.evolve(entry.scenario, faults=tuple(faults)))


def _validate(entry: ConformanceScenario, fail: Callable[[str, str], ConfigError]) -> None:
    from ..replica import get_backend

    config = entry.scenario
    if entry.liveness_bound_ms <= 0:
        raise fail("liveness_bound_ms must be positive", "liveness_bound_ms")
    if entry.heal_ms + 2 * entry.liveness_bound_ms > config.duration_ms:
        raise fail(f"the last fault at {entry.heal_ms:g} ms plus twice the bound must fit in "
                   f"duration_ms ({config.duration_ms:g}): one bound to recover, one to answer",
                   "liveness_bound_ms")
    for i, window in enumerate(entry.no_progress):
        if not 0 <= window.from_ms < window.until_ms <= config.duration_ms:
            raise fail("need 0 <= from_ms < until_ms <= duration_ms", f"no_progress[{i}]")
    for i, name in enumerate(entry.backends):
        try:
            get_backend(name)
        except LocalProtocolError as exc:
            raise fail(str(exc), f"backends[{i}]") from None
    for name, checks in entry.expect.items():
        try:
            get_backend(name)
        except LocalProtocolError as exc:
            raise fail(str(exc), f"expect.{name}") from None
        for i, check in enumerate(checks):
            if check not in CHECKS:
                raise fail(f"unknown judgement {check!r}; expected one of {', '.join(CHECKS)}",
                           f"expect.{name}[{i}]")


def load_entry(path: str | Path) -> ConformanceScenario:
    """Read one catalogue entry from a file; errors name the file, line and field."""
    return parse_entry(read_config_text(path, "conformance scenario"), str(path))


def catalogue_paths() -> list[Path]:
    """The built-in catalogue files, sorted by name."""
    root = resources.files(f"{__package__}.scenarios")
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml"))


def builtin_catalogue() -> list[ConformanceScenario]:
    """Every built-in catalogue entry, sorted by file name; names are unique."""
    return list(_builtin())


@functools.cache
def _builtin() -> tuple[ConformanceScenario, ...]:
    entries = [load_entry(p) for p in catalogue_paths()]
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.name in seen:
            raise ConfigError(f"duplicate catalogue name {entry.name!r} (also in {seen[entry.name]})",
                              file=entry.source, field="name")
        seen[entry.name] = str(entry.source)
    return tuple(entries)


def resolve(name_or_path: str) -> ConformanceScenario:
    """A built-in entry by name, or an entry read from a YAML file path."""
    if name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        return load_entry(name_or_path)
    for entry in builtin_catalogue():
        if entry.name == name_or_path:
            return entry
    names = ", ".join(e.name for e in builtin_catalogue())
    raise LocalProtocolError(f"no catalogue scenario named {name_or_path!r}; built-in: {names}")


_dumper = cattrs.Converter(omit_if_default=True)


def to_yaml(entry: ConformanceScenario) -> str:
    """The entry as catalogue YAML (defaults left out) that :func:`parse_entry` reads back."""
    data = _dumper.unstructure(attrs.evolve(entry, source=None))
    inner = data.setdefault("scenario", {})
    for key in _SCENARIO_FORBIDDEN:
        inner.pop(key, None)
    data["liveness_bound_ms"] = entry.liveness_bound_ms
    ordered = {k: data[k] for k in ("name", "description", "liveness_bound_ms", "no_progress",
                                     "expect", "backends", "scenario", "repeat") if k in data}
    return yaml.safe_dump(_plain(ordered), sort_keys=False, default_flow_style=None, width=100)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
