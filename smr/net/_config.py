"""The cluster file: who the nodes are, where they listen, what they run, and the shared secret.

Example::

    backend: raft
    backend_options: {pre_vote: true}
    state_machine: kv
    tick_ms: 10
    secret_env: SMR_CLUSTER_SECRET     # or: secret: "at least sixteen characters"
    nodes:
      - {id: n1, host: 127.0.0.1, port: 7001}
      - {id: n2, host: 127.0.0.1, port: 7002}
      - {id: n3, host: 127.0.0.1, port: 7003}

The YAML structures into :class:`ClusterConfig` through cattrs; every error
(a typo, a wrong type, a duplicate port, an unknown backend or option, a
missing secret) is a :class:`~smr.errors.ConfigError` naming the file, the
line and the field.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import attrs
import cattrs
import yaml

from smr.errors import ConfigError, LocalProtocolError
from smr.replica import ReplicaConfig, get_backend
from smr.yamlfiles import line_of, read_config_text, structure_yaml
from smr.apps import resolve_app

#: The environment variable read for the secret when the file names none.
DEFAULT_SECRET_ENV = "SMR_CLUSTER_SECRET"
MIN_SECRET_CHARS = 16


@attrs.frozen
class NodeAddress:
    """One replica: its id and the address its server listens on."""

    id: str
    host: str
    port: int


@attrs.frozen
class ClusterConfig:
    """Everything every process of one cluster must agree on.

    Args:
        nodes: the replicas (ids, hosts and ports all distinct).
        backend: a registered backend name (``smr backends``).
        backend_options: options merged over the backend's defaults.
        state_machine: the app every node runs: a built-in (kv, counter, dict, locks, ...),
            ``module:Class`` or ``path/file.py:Class`` (see :mod:`smr.apps`).
        tick_ms: wall milliseconds per logical tick.
        secret: the cluster secret that authenticates every frame.
        secret_env: read the secret from this environment variable instead.
        fsync: sync every batch to disk (False: survives process crashes only; benchmarks).
        max_frame_bytes: the largest frame a node accepts.
    """

    nodes: tuple[NodeAddress, ...]
    backend: str = "raft"
    backend_options: dict[str, Any] = attrs.field(factory=dict)
    state_machine: str = "kv"
    tick_ms: float = 10.0
    secret: str | None = None
    secret_env: str | None = None
    fsync: bool = True
    max_frame_bytes: int = 4 * 1024 * 1024
    source: str | None = None

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The node ids in file order."""
        return tuple(n.id for n in self.nodes)

    def address(self, node: str) -> NodeAddress:
        """Return the address of ``node``; ConfigError if it is not in the cluster."""
        for n in self.nodes:
            if n.id == node:
                return n
        raise ConfigError(f"node {node!r} is not in the cluster (nodes: {', '.join(self.node_ids)})",
                          file=self.source, field="nodes")

    def secret_bytes(self) -> bytes:
        """Return the cluster secret, from the file or the environment; ConfigError if missing."""
        if self.secret is not None:
            return self.secret.encode("utf-8")
        name = self.secret_env or DEFAULT_SECRET_ENV
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"no secret: set 'secret' in the file or the environment variable {name}",
                              file=self.source, field="secret_env" if self.secret_env else "secret")
        if len(value) < MIN_SECRET_CHARS:
            raise ConfigError(f"the secret in ${name} must have at least {MIN_SECRET_CHARS} characters",
                              file=self.source, field="secret_env")
        return value.encode("utf-8")


_converter = cattrs.Converter(forbid_extra_keys=True)


def _semantic_errors(config: ClusterConfig) -> list[tuple[str, str]]:
    """Return (path, message) for every rule the types alone cannot express."""
    problems: list[tuple[str, str]] = []
    if not config.nodes:
        problems.append(("$.nodes", "a cluster needs at least one node"))
    seen_ids: dict[str, int] = {}
    seen_addr: dict[tuple[str, int], int] = {}
    for i, node in enumerate(config.nodes):
        if not node.id or not all(ch.isalnum() or ch in "-_." for ch in node.id):
            problems.append((f"$.nodes[{i}].id", f"node id {node.id!r} must be letters, digits, '-', '_' or '.'"))
        if node.id in seen_ids:
            problems.append((f"$.nodes[{i}].id",
                             f"duplicate node id {node.id!r} (also nodes[{seen_ids[node.id]}])"))
        seen_ids.setdefault(node.id, i)
        if not 0 < node.port < 65536:
            problems.append((f"$.nodes[{i}].port", f"port must be in 1..65535, got {node.port}"))
        if not node.host:
            problems.append((f"$.nodes[{i}].host", "host must not be empty"))
        addr = (node.host, node.port)
        if addr in seen_addr:
            problems.append((f"$.nodes[{i}].port",
                             f"address {node.host}:{node.port} is also used by nodes[{seen_addr[addr]}]"))
        seen_addr.setdefault(addr, i)
    if not config.tick_ms > 0:
        problems.append(("$.tick_ms", f"tick_ms must be positive, got {config.tick_ms}"))
    if config.max_frame_bytes < 1024:
        problems.append(("$.max_frame_bytes",
                         f"max_frame_bytes must be at least 1024, got {config.max_frame_bytes}"))
    if config.secret is not None and len(config.secret) < MIN_SECRET_CHARS:
        problems.append(("$.secret", f"the secret must have at least {MIN_SECRET_CHARS} characters"))
    if config.secret is not None and config.secret_env is not None:
        problems.append(("$.secret_env", "give either 'secret' or 'secret_env', not both"))
    try:
        app = resolve_app(config.state_machine)
    except ConfigError as exc:
        problems.append(("$.state_machine", str(exc)))
        return problems
    try:
        backend = get_backend(config.backend)
    except LocalProtocolError as exc:
        problems.append(("$.backend", str(exc)))
        return problems
    if not backend.replicated_log:
        problems.append(("$.backend", f"backend {config.backend!r} is not a replicated log"))
    elif config.nodes and not problems:
        first, *rest = config.node_ids
        try:  # the cores validate their own options at construction
            backend.factory(ReplicaConfig(first, tuple(rest), random.Random(0), app,
                                          {**backend.options, **config.backend_options}))
        except (LocalProtocolError, TypeError, ValueError) as exc:
            problems.append(("$.backend_options", str(exc)))
    return problems


def parse_cluster(text: str, source: str = "<cluster>") -> ClusterConfig:
    """Parse cluster YAML into a ClusterConfig, or raise ConfigError naming file, line and field."""
    config, lines = structure_yaml(text, source, "cluster file", ClusterConfig, _converter)
    problems = _semantic_errors(config)
    if problems:
        path, message = problems[0]
        more = "".join(f"; also line {line_of(lines, p)}, field '{p[2:]}': {m}" for p, m in problems[1:])
        raise ConfigError(message + more, file=source, line=line_of(lines, path), field=path[2:])
    return attrs.evolve(config, source=source)


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read and validate a cluster file; errors name the file, line and field."""
    return parse_cluster(read_config_text(path, "cluster file"), str(path))


def dump_cluster(config: ClusterConfig) -> str:
    """Return the YAML text of ``config`` (what :func:`parse_cluster` reads back)."""
    doc: dict[str, Any] = {
        "backend": config.backend, "backend_options": dict(config.backend_options),
        "state_machine": config.state_machine, "tick_ms": config.tick_ms, "fsync": config.fsync,
        "max_frame_bytes": config.max_frame_bytes,
        "nodes": [{"id": n.id, "host": n.host, "port": n.port} for n in config.nodes],
    }
    if config.secret is not None:
        doc["secret"] = config.secret
    if config.secret_env is not None:
        doc["secret_env"] = config.secret_env
    return yaml.safe_dump(doc, sort_keys=False)
