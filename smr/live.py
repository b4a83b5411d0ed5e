"""An in-process live cluster: the same sans-IO cores over trio memory channels.

For library users who want a replicated state machine inside their own trio
program::

    async with smr.open_local_cluster(Bank, backend="raft", n=3) as cluster:
        bank = cluster.client(Bank)
        await bank.deposit("alice", 10)

A command that raises on the replicas raises :class:`smr.CommandError` in
the caller; the cluster keeps serving.  The membership changes as in every
runtime (``await cluster.add_node("n4")``, ``remove_node``, ``replace_node``,
``membership()``): an added node starts empty as a joiner and catches up
before it votes; a removed one stops once a committed configuration no
longer names it.

Ticks come from trio's clock; the "disk" is an in-memory map written before a
batch's messages leave (the persist-before-send rule holds trivially), so a
leader's eager messages leave with the rest, and its ``after_sync`` input is
stepped right after its batch.  Runs
are not deterministic -- trio's scheduler is not -- so use the simulator for
anything that must replay.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast, overload

import trio

from .apps import AppSpec, resolve_app
from .client import CHANGE_TIMEOUT_S, AppClient, M, MembershipClient, SessionState
from .commands import Command
from .driver import Driver, apply_writes, current_leader
from .errors import ConfigError, LocalProtocolError, RemoteProtocolError
from .membership import MAX_NODE_ID, Membership
from .replica import (TICK, Ready, ReplicaConfig, ReplicaCore, Receive, Reply, ReplyStatus,
                      Start, get_backend)
from .values import Value


class _Node:
    def __init__(self, node_id: str) -> None:
        self.id = node_id
        self.durable: dict[str, Any] = {}
        self.driver: Driver[ReplicaCore] | None = None
        self.scope: trio.CancelScope | None = None
        self.send, self.recv = trio.open_memory_channel[Any](math.inf)
        self.incarnation = 0
        self.remote_errors = 0
        #: Set once a committed configuration no longer names this node; it is stopped soon after.
        self.retired = False

    @property
    def alive(self) -> bool:
        return self.scope is not None


#: Ticks a retired node keeps running (its last answers and messages leave) before it is stopped.
RETIRE_GRACE_TICKS = 20


class LocalCluster(MembershipClient):
    """A running in-process cluster; create it with :func:`open_local_cluster`."""

    def __init__(self, nursery: trio.Nursery, backend: str, n: int, app: AppSpec, seed: int,
                 tick_ms: float, options: dict[str, Any] | None) -> None:
        self._nursery = nursery
        self._backend = get_backend(backend)
        self._options = {**self._backend.options, **(options or {})}
        #: The state-machine class every replica runs.
        self.app = resolve_app(app)
        self._seed = seed
        self.tick_seconds = tick_ms / 1000.0
        self.nodes = {f"n{i}": _Node(f"n{i}") for i in range(1, n + 1)}
        #: The cluster's first voters: every replica's configuration before any log entry.
        self.initial_voters = tuple(self.nodes)
        self._waiters: dict[tuple[str, int], trio.MemorySendChannel[Reply]] = {}
        self._client_ids = itertools.count(1)
        self._idle: list[LocalClient] = []

    # ------------------------------------------------------------- lifecycle
    def start_node(self, node_id: str) -> None:
        """Boot (or reboot) ``node_id`` from its durable state."""
        node = self.nodes[node_id]
        if node.alive:
            raise LocalProtocolError(f"{node_id} is already running")
        node.incarnation += 1
        peers = tuple(n for n in self.nodes if n != node_id)
        rng = random.Random(f"{self._seed}/{node_id}/{node.incarnation}")
        core = self._backend.factory(
            ReplicaConfig(node_id, peers, rng, self.app, self._options, tick_ms=self.tick_seconds * 1000.0,
                          initial_voters=self.initial_voters))
        node.driver = Driver(core, node_id, on_reject=self._reject)
        node.send, node.recv = trio.open_memory_channel[Any](math.inf)
        node.scope = trio.CancelScope()
        # The task gets this incarnation's driver and inbox as arguments, so a crash and a
        # restart with no checkpoint in between never let the old task step the new core.
        self._nursery.start_soon(self._run_node, node, node.driver, node.recv, node.scope)
        node.send.send_nowait(Start(dict(node.durable)))

    def crash(self, node_id: str) -> None:
        """Stop ``node_id`` at once; its in-memory durable state survives for a restart."""
        node = self.nodes[node_id]
        if node.scope is None:
            raise LocalProtocolError(f"{node_id} is not running")
        node.scope.cancel()
        node.scope = None
        node.driver = None

    def leader(self) -> str | None:
        """The running node that claims leadership with the highest epoch, if any."""
        return current_leader(n.driver.status() for n in self.nodes.values() if n.driver is not None)

    def _reject(self, node_id: str, exc: RemoteProtocolError) -> None:
        self.nodes[node_id].remote_errors += 1

    async def _run_node(self, node: _Node, driver: Driver[ReplicaCore], inbox: trio.MemoryReceiveChannel[Any],
                        scope: trio.CancelScope) -> None:
        with scope:
            async with trio.open_nursery() as inner:
                inner.start_soon(self._ticker, node.send)
                async for event in inbox:
                    if scope.cancel_called:
                        return
                    ready = driver.step(event)
                    if not driver.rejected:
                        self._handle(node, ready)
                        while ready.after_sync is not None:  # its writes are durable already
                            ready = driver.synced(ready)
                            self._handle(node, ready)
                    if not node.retired and getattr(driver.core, "retired", False):
                        node.retired = True
                        inner.start_soon(self._stop_retired, node, driver)

    async def _stop_retired(self, node: _Node, driver: Driver[ReplicaCore]) -> None:
        """Stop ``node`` (it has left the cluster) a few ticks from now, unless it was restarted meanwhile."""
        await trio.sleep(self.tick_seconds * RETIRE_GRACE_TICKS)
        if node.driver is driver:
            self.crash(node.id)

    # ------------------------------------------------------------ membership
    async def add_node(self, node: str, address: str = "", *, timeout: float = CHANGE_TIMEOUT_S) -> Membership:
        """Start ``node`` empty, as a joiner, and add it; return once it is a voter (see MembershipClient).

        ``address`` is carried in the configuration only (in-process nodes need none).
        """
        self._new_node(node)
        return await super().add_node(node, address, timeout=timeout)

    async def replace_node(self, old: str, new: str, address: str = "", *,
                           timeout: float = CHANGE_TIMEOUT_S) -> Membership:
        """Start ``new`` empty, as a joiner, and have it replace voter ``old``; return once it votes instead."""
        self._new_node(new)
        return await super().replace_node(old, new, address, timeout=timeout)

    def _new_node(self, node: str) -> None:
        """Start a node under a new id with an empty state (an id is never reused: its old state is gone)."""
        if node in self.nodes:
            if self.nodes[node].alive and not self.nodes[node].retired:
                return  # started by an earlier call whose change is still being made
            raise LocalProtocolError(f"{node} was a node of this cluster before: an id is never reused")
        if not node or len(node) > MAX_NODE_ID:
            raise LocalProtocolError(f"a node id is 1 to {MAX_NODE_ID} characters, got {node!r:.80}")
        self.nodes[node] = _Node(node)
        self.start_node(node)

    async def _ticker(self, inbox: trio.MemorySendChannel[Any]) -> None:
        while True:
            await trio.sleep(self.tick_seconds)
            inbox.send_nowait(TICK)

    def _handle(self, node: _Node, ready: Ready) -> None:
        apply_writes(node.durable, ready.persist)  # durable before anything leaves
        for send in ready.all_messages:
            peer = self.nodes.get(send.dst)
            if peer is not None and peer.alive:
                peer.send.send_nowait(Receive(node.id, send.message))
        for reply in ready.replies:
            waiter = self._waiters.get((reply.client_id, reply.seq))
            if waiter is not None:
                waiter.send_nowait(reply)

    # --------------------------------------------------------------- clients
    @overload
    def client(self) -> "LocalClient": ...

    @overload
    def client(self, app: type[M]) -> AppClient[M]: ...

    def client(self, app: type[M] | None = None) -> "LocalClient | AppClient[M]":
        """A new client session (own id and sequence numbers); given the app class, its typed proxy."""
        session = LocalClient(self, f"local-{next(self._client_ids)}")
        if app is None:
            return session
        cls = resolve_app(app)
        if cls.name != self.app.name:
            raise ConfigError(f"this cluster runs {self.app.name}, not {cls.name}")
        return AppClient(cast("type[M]", cls), session)

    async def submit(self, command: Command, *, timeout: float = 1.0, attempts: int = 10) -> Value:
        """Run ``command`` through the replicated log once and return its result.

        Borrows an idle session from a pool (as the TCP client does), so a
        program's many calls do not each leave a session on the replicas.
        """
        session = self._idle.pop() if self._idle else self.client()
        try:
            return await session.submit(command, timeout=timeout, attempts=attempts)
        finally:
            self._idle.append(session)


class LocalClient:
    """A client of a local cluster: follows redirects, retries with the same sequence number."""

    def __init__(self, cluster: LocalCluster, client_id: str) -> None:
        self.cluster = cluster
        self.session = SessionState(client_id, cluster.app)
        self._leader: str | None = None
        self._turn = 0

    @property
    def client_id(self) -> str:
        """This client's current session id (it names its own: never None here)."""
        client_id = self.session.client_id
        assert client_id is not None, "a local client's session is named at construction"
        return client_id

    async def submit(self, command: Command, *, timeout: float = 1.0, attempts: int = 10) -> Value:
        """Submit ``command``; CommandError if it raised on the replicas, TimeoutError if nobody answers.

        SessionExpired (a CommandError) means this call was not run but an earlier
        attempt of it may have been; the next call uses a new session.
        """
        request = self.session.request(command)
        key = (request.client_id, request.seq)
        send, recv = trio.open_memory_channel[Reply](math.inf)
        self.cluster._waiters[key] = send
        names = [n for n, node in self.cluster.nodes.items() if not node.retired]
        # A redirect to a leader not followed yet in this call is followed at once; "no leader known" or
        # hints going round in circles wait (after the attempt's timeout scope, which must not cut the
        # pause short), doubling up to an election's worth of ticks, so an election under load does not
        # use up the attempts (the TCP client's policy).
        pause, pause_max = self.cluster.tick_seconds * 5, self.cluster.tick_seconds * 100
        followed: set[str] = set()
        try:
            for _ in range(attempts):
                target = self._leader or names[self._turn % len(names)]
                node = self.cluster.nodes[target]
                if node.alive:
                    node.send.send_nowait(request)
                redirected = False
                with trio.move_on_after(timeout):
                    reply = await recv.receive()
                    if reply.status == ReplyStatus.OK or reply.status == ReplyStatus.ERROR:
                        self._leader = target
                        return self.session.answered(command, reply.status, reply.result)
                    if reply.status == ReplyStatus.FAIL:
                        raise LocalProtocolError(f"command {command} was refused by {target}")
                    redirected = True
                    self._leader = reply.leader if reply.leader != target else None
                if not redirected:  # no answer in time: try the next node
                    self._leader = None
                    self._turn += 1
                    continue
                if self._leader is None:
                    self._turn += 1
                elif self._leader not in followed:
                    followed.add(self._leader)
                    continue
                await trio.sleep(pause)
                pause = min(pause * 2, pause_max)
            raise TimeoutError(f"no answer to {command} after {attempts} attempts")
        finally:
            del self.cluster._waiters[key]


@asynccontextmanager
async def open_local_cluster(app: AppSpec = "kv", *, backend: str = "raft", n: int = 3, seed: int = 0,
                             tick_ms: float = 10.0,
                             options: dict[str, Any] | None = None) -> AsyncIterator[LocalCluster]:
    """Start ``n`` replicas of ``app`` (a StateMachine class or spec) on ``backend``; stop them on exit.

    An exception raised in the ``async with`` body comes out as itself, not
    wrapped in an exception group.
    """
    if n < 1:
        raise LocalProtocolError("a cluster needs at least one node")
    raised: BaseException | None = None
    async with trio.open_nursery() as nursery:
        cluster = LocalCluster(nursery, backend, n, app, seed, tick_ms, options)
        for node_id in cluster.nodes:
            cluster.start_node(node_id)
        try:
            yield cluster
        except BaseException as exc:  # re-raised below, once the replicas are stopped
            raised = exc
        finally:
            nursery.cancel_scope.cancel()
    if raised is not None:
        raise raised
