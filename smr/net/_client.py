"""A client of a TCP cluster: finds the leader, follows redirects, retries with the same sequence number.

The surface matches the in-process cluster of :mod:`smr.live`::

    async with smr.net.open_tcp_client("cluster.yaml") as cluster:
        await cluster.submit(smr.commands.put("x", "1"))
        session = cluster.client()          # its own client id and sequence numbers
        await session.submit(smr.commands.get("x"))

Each :class:`TcpClient` keeps one request outstanding (the replicas' session
table remembers one answer per client), so a retry -- after a timeout, a
redirect or a lost connection -- carries the same (client id, sequence
number) and is applied at most once.  ``TcpCluster.submit`` borrows an idle
session from a pool, so concurrent callers never share one.

A client authenticates with the cluster's *client* key only (derived from
the secret, or given as ``client_secret``): it cannot speak as a replica.  A
node that refuses the key, or a TLS handshake that fails, raises
:class:`~smr.net._transport.AuthenticationError` at once: no retry can help.
"""

from __future__ import annotations

import math
import os
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Union, cast, overload

import trio

from smr import wire
from smr.apps import resolve_app
from smr.client import AppClient, M, MembershipClient, SessionState
from smr.commands import REGISTER_SESSION, Command
from smr.values import Value
from smr.driver import current_leader
from smr.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from smr.membership import Membership
from smr.replica import ClientRequest, Reply, ReplyStatus
from smr.sessions import command_digest

from ._config import ClusterConfig, NodeAddress, load_cluster, parse_address
from ._frames import TAG_BYTES, FrameError, request_limit
from ._messages import ReplyBatch, RequestBatch, StatusQuery, StatusReport
from ._server import NodeServer
from ._transport import (AuthenticationError, FramedConnection, client_tls, connect, decode_message, next_batch,
                         pack)

PAUSE_MIN_S = 0.02
PAUSE_MAX_S = 0.25
CONNECT_TIMEOUT_S = 1.0
#: Frames a connection holds for its writer; a session finding it full waits (within its attempt's timeout).
OUTBOX_FRAMES = 1024

_DISCONNECTED = object()

#: What a link's writer sends: a client request with its encoding, or a ready frame body.
Outgoing = Union[tuple[ClientRequest, bytes], bytes]


class CommandRefused(LocalProtocolError):
    """The cluster answered that the command was not applied and never will be."""


class _Link:
    """The client's connection to one node, shared by every session.

    Sessions queue their requests (with their encodings) and other frames in
    ``outbox``; one writer task sends whatever has queued in a single write,
    the requests packed into :class:`RequestBatch` frames, so concurrent
    requests share a frame, its authentication and a syscall.
    """

    def __init__(self, node: str, conn: FramedConnection) -> None:
        self.node = node
        self.conn = conn
        self.outbox, self.queued = trio.open_memory_channel[Outgoing](OUTBOX_FRAMES)
        self.waiting: set[tuple[str, int]] = set()
        self.status_waiters: deque[trio.MemorySendChannel[StatusReport | None]] = deque()
        self.closed = False


#: The most nodes a client learns from the cluster's membership beyond those in its cluster file.
MAX_LEARNED_NODES = 64


class TcpCluster(MembershipClient):
    """A connection pool to one cluster; make it with :func:`open_tcp_client`.

    Besides running commands it changes the cluster's membership
    (:meth:`add_node`, :meth:`remove_node`, :meth:`replace_node`,
    :meth:`membership`: see :class:`smr.client.MembershipClient`); it learns the
    addresses of nodes added at run time from the membership it reads.
    """

    def __init__(self, config: ClusterConfig, nursery: trio.Nursery, prefix: str = "tcp",
                 local: NodeServer | None = None) -> None:
        self.config = config
        #: The replica running in this process (an embedded node), whose core sessions enter directly.
        self.local = local
        self.names = list(config.node_ids)
        self.leader_hint: str | None = None
        self.errors = 0
        self._key = config.client_credentials().client
        self._tls = client_tls(config)
        self._nursery = nursery
        self._prefix = f"{prefix}-{os.getpid()}-{secrets.token_hex(4)}"
        self._count = 0
        self._links: dict[str, _Link] = {}
        self._connecting: dict[str, trio.Lock] = {n: trio.Lock() for n in self.names}
        #: Nodes added at run time that the cluster file does not name, learned from the membership.
        self.learned: dict[str, NodeAddress] = {}
        self._waiters: dict[tuple[str, int], trio.MemorySendChannel[tuple[str, Any]]] = {}
        self._idle: list[TcpClient] = []
        #: The app the cluster runs (so clients know which calls are queries).
        self.app = resolve_app(config.state_machine)
        if local is not None:
            self.leader_hint = local.id  # try the replica in this process first: no hop if it leads
            local.local_replies = self._deliver

    # ----------------------------------------------------------------- API
    @overload
    def client(self) -> "TcpClient": ...

    @overload
    def client(self, app: type[M]) -> AppClient[M]: ...

    def client(self, app: type[M] | None = None) -> "TcpClient | AppClient[M]":
        """A new session (own client id and sequence numbers); given the app class, its typed proxy."""
        self._count += 1
        session = TcpClient(self, f"{self._prefix}-{self._count}")
        if app is None:
            return session
        cls = resolve_app(app)
        if cls.name != self.app.name:
            raise ConfigError(f"this cluster runs {self.app.name}, not {cls.name}", file=self.config.source,
                              field="state_machine")
        return AppClient(cast("type[M]", cls), session)

    async def submit(self, command: Command, *, timeout: float = 1.0, attempts: int = 40) -> Value:
        """Run ``command`` through the replicated log once and return its result."""
        session = self._idle.pop() if self._idle else self.client()
        try:
            return await session.submit(command, timeout=timeout, attempts=attempts)
        finally:
            self._idle.append(session)

    async def status(self, node: str, *, timeout: float = 1.0) -> StatusReport | None:
        """Return ``node``'s status report, or None if it does not answer within ``timeout``."""
        if self.local is not None and node == self.local.id:
            return self.local.report()
        with trio.move_on_after(timeout):
            link = await self._link(node)
            if link is None:
                return None
            send, recv = trio.open_memory_channel[StatusReport | None](1)
            link.status_waiters.append(send)
            sent = False
            try:
                sent = await self._send(link, wire.encode(StatusQuery()))
            finally:
                if not sent and send in link.status_waiters:  # not sent: the next report is another caller's
                    link.status_waiters.remove(send)
            if not sent:
                return None
            return await recv.receive()
        return None

    async def statuses(self, *, timeout: float = 1.0) -> dict[str, StatusReport | None]:
        """Ask every node for its status at once; None for those that do not answer."""
        found: dict[str, StatusReport | None] = {}
        refused: list[AuthenticationError] = []

        async def ask(node: str) -> None:
            try:
                found[node] = await self.status(node, timeout=timeout)
            except AuthenticationError as exc:  # raised once below, not as a group of one per node
                refused.append(exc)

        async with trio.open_nursery() as nursery:
            for node in self.names:
                nursery.start_soon(ask, node)
        if refused:
            raise refused[0]
        return {n: found.get(n) for n in self.names}

    async def find_leader(self, *, timeout: float = 1.0) -> str | None:
        """Return the node that reports itself leader with the highest epoch, if any answers."""
        reports = (await self.statuses(timeout=timeout)).values()
        return current_leader(report for report in reports if report is not None)

    def _saw_membership(self, membership: Membership) -> None:
        """Learn where the members the cluster file does not name listen (nodes added at run time)."""
        for node, text in membership.addresses:
            if node in self.names or len(self.learned) >= MAX_LEARNED_NODES:
                continue
            try:
                host, port = parse_address(text)
            except ValueError:
                continue  # an address nobody can dial: not one to learn
            self.learned[node] = NodeAddress(node, host, port)
            self.names.append(node)
            self._connecting[node] = trio.Lock()

    def _address(self, node: str) -> NodeAddress:
        """Where ``node`` listens: the cluster file, else what the membership said."""
        learned = self.learned.get(node)
        return learned if learned is not None else self.config.address(node)

    async def aclose(self) -> None:
        """Close every connection."""
        for link in list(self._links.values()):
            await self._drop(link)
        self._links.clear()

    # ------------------------------------------------------------ plumbing
    def _deliver(self, node: str, reply: Reply) -> bool:
        """Hand ``reply`` from ``node`` to the session waiting for it; False if none is."""
        waiter = self._waiters.get((reply.client_id, reply.seq))
        if waiter is None:
            return False
        waiter.send_nowait((node, reply))
        return True

    async def _link(self, node: str) -> _Link | None:
        link = self._links.get(node)
        if link is not None and not link.closed:
            return link
        lock = self._connecting.get(node)
        if lock is None:
            self._address(node)  # a ConfigError if nothing says where it listens
            lock = self._connecting[node] = trio.Lock()
        async with lock:
            link = self._links.get(node)
            if link is not None and not link.closed:
                return link
            address = self._address(node)
            try:
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    conn, _hello = await connect(address.host, address.port, self._key, "client",
                                                 self._prefix, self.config.max_frame_bytes, tls=self._tls)
            except AuthenticationError as exc:  # a wrong key or certificate: no other node will differ
                raise AuthenticationError(f"{node}: {exc.message}", file=self.config.source,
                                          field=exc.field) from None
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError,
                    FrameError):
                return None  # down, or reset mid-handshake: try another node
            link = _Link(node, conn)
            self._links[node] = link
            self._nursery.start_soon(self._reader, link)
            self._nursery.start_soon(self._writer, link)
            return link

    async def _send(self, link: _Link, body: Outgoing) -> bool:
        """Queue ``body`` on ``link``, waiting while its outbox is full; False if the link is gone.

        Callers bound the wait with their attempt's deadline; a frame that was
        queued but never written fails the link, which wakes its waiters.
        """
        try:
            await link.outbox.send(body)
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False

    async def _writer(self, link: _Link) -> None:
        try:
            while True:
                await link.conn.send(self._frames(await next_batch(link.queued)))
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # dropped already, or the connection failed: either way the link is done
        finally:
            await self._drop(link)

    def _frames(self, items: list[Outgoing]) -> list[bytes]:
        """The frame bodies for what a link's writer took: consecutive requests share frames."""
        bodies: list[bytes] = []
        run: list[tuple[ClientRequest, bytes]] = []
        budget = self.config.max_frame_bytes - TAG_BYTES

        def flush() -> None:
            for message in pack(run, [len(body) for _, body in run], budget,
                                lambda many: RequestBatch(tuple(request for request, _ in many))):
                bodies.append(message[1] if isinstance(message, tuple) else wire.encode(message))
            run.clear()

        for item in items:
            if isinstance(item, tuple):
                run.append(item)
            else:
                flush()
                bodies.append(item)
        flush()
        return bodies

    async def _reader(self, link: _Link) -> None:
        try:
            while True:
                body = await link.conn.receive()
                if body is None:
                    return
                msg = decode_message(body)
                if isinstance(msg, Reply):
                    self._deliver(link.node, msg)
                elif isinstance(msg, ReplyBatch):
                    for reply in msg.replies:
                        self._deliver(link.node, reply)
                elif isinstance(msg, StatusReport) and link.status_waiters:
                    link.status_waiters.popleft().send_nowait(msg)
        except (RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.errors += 1
        finally:
            await self._drop(link)

    async def _drop(self, link: _Link) -> None:
        """Forget and close ``link`` and tell the sessions waiting on it; only the first call counts."""
        if link.closed:
            return
        link.closed = True
        if self._links.get(link.node) is link:
            del self._links[link.node]
        link.outbox.close()
        for key in link.waiting:
            waiter = self._waiters.get(key)
            if waiter is not None:
                waiter.send_nowait((link.node, _DISCONNECTED))
        while link.status_waiters:
            link.status_waiters.popleft().send_nowait(None)
        await trio.aclose_forcefully(link.conn.stream)


class TcpClient:
    """One client session of a :class:`TcpCluster`: one request outstanding at a time.

    The session id is the cluster's to assign: the first call opens a
    session through the log (``label`` only names the registration), and so
    does the first call after ``SessionExpired``.  An answer counts only if
    it is for this session's current request *and* its command
    (:attr:`smr.replica.Reply.digest`).
    """

    def __init__(self, cluster: TcpCluster, label: str) -> None:
        self.cluster = cluster
        self.label = label
        self.session = SessionState(None, cluster.app)
        self._turn = secrets.randbelow(len(cluster.names))
        # Answers to the current request; one channel serves them all, one request at a time.
        self._answers_in, self._answers = trio.open_memory_channel[tuple[str, Any]](math.inf)
        self._busy = False
        #: Answers to this session's (client id, seq) that were for another command, ignored.
        self.foreign_answers = 0
        #: The node whose answer ended the last call (it had applied the command, or read through the log).
        self.answered_by: str | None = None

    @property
    def client_id(self) -> str | None:
        """This client's current session id (None until its first call opens one)."""
        return self.session.client_id

    async def submit(self, command: Command, *, timeout: float = 1.0, attempts: int = 40) -> Value:
        """Submit ``command``; raise TimeoutError (outcome unknown) if ``attempts`` tries get no answer.

        Raises CommandError if the command raised on the replicas, and
        CommandRefused if the cluster says it was not, and will never be, applied.
        """
        if self._busy:
            raise LocalProtocolError(f"session {self.client_id} already has a request outstanding")
        self._busy = True
        try:
            if self.session.client_id is None:
                await self._open_session(timeout, attempts)
            request = self.session.request(command)
            status, value = await self._call(request, timeout, attempts)
            return self.session.answered(command, status, value)
        finally:
            self._busy = False

    async def _open_session(self, timeout: float, attempts: int) -> None:
        """Register a session through the log and carry on under the id the cluster assigned."""
        nonce = f"{self.label}.{secrets.token_hex(8)}"  # names this registration only
        status, value = await self._call(ClientRequest(nonce, 1, REGISTER_SESSION), timeout, attempts)
        if status != ReplyStatus.OK or not isinstance(value, str) or not value:
            raise RemoteProtocolError(f"the cluster answered a session registration with {status} {value!r}")
        self.session.opened(value)

    async def _call(self, request: ClientRequest, timeout: float, attempts: int) -> tuple[str, Any]:
        """Send ``request`` until it is answered ``ok`` or ``error``: (status, result).

        Follows redirects and retries with the same (client id, seq), so the
        session table makes it run once however many attempts it takes.
        """
        cluster = self.cluster
        key = (request.client_id, request.seq)
        body = wire.encode(request)
        if len(body) > request_limit(cluster.config.max_frame_bytes):
            raise LocalProtocolError(f"command of {len(body)} bytes exceeds the cluster's max_frame_bytes "
                                     f"({cluster.config.max_frame_bytes}) less the room the replication message "
                                     f"around it needs")
        digest = command_digest(request.command)
        cluster._waiters[key] = self._answers_in
        recv = self._answers
        pause = PAUSE_MIN_S
        followed: set[str] = set()
        try:
            for _ in range(attempts):
                target = cluster.leader_hint or cluster.names[self._turn % len(cluster.names)]
                outcome, value = await self._attempt(target, request, body, recv, timeout, digest)
                if outcome == ReplyStatus.OK or outcome == ReplyStatus.ERROR:
                    return outcome, value
                if outcome == "redirect":
                    if value is not None and value != target and value in cluster.names:
                        cluster.leader_hint = value
                        if value not in followed:  # a fresh hint: follow it at once
                            followed.add(value)
                            continue
                        await trio.sleep(pause)  # hints going round in circles: give the election time
                        pause = min(pause * 2, PAUSE_MAX_S)
                        continue
                    cluster.leader_hint = None
                elif cluster.leader_hint == target:
                    cluster.leader_hint = None
                self._turn += 1
                await trio.sleep(pause * (0.5 + secrets.randbelow(1000) / 1000))
                pause = min(pause * 2, PAUSE_MAX_S)
            raise TimeoutError(f"no answer to {request.command} after {attempts} attempts")
        finally:
            del cluster._waiters[key]
            self._discard_stale()

    def _discard_stale(self) -> None:
        """Empty the answer channel: what is left belongs to a finished request, not the next one."""
        while True:
            try:
                self._answers.receive_nowait()
            except trio.WouldBlock:
                return

    async def _attempt(self, target: str, request: ClientRequest, body: bytes,
                       recv: trio.MemoryReceiveChannel[tuple[str, Any]], timeout: float,
                       digest: int) -> tuple[str, Any]:
        """Send the request to ``target`` once; return ("ok", result), ("redirect", leader) or ("retry", None).

        The replica in this process (if any) gets the request object itself;
        any other gets its encoded ``body`` over its connection.
        """
        cluster = self.cluster
        local = cluster.local
        with trio.move_on_after(timeout):
            if local is not None and target == local.id:
                await local.submit_local(request, len(body))
                return await self._answer(target, recv, digest)
            link = await cluster._link(target)
            if link is None:
                return "retry", None
            key = (request.client_id, request.seq)
            link.waiting.add(key)
            try:
                if not await cluster._send(link, (request, body)):
                    return "retry", None
                return await self._answer(target, recv, digest)
            finally:
                link.waiting.discard(key)
        return "retry", None

    async def _answer(self, target: str, recv: trio.MemoryReceiveChannel[tuple[str, Any]],
                      digest: int) -> tuple[str, Any]:
        """Wait for the answer to the request just sent to ``target`` (see :meth:`_attempt`)."""
        cluster = self.cluster
        while True:
            node, reply = await recv.receive()
            if reply is _DISCONNECTED:
                if node == target:
                    return "retry", None
                continue
            if reply.digest != digest:  # an answer to another command under this (client id, seq)
                self.foreign_answers += 1
                continue
            if reply.status == ReplyStatus.OK or reply.status == ReplyStatus.ERROR:
                cluster.leader_hint = self.answered_by = node
                return reply.status, reply.result  # from any node: it was applied
            if node != target:
                continue  # a late answer to an earlier attempt
            if reply.status == ReplyStatus.FAIL:
                reason = f": {reply.result}" if reply.result is not None else ""
                raise CommandRefused(f"command {reply.seq} was refused by {target}{reason}")
            return "redirect", reply.leader


@asynccontextmanager
async def open_tcp_client(cluster: str | Path | ClusterConfig, *,
                          prefix: str = "tcp") -> AsyncIterator[TcpCluster]:
    """Connect to the cluster described by a cluster file (or config); close everything on exit.

    An exception raised in the ``async with`` body comes out as itself, not
    wrapped in an exception group.
    """
    config = cluster if isinstance(cluster, ClusterConfig) else load_cluster(cluster)
    raised: BaseException | None = None
    async with trio.open_nursery() as nursery:
        client = TcpCluster(config, nursery, prefix)
        try:
            yield client
        except BaseException as exc:  # re-raised below, once the readers are gone
            raised = exc
        finally:
            nursery.cancel_scope.cancel()
            await client.aclose()
    if raised is not None:
        raise raised
