"""One replica as one process: the sans-IO core driven by trio TCP, trio's clock and durable storage.

The node loop (:mod:`smr.net._loop`) is the one of :mod:`smr.live` with a real disk:

1. wait for an input (a peer message, a client request, a tick), take every
   input that has queued meanwhile, and step the core with each (peer
   messages first, client requests last);
2. release the outputs of the leading batches that persist nothing (an
   acknowledgement's commit and replies need not wait for any sync);
3. **group commit**: write the persist sets of all the remaining batches in
   one transaction and sync it once (:class:`~smr.net._storage.Storage`);
4. only then release their messages and replies, in batch order.

A leader's replication of new entries (``Ready.eager``) leaves as soon as
its step returns, before the group commit, so the followers' syncs run in
parallel with the leader's own; each such batch's ``after_sync`` is stepped
once the group commit is durable, and only then does the leader count its
own copy.  Requests from callers in this process (an embedded node,
:mod:`smr.net._node`) enter through :meth:`NodeServer.submit_local` and get
their answers through :attr:`NodeServer.local_replies`, with no frame;
requests from a client connection may arrive many to a frame
(``RequestBatch``), and the answers queued for a connection leave together
(``ReplyBatch``).

While a sync is in flight (in a worker thread) the network keeps reading, so
the next round's batch is whatever arrived during this one's sync.  (Syncing
inline, blocking the loop, was measured too: sequential latency ~1 ms lower,
but 16-client throughput 340-410 ops/s against 560-700 with the thread.)

Failures are split by blame: a frame that is oversized, truncated,
unauthenticated or malformed, or a message a connection may not carry, is
counted under its reason and its connection closed, and the node keeps
serving (the first few a minute are logged, the rest summed up once a minute:
an unauthenticated stranger cannot fill the disk); an input the core rejects
(``RemoteProtocolError``) is counted and dropped; a client command the state machine cannot apply is answered
``fail`` before it can reach the log.  Outgoing peer connections reconnect with jittered exponential
back-off; messages for an unreachable peer are dropped, as a lossy network
would, and the protocols' own timeouts retry.

Peers are not a fixed set: the node dials every member of the configuration
in effect (``core.membership``; the cluster file's original ``nodes`` before
any change) and routes any ``Send`` to a node whose address the cluster file
(``nodes``, ``added``) or the configuration (``membership.addresses``: nodes
added at run time) gives; it accepts peer connections, authenticated as
always, from any node either names.  A node added at run time starts from an
empty directory as a joiner (see :mod:`smr.net._identity`) and learns the
configuration from the log; a node that a committed configuration no longer
names (``core.retired``) says so in its log and stops cleanly a moment
later, so ``smr serve`` exits 0.  A node that finds its directory emptied in
an initialised cluster stays out, unless it was started with
``rejoin_empty`` (``smr serve --rejoin-empty``): it then has the cluster
remove its id and add it again, and joins as a rejoining core
(:mod:`smr.net._rejoin`).  With the flag, a database found damaged at start
(a checksum that fails, a cut write-ahead log, a page SQLite cannot read) is
moved aside into ``damaged-<time>/`` and the directory counts as emptied: the
node is repaired from its peers the same way instead of refusing to start.

Connections are limited as the cluster file says (``max_connections``,
``max_client_connections``, ``max_connections_per_peer``, ``client_idle_timeout_s``,
``frame_timeout_s``): one beyond a limit is refused and counted, never queued.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import attrs
import trio

from smr import wire
from smr.driver import Driver
from smr.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from smr.replica import ClientRequest, ReplicaConfig, ReplicaCore, Receive, Reply, ReplyStatus, Start, get_backend
from smr.apps import resolve_app
from smr.membership import MAX_MEMBERS
from smr.sessions import SessionLimits, reply_to

from ._config import ClusterConfig, NodeAddress, format_address, parse_address
from ._frames import AUTH_FAILED, BUSY, REASONS, FrameError, frame_bounds, request_limit
from ._loop import DISK_ERRORS, SLOW_STEP_LOG_EVERY_S, CoreLoop, DiskFault
from ._identity import HOLD, JOIN, STAY_OUT, Identity, Membership, admission, members_of, remembered_instead
from ._messages import ReplyBatch, RequestBatch, StatusQuery, StatusReport
from ._rejoin import ADDED, REMOVE, Rejoin, point_past, rejoin
from ._storage import DiskUnavailable, Storage, open_storage, set_aside
from ._values import CorruptValue
from ._transport import (AuthenticationError, FramedConnection, IdleConnection, answer_hello, connect,
                         decode_message, has_verified_certificate, next_batch, node_tls, receive_hello,
                         send_refusal)


#: What dialling a peer can raise when the peer is down, slow, or resets the
#: connection mid-handshake (it died), or refuses us (a cluster file that
#: differs from ours): the peer is just unreachable for now.
UNREACHABLE = (OSError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, FrameError,
               AuthenticationError)

log = logging.getLogger("smr.net")

#: Inputs waiting for the core; readers block (TCP back-pressure) when it is full.
EVENT_QUEUE = 4096
#: Messages waiting per peer and replies waiting per client connection; beyond it they are dropped.
PEER_QUEUE = 4096
CLIENT_QUEUE = 4096
#: Seconds between attempts to write again after the disk refused one; doubled (up to the max) each
#: time it refuses again within DISK_STREAK_S of taking writes.
DISK_RETRY_S, DISK_RETRY_MAX_S, DISK_STREAK_S = 1.0, 30.0, 10.0


#: Connections that hear the replies of one client id at once (a session shared between processes).
MAX_CONNECTIONS_PER_SESSION = 8
HELLO_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 0.5
#: Peers a node keeps a sender for at once (the configuration's members and the nodes it sent to lately).
MAX_PEERS = 2 * MAX_MEMBERS
#: A sender to a node that is no longer a member stops after this long with nothing to send.
PEER_IDLE_S = 5.0
#: How long a retired node keeps serving (its last answers and messages leave) before it stops.
RETIRE_GRACE_S = 1.0
#: File descriptors kept for the node itself (storage, listeners, its own dials, logs) below the process's
#: limit: max_connections is lowered to fit, so the cap, not EMFILE, is what a flood meets.
RESERVED_FDS = 64


def connection_budget(wanted: int) -> int:
    """``wanted`` connections, or fewer if the process's open-file limit cannot hold them."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FDS))


#: Seconds per window of the refusal log: at most ``refusal_logs_per_minute`` lines, then one summary.
REFUSAL_LOG_WINDOW_S = 60.0


class RefusalLog:
    """Logs at most ``per_window`` refusals per window; counts the rest and sums them up once per window.

    The caller passes the time (``now``) and calls :meth:`flush` when a
    window ends, so the summary comes even if the refusals stop.
    """

    def __init__(self, node: str, per_window: int, window_s: float = REFUSAL_LOG_WINDOW_S) -> None:
        self.node = node
        self.per_window = per_window
        self.window_s = window_s
        self._window_start: float | None = None
        self._logged = 0
        #: Refusals not logged in the current window, by reason.
        self.unlogged: Counter[str] = Counter()

    def note(self, now: float, reason: str, message: str, *args: object) -> bool:
        """Log a refusal (``message % args``) unless this window's lines are used up; True if logged."""
        if self._window_start is None or now - self._window_start >= self.window_s:
            self.flush(now)
        if self._logged < self.per_window:
            self._logged += 1
            log.warning(message, *args)
            return True
        self.unlogged[reason] += 1
        return False

    def flush(self, now: float) -> None:
        """End the current window: log one line for the refusals it did not log, if any; start the next."""
        if self.unlogged:
            log.warning("%s: %d more refusals in the last %.0f s not logged (%s)", self.node,
                        sum(self.unlogged.values()), self.window_s,
                        ", ".join(f"{reason} {n}" for reason, n in sorted(self.unlogged.items())))
        self.unlogged.clear()
        self._logged = 0
        self._window_start = now


class NodeServer(CoreLoop):
    """A running replica of ``config`` named ``node``, with its storage in ``data_dir``."""

    def __init__(self, config: ClusterConfig, node: str, data_dir: str | Path, *, rejoin_empty: bool = False) -> None:
        self.config = config
        #: Bring this node back if it finds its directory emptied (``smr serve --rejoin-empty``).
        self.rejoin_empty = rejoin_empty
        #: How far this node's rejoin has come (smr.net._rejoin), or None: it is not rejoining.
        self.rejoin: Rejoin | None = None
        self._rejoin_lock = trio.Lock()  # identities arrive on many connections at once: one rejoin step at a time
        self._readmitted_said = False
        self.me: NodeAddress = config.address(node)
        self.id = node
        self.data_dir = Path(data_dir)
        self.credentials = config.credentials()  # both keys: this node accepts peers and clients
        self._tls = node_tls(config, node)
        self._request_limit = request_limit(config.max_frame_bytes)
        #: The original voters but this node: who must all say "new" before a fresh cluster starts.
        self.peers = tuple(n for n in config.initial_voters if n != node)
        #: This node was added at run time: it starts as a joiner (smr.net._identity, ReplicaConfig.joining).
        self.added = node not in config.initial_voters
        self.counters: Counter[str] = Counter()
        self._slow_logged_at = -SLOW_STEP_LOG_EVERY_S
        self._campaigned = -1
        self.refused: Counter[str] = Counter({reason: 0 for reason in REASONS})
        self.storage: Storage | None = None
        self.driver: Driver[ReplicaCore] | None = None
        self.started = time.monotonic()
        self._events_send, self._events = trio.open_memory_channel[Any](EVENT_QUEUE)
        self._queued_unyielded = 0
        #: A queue per peer this node dials, drained by that peer's sender task (see :meth:`_open_peer`).
        self._peer_out: dict[str, trio.MemorySendChannel[bytes]] = {}
        # set when a peer dials in, so our own dial to it stops backing off
        self._peer_up: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self._membership_seen: object = None  # the core's configuration peers were last matched to
        #: Addresses of nodes added at run time, as configurations gave them, kept after they leave one (a
        #: core may still send a removed node the slots it must learn); the newest MAX_PEERS.
        self._addresses: dict[str, str] = {}
        self._unroutable_logged: set[str] = set()
        #: Set once a committed configuration no longer names this node; it then stops (RETIRE_GRACE_S).
        self.retired = trio.Event()
        #: True once this node has stopped serving (retired); local callers are sent elsewhere.
        self.stopped = False
        #: client id -> the connections that sent requests under it (one, unless a session is shared:
        #: then each gets every reply and its client keeps only those for its own command's digest).
        self._clients: dict[str, list[trio.MemorySendChannel[Reply | bytes]]] = {}
        #: Where answers for callers in this process go (the embedded node's sessions): called as
        #: ``local_replies(node, reply)``, True if someone was waiting for it.
        self.local_replies: Callable[[str, Reply], bool] | None = None
        #: Why the disk refused the last write, while this node sits out (None when it is serving).
        self.disk_fault: str | None = None
        self._fault: DiskFault | None = None  # a refused write the core loop has yet to sit out
        self._disk_retry = DISK_RETRY_S
        self.membership = Membership(node, "", False, {})  # read from storage by run()
        self._admitted = trio.Event()  # set once this node may vote and accept (smr.net._identity)
        self._disk = trio.Lock()  # storage calls never overlap (a commit's sync runs in a worker thread)
        #: Why this node stays out of its cluster (its directory was emptied), or None.
        self.stays_out: str | None = None
        self._heard: dict[str, Identity] = {}  # peers' identities, while this node waits to join
        self._refusals_logged: set[tuple[str, str]] = set()
        self._refusal_log = RefusalLog(node, config.refusal_logs_per_minute)
        self._connections_open = 0
        self.max_connections = connection_budget(config.max_connections)
        if self.max_connections < config.max_connections:
            log.warning("%s: max_connections lowered from %d to %d to fit the open-file limit (ulimit -n)",
                        node, config.max_connections, self.max_connections)
        self._clients_open = 0
        # a list per peer that has connected (only nodes the cluster file or a configuration names can)
        self._peer_connections: defaultdict[str, list[trio.CancelScope]] = defaultdict(list)
        self._recovered_at = -DISK_STREAK_S  # trio time the disk last took writes again after a fault

    # -------------------------------------------------------------- lifecycle
    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Recover from disk, listen, and serve until cancelled; reports the bound port when ready."""
        storage, durable = await self._open_storage()
        self.storage = storage
        try:
            if not self.membership.joined and not self.peers and not self.added and storage.emptied:
                self.stays_out = ("the only node of a one-node cluster, its directory emptied: there is no peer "
                                  "to rejoin from, and a new cluster would lose everything it acknowledged; "
                                  "restore the directory from a backup")
                log.error("%s: staying out: %s", self.id, self.stays_out)
            elif not self.membership.joined and not self.peers and not self.added:
                await self._join({}, "a single node: a new cluster")
            elif self.membership.joined:
                self._admitted.set()
            elif self.rejoin is not None and not self.rejoin_empty:
                self.stays_out = (f"a rejoin is under way (stage {self.rejoin.stage!r}): restart this node with "
                                  f"--rejoin-empty to finish it")
                log.error("%s: staying out of the cluster: %s", self.id, self.stays_out)
            try:
                await self._recover(durable)
            except DiskFault as exc:  # a full disk at start: serve nothing until it takes writes, never exit
                self._fault = exc
            try:
                listeners = await trio.open_tcp_listeners(self.me.port, host=self.me.host)
            except OSError as exc:
                raise ConfigError(f"cannot listen on {self.me.host}:{self.me.port}: {exc.strerror}",
                                  file=self.config.source, field=f"{self.config.field_of(self.id)}.port") from None
            port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(trio.serve_listeners, self._handle_connection, listeners)
                if not self.added:  # an added node dials nobody before a member has dialled it (it is a joiner)
                    for peer in self.peers:
                        self._open_peer(peer)
                nursery.start_soon(self._ticker)
                nursery.start_soon(self._core_loop)
                nursery.start_soon(self._refusal_summaries)
                nursery.start_soon(self._stop_once_retired, nursery.cancel_scope)
                if self.rejoin is not None and self.rejoin_empty and not self.membership.joined:
                    nursery.start_soon(self._rejoin)
                log.info("%s: serving %s on %s:%d%s", self.id, self.config.backend, self.me.host, port,
                         " (added at run time: a joiner)" if self.added else "")
                task_status.started(port)
        finally:
            self.stopped = True
            storage.close()

    async def _open_storage(self) -> tuple[Storage, dict[str, Any]]:
        """Open this node's storage, check what it belongs to, read its identity.

        While the disk cannot take it (full, failing), wait rather than exit.
        """
        logged = False
        aside: Path | None = None  # where a damaged database went (--rejoin-empty)
        while True:
            storage: Storage | None = None
            try:
                storage, durable = open_storage(self.data_dir, self.id, fsync=self.config.fsync,
                                                emptied_ok=self.rejoin_empty)
                if aside is not None and not storage.emptied:
                    storage.mark_emptied(0)  # no watermark said how much: emptied all the same
                storage.claim("backend", self.config.backend)  # another backend's state would be garbage
                storage.claim("app", resolve_app(self.config.state_machine).name)  # so would another app's
                registered = SessionLimits.from_options(self.config.backend_options).registered_sessions
                # Applying a command depends on it: replicas (and replays) must never disagree.
                storage.claim("sessions", "registered" if registered else "named by clients")
                meta = storage.meta()
                self.membership, new = Membership.load(self.id, meta, bool(durable))
                if new:
                    storage.set_meta(self.membership.rows())
                self.membership.emptied = bool(storage.emptied) and not self.membership.joined
                if storage.emptied and not self.membership.joined:
                    log.warning("%s: the database was gone, but %s said it had acknowledged %d batches: with "
                                "--rejoin-empty the directory counts as emptied and the node starts afresh "
                                "(it rejoins under its id)", self.id, self.data_dir / "COMMITS", storage.emptied)
                try:
                    self.rejoin = Rejoin.from_meta(meta)
                except ValueError as exc:
                    raise ConfigError(f"cannot recover: {exc}", file=str(self.data_dir)) from None
                return storage, durable
            except CorruptValue as exc:
                if storage is not None:
                    storage.close()
                if not self.rejoin_empty or aside is not None:
                    raise
                aside = set_aside(self.data_dir, str(exc))  # kept for inspection; the node rejoins empty
                log.error("%s: %s -- with --rejoin-empty the damaged database is moved to %s and the node "
                          "rejoins empty under its id, catching up from its peers", self.id, exc, aside)
                self.counters["databases_set_aside"] += 1
                continue
            except (DiskUnavailable, *DISK_ERRORS) as exc:
                if storage is not None:
                    storage.close()
                if not logged:
                    log.error("%s: %s; waiting for the disk (retrying every %g s)", self.id, exc, DISK_RETRY_S)
                    logged = True
                self.counters["disk_faults"] += 1
            except BaseException:
                if storage is not None:
                    storage.close()
                raise
            await trio.sleep(DISK_RETRY_S)

    async def _recover(self, durable: dict[str, Any]) -> None:
        """Build a fresh core from ``durable`` (what survived on disk) and start it."""
        backend = get_backend(self.config.backend)
        rng = random.Random(int.from_bytes(os.urandom(8), "big"))
        added = self.rejoin if self.rejoin is not None and self.rejoin.stage == ADDED else Rejoin(ADDED, ())
        core = backend.factory(ReplicaConfig(
            self.id, self.peers, rng, resolve_app(self.config.state_machine),
            {**backend.options, **frame_bounds(self.config.max_frame_bytes), **self.config.backend_options},
            tick_ms=self.config.tick_ms, initial_voters=self.config.initial_voters,
            rejoin_after=added.after, rejoin_epoch=added.epoch))  # 0, 0 unless it rejoins
        self.driver = Driver(core, self.id, on_reject=self._reject)
        log.info("%s: recovered %d durable keys from %s", self.id, len(durable), self.data_dir)
        await self._commit_and_release([self.driver.step(Start(durable))])

    @property
    def core(self) -> ReplicaCore:
        """This replica's core (once :meth:`run` has built it)."""
        if self.driver is None:
            raise LocalProtocolError(f"{self.id}: the node is not running yet")
        return self.driver.core

    def report(self) -> StatusReport:
        """Return this node's status and counters."""
        st = self.core.status()
        storage = self.storage.stats.to_json() if self.storage is not None else {}
        durability = {} if self.storage is None else {"journal_mode": self.storage.journal_mode,
                                                      "synchronous": self.storage.synchronous}
        applier = getattr(self.core, "applier", None)
        sessions = {} if applier is None else {
            "open": len(applier.sessions), "max": applier.limits.max_sessions, "dropped": applier.dropped,
            "snapshot_failures": getattr(self.core, "snapshot_failures", 0)}
        rejoining = self.rejoin is not None and (not self._admitted.is_set()
                                                 or not getattr(self.core, "readmitted", True))
        role = ("stays out" if self.stays_out is not None else "rejoining" if rejoining
                else "joining" if not self._admitted.is_set()
                else "disk fault" if self.disk_fault is not None else st.role)  # the first four promise nothing
        applied = getattr(applier, "membership", None)
        membership = {} if applied is None else {
            "voters": list(applied.voters), "learners": list(applied.learners), "outgoing": list(applied.outgoing)}
        if self.stopped and self.retired.is_set():
            role = "retired"
        return StatusReport(self.id, self.config.backend, role, st.epoch, st.leader, st.commit_index,
                            round(time.monotonic() - self.started, 3), dict(self.counters),
                            dict(self.refused), storage, self.config.state_machine, sessions, membership,
                            durability)

    # -------------------------------------------------------------- core loop
    def _reject(self, node: str, exc: RemoteProtocolError) -> None:
        self.counters["remote_errors"] += 1
        log.warning("%s: dropped an input the core rejected: %s", node, exc)

    async def _core_loop(self) -> None:
        if not self._admitted.is_set():
            await self._wait_to_join()
        while True:
            try:
                fault, self._fault = self._fault, None
                if fault is not None:
                    await self._sit_out(fault)
                await self._serve_core()
            except DiskFault as exc:  # a write failed (again): sit out until one succeeds
                self._fault = exc

    async def _wait_to_join(self) -> None:
        """Until this fresh node may join (smr.net._identity), drop every input; tell clients to go elsewhere."""
        log.info("%s: a fresh data directory (incarnation %s): %s", self.id, self.membership.incarnation,
                 f"rejoining (stage {self.rejoin.stage!r})" if self.rejoin is not None else
                 "added at run time, joining once a member of the cluster dials it" if self.added else
                 "joining once the peers say the cluster is new")
        while not self._admitted.is_set():
            with trio.move_on_after(0.2):
                self._drop_input(await self._events.receive(), "inputs_dropped_not_joined")

    def _drop_input(self, event: Any, counter: str) -> None:
        """Drop an input this node will not act on now; a client is told to look elsewhere."""
        self.counters[counter] += 1
        if isinstance(event, ClientRequest):
            self._send_reply(reply_to(event, ReplyStatus.REDIRECT))

    def _removed(self, node: str) -> bool:
        """True if this node's log has removed ``node`` (a change it applied took that id out)."""
        return node in getattr(getattr(self.core, "applier", None), "left", ())

    async def _on_identity(self, peer: Identity) -> str | None:
        """A peer dialled in and said who it is: why to refuse it (None: go on), and maybe join."""
        membership = self.membership
        if membership.joined:
            forgot = membership.heed(peer, self._removed)  # a rejoined peer says which incarnation it replaces
            reason = membership.refuses(peer)
            if reason is not None:
                self.counters["peers_refused_identity"] += 1
                if (peer.node, peer.incarnation) not in self._refusals_logged:
                    self._refusals_logged.add((peer.node, peer.incarnation))
                    log.error("%s: refusing %s: %s; it votes and accepts nothing here", self.id, peer.node, reason)
            if (membership.learn(peer) if reason is None else False) or forgot:
                await self._save_membership()
            return reason
        self._heard[peer.node] = peer
        if self.rejoin is not None:
            await self._rejoin_heard()
            return None
        verdict, why = admission(membership, self.peers, self._heard, added=self.added)
        if verdict == JOIN:
            await self._join(self._members_heard(), why)
        elif verdict == STAY_OUT and self.rejoin_empty:
            await self._start_rejoin(why)
        elif verdict in (STAY_OUT, HOLD) and self.stays_out is None:
            self.stays_out = why
            log.error("%s: staying out of the cluster: %s", self.id, why)
        return None

    def _members_heard(self) -> dict[str, str]:
        """The incarnations to remember on joining: a joined peer's records and those of every peer heard."""
        joined_peer = next((p for p in self._heard.values() if p.joined), None)
        members = {**(joined_peer.members if joined_peer else {}), **members_of(self._heard)}
        members.pop(self.id, None)
        return members

    # --------------------------------------------------------------- rejoin
    async def _start_rejoin(self, why: str) -> None:
        """This emptied node was started with --rejoin-empty: record that it rejoins, then start doing so."""
        async with self._rejoin_lock:
            if self.rejoin is not None:
                return  # another connection's identity started it meanwhile
            replaces = tuple(remembered_instead(self.membership, self._heard))
            self.stays_out = None  # (it held, among new peers, until a member that kept its data dialled in)
            log.warning("%s: %s -- with --rejoin-empty it has the cluster remove its id and add it again "
                        "(replacing incarnation %s), and votes nothing until it has caught up past that",
                        self.id, why.split(";")[0], ", ".join(replaces))
            if await self._save_rejoin(Rejoin(REMOVE, replaces)):
                assert self._nursery is not None, "identities arrive once the node serves"
                self._nursery.start_soon(self._rejoin)

    async def _rejoin(self) -> None:
        """Have the cluster remove this node's id and add it again (smr.net._rejoin), then join if dialled."""
        from ._client import open_tcp_client  # it imports this module

        state = self.rejoin
        assert state is not None
        try:
            async with open_tcp_client(self.config, prefix=f"rejoin-{self.id}") as cluster:
                await rejoin(self.id, format_address(self.me), state, cluster, lambda: point_past(cluster),
                             self._save_rejoin_or_wait)
        except ConfigError as exc:  # e.g. TLS without client credentials: say so, stay out, keep serving
            self.stays_out = f"cannot rejoin: {exc}"
            log.error("%s: cannot rejoin with --rejoin-empty: %s; it stays out", self.id, exc)
            return
        await self._rejoin_heard()  # members may have dialled meanwhile

    async def _rejoin_heard(self) -> None:
        """A peer said who it is while this node rejoins: note more replaced incarnations, or join once added."""
        async with self._rejoin_lock:
            state = self.rejoin
            if state is None or not self.rejoin_empty or self.membership.joined:
                return
            if state.stage == REMOVE:  # what members remember of this id before its removal is what it replaces
                more = [i for i in remembered_instead(self.membership, self._heard) if i not in state.replaces]
                if more:
                    await self._save_rejoin(attrs.evolve(state, replaces=(*state.replaces, *more)))
                return
            if state.stage != ADDED:
                return
            verdict, why = admission(self.membership, self.peers, self._heard, added=True, replaces=state.replaces)
            if verdict == JOIN:
                storage = self.storage
                assert storage is not None, "identities arrive once the storage is open"
                try:
                    async with self._disk:
                        durable = storage.load()
                except DISK_ERRORS as exc:
                    log.error("%s: cannot read its storage to rejoin (%s); the next member to dial in asks again",
                              self.id, exc)
                    return
                try:
                    await self._recover(durable)  # a rejoining core (rejoin_after): it votes nothing before its removal
                except DiskFault as exc:  # as at start: it sits out until the disk takes writes
                    self._fault = exc
                self.membership.remember_forgotten(self.id, list(state.replaces))  # told to every peer it dials
                await self._join(self._members_heard(), f"rejoined: {why}")
            elif verdict == STAY_OUT and self.stays_out is None:
                self.stays_out = why  # a member remembers an incarnation of this id that is neither it nor replaced
                log.error("%s: staying out of the cluster: %s", self.id, why)

    async def _save_rejoin(self, state: Rejoin) -> bool:
        """Record ``state`` (before acting on it) and make it this node's; False if the disk refused."""
        if not await self._save_meta(state.rows()):
            return False
        self.rejoin = state
        return True

    async def _save_rejoin_or_wait(self, state: Rejoin) -> Rejoin:
        """Record ``state``, waiting for the disk to take it (nothing goes on before it is recorded); return
        what was recorded: ``state`` with every replaced incarnation noted meanwhile (``_rejoin_heard``)."""
        while True:
            async with self._rejoin_lock:  # (not held while the disk refuses: peers' handshakes go on)
                if self.rejoin is not None:
                    state = attrs.evolve(state, replaces=tuple(dict.fromkeys((*state.replaces,
                                                                              *self.rejoin.replaces))))
                if await self._save_rejoin(state):
                    return state
            await trio.sleep(DISK_RETRY_S)

    async def _join(self, members: dict[str, str], why: str) -> None:
        """Record that this node has joined its cluster (with its peers' incarnations) and start voting."""
        self.membership.members = dict(members)
        self.membership.joined = True
        if not await self._save_membership():
            self.membership.joined = False  # not recorded: not joined; the next peer to dial asks again
            return
        self.stays_out = None
        self._admitted.set()
        log.info("%s: joined the cluster as incarnation %s (%s)", self.id, self.membership.incarnation, why)

    async def _save_membership(self) -> bool:
        """Write this node's identity to its storage (in turn with every other write); False if the disk refused."""
        return await self._save_meta(self.membership.rows())

    async def _save_meta(self, rows: dict[str, str]) -> bool:
        """Write ``rows`` into the storage's meta (in turn with every other write); False if the disk refused."""
        storage = self.storage
        assert storage is not None, "identity and rejoin state are read from the open storage first"
        async with self._disk:
            try:
                storage.set_meta(rows)
            except DISK_ERRORS as exc:
                log.error("%s: could not record this node's identity: %s", self.id, exc)
                return False
        return True

    async def _sit_out(self, fault: "DiskFault") -> None:
        """The disk refused a write: promise nothing until a write succeeds, then restart the core from disk.

        The failed batch's messages and replies were never released (only a
        leader's eager replication, which counts for nothing until its own
        write is durable), so dropping the core's memory loses no promise: it
        is a crash and a restart, without the process exiting.  Meanwhile
        peer messages and ticks are dropped and client requests are told to
        look elsewhere.
        """
        self.counters["disk_faults"] += 1
        self.disk_fault = str(fault)
        # A disk that fills again soon after it took a write: wait longer each time, say it once.
        again = trio.current_time() - self._recovered_at < DISK_STREAK_S
        self._disk_retry = min(self._disk_retry * 2, DISK_RETRY_MAX_S) if again else DISK_RETRY_S
        (log.info if again else log.error)(
            "%s: the disk refused a write%s (%s); this node votes, accepts and answers nothing until a write "
            "succeeds again (checked every %g s)", self.id, " again" if again else "", fault, self._disk_retry)
        storage = self.storage
        assert storage is not None, "a disk fault comes from the open storage"
        while True:
            with trio.move_on_after(self._disk_retry):
                while True:
                    self._drop_input(await self._events.receive(), "inputs_dropped_disk_fault")
            try:
                async with self._disk:
                    await trio.to_thread.run_sync(storage.probe)
                    durable = storage.load()
            except DISK_ERRORS:
                continue
            break
        log.warning("%s: the disk takes writes again after %s; restarting the replica from disk", self.id,
                    self.disk_fault)
        self.disk_fault = None
        self._recovered_at = trio.current_time()
        await self._recover(durable)

    def _unorderable(self, request: ClientRequest, size: int) -> str | None:
        """Why ``request`` cannot enter the log at all, or None.

        An empty client id is the leader's own no-op (it has no session); a
        request too big to leave room for the replication message around it
        would be appended and then never sent to a follower.
        """
        if not request.client_id:
            return "a request needs a client id (the empty id is reserved)"
        if size > self._request_limit:
            return (f"a request of {size} bytes leaves no room in max_frame_bytes ({self.config.max_frame_bytes}) "
                    f"for the replication message around it")
        return None

    async def submit_local(self, request: ClientRequest, size: int) -> None:
        """Hand a request from a caller in this process straight to the core (no frame, no hop).

        ``size`` is its encoded size, checked like a remote request's; the
        answer goes to :attr:`local_replies`.
        """
        self.counters["local_requests"] += 1
        if self.stopped:  # retired: this node answers nothing any more
            self._send_reply(reply_to(request, ReplyStatus.REDIRECT))
            return
        problem = self._unorderable(request, size)
        if problem is not None:
            self.counters["commands_refused"] += 1
            self._send_reply(reply_to(request, ReplyStatus.FAIL, problem))
            return
        await self._enqueue(request)

    # ----------------------------------------------------------- peers (out)
    def _members(self) -> tuple[str, ...]:
        """The nodes of the configuration in effect (the original voters for a core without membership)."""
        membership = getattr(self.driver.core, "membership", None) if self.driver is not None else None
        return self.config.initial_voters if membership is None else tuple(membership.members)

    def _peer_address(self, peer: str) -> NodeAddress | None:
        """Where ``peer`` listens: the cluster file's address, else the configuration's (a node added at run time)."""
        try:
            return self.config.address(peer)
        except ConfigError:
            pass
        membership = getattr(self.driver.core, "membership", None) if self.driver is not None else None
        text = None if membership is None else membership.address_of(peer)
        if text is None:
            text = self._addresses.get(peer)
        if text is None:
            return None
        try:
            host, port = parse_address(text)
        except ValueError as exc:
            if peer not in self._unroutable_logged and len(self._unroutable_logged) < MAX_PEERS:
                self._unroutable_logged.add(peer)
                log.error("%s: cannot dial %s: %s", self.id, peer, exc)
            return None
        return NodeAddress(peer, host, port)

    def _open_peer(self, peer: str) -> trio.MemorySendChannel[bytes] | None:
        """The queue of messages for ``peer``, starting its sender if need be; None if it cannot be dialled."""
        out = self._peer_out.get(peer)
        if out is not None:
            return out
        address = self._peer_address(peer) if peer != self.id else None
        if address is None or self._nursery is None or len(self._peer_out) >= MAX_PEERS:
            return None
        out, queue = trio.open_memory_channel[bytes](PEER_QUEUE)
        self._peer_out[peer] = out
        self._nursery.start_soon(self._peer_sender, address, out, queue)
        return out

    def _follow_membership(self) -> None:
        """After a batch: dial the members of a new configuration; note if this node has left the cluster."""
        core = self.driver.core if self.driver is not None else None
        membership = getattr(core, "membership", None)
        if membership is not None and membership is not self._membership_seen:
            self._membership_seen = membership
            for node, address in membership.addresses:
                self._addresses.pop(node, None)
                self._addresses[node] = address  # the newest last
            while len(self._addresses) > MAX_PEERS:
                del self._addresses[next(iter(self._addresses))]
            for peer in membership.members:
                if peer != self.id:
                    self._open_peer(peer)
        if self.rejoin is not None and self.rejoin.stage == ADDED and self._admitted.is_set() \
                and not self._readmitted_said and getattr(core, "readmitted", True):
            self._readmitted_said = True  # the index its core was built to wait for (rejoin_after)
            log.info("%s: rejoined: it has applied the log past its re-adding (index %d): it votes and accepts "
                     "again where a configuration names it", self.id, getattr(getattr(core, "config", None),
                                                                              "rejoin_after", 0))
        if not self.retired.is_set() and getattr(core, "retired", False):
            self.counters["retired"] = 1
            log.warning("%s: a committed configuration no longer names this node: it has left the cluster and "
                        "stops in %g s", self.id, RETIRE_GRACE_S)
            self.retired.set()

    async def _stop_once_retired(self, scope: trio.CancelScope) -> None:
        """Once this node has left the cluster, serve a moment longer (its last answers leave), then stop."""
        await self.retired.wait()
        await trio.sleep(RETIRE_GRACE_S)
        log.info("%s: stopped: removed from the cluster", self.id)
        self.stopped = True
        scope.cancel()

    def _peer_wanted(self, peer: str) -> bool:
        """True while this node keeps a sender to ``peer``: it is a member of the configuration in effect."""
        return peer in self._members()

    def _peer_event(self, peer: str) -> trio.Event:
        event = self._peer_up.get(peer)
        if event is None:
            event = self._peer_up[peer] = trio.Event()
        return event

    async def _peer_sender(self, peer: NodeAddress, out: trio.MemorySendChannel[bytes],
                           queue: trio.MemoryReceiveChannel[bytes]) -> None:
        """Dial ``peer`` and send it what queues for it, redialling with back-off; ends once it has left."""
        try:
            await self._dial_and_send(peer, queue)
        finally:
            if self._peer_out.get(peer.id) is out:
                del self._peer_out[peer.id]
            out.close()
            self._discard(queue)

    async def _dial_and_send(self, peer: NodeAddress, queue: trio.MemoryReceiveChannel[bytes]) -> None:
        backoff = BACKOFF_MIN_S
        key = self.credentials.peer
        assert key is not None, "a node's credentials come from the cluster secret"
        tls = None if self._tls is None else self._tls.dial
        said_refused = False
        while True:
            if not self._peer_wanted(peer.id) and self._idle(queue):
                log.info("%s: no longer dialling %s (not a member)", self.id, peer.id)
                return
            try:
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    conn, hello = await connect(peer.host, peer.port, key, "peer", self.id,
                                                self.config.max_frame_bytes, tls=tls)
                if hello.id != peer.id:
                    await conn.aclose()
                    raise FrameError("unexpected", f"{peer.host}:{peer.port} is {hello.id!r}, not {peer.id!r}")
            except UNREACHABLE as exc:
                if isinstance(exc, FrameError):
                    self.refused[exc.reason] += 1
                if isinstance(exc, AuthenticationError):
                    self.counters["peer_auth_refused"] += 1
                    if not said_refused:  # once until it lets us in: it is a configuration, not an event
                        said_refused = True
                        log.error("%s: %s refused us as a peer: %s; do both use the same cluster file?",
                                  self.id, peer.id, exc)
                self.counters["peer_connect_failures"] += 1
                self._discard(queue)
                with trio.move_on_after(backoff * random.uniform(0.5, 1.0)):
                    await self._peer_event(peer.id).wait()  # it dialled us: it is listening now
                self._peer_up[peer.id] = trio.Event()
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            said_refused = False
            self.counters["peer_connects"] += 1
            log.info("%s: connected to %s", self.id, peer.id)
            try:
                async with conn.stream:
                    await conn.send([wire.encode(self.membership.identity())])  # who dials, first
                    while True:
                        bodies: list[bytes] | None = None
                        with trio.move_on_after(PEER_IDLE_S):
                            bodies = await next_batch(queue)
                        if bodies is None:
                            if not self._peer_wanted(peer.id):
                                log.info("%s: no longer dialling %s (not a member)", self.id, peer.id)
                                return
                            continue
                        await conn.send(bodies)
                        self.counters["frames_out"] += len(bodies)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self.counters["peer_disconnects"] += 1
                log.info("%s: lost connection to %s", self.id, peer.id)

    @staticmethod
    def _idle(queue: trio.MemoryReceiveChannel[bytes]) -> bool:
        """True if nothing waits in ``queue``."""
        return queue.statistics().current_buffer_used == 0

    def _discard(self, queue: trio.MemoryReceiveChannel[bytes]) -> None:
        while True:
            try:
                queue.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            self.counters["messages_dropped"] += 1

    # ------------------------------------------------------------ connections
    def _refuse(self, exc: FrameError, who: str) -> None:
        self.refused[exc.reason] += 1
        if not self._refusal_log.note(trio.current_time(), exc.reason, "%s: refused a frame from %s: %s",
                                      self.id, who, exc):
            self.counters["refusals_not_logged"] += 1

    def _refuse_connection(self, limit: str, value: int, who: str) -> None:
        """Count (and maybe log) a connection closed because the node is at ``limit`` (= ``value``)."""
        self.counters["connections_refused"] += 1
        self.counters[f"connections_refused_{limit}"] += 1
        if not self._refusal_log.note(trio.current_time(), limit, "%s: refused a connection from %s: %s (%d) "
                                      "reached", self.id, who, limit, value):
            self.counters["refusals_not_logged"] += 1

    async def _refusal_summaries(self) -> None:
        """Once a window, sum up the refusals the window did not log."""
        while True:
            await trio.sleep(self._refusal_log.window_s)
            self._refusal_log.flush(trio.current_time())

    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        self.counters["connections"] += 1
        who = "?"
        if self._connections_open >= self.max_connections:
            try:
                who = "%s:%d" % stream.socket.getpeername()[:2]
                self._refuse_connection("max_connections", self.max_connections, who)
                if self._tls is None:  # in clear only: a TLS connector could not read it before the handshake
                    await send_refusal(stream, BUSY)
            except OSError:
                pass
            finally:
                await trio.aclose_forcefully(stream)
            return
        self._connections_open += 1
        client_slot = False
        try:
            who = "%s:%d" % stream.socket.getpeername()[:2]
            with trio.fail_after(HELLO_TIMEOUT_S):
                conn, hello = await receive_hello(stream, self.credentials, self.config.max_frame_bytes,
                                                  tls=None if self._tls is None else self._tls.server)
                who = f"{hello.role} {hello.id} ({who})"
                if hello.role == "peer":
                    problem = (f"{hello.id!r} is not a peer of {self.id}" if not self._may_peer(hello.id) else
                               "a peer must present a certificate the cluster's CA signed"
                               if self._tls is not None and not has_verified_certificate(conn.stream) else None)
                    if problem is not None:
                        await send_refusal(conn.stream, AUTH_FAILED)
                        raise FrameError("unexpected", problem)
                elif self._clients_open >= self.config.max_client_connections:
                    self._refuse_connection("max_client_connections", self.config.max_client_connections, who)
                    await send_refusal(conn.stream, BUSY)
                    return
                else:
                    client_slot = True
                    self._clients_open += 1
                await answer_hello(conn, self.credentials, self.id, hello, self.config.max_frame_bytes)
            conn.frame_timeout = self.config.frame_timeout_s
            if hello.role == "peer":
                self._peer_event(hello.id).set()
                with self._peer_connection(hello.id):
                    await self._read_peer(conn, hello.id)
            else:
                conn.idle_timeout = self.config.client_idle_timeout_s
                await self._serve_client(conn, who)
        except FrameError as exc:
            self._refuse(exc, who)
        except trio.TooSlowError:
            self._refuse(FrameError("truncated", "no complete hello in time"), who)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the other side went away; nothing to count
        finally:
            self._connections_open -= 1
            if client_slot:
                self._clients_open -= 1
            await trio.aclose_forcefully(stream)

    @contextmanager
    def _peer_connection(self, peer: str) -> Iterator[None]:
        """A scope for one connection from ``peer``; opening one beyond the limit closes the oldest.

        A peer dials once and redials when its connection breaks, so the
        newest is the one it uses; an older one may linger where the break
        was never seen (no FIN).  Replacing beats refusing: a refused redial
        would cut the peer off until the stale connection closed.
        """
        scope = trio.CancelScope()
        held = self._peer_connections[peer]
        held.append(scope)
        while len(held) > self.config.max_connections_per_peer:
            held.pop(0).cancel()
            self.counters["peer_connections_replaced"] += 1
        try:
            with scope:
                yield
        finally:
            if scope in held:
                held.remove(scope)

    def _may_peer(self, node: str) -> bool:
        """True if ``node`` may connect as a peer: the cluster file or the configuration in effect names it."""
        if node == self.id:
            return False
        try:
            self.config.address(node)
            return True
        except ConfigError:
            return node in self._members()

    async def _read_peer(self, conn: FramedConnection, src: str) -> None:
        first = await conn.receive()
        if first is None:
            return
        self.counters["frames_in"] += 1
        peer = decode_message(first)
        if not isinstance(peer, Identity) or peer.node != src:
            raise FrameError("unexpected", f"a peer connection from {src} must open with its Identity")
        if await self._on_identity(peer) is not None:
            return  # refused: closing the connection keeps everything it says from the core
        while True:
            body = await conn.receive()
            if body is None:
                return
            self.counters["frames_in"] += 1
            msg = decode_message(body)
            if isinstance(msg, (ClientRequest, Reply, StatusQuery, StatusReport, RequestBatch, ReplyBatch, Identity)):
                raise FrameError("unexpected", f"{type(msg).__name__} on a peer connection")
            await self._enqueue(Receive(src, msg))

    async def _serve_client(self, conn: FramedConnection, who: str) -> None:
        out_send, out_recv = trio.open_memory_channel[Reply | bytes](CLIENT_QUEUE)
        mine: set[str] = set()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._client_writer, conn, out_recv, nursery.cancel_scope)
            try:
                await self._read_client(conn, out_send, mine)
            except FrameError as exc:  # handled here: nursery errors would arrive grouped
                self._refuse(exc, who)
            except IdleConnection:
                self.counters["idle_closed"] += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                for client_id in mine:
                    outs = self._clients.get(client_id)
                    if outs is not None and out_send in outs:
                        outs.remove(out_send)
                        if not outs:
                            del self._clients[client_id]
                out_send.close()
                nursery.cancel_scope.cancel()

    async def _read_client(self, conn: FramedConnection, out: trio.MemorySendChannel[Reply | bytes],
                           mine: set[str]) -> None:
        limit = self._request_limit
        while True:
            body = await conn.receive()
            if body is None:
                return
            self.counters["frames_in"] += 1
            msg = decode_message(body)
            if isinstance(msg, ClientRequest):
                await self._client_request(msg, len(body), out, mine)
            elif isinstance(msg, RequestBatch):
                self.counters["request_batches"] += 1
                for request in msg.requests:  # sized one by one only if the batch could hide a huge one
                    size = len(wire.encode(request)) if len(body) > limit else 0
                    await self._client_request(request, size, out, mine)
            elif isinstance(msg, StatusQuery):
                try:
                    out.send_nowait(wire.encode(self.report()))  # small: a few counters
                except trio.WouldBlock:
                    self.counters["replies_dropped"] += 1
            else:
                raise FrameError("unexpected", f"{type(msg).__name__} on a client connection")

    async def _client_request(self, request: ClientRequest, size: int,
                              out: trio.MemorySendChannel[Reply | bytes], mine: set[str]) -> None:
        """Route ``request``'s answer to ``out`` and queue it for the core, or refuse it before the log."""
        self.counters["client_requests"] += 1
        outs = self._clients.get(request.client_id)
        if outs is None:
            self._clients[request.client_id] = [out]
        elif out not in outs:
            if len(outs) >= MAX_CONNECTIONS_PER_SESSION:
                del outs[0]  # the longest-held connection stops hearing this session's answers
            outs.append(out)
        mine.add(request.client_id)
        problem = self._unorderable(request, size)
        if problem is not None:  # it could never be replicated: refuse it before the log
            self.counters["commands_refused"] += 1
            self._send_reply(reply_to(request, ReplyStatus.FAIL, problem))
            return
        # Whatever the command does, it may enter the log: a bad one is an error outcome
        # on every replica (smr.sessions.run_command), never a crash.
        await self._enqueue(request)

    async def _client_writer(self, conn: FramedConnection, queue: trio.MemoryReceiveChannel[Reply | bytes],
                             scope: trio.CancelScope) -> None:
        try:
            while True:
                items = await next_batch(queue)
                bodies: list[bytes] = []
                replies: list[Reply] = []
                for item in items:  # replies queued together travel together; status reports as they are
                    if isinstance(item, Reply):
                        replies.append(item)
                        continue
                    if replies:
                        bodies.extend(self._reply_frames(replies))
                        replies = []
                    bodies.append(item)
                if replies:
                    bodies.extend(self._reply_frames(replies))
                await conn.send(bodies)
                self.counters["frames_out"] += len(bodies)
        except trio.EndOfChannel:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            scope.cancel()


async def serve(config: ClusterConfig, node: str, data_dir: str | Path, *,
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Run replica ``node`` of ``config`` with storage in ``data_dir`` until cancelled."""
    await NodeServer(config, node, data_dir).run(task_status=task_status)

