"""The cluster file: who the nodes are, where they listen, what they run, and the shared secret.

Example::

    backend: raft
    backend_options: {pre_vote: true}
    state_machine: kv
    tick_ms: 10
    secret_env: SMR_CLUSTER_SECRET     # or: secret: "at least sixteen characters"
    # client_secret: <64 hex digits>   # instead of a secret, in a file for clients only
    # tls: {ca: tls/ca.pem}            # optional; each node then names cert: and key: (or tls.cert/key)
    # max_connections: 1024            # limits, with their defaults (see ClusterConfig)
    nodes:                             # the cluster's original voters: never edited afterwards
      - {id: n1, host: 127.0.0.1, port: 7001}
      - {id: n2, host: 127.0.0.1, port: 7002}
      - {id: n3, host: 127.0.0.1, port: 7003}
    # added:                           # nodes added at run time (smr cluster add writes them)
    #   - {id: n4, host: 127.0.0.1, port: 7004}
    # removed: [n1]                    # nodes removed at run time (smr cluster remove writes them)

``nodes`` stays the cluster's *first* configuration for good: every replica,
one restarted years later or one joining today, computes the configuration
before any log entry from it (``ReplicaConfig.initial_voters``) and learns
every change since from the log.  Nodes added later go in ``added`` (a node
there is started as a joiner: it catches up as a learner before it votes);
``removed`` names the nodes taken out since, which clients no longer dial.

The YAML structures into :class:`ClusterConfig` through cattrs; every error
(a typo, a wrong type, a duplicate port, an unknown backend or option, a
missing secret) is a :class:`~smr.errors.ConfigError` naming the file, the
line and the field.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any

import attrs
import yaml

from smr.errors import ConfigError, LocalProtocolError
from smr.membership import MAX_ADDRESS, MAX_NODE_ID
from smr.replica import ReplicaConfig, get_backend
from smr.yamlfiles import read_config_text, strict_converter, structure_yaml
from smr.apps import resolve_app

from ._frames import Credentials, client_key, request_limit

#: The environment variable read for the secret when the file names none.
DEFAULT_SECRET_ENV = "SMR_CLUSTER_SECRET"
#: Where a client without a secret looks for the client key (64 hex digits), as ``client_secret`` holds it.
DEFAULT_CLIENT_SECRET_ENV = "SMR_CLIENT_SECRET"
MIN_SECRET_CHARS = 16
CLIENT_SECRET_HEX = 64


@attrs.frozen
class NodeAddress:
    """One replica: its id and the address its server listens on."""

    id: str
    host: str
    port: int
    #: This node's own TLS certificate chain and key (PEM files), if ``tls`` names no shared ones.
    cert: str | None = None
    key: str | None = None


@attrs.frozen
class TlsFiles:
    """TLS on every link (client-node and node-node); the frames keep their HMACs inside it.

    Args:
        ca: PEM file of the certificate authority every side trusts: nodes' certificates must be
            signed by it, and so must the certificate a node dialling a peer presents.
        cert: PEM certificate chain every node presents, unless its entry in ``nodes`` names its own.
        key: the private key of ``cert``.
    Relative paths are relative to the cluster file's directory.  A client needs only ``ca``.
    """

    ca: str
    cert: str | None = None
    key: str | None = None


@attrs.frozen
class ClusterConfig:
    """Everything every process of one cluster must agree on.

    Args:
        nodes: the cluster's original voters (ids, hosts and ports all distinct, here and in ``added``);
            never edited once the cluster has started: it is every replica's configuration before
            any log entry.
        added: nodes added at run time (``smr cluster add``); each joins as a learner, then votes.
        removed: ids of nodes removed at run time (``smr cluster remove``); clients skip them.
        backend: a registered backend name (``smr backends``).
        backend_options: options merged over the backend's defaults.
        state_machine: the app every node runs: a built-in (kv, counter, dict, locks, ...),
            ``module:Class`` or ``path/file.py:Class`` (see :mod:`smr.apps`).
        tick_ms: wall milliseconds per logical tick.
        secret: the cluster secret that authenticates every frame.
        secret_env: read the secret from this environment variable instead.
        fsync: sync every batch to disk (False: survives process crashes only; benchmarks).
        max_frame_bytes: the largest frame a node accepts.
        client_secret: instead of ``secret``, in a file for clients only: the cluster's client key
            (64 hex digits), which authenticates clients and cannot authenticate a replica.
        tls: certificates for TLS on every link (None: plain TCP, frames still authenticated).
        max_connections: connections a node holds at once (handshaking or authenticated); beyond
            it a new one is closed at once, and counted.
        max_client_connections: authenticated client connections a node holds; beyond it a new
            one is refused ("too many connections"), and counted.
        max_connections_per_peer: connections a node holds from one peer; a newer one replaces the oldest.
        client_idle_timeout_s: a client connection that sends nothing for this long is closed.
        frame_timeout_s: every byte of a frame must arrive within this long after its first.
        refusal_logs_per_minute: refused frames and connections logged a minute; the rest are
            counted and summed up in one line a minute.
    """

    nodes: tuple[NodeAddress, ...]
    added: tuple[NodeAddress, ...] = ()
    removed: tuple[str, ...] = ()
    backend: str = "raft"
    backend_options: dict[str, Any] = attrs.field(factory=dict)
    state_machine: str = "kv"
    tick_ms: float = 10.0
    secret: str | None = None
    secret_env: str | None = None
    fsync: bool = True
    max_frame_bytes: int = 4 * 1024 * 1024
    client_secret: str | None = None
    tls: TlsFiles | None = None
    max_connections: int = 1024
    max_client_connections: int = 512
    max_connections_per_peer: int = 4
    client_idle_timeout_s: float = 300.0
    frame_timeout_s: float = 30.0
    refusal_logs_per_minute: int = 10
    source: str | None = None

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The nodes of the cluster now, in file order: the original ones, then those added, less those removed."""
        return tuple(n.id for n in (*self.nodes, *self.added) if n.id not in self.removed)

    @property
    def initial_voters(self) -> tuple[str, ...]:
        """The cluster's original voters (``nodes``, removed ones included): every replica's first configuration."""
        return tuple(n.id for n in self.nodes)

    def address(self, node: str) -> NodeAddress:
        """Return the address of ``node`` (original or added); ConfigError if the file does not name it."""
        for n in (*self.nodes, *self.added):
            if n.id == node:
                return n
        raise ConfigError(f"node {node!r} is not in the cluster (nodes: {', '.join(self.node_ids)})",
                          file=self.source, field="nodes")

    def field_of(self, node: str) -> str:
        """Where the file names ``node``: ``nodes[i]`` or ``added[i]`` (ConfigError if nowhere)."""
        for name, group in (("nodes", self.nodes), ("added", self.added)):
            for i, n in enumerate(group):
                if n.id == node:
                    return f"{name}[{i}]"
        self.address(node)  # raises
        raise AssertionError("unreachable")

    def with_added(self, node: NodeAddress) -> "ClusterConfig":
        """This cluster with ``node`` added at run time (ConfigError if its id or address is taken)."""
        for n in (*self.nodes, *self.added):
            if n.id == node.id:
                raise ConfigError(f"node {node.id!r} is already in the cluster file (an id is never reused)",
                                  file=self.source, field=self.field_of(n.id))
            if (n.host, n.port) == (node.host, node.port):
                raise ConfigError(f"{node.host}:{node.port} is already {n.id}'s address", file=self.source,
                                  field=self.field_of(n.id))
        return attrs.evolve(self, added=(*self.added, node))

    def with_removed(self, node: str) -> "ClusterConfig":
        """This cluster with ``node`` removed at run time: an added node leaves the file, an original one is
        listed in ``removed`` (``nodes`` never changes)."""
        self.address(node)
        if any(n.id == node for n in self.added):
            return attrs.evolve(self, added=tuple(n for n in self.added if n.id != node))
        if node in self.removed:
            return self
        return attrs.evolve(self, removed=(*self.removed, node))

    def secret_bytes(self) -> bytes:
        """Return the cluster secret, from the file or the environment; ConfigError if missing."""
        if self.client_secret is not None and self.secret is None and self.secret_env is None:
            raise ConfigError("this file holds only a client_secret: a node needs the cluster secret",
                              file=self.source, field="client_secret")
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

    def credentials(self) -> Credentials:
        """Both keys derived from the cluster secret (what a node holds); ConfigError if there is no secret."""
        return Credentials.from_secret(self.secret_bytes())

    def client_credentials(self) -> Credentials:
        """The client key alone: from ``client_secret``, else derived from the secret, else from the
        environment (``$SMR_CLUSTER_SECRET``, then ``$SMR_CLIENT_SECRET``); ConfigError if none."""
        if self.client_secret is not None:
            return Credentials(bytes.fromhex(self.client_secret))
        if self.secret is not None or self.secret_env is not None or DEFAULT_SECRET_ENV in os.environ:
            return Credentials(client_key(self.secret_bytes()))
        value = os.environ.get(DEFAULT_CLIENT_SECRET_ENV)
        if value is None:
            raise ConfigError(f"no secret: set 'secret' or 'client_secret' in the file, or the environment "
                              f"variable {DEFAULT_SECRET_ENV} or {DEFAULT_CLIENT_SECRET_ENV}",
                              file=self.source, field="secret")
        if not _is_client_secret(value):
            raise ConfigError(f"${DEFAULT_CLIENT_SECRET_ENV} must be {CLIENT_SECRET_HEX} hex digits",
                              file=self.source, field="client_secret")
        return Credentials(bytes.fromhex(value))

    def for_clients(self) -> "ClusterConfig":
        """This cluster as a file for clients only: the client key instead of the secret, no private keys."""
        tls = None if self.tls is None else TlsFiles(self.tls.ca)
        return attrs.evolve(self, secret=None, secret_env=None, tls=tls,
                            client_secret=self.client_credentials().client.hex(),
                            nodes=tuple(attrs.evolve(n, cert=None, key=None) for n in self.nodes),
                            added=tuple(attrs.evolve(n, cert=None, key=None) for n in self.added))

    def path(self, name: str) -> Path:
        """A path named in this file: relative ones are relative to the file's directory."""
        path = Path(name)
        if path.is_absolute() or self.source is None or not Path(self.source).is_file():
            return path
        return Path(self.source).resolve().parent / path


def _is_client_secret(text: str) -> bool:
    return len(text) == CLIENT_SECRET_HEX and all(ch in "0123456789abcdefABCDEF" for ch in text)


#: The limits in the file, each with its default (dump_cluster writes only those that differ).
LIMITS = ("max_connections", "max_client_connections", "max_connections_per_peer", "client_idle_timeout_s",
          "frame_timeout_s", "refusal_logs_per_minute")


def _limit_errors(config: ClusterConfig) -> list[tuple[str, str]]:
    """(path, message) for the credentials, TLS files and limits that are out of range."""
    problems: list[tuple[str, str]] = []
    if config.client_secret is not None:
        if config.secret is not None or config.secret_env is not None:
            problems.append(("$.client_secret", "give 'secret' (nodes and clients) or 'client_secret' (clients "
                                                "only), not both"))
        if not _is_client_secret(config.client_secret):
            problems.append(("$.client_secret", f"client_secret must be {CLIENT_SECRET_HEX} hex digits "
                                                f"(the client key a client file holds)"))
    for name in LIMITS:
        value = getattr(config, name)
        if name.endswith("_s") and not (0 < value and math.isfinite(value)):
            problems.append((f"$.{name}", f"{name} must be a positive number of seconds, got {value}"))
        elif not name.endswith("_s") and not value >= 1:
            problems.append((f"$.{name}", f"{name} must be at least 1, got {value}"))
    tls = config.tls
    if tls is not None and (tls.cert is None) != (tls.key is None):
        problems.append(("$.tls.key" if tls.key is None else "$.tls.cert",
                         "give both tls.cert and tls.key, or neither"))
    for name, group in (("nodes", config.nodes), ("added", config.added)):
        for i, node in enumerate(group):
            if (node.cert is None) != (node.key is None):
                problems.append((f"$.{name}[{i}].key" if node.key is None else f"$.{name}[{i}].cert",
                                 "give both cert and key, or neither"))
            elif node.cert is not None and tls is None:
                problems.append((f"$.{name}[{i}].cert", "a node's certificate needs a 'tls' section naming the ca"))
    limit = request_limit(config.max_frame_bytes)
    for name in ("max_batch_bytes", "snapshot_chunk_bytes"):
        value = config.backend_options.get(name)
        if type(value) is int and value > limit:
            problems.append((f"$.backend_options.{name}",
                             f"{name} {value} would not fit in a frame: at most {limit} with max_frame_bytes "
                             f"{config.max_frame_bytes}"))
    return problems


#: Structures cluster files: strict types (no bool as int, no "no" as bool, ...), no unknown keys.
_converter = strict_converter()


def _semantic_errors(config: ClusterConfig) -> list[tuple[str, str]]:
    """Return (path, message) for every rule the types alone cannot express."""
    problems: list[tuple[str, str]] = []
    if not config.nodes:
        problems.append(("$.nodes", "a cluster needs at least one node"))
    seen_ids: dict[str, str] = {}
    seen_addr: dict[tuple[str, int], str] = {}
    everyone = [(f"nodes[{i}]", n) for i, n in enumerate(config.nodes)]
    everyone += [(f"added[{i}]", n) for i, n in enumerate(config.added)]
    for where, node in everyone:
        if not node.id or len(node.id) > MAX_NODE_ID or not all(ch.isalnum() or ch in "-_." for ch in node.id):
            problems.append((f"$.{where}.id", f"node id {node.id!r} must be 1 to {MAX_NODE_ID} letters, digits, "
                                              f"'-', '_' or '.'"))
        if node.id in seen_ids:
            problems.append((f"$.{where}.id", f"duplicate node id {node.id!r} (also {seen_ids[node.id]})"))
        seen_ids.setdefault(node.id, where)
        if not 0 < node.port < 65536:
            problems.append((f"$.{where}.port", f"port must be in 1..65535, got {node.port}"))
        if not node.host or len(node.host) > MAX_ADDRESS - 6:
            problems.append((f"$.{where}.host", "host must not be empty" if not node.host else "host is too long"))
        addr = (node.host, node.port)
        if addr in seen_addr:
            problems.append((f"$.{where}.port",
                             f"address {node.host}:{node.port} is also used by {seen_addr[addr]}"))
        seen_addr.setdefault(addr, where)
    for i, node_id in enumerate(config.removed):
        if node_id not in seen_ids:
            problems.append((f"$.removed[{i}]", f"removed node {node_id!r} is in neither nodes nor added"))
    if config.nodes and all(n.id in config.removed for n in (*config.nodes, *config.added)):
        problems.append(("$.removed", "every node is removed: a cluster needs at least one"))
    if not config.tick_ms > 0:
        problems.append(("$.tick_ms", f"tick_ms must be positive, got {config.tick_ms}"))
    if config.max_frame_bytes < 1024:
        problems.append(("$.max_frame_bytes",
                         f"max_frame_bytes must be at least 1024, got {config.max_frame_bytes}"))
    if config.secret is not None and len(config.secret) < MIN_SECRET_CHARS:
        problems.append(("$.secret", f"the secret must have at least {MIN_SECRET_CHARS} characters"))
    if config.secret is not None and config.secret_env is not None:
        problems.append(("$.secret_env", "give either 'secret' or 'secret_env', not both"))
    problems.extend(_limit_errors(config))
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
        first, *rest = config.initial_voters
        try:  # the cores validate their own options at construction
            backend.factory(ReplicaConfig(first, tuple(rest), random.Random(0), app,
                                          {**backend.options, **config.backend_options}))
        except Exception as exc:  # any failure to build a core is a bad option, reported where it is
            problems.append(("$.backend_options", str(exc)))
    return problems


def parse_cluster(text: str, source: str = "<cluster>") -> ClusterConfig:
    """Parse cluster YAML into a ClusterConfig, or raise ConfigError naming file, line and field."""
    config, _lines = structure_yaml(text, source, "cluster file", ClusterConfig, _converter, _semantic_errors)
    return attrs.evolve(config, source=source)


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read and validate a cluster file; errors name the file, line and field."""
    return parse_cluster(read_config_text(path, "cluster file"), str(path))


def _node_doc(node: NodeAddress) -> dict[str, Any]:
    return {"id": node.id, "host": node.host, "port": node.port,
            **({"cert": node.cert, "key": node.key} if node.cert is not None else {})}


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as (host, port); ValueError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or len(text) > MAX_ADDRESS or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"an address is HOST:PORT with a port in 1..65535, got {text!r:.80}")
    return host, int(port)


def format_address(node: NodeAddress) -> str:
    """``node``'s address as ``host:port`` (``[v6]:port`` for an IPv6 host)."""
    return f"[{node.host}]:{node.port}" if ":" in node.host else f"{node.host}:{node.port}"


def dump_cluster(config: ClusterConfig) -> str:
    """Return the YAML text of ``config`` (what :func:`parse_cluster` reads back)."""
    doc: dict[str, Any] = {
        "backend": config.backend, "backend_options": dict(config.backend_options),
        "state_machine": config.state_machine, "tick_ms": config.tick_ms, "fsync": config.fsync,
        "max_frame_bytes": config.max_frame_bytes,
        "nodes": [_node_doc(n) for n in config.nodes],
    }
    if config.added:
        doc["added"] = [_node_doc(n) for n in config.added]
    if config.removed:
        doc["removed"] = list(config.removed)
    if config.secret is not None:
        doc["secret"] = config.secret
    if config.secret_env is not None:
        doc["secret_env"] = config.secret_env
    if config.client_secret is not None:
        doc["client_secret"] = config.client_secret
    if config.tls is not None:
        doc["tls"] = {k: v for k, v in attrs.asdict(config.tls).items() if v is not None}
    defaults = attrs.fields_dict(ClusterConfig)
    doc.update({name: getattr(config, name) for name in LIMITS if getattr(config, name) != defaults[name].default})
    return yaml.safe_dump(doc, sort_keys=False)
