"""Simulation settings and scenario files.

A scenario is YAML that structures into :class:`SimConfig` through cattrs.
Every error names the file, the line and the field (``faults[2].node``), so a
typo never silently becomes a default.
"""

from __future__ import annotations

import random
import re
import shlex
from pathlib import Path
from typing import Any, Literal

import attrs
from cattrs.gen import make_dict_structure_fn

from ..errors import ConfigError, LocalProtocolError
from ..scenarios import find_scenario
from ..yamlfiles import FieldErrors, read_config_text, strict_converter, structure_yaml
from .latency import Latency

FaultAction = Literal[
    "crash", "restart", "crash_leader", "restart_all", "partition", "partition_halves",
    "isolate", "isolate_leader", "bridge", "heal", "flap", "network",
    "add_node", "remove_node", "remove_leader", "remove_follower", "replace_node", "replace_leader",
    "clock_leader", "wipe", "flip", "lose_tail", "disk_full",
]
#: The actions that change the cluster's membership (carried out one at a time by the admin client).
MEMBERSHIP_ACTIONS = frozenset({"add_node", "remove_node", "remove_leader", "remove_follower", "replace_node",
                                "replace_leader"})
#: The actions that start a node of the id they name (``node`` for add_node, ``new`` for the replaces).
_STARTS_NODE = {"add_node": "node", "replace_node": "new", "replace_leader": "new"}
#: The ids a node started mid-run may take: ``n`` and a number (clients are ``c1``, ``o1``, the admin ``admin``).
NODE_ID = re.compile(r"n[1-9][0-9]{0,5}")
#: The actions that damage a node's durable state (it crashes; its next start finds the damage).
STORAGE_DAMAGE = frozenset({"wipe", "flip", "lose_tail"})
#: Every storage fault (the damage, and a disk that refuses writes for a while).
STORAGE_ACTIONS = STORAGE_DAMAGE | {"disk_full"}


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
        problems = [(name, f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
                    for name in ("loss", "duplicate", "reorder") if not 0.0 <= getattr(self, name) <= 1.0]
        if not self.reorder_ms >= 0:
            problems.append(("reorder_ms", f"reorder_ms must not be negative, got {self.reorder_ms}"))
        if problems:
            raise FieldErrors(problems)


@attrs.frozen
class DiskConfig:
    """The storage model: how long a sync takes and what a crash loses.

    ``nodes`` gives some nodes a disk of their own speed (e.g. one slow disk:
    ``{n1: {dist: uniform, low: 20, high: 40}}``); the others use ``sync``.
    """

    sync: Latency = Latency("constant", mean=0.1)
    lose_unsynced: bool = True
    nodes: dict[str, Latency] = attrs.field(factory=dict)
    #: A node checks its durable state when it starts, as the TCP runtime does (a checksum on every
    #: record, the count of synced batches, the data directory's incarnation): damage from a ``wipe``,
    #: ``flip`` or ``lose_tail`` fault is found and the node stays out.  False: the damaged state is
    #: loaded as it is (a deliberately broken variant: the faults then lose acknowledged writes).
    checks: bool = True
    #: A node that found its state damaged comes back empty through a membership change (the admin
    #: client removes it, then adds it again: ``smr serve --rejoin-empty``); False: it stays out.
    rejoin: bool = True


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
        problems = []
        for name, ok, rule in (("count", self.count >= 0, ">= 0"), ("max_attempts", self.max_attempts >= 1, ">= 1"),
                               ("timeout_ms", self.timeout_ms > 0, "> 0"), ("think_ms", self.think_ms >= 0, ">= 0"),
                               ("warmup_ms", self.warmup_ms >= 0, ">= 0"),
                               ("stop_ms", self.stop_ms is None or self.stop_ms >= 0, ">= 0")):
            if not ok:
                problems.append((name, f"clients need {name} {rule}, got {getattr(self, name)}"))
        if self.mode == "open" and self.rate_per_s <= 0:
            problems.append(("rate_per_s", "open-loop clients need rate_per_s > 0"))
        if problems:
            raise FieldErrors(problems)


@attrs.frozen
class FaultEvent:
    """One scheduled fault; which fields matter depends on ``action``.

    * crash / restart / isolate: ``node``; crash_leader, isolate_leader, restart_all;
    * partition: ``groups`` (lists of nodes; links between groups are cut);
    * partition_halves: a random split, minority and majority;
    * bridge: two halves that both reach ``node``;
    * heal: every link restored;
    * flap: partition_halves and heal in turn every ``period_ms`` until ``until_ms``;
    * network: change ``loss`` / ``duplicate`` from now on;
    * membership changes, carried out in order by the admin client (each
      waits until the one before it has finished), see :mod:`smr.sim.admin`:
      add_node ``node`` (a fresh replica with an empty disk, then ``add``);
      remove_node ``node`` (a voter picked by the seed if omitted);
      remove_leader; remove_follower (a voter other than the leader, picked
      by the seed); replace_node ``node`` (picked by the seed if omitted)
      by ``new``; replace_leader by ``new``.  A removed node is stopped for
      good once it is out of the configuration.  With ``wait: false`` the
      change is sent at once by an admin client of its own, whatever is in
      flight (so two changes can be: a leader must refuse the second); with
      ``keep: true`` a removed node is not stopped (it runs on, as a
      disruptive server, until its own core reports it retired);
    * clock_leader: from now on the leader's ticks last ``rate`` times their
      nominal length, and every other node's ``others`` times (if given);
    * storage faults on ``node`` (:mod:`smr.sim.disk`): ``wipe`` (it crashes and its disk comes
      back empty), ``flip`` (it crashes and one durable record is corrupted), ``lose_tail`` (it crashes
      and its last ``batches`` synced batches are lost, as from a cut write-ahead log), ``disk_full``
      (every write it tries fails until ``until_ms``: it sits out, then restarts from its disk).
    """

    at: float
    action: FaultAction
    node: str | None = None
    new: str | None = None
    groups: tuple[tuple[str, ...], ...] = ()
    period_ms: float = 100.0
    until_ms: float = 0.0
    loss: float | None = None
    duplicate: float | None = None
    wait: bool = True
    keep: bool = False
    rate: float | None = None
    others: float | None = None
    batches: int | None = None


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
    #: With ``swarm``: the seed also draws membership changes (adds, removes, replaces) among its faults.
    swarm_membership: bool = False
    #: With ``swarm``: the seed also draws storage faults (wipes, bit flips, lost tails, full disks).
    swarm_storage: bool = False
    check_invariants: bool = True
    trace: bool = True
    count_bytes: bool = True
    name: str = ""
    source: str | None = None

    def __attrs_post_init__(self) -> None:
        problems = []
        if self.nodes < 1:
            problems.append(("nodes", "nodes must be at least 1"))
        for name in ("duration_ms", "tick_ms"):
            if getattr(self, name) <= 0:
                problems.append((name, f"{name} must be positive, got {getattr(self, name)}"))
        if not 0.0 <= self.clock_skew < 1.0:
            problems.append(("clock_skew", "clock_skew must be in [0, 1)"))
        unknown = sorted(set(self.disk.nodes) - set(self.all_node_ids))
        if unknown:
            problems.append((f"disk.nodes.{unknown[0]}", f"disk.nodes names unknown nodes {', '.join(unknown)} "
                                                         f"(nodes: {_known(self.all_node_ids)})"))
        if self.swarm_storage and self.swarm_membership:
            problems.append(("swarm_storage", "swarm_storage and swarm_membership cannot be drawn together "
                                              "(a run's damaged nodes must stay a minority of its voters)"))
        if problems:
            raise FieldErrors(problems)

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The node names n1..nN."""
        return tuple(f"n{i}" for i in range(1, self.nodes + 1))

    @property
    def all_node_ids(self) -> tuple[str, ...]:
        """The initial nodes, then every node the fault schedule starts (add_node, replace_*), in order."""
        started = [getattr(f, _STARTS_NODE[f.action]) for f in timeline(self.faults) if f.action in _STARTS_NODE]
        return tuple(dict.fromkeys((*self.node_ids, *(n for n in started if n))))

    @property
    def changes_membership(self) -> bool:
        """True if the run may change its membership (a membership action, or a swarm that draws them)."""
        return (self.swarm and self.swarm_membership) or any(f.action in MEMBERSHIP_ACTIONS for f in self.faults)

    def replay_command(self, seed: int) -> str:
        """The one shell command that replays this run with ``seed``, exactly."""
        loaded = None if self.source is None else _reload(self.source)
        if self.source is not None and loaded is not None and self == attrs.evolve(loaded, backend=self.backend):
            # The backend is always named: for a file that names none, smr sim's default is not SimConfig's.
            return f"smr sim {shlex.quote(self.source)} --backend {self.backend} --seed {seed}"
        return f"smr sim --config '{config_to_json(self)}' --seed {seed}"


#: Structures scenario files: strict types (no bool as int, no "no" as bool, ...), no unknown keys.
converter = strict_converter()
_latency_from_dict = make_dict_structure_fn(Latency, converter, _cattrs_forbid_extra_keys=True)


def _structure_latency(value: Any, _type: type) -> Latency:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Latency("constant", mean=converter.structure(value, float))
    if not isinstance(value, dict):
        raise ValueError(f"a latency is a number of ms or a mapping such as {{dist: uniform, low: 1, high: 2}}, "
                         f"got {value!r:.40}")
    return _latency_from_dict(value, Latency)


converter.register_structure_hook(Latency, _structure_latency)

#: Faults that act on the node they name, and those that need one.
_NODE_ACTIONS = {"crash", "restart", "isolate", "bridge", "add_node", "remove_node", "replace_node",
                 *STORAGE_ACTIONS}
_NEEDS_NODE = {"crash", "restart", "isolate", "add_node", *STORAGE_ACTIONS}
_NEEDS_NEW = {"replace_node", "replace_leader"}


def timeline(faults: tuple[FaultEvent, ...]) -> list[FaultEvent]:
    """The faults in the order the simulator acts on them: by time, a tie kept in file order."""
    return sorted(faults, key=lambda f: f.at)


def _known(nodes: tuple[str, ...]) -> str:
    return ", ".join(nodes) if len(nodes) <= 5 else f"{nodes[0]}..{nodes[-1]}"


def fault_problems(fault: FaultEvent, nodes: tuple[str, ...], path: str) -> list[tuple[str, str]]:
    """(path, message) for everything wrong with one fault, given the node ids that exist when it happens
    (the initial ones and those started by earlier add_node / replace faults)."""
    problems: list[tuple[str, str]] = []
    known = f"nodes: {_known(nodes)}"
    if fault.at < 0:
        problems.append((f"{path}.at", f"a fault's time must not be negative, got {fault.at:g}"))
    if fault.node is None and fault.action in _NEEDS_NODE:
        problems.append((f"{path}.node", f"{fault.action} needs a node"))
    elif fault.node is not None and fault.action not in _NODE_ACTIONS:
        problems.append((f"{path}.node", f"{fault.action} takes no node (it picks its own)"))
    elif fault.action == "add_node":
        problems += _new_node_problems(str(fault.node), nodes, f"{path}.node")
    elif fault.node is not None and fault.node not in nodes:
        problems.append((f"{path}.node", f"unknown node {fault.node!r} ({known})"))
    if fault.new is None and fault.action in _NEEDS_NEW:
        problems.append((f"{path}.new", f"{fault.action} needs new (the id of the node that takes over)"))
    elif fault.new is not None and fault.action not in _NEEDS_NEW:
        problems.append((f"{path}.new", f"{fault.action} takes no new (only replace_node and replace_leader do)"))
    elif fault.new is not None:
        problems += _new_node_problems(fault.new, nodes, f"{path}.new")
    if fault.action == "partition":
        if not fault.groups or not all(fault.groups):
            problems.append((f"{path}.groups", "a partition needs groups of nodes, e.g. [[n1], [n2, n3]]"))
        seen: set[str] = set()
        for g, group in enumerate(fault.groups):
            for n, node in enumerate(group):
                where = f"{path}.groups[{g}][{n}]"
                if node not in nodes:
                    problems.append((where, f"unknown node {node!r} ({known})"))
                elif node in seen:
                    problems.append((where, f"node {node!r} is in two groups"))
                seen.add(node)
    elif fault.groups:
        problems.append((f"{path}.groups", f"{fault.action} takes no groups (only partition does)"))
    if fault.action == "flap" and not fault.period_ms > 0:
        problems.append((f"{path}.period_ms", f"a flap needs period_ms > 0, got {fault.period_ms:g}"))
    if fault.action in ("flap", "disk_full") and not fault.until_ms > fault.at:
        problems.append((f"{path}.until_ms", f"a {fault.action} needs until_ms after its at ({fault.at:g}), "
                                             f"got {fault.until_ms:g}"))
    if fault.batches is not None and fault.action != "lose_tail":
        problems.append((f"{path}.batches", f"{fault.action} takes no batches (only lose_tail does)"))
    elif fault.batches is not None and not 1 <= fault.batches <= 1000:
        problems.append((f"{path}.batches", f"lose_tail loses 1 to 1000 synced batches, got {fault.batches}"))
    problems += _number_problems(fault, path, ("loss", "duplicate"), "network", 0.0, 1.0,
                                 "{name} must be a probability in [0, 1], got {value}")
    if fault.action == "network" and fault.loss is None and fault.duplicate is None:
        problems.append((path, "a network fault needs loss or duplicate"))
    if not fault.wait and fault.action not in MEMBERSHIP_ACTIONS:
        problems.append((f"{path}.wait", f"{fault.action} takes no wait (only membership changes do)"))
    if fault.keep and fault.action not in ("remove_node", "remove_leader", "remove_follower", "replace_node",
                                           "replace_leader"):
        problems.append((f"{path}.keep", f"{fault.action} takes no keep (only removals and replaces do)"))
    problems += _number_problems(fault, path, ("rate", "others"), "clock_leader", 0.1, 10.0,
                                 "a clock rate must be in [0.1, 10], got {value}")
    if fault.action == "clock_leader" and fault.rate is None:
        problems.append((f"{path}.rate", "clock_leader needs rate (how much longer the leader's ticks last)"))
    return problems


def _number_problems(fault: FaultEvent, path: str, names: tuple[str, ...], action: str, low: float, high: float,
                     out_of_range: str) -> list[tuple[str, str]]:
    """Problems with ``fault``'s number fields ``names``: only ``action`` takes them, within [low, high]."""
    problems = []
    for name in names:
        value = getattr(fault, name)
        if value is not None and fault.action != action:
            problems.append((f"{path}.{name}", f"{fault.action} takes no {name} (only {action} does)"))
        elif value is not None and not low <= value <= high:
            problems.append((f"{path}.{name}", out_of_range.format(name=name, value=value)))
    return problems


def _new_node_problems(node: str, nodes: tuple[str, ...], path: str) -> list[tuple[str, str]]:
    """A node started mid-run needs an id of the n<number> form that no node of the run had before."""
    if not NODE_ID.fullmatch(node):
        return [(path, f"a node started mid-run is named n and a number, e.g. n{len(nodes) + 1}; got {node!r}")]
    if node in nodes:
        return [(path, f"node {node!r} already exists (a node id names one node for the whole run; "
                       f"nodes: {_known(nodes)})")]
    return []


def _option_path(base: str, options: dict[str, Any], message: str) -> str:
    """The option a construction error names (``base.keys``, also for "one key"), else ``base``."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message))
    for key in map(str, options):
        if key in words:
            return f"{base}.{key}"
    for key in map(str, options):
        if len(key) > 3 and key.endswith("s") and key[:-1] in words:
            return f"{base}.{key}"
    return base


def scenario_problems(config: SimConfig, prefix: str = "$", *, backend: bool = True) -> list[tuple[str, str]]:
    """(path, message) for every rule of a scenario the types cannot express: the nodes its faults and
    links name, its workload and options, its state machine and (with ``backend``) its backend and options."""
    from workloads import make_workload

    from ..apps import resolve_app
    from ..replica import ReplicaConfig, get_backend

    nodes = config.node_ids
    problems: list[tuple[str, str]] = []
    for i in sorted(range(len(config.faults)), key=lambda i: config.faults[i].at):  # as timeline() orders
        fault = config.faults[i]
        problems += fault_problems(fault, nodes, f"{prefix}.faults[{i}]")
        started = getattr(fault, _STARTS_NODE[fault.action]) if fault.action in _STARTS_NODE else None
        if started and NODE_ID.fullmatch(started) and started not in nodes:
            nodes = (*nodes, started)
    problems.sort(key=lambda p: _fault_number(p[0], prefix))
    for i, link in enumerate(config.network.links):
        for end in ("src", "dst"):
            if getattr(link, end) not in nodes:
                problems.append((f"{prefix}.network.links[{i}].{end}",
                                 f"unknown node {getattr(link, end)!r} (nodes: {_known(nodes)})"))
    clients = config.clients
    app: Any = None
    options_path = f"{prefix}.clients.workload_options"
    try:
        workload = make_workload(clients.workload, clients.workload_options)
    except (LocalProtocolError, ConfigError) as exc:
        message = str(exc)
        if message.startswith("bad options"):
            problems.append((_option_path(options_path, clients.workload_options, message.split(": ", 1)[-1]),
                             message))
        else:
            problems.append((f"{prefix}.clients.workload", message))
    except Exception as exc:  # a workload's own constructor refusing its options in its own way
        problems.append((_option_path(options_path, clients.workload_options, str(exc)),
                         f"bad options for workload {clients.workload!r}: {type(exc).__name__}: {exc}"))
    else:
        try:
            app = resolve_app(workload.state_machine)
        except ConfigError as exc:
            problems.append((f"{prefix}.clients.workload", str(exc)))
    if config.state_machine is not None:
        try:
            app = resolve_app(config.state_machine)
        except ConfigError as exc:
            problems.append((f"{prefix}.state_machine", str(exc)))
    if not backend:
        return problems
    try:
        found = get_backend(config.backend)
    except LocalProtocolError as exc:
        problems.append((f"{prefix}.backend", str(exc)))
        return problems
    if app is not None:
        first, *rest = nodes
        options = {**found.options, **config.backend_options}
        try:  # the cores validate their own options at construction
            found.factory(ReplicaConfig(first, tuple(rest), random.Random(0), app, options,
                                        tick_ms=config.tick_ms))
        except Exception as exc:  # any failure to build a core is a bad option, reported where it is
            problems.append((_option_path(f"{prefix}.backend_options", config.backend_options, str(exc)),
                             f"backend {config.backend!r}: {exc}"))
    return problems


def _fault_number(path: str, prefix: str) -> int:
    """The index of the fault a problem's path names (problems are reported in file order)."""
    match = re.match(re.escape(prefix) + r"\.faults\[(\d+)\]", path)
    return int(match.group(1)) if match else -1


def parse_scenario(text: str, source: str = "<scenario>", *, backend: str | None = None) -> SimConfig:
    """Parse scenario YAML into a SimConfig, or raise ConfigError naming file, line and field of every
    problem (types, unknown keys, nodes, workload, backend and options).

    ``backend`` is the one to run when the file names none (else SimConfig's default).
    """
    config, lines = structure_yaml(text, source, "scenario", SimConfig, converter, scenario_problems)
    if backend is not None and "$.backend" not in lines:
        config = attrs.evolve(config, backend=backend)
    return attrs.evolve(config, source=source)


def load_scenario(path: str | Path, *, backend: str | None = None) -> SimConfig:
    """Read a scenario file, or a built-in scenario by name (``kv-leader-crash``); errors name the file
    (or the built-in's name), line and field.  ``backend`` is the one to run when the file names none."""
    found, builtin = find_scenario(path)
    return parse_scenario(read_config_text(found, "scenario"), found.stem if builtin else str(path),
                          backend=backend)


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
