"""A whole cluster on 127.0.0.1: one ``smr serve`` subprocess per node, for demos, tests and benchmarks.

::

    async with open_local_tcp_cluster(tmp_path, nodes=3, backend="raft") as cluster:
        async with open_tcp_client(cluster.cluster_file) as client:
            await client.submit(put("x", "1"))
        cluster.kill("n1")            # SIGKILL: what survives is what was synced
        cluster.start_node("n1")      # recovers from its data directory

With ``power_loss=True`` every node runs over the power-loss shim
(:mod:`smr.net._powerloss`), and :meth:`LocalTcpCluster.power_cut` is a power
cut: the nodes are SIGKILLed and each file of theirs goes back to its last sync.

The directory holds ``cluster.yaml`` (with a fresh random secret, mode 0600),
``cluster-client.yaml`` (the same cluster with only the client key: what to
give a client), one data directory and one log file per node; with
``tls=True`` also ``tls/``: a fresh local CA's certificate and each node's
certificate and key (the CA's own key is not kept).  Reopening a directory that
already has a cluster file (of the same backend and size) reuses it, so a
restarted cluster recovers its state from disk.

:meth:`LocalTcpCluster.new_node` writes a new node into the file's ``added``
list (the original ``nodes`` never change: they are every replica's first
configuration); start it with :meth:`~LocalTcpCluster.start_node` and add it
through a client (``await client.add_node(node, address)``).
"""

from __future__ import annotations

import ctypes
import datetime
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import attrs
import trio

from smr.apps import AppSpec, app_spec
from smr.errors import LocalProtocolError

from ._client import open_tcp_client
from ._config import ClusterConfig, NodeAddress, TlsFiles, dump_cluster, format_address, load_cluster, parse_cluster
from ._powerloss import Reverted, revert_unsynced, shim_environment, shim_library
from ._storage import private_dir, private_file

LOOPBACK = "127.0.0.1"
CLUSTER_FILE = "cluster.yaml"
STOP_TIMEOUT_S = 10.0
#: Where a power-loss cluster keeps its nodes' undo logs (beside, never inside, their data directories).
POWER_LOSS_DIR = "power-loss"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct TCP ports that were free on ``host`` a moment ago."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the launcher
    except OSError:
        pass


#: Backends whose local clusters take a snapshot every DEFAULT_SNAPSHOT_EVERY entries by default.
COMPACTING_BACKENDS = frozenset({"raft", "raft-pv-cq", "multipaxos"})
DEFAULT_SNAPSHOT_EVERY = 10_000
#: Timeouts a real cluster file gets for those backends (ticks of its tick_ms, 10 ms by default):
#: elections after 0.5-1 s of silence and heartbeats every 100 ms, as etcd's defaults and PySyncObj's
#: 0.4-1.4 s.  The simulator's defaults (15-30 and 3 ticks) are tuned for fast simulated failover; on
#: a loaded 2-core machine a busy leader's round can outlast 150 ms, and `smr bench tcp` at 1024
#: requests outstanding then saw four needless elections in three seconds.  Replication is resent
#: after 0.5 s unacknowledged (not one heartbeat interval): over TCP only a broken connection loses a
#: message, and under load a follower's acknowledgement can take longer than 100 ms.
REAL_CLUSTER_TIMEOUTS = {"election_ticks_min": 50, "election_ticks_max": 100, "heartbeat_ticks": 10,
                         "resend_ticks": 50}


TLS_DIR = "tls"
CERT_DAYS = 825


def client_file(cluster_file: str | Path) -> Path:
    """Where :func:`write_cluster_file` puts the clients' copy of ``cluster_file`` (client key only)."""
    path = Path(cluster_file)
    return path.with_name(f"{path.stem}-client{path.suffix or '.yaml'}")


def _write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC), 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_certificates(directory: str | Path, nodes: tuple[NodeAddress, ...]) -> tuple[NodeAddress, ...]:
    """Make a local CA and one certificate per node in ``directory``; return the nodes naming their files.

    Each certificate names the node's host (and ``localhost`` and the node
    id) and serves both ends of a connection.  The CA's key is used once and
    dropped.  Needs the ``cryptography`` package (``pip install 'smr-compare[tls]'``).
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise LocalProtocolError("making TLS certificates needs the 'cryptography' package: "
                                 "pip install 'smr-compare[tls]'") from None
    where = private_dir(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"smr local CA {secrets.token_hex(4)}")])
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)

    def builder(subject: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))

    ca = (builder(ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write_private(where / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    named = []
    for node in nodes:
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(node.id)]
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(node.host)))
        except ValueError:
            names.append(x509.DNSName(node.host))
        cert = (builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node.id)]), key.public_key())
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(authority, critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_private(where / f"{node.id}.pem", cert.public_bytes(serialization.Encoding.PEM))
        _write_private(where / f"{node.id}.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        named.append(attrs.evolve(node, cert=f"{TLS_DIR}/{node.id}.pem", key=f"{TLS_DIR}/{node.id}.key"))
    return tuple(named)


def write_cluster_file(path: str | Path, *, nodes: int = 3, backend: str = "raft", state_machine: AppSpec = "kv",
                       tick_ms: float = 10.0, backend_options: Mapping[str, Any] | None = None,
                       fsync: bool = True, tls: bool = False) -> ClusterConfig:
    """Write a new cluster file for ``nodes`` nodes on free loopback ports, with a fresh secret; return it loaded.

    The file is created private (mode 0600) and never overwritten.  Beside it
    goes the clients' copy (:func:`client_file`: the client key, no secret).
    With ``tls``, a local CA and the nodes' certificates go in ``tls/`` beside
    it (see :func:`make_certificates`), and the file turns TLS on.
    """
    if nodes < 1:
        raise LocalProtocolError("a cluster needs at least one node")
    ports = free_ports(nodes)
    options = dict(backend_options or {})
    if backend in COMPACTING_BACKENDS:
        # A long-lived cluster compacts its log: without snapshots a restarted
        # multi-Paxos replica starts from slot 1 and its phase-1 promises grow with
        # the whole history (past the frame limit after ~15k commands).
        options.setdefault("snapshot_every", DEFAULT_SNAPSHOT_EVERY)
        # ... and only once as many bytes were written since the last snapshot as it holds, so a
        # large state is not written out again and again (each time stalling the node) for small puts.
        options.setdefault("snapshot_log_ratio", 1)
        # Sessions only as the log assigns them: a client cannot pick (and so share) an id.
        options.setdefault("registered_sessions", True)
        for name, ticks in REAL_CLUSTER_TIMEOUTS.items():
            options.setdefault(name, ticks)
    addresses = tuple(NodeAddress(f"n{i}", LOOPBACK, port) for i, port in enumerate(ports, 1))
    path = Path(path)
    if tls:
        if path.exists():
            raise LocalProtocolError(f"{path} already exists")
        addresses = make_certificates(path.parent / TLS_DIR, addresses)
    config = ClusterConfig(
        nodes=addresses, backend=backend, backend_options=options, state_machine=app_spec(state_machine),
        tick_ms=tick_ms, secret=secrets.token_hex(24), fsync=fsync,
        tls=TlsFiles(f"{TLS_DIR}/ca.pem") if tls else None)
    _write_private(path, dump_cluster(config).encode("utf-8"), exclusive=True)
    _write_private(client_file(path), dump_cluster(config.for_clients()).encode("utf-8"))
    return load_cluster(path)  # validated like any user's file


def update_cluster_file(path: str | Path, change: Callable[[ClusterConfig], ClusterConfig]) -> ClusterConfig:
    """Rewrite the cluster file at ``path`` as ``change`` makes it (and its clients' copy, if there is one).

    The new text is validated before it replaces the old one, atomically
    (written beside it, then renamed; mode 0600).  Comments in the file are not kept.
    """
    path = Path(path)
    config = change(load_cluster(path))
    text = dump_cluster(config)
    parse_cluster(text, str(path))  # the same checks as any reader's
    clients = client_file(path)
    client_text = dump_cluster(config.for_clients()) if clients.exists() else None
    _replace_private(path, text.encode("utf-8"))
    if client_text is not None:
        _replace_private(clients, client_text.encode("utf-8"))
    return load_cluster(path)


def _replace_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a private file beside it, renamed over it)."""
    spare = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        _write_private(spare, data, exclusive=True)
        os.replace(spare, path)
    finally:
        spare.unlink(missing_ok=True)


def serve_command(cluster_file: str | Path, node: str, data_dir: str | Path,
                  rejoin_empty: bool = False) -> list[str]:
    """The command line that runs ``node`` of ``cluster_file`` (``smr serve`` through this interpreter)."""
    return [sys.executable, "-m", "smr.net", "serve", "--cluster", str(cluster_file), "--node", node,
            "--data", str(data_dir), *(["--rejoin-empty"] if rejoin_empty else [])]


def start_detached(command: list[str], log_file: Path) -> int:
    """Start ``command`` on its own (a new session, not this process's child: it outlives the caller, as
    ``smr cluster add`` needs), appending its output to ``log_file``; return its pid."""
    os.close(private_file(log_file))  # created private (0600) before the shell appends to it
    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    # sh starts it in the background and exits at once: the node's parent is then init, not us
    done = subprocess.run(["/bin/sh", "-c", 'log="$1"; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!', "sh",
                           str(log_file), *command], stdin=subprocess.DEVNULL, capture_output=True, env=env,
                          start_new_session=True, timeout=30, check=True)
    return int(done.stdout.split()[-1])


def running(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class LocalTcpCluster:
    """N replica processes on loopback, sharing one cluster file in ``directory``."""

    def __init__(self, directory: str | Path, *, nodes: int = 3, backend: str = "raft",
                 state_machine: AppSpec = "kv", tick_ms: float = 10.0,
                 backend_options: Mapping[str, Any] | None = None, fsync: bool = True, tls: bool = False,
                 rejoin_empty: bool = False, power_loss: bool = False) -> None:
        self.directory = private_dir(directory)
        #: Every node is started with ``smr serve --rejoin-empty``.
        self.rejoin_empty = rejoin_empty
        #: Every node runs over the power-loss shim, and :meth:`power_cut` is allowed.
        self.power_loss = power_loss
        if power_loss:
            shim_library()  # built now: a missing compiler is one clear error before any node starts
        self.cluster_file = self.directory / CLUSTER_FILE
        #: The clients' copy of the cluster file: the client key, no secret.
        self.client_file = client_file(self.cluster_file)
        if self.cluster_file.exists():
            self.config = load_cluster(self.cluster_file)
            if (self.config.backend, len(self.config.nodes)) != (backend, nodes):
                raise LocalProtocolError(
                    f"{self.directory} already holds a {len(self.config.nodes)}-node {self.config.backend} "
                    f"cluster, not a {nodes}-node {backend} one; choose another directory")
        else:
            self.config = write_cluster_file(self.cluster_file, nodes=nodes, backend=backend,
                                             state_machine=state_machine, tick_ms=tick_ms,
                                             backend_options=backend_options, fsync=fsync, tls=tls)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The node ids, in cluster-file order."""
        return self.config.node_ids

    def data_dir(self, node: str) -> Path:
        """The data directory of ``node``."""
        return self.directory / node

    def log_file(self, node: str) -> Path:
        """The file that collects ``node``'s stdout and stderr."""
        return self.directory / f"{node}.log"

    def undo_dir(self, node: str) -> Path:
        """Where the power-loss shim keeps ``node``'s undo logs (outside its data directory)."""
        return self.directory / POWER_LOSS_DIR / node

    def command(self, node: str, rejoin_empty: bool = False) -> list[str]:
        """The command line that runs ``node`` (``smr serve`` through this interpreter)."""
        return serve_command(self.cluster_file, node, self.data_dir(node), rejoin_empty or self.rejoin_empty)

    def new_node(self, node: str | None = None) -> NodeAddress:
        """Write a new node (``node``, default the next ``n<k>``) on a free loopback port into the cluster
        file's ``added``; return its address.  Start it with :meth:`start_node` (it joins from an empty
        data directory) and add it through a client: ``await client.add_node(a.id, format_address(a))``."""
        taken = {n.id for n in (*self.config.nodes, *self.config.added)}
        if node is None:
            node = next(f"n{k}" for k in range(len(taken) + 1, len(taken) + 1000) if f"n{k}" not in taken)
        address = NodeAddress(node, LOOPBACK, free_ports(1)[0])
        self.config = update_cluster_file(self.cluster_file, lambda c: c.with_added(address))
        return address

    def address(self, node: str) -> str:
        """``node``'s address as ``host:port`` (what a membership change carries)."""
        return format_address(self.config.address(node))

    def record_removed(self, node: str) -> None:
        """Record in the cluster file that ``node`` was removed (it is no longer started or dialled)."""
        self.config = update_cluster_file(self.cluster_file, lambda c: c.with_removed(node))

    # ------------------------------------------------------------ processes
    def start(self) -> None:
        """Start every node that is not running."""
        for node in self.node_ids:
            if not self.alive(node):
                self.start_node(node)

    def start_node(self, node: str, rejoin_empty: bool = False) -> None:
        """Start ``node``'s process; it recovers from its data directory (``smr serve --rejoin-empty`` if asked)."""
        self.config.address(node)
        if self.alive(node):
            raise LocalProtocolError(f"{node} is already running")
        self._reap(node)
        log = os.fdopen(private_file(self.log_file(node)), "ab")
        self._logs[node] = log
        # One hash seed for every node: an app that iterates a set of strings then does so in the same
        # order on every replica (each process would otherwise draw its own seed).
        env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
        if self.power_loss:
            private_dir(self.directory / POWER_LOSS_DIR)
            env.update(shim_environment(private_dir(self.data_dir(node)), self.undo_dir(node)))
        self.processes[node] = subprocess.Popen(
            self.command(node, rejoin_empty), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    def alive(self, node: str) -> bool:
        """True while ``node``'s process runs."""
        proc = self.processes.get(node)
        return proc is not None and proc.poll() is None

    def kill(self, node: str, sig: int = signal.SIGKILL, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send ``sig`` to ``node`` (default SIGKILL), wait for it to exit and return its exit code."""
        proc = self.processes.get(node)
        if proc is None or proc.poll() is not None:
            raise LocalProtocolError(f"{node} is not running")
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(timeout)
        self._reap(node)
        return code

    def power_cut(self, *nodes: str) -> dict[str, Reverted]:
        """Cut the power of ``nodes`` (default: every node) at once: SIGKILL the running ones, then return
        each one's files to their last sync; what each cut took back.  Needs ``power_loss=True``."""
        if not self.power_loss:
            raise LocalProtocolError("power_cut needs a cluster started with power_loss=True")
        cut = nodes or self.node_ids
        for node in cut:
            self.config.address(node)
        running = [(node, proc) for node in cut if (proc := self.processes.get(node)) and proc.poll() is None]
        for _, proc in running:  # every signal first: the nodes lose power together
            proc.send_signal(signal.SIGKILL)
        for node, proc in running:
            proc.wait(STOP_TIMEOUT_S)
            self._reap(node)
        return {node: revert_unsynced(self.data_dir(node), self.undo_dir(node)) for node in cut}

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> dict[str, int]:
        """Stop every node with SIGTERM (SIGKILL after ``timeout``); return the exit codes."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = {}
        for node, proc in list(self.processes.items()):
            try:
                codes[node] = proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[node] = proc.wait()
            self._reap(node)
        return codes

    def _reap(self, node: str) -> None:
        log = self._logs.pop(node, None)
        if log is not None:
            log.close()
        proc = self.processes.get(node)
        if proc is not None and proc.poll() is not None:
            del self.processes[node]

    def log_tail(self, node: str, lines: int = 20) -> str:
        """The last ``lines`` lines of ``node``'s log."""
        try:
            text = self.log_file(node).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_for_leader(self, timeout: float = 20.0) -> str:
        """Wait until some running node reports itself leader and return its id."""
        async with open_tcp_client(self.config, prefix="launcher") as client:
            with trio.move_on_after(timeout):
                while True:
                    for node, proc in self.processes.items():
                        if proc.poll() not in (None, 0):  # 0: it left the cluster, or was stopped
                            raise LocalProtocolError(f"{node} exited with code {proc.returncode}:\n"
                                                     f"{self.log_tail(node)}")
                    leader = await client.find_leader(timeout=0.5)
                    if leader is not None:
                        return leader
                    await trio.sleep(0.05)
        raise TimeoutError(f"no leader within {timeout} s; see the logs in {self.directory}")

    def __enter__(self) -> "LocalTcpCluster":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@asynccontextmanager
async def open_local_tcp_cluster(directory: str | Path, *, nodes: int = 3, backend: str = "raft",
                                 state_machine: AppSpec = "kv", tick_ms: float = 10.0,
                                 backend_options: Mapping[str, Any] | None = None, fsync: bool = True,
                                 leader_timeout: float = 20.0, tls: bool = False, rejoin_empty: bool = False,
                                 power_loss: bool = False) -> AsyncIterator[LocalTcpCluster]:
    """Start a loopback cluster in ``directory``, wait for a leader, and stop it on exit."""
    cluster = LocalTcpCluster(directory, nodes=nodes, backend=backend, state_machine=state_machine,
                              tick_ms=tick_ms, backend_options=backend_options, fsync=fsync, tls=tls,
                              rejoin_empty=rejoin_empty, power_loss=power_loss)
    cluster.start()
    try:
        await cluster.wait_for_leader(leader_timeout)
        yield cluster
    finally:
        cluster.stop()

