"""Simulation settings and scenario files.

A scenario is YAML that structures into :class:`SimConfig` through cattrs.
Every error names the file, the line and the field (``faults[2].node``), so a
typo never silently becomes a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs

from ..errors import ConfigError
from ..yamlfiles import read_config_text, structure_yaml
from .latency import Latency

FaultAction = Literal[
    "crash", "restart", "crash_leader", "restart_all", "partition", "partition_halves",
    "isolate", "isolate_leader", "bridge", "heal", "flap", "network",
]


@attrs.frozen
class LinkLatency:
    """A per-link latency override (``src`` to ``dst``, one way)."""

    src: str
    dst: str
    latency: Latency


@attrs.frozen
class NetworkConfig:
    """The network model: delays, loss, duplication, reordering.

    With ``fifo`` (the default) each link delivers in send order, as a TCP
    connection does, whatever delays are drawn; ``reorder`` is the share of
    messages given an extra delay of up to ``reorder_ms`` that may overtake
    others.  Without ``fifo`` independent delays reorder messages freely.
    """

    latency: Latency = Latency("uniform", low=0.5, high=1.5)
    links: tuple[LinkLatency, ...] = ()
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_ms: float = 5.0
    fifo: bool = True

    def __attrs_post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


@attrs.frozen
class DiskConfig:
    """The storage model: how long a sync takes and what a crash loses.

    ``nodes`` gives some nodes a disk of their own speed (e.g. one slow disk:
    ``{n1: {dist: uniform, low: 20, high: 40}}``); the others use ``sync``.
    """

    sync: Latency = Latency("constant", mean=0.1)
    lose_unsynced: bool = True
    nodes: dict[str, Latency] = attrs.field(factory=dict)


@attrs.frozen
class ClientConfig:
    """Clients: how many, their workload, their patience, and how they pace themselves.

    ``closed``: ``count`` clients, each with one operation outstanding.
    ``open``: operations arrive at ``rate_per_s`` (Poisson), each from a fresh
    client, whether or not earlier ones have finished.  Operations invoked
    before ``warmup_ms`` are excluded from latency and throughput figures.
    """

    count: int = 3
    workload: str = "kv"
    workload_options: dict[str, Any] = attrs.field(factory=dict)
    timeout_ms: float = 300.0
    max_attempts: int = 5
    think_ms: float = 0.0
    stop_ms: float | None = None
    mode: Literal["closed", "open"] = "closed"
    rate_per_s: float = 200.0
    warmup_ms: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.count < 0 or self.max_attempts < 1 or self.timeout_ms <= 0:
            raise ValueError("clients need count >= 0, max_attempts >= 1, timeout_ms > 0")
        if self.mode == "open" and self.rate_per_s <= 0:
            raise ValueError("open-loop clients need rate_per_s > 0")


@attrs.frozen
class FaultEvent:
    """One scheduled fault; which fields matter depends on ``action``.

    * crash / restart / isolate: ``node``; crash_leader, isolate_leader, restart_all;
    * partition: ``groups`` (lists of nodes; links between groups are cut);
    * partition_halves: a random split, minority and majority;
    * bridge: two halves that both reach ``node``;
    * heal: every link restored;
    * flap: partition_halves and heal in turn every ``period_ms`` until ``until_ms``;
    * network: change ``loss`` / ``duplicate`` from now on.
    """

    at: float
    action: FaultAction
    node: str | None = None
    groups: tuple[tuple[str, ...], ...] = ()
    period_ms: float = 100.0
    until_ms: float = 0.0
    loss: float | None = None
    duplicate: float | None = None


def _app_spec(app: Any) -> str | None:
    """A StateMachine class given as ``state_machine`` becomes the spec string that names it."""
    if app is None or isinstance(app, str):
        return app
    from ..apps import app_spec

    return app_spec(app, portable=False)


@attrs.frozen
class SimConfig:
    """Everything one simulated run needs, apart from its seed."""

    backend: str = "coordinator"
    backend_options: dict[str, Any] = attrs.field(factory=dict)
    nodes: int = 3
    #: The app every replica runs: a built-in name, ``module:Class`` or ``file.py:Class`` (a class is
    #: turned into its spec); None: the workload's own.
    state_machine: str | None = attrs.field(default=None, converter=_app_spec)
    duration_ms: float = 2000.0
    tick_ms: float = 10.0
    clock_skew: float = 0.0
    network: NetworkConfig = NetworkConfig()
    disk: DiskConfig = DiskConfig()
    clients: ClientConfig = ClientConfig()
    faults: tuple[FaultEvent, ...] = ()
    swarm: bool = False
    check_invariants: bool = True
    trace: bool = True
    count_bytes: bool = True
    name: str = ""
    source: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("nodes must be at least 1")
        if self.duration_ms <= 0 or self.tick_ms <= 0:
            raise ValueError("duration_ms and tick_ms must be positive")
        if not 0.0 <= self.clock_skew < 1.0:
            raise ValueError("clock_skew must be in [0, 1)")
        unknown = sorted(set(self.disk.nodes) - set(self.node_ids))
        if unknown:
            raise ValueError(f"disk.nodes names unknown nodes {', '.join(unknown)} (nodes: n1..n{self.nodes})")

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The node names n1..nN."""
        return tuple(f"n{i}" for i in range(1, self.nodes + 1))

    def replay_command(self, seed: int) -> str:
        """The one shell command that replays this run with ``seed``, exactly."""
        if self.source is not None and self == _reload(self.source):
            return f"smr sim {self.source} --seed {seed}"
        return f"smr sim --config '{config_to_json(self)}' --seed {seed}"


converter = cattrs.Converter(forbid_extra_keys=True)


def _structure_latency(value: Any, _type: type) -> Latency:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Latency("constant", mean=float(value))
    return converter.structure_attrs_fromdict(value, Latency)


converter.register_structure_hook(Latency, _structure_latency)


def parse_scenario(text: str, source: str = "<scenario>") -> SimConfig:
    """Parse scenario YAML into a SimConfig, or raise ConfigError naming file, line and field."""
    config, _lines = structure_yaml(text, source, "scenario", SimConfig, converter)
    return attrs.evolve(config, source=source)


def load_scenario(path: str | Path) -> SimConfig:
    """Read a scenario file; errors name the file, line and field."""
    return parse_scenario(read_config_text(path, "scenario"), str(path))


def _reload(source: str) -> SimConfig | None:
    try:
        return load_scenario(source)
    except ConfigError:
        return None


def _diff(value: Any, default: Any) -> Any:
    if isinstance(value, dict) and isinstance(default, dict):
        out = {k: _diff(v, default.get(k)) for k, v in value.items() if v != default.get(k)}
        return out
    return value


def config_to_json(config: SimConfig) -> str:
    """The settings of ``config`` that differ from the defaults, as compact JSON (YAML-readable)."""
    import json

    data = _diff(converter.unstructure(attrs.evolve(config, source=None)),
                 converter.unstructure(SimConfig()))
    if "faults" in data:
        blank = converter.unstructure(FaultEvent(0.0, "heal"))
        data["faults"] = [{k: v for k, v in f.items() if k in ("at", "action") or v != blank[k]}
                          for f in data["faults"]]
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
