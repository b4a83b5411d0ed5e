"""A whole cluster on 127.0.0.1: one ``smr serve`` subprocess per node, for demos, tests and benchmarks.

::

    async with open_local_tcp_cluster(tmp_path, nodes=3, backend="raft") as cluster:
        async with open_tcp_client(cluster.cluster_file) as client:
            await client.submit(put("x", "1"))
        cluster.kill("n1")            # SIGKILL: what survives is what was synced
        cluster.start_node("n1")      # recovers from its data directory

The directory holds ``cluster.yaml`` (with a fresh random secret, mode 0600),
one data directory and one log file per node.  Reopening a directory that
already has a cluster file (of the same backend and size) reuses it, so a
restarted cluster recovers its state from disk.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import trio

from smr.apps import AppSpec, app_spec
from smr.errors import LocalProtocolError

from ._client import open_tcp_client
from ._config import ClusterConfig, NodeAddress, dump_cluster, load_cluster
from ._storage import private_dir, private_file

LOOPBACK = "127.0.0.1"
CLUSTER_FILE = "cluster.yaml"
STOP_TIMEOUT_S = 10.0


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


def write_cluster_file(path: str | Path, *, nodes: int = 3, backend: str = "raft", state_machine: AppSpec = "kv",
                       tick_ms: float = 10.0, backend_options: Mapping[str, Any] | None = None,
                       fsync: bool = True) -> ClusterConfig:
    """Write a new cluster file for ``nodes`` nodes on free loopback ports, with a fresh secret; return it loaded.

    The file is created private (mode 0600) and never overwritten.
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
        # Sessions only as the log assigns them: a client cannot pick (and so share) an id.
        options.setdefault("registered_sessions", True)
        for name, ticks in REAL_CLUSTER_TIMEOUTS.items():
            options.setdefault(name, ticks)
    config = ClusterConfig(
        nodes=tuple(NodeAddress(f"n{i}", LOOPBACK, port) for i, port in enumerate(ports, 1)),
        backend=backend, backend_options=options, state_machine=app_spec(state_machine),
        tick_ms=tick_ms, secret=secrets.token_hex(24), fsync=fsync)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(dump_cluster(config))
    return load_cluster(path)  # validated like any user's file


class LocalTcpCluster:
    """N replica processes on loopback, sharing one cluster file in ``directory``."""

    def __init__(self, directory: str | Path, *, nodes: int = 3, backend: str = "raft",
                 state_machine: AppSpec = "kv", tick_ms: float = 10.0,
                 backend_options: Mapping[str, Any] | None = None, fsync: bool = True) -> None:
        self.directory = private_dir(directory)
        self.cluster_file = self.directory / CLUSTER_FILE
        if self.cluster_file.exists():
            self.config = load_cluster(self.cluster_file)
            if (self.config.backend, len(self.config.nodes)) != (backend, nodes):
                raise LocalProtocolError(
                    f"{self.directory} already holds a {len(self.config.nodes)}-node {self.config.backend} "
                    f"cluster, not a {nodes}-node {backend} one; choose another directory")
        else:
            self.config = write_cluster_file(self.cluster_file, nodes=nodes, backend=backend,
                                             state_machine=state_machine, tick_ms=tick_ms,
                                             backend_options=backend_options, fsync=fsync)
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

    def command(self, node: str) -> list[str]:
        """The command line that runs ``node`` (``smr serve`` through this interpreter)."""
        return [sys.executable, "-m", "smr.net", "serve", "--cluster", str(self.cluster_file),
                "--node", node, "--data", str(self.data_dir(node))]

    # ------------------------------------------------------------ processes
    def start(self) -> None:
        """Start every node that is not running."""
        for node in self.node_ids:
            if not self.alive(node):
                self.start_node(node)

    def start_node(self, node: str) -> None:
        """Start ``node``'s process; it recovers from its data directory."""
        self.config.address(node)
        if self.alive(node):
            raise LocalProtocolError(f"{node} is already running")
        self._reap(node)
        log = os.fdopen(private_file(self.log_file(node)), "ab")
        self._logs[node] = log
        # One hash seed for every node: an app that iterates a set of strings then does so in the same
        # order on every replica (each process would otherwise draw its own seed).
        env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
        self.processes[node] = subprocess.Popen(
            self.command(node), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None)

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
                        if proc.poll() is not None:
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
                                 leader_timeout: float = 20.0) -> AsyncIterator[LocalTcpCluster]:
    """Start a loopback cluster in ``directory``, wait for a leader, and stop it on exit."""
    cluster = LocalTcpCluster(directory, nodes=nodes, backend=backend, state_machine=state_machine,
                              tick_ms=tick_ms, backend_options=backend_options, fsync=fsync)
    cluster.start()
    try:
        await cluster.wait_for_leader(leader_timeout)
        yield cluster
    finally:
        cluster.stop()

