"""The deterministic simulator: one seeded event queue, no threads, no trio.

Everything that happens in a run -- a message arriving, a tick, a disk sync
completing, a client timing out, a fault -- is an event in one heap ordered by
(virtual time, sequence number).  All randomness comes from generators seeded
from the run's seed, so the same config and seed give a byte-identical trace.

The runtime keeps the replica contract of :mod:`smr.replica`: a batch's writes
are synced before its messages, replies and commits are released, and batches
of one node are released in order.  A batch's ``eager`` messages (a leader's
replication of entries it is still writing) leave at once; its ``after_sync``
input is stepped when its writes are synced.  A crash loses the node's
volatile state and, if the disk model says so, a random suffix of its writes
not yet synced -- and with them the ``after_sync`` inputs not yet stepped.
Each core is stepped through a :class:`smr.driver.Driver` (Start first, remote
errors counted, leader changes noticed) and every commit is checked by one
:class:`smr.driver.CommitLedger`, as in every other runtime.

Membership changes in the schedule are carried out by an admin client
(:mod:`smr.sim.admin`), so nodes appear and leave mid-run: every per-node
structure (links, disks, clocks, counters, the ledger, partitions, the leader
search, traces) takes a node started mid-run like one of the first, and a
message to a node that does not exist or was stopped for good is dropped.
"""

from __future__ import annotations

import functools
import heapq
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from ..commands import Command
from ..driver import CommitLedger, Driver, current_leader
from ..errors import RemoteProtocolError
from ..history import HistoryRecorder, Operation
from ..replica import (ClientRequest, Ready, ReplicaConfig, ReplicaCore, ReplicaStatus, Receive, Reply,
                       ReplyStatus, Start, TICK, Write, get_backend)
from ..apps import resolve_app
from ..client import opens_session
from ..machine import CommandError, SessionExpired
from ..wire import encode
from .admin import AdminClient, ChangeRecord, supports_membership
from .config import MEMBERSHIP_ACTIONS, STORAGE_ACTIONS, STORAGE_DAMAGE, FaultEvent, SimConfig
from .disk import JOURNAL_BATCHES, DiskState
from .faults import draw_swarm
from .metrics import Counters
from .tracefmt import describe

_DELIVER, _TICK, _RELEASE, _CLIENT_TIMEOUT, _CLIENT_NEXT, _FAULT, _CLIENT_RESEND, _ARRIVAL, _ADMIN, _STOP = range(10)


class SafetyViolation(AssertionError):
    """A protocol or contract invariant failed during a simulated run."""


@attrs.define
class SimNode:
    """The simulator's view of one replica: its core (and the driver stepping it), disk and liveness."""

    id: str
    tick_ms: float
    core: ReplicaCore | None = None
    driver: Driver[ReplicaCore] | None = None
    alive: bool = False
    #: Stopped for good: removed from the cluster (it never restarts).
    gone: bool = False
    #: Its core reported ``retired``; it is stopped shortly.
    retiring: bool = False
    incarnation: int = 0
    durable: dict[str, Any] = attrs.field(factory=dict)
    unsynced: list[Write] = attrs.field(factory=list)
    release_at: float = 0.0
    pending_releases: int = 0
    #: Draws how long this node's next sync takes (ms).
    sync_delay: Callable[[], float] = float
    #: Its disk's faults: damage not yet found, a full disk, undo records for lost tails (smr.sim.disk).
    disk: DiskState = attrs.field(factory=DiskState)
    #: Why it stays out (its start found its durable state damaged), until it is removed and added again.
    out: str | None = None
    #: It rejoins empty under the id of a removed node: the index its core waits for (``ReplicaConfig.rejoin_after``).
    rejoin_after: int = 0
    #: ... and the epoch it starts at (``ReplicaConfig.rejoin_epoch``).
    rejoin_epoch: int = 0


@attrs.define
class SimClient:
    """A closed-loop client: one operation outstanding, retried with the same sequence number."""

    id: str
    index: int
    seq: int = 0
    op_id: int | None = None
    command: Command | None = None
    timeouts: int = 0
    redirects: int = 0
    target: int = 0
    leader: str | None = None
    token: int = 0
    stopped: bool = False
    one_shot: bool = False
    acked: int = 0


@attrs.frozen
class SimResult:
    """What a run produced: trace, counters, history, commits and any violation."""

    seed: int
    config: SimConfig
    trace: tuple[str, ...]
    counters: Counters
    history: tuple[Operation, ...]
    committed: dict[int, Any]
    violations: tuple[str, ...]
    leader_changes: int
    end_time: float
    statuses: tuple[ReplicaStatus, ...]
    swarm: str | None = None
    #: The membership changes of the run, in the order the admin client carried them out.
    changes: tuple[ChangeRecord, ...] = ()

    @property
    def ok(self) -> bool:
        """True if no invariant was violated."""
        return not self.violations

    @property
    def replay(self) -> str:
        """The one command that replays this run."""
        return self.config.replay_command(self.seed)


class Simulation:
    """One seeded run of a backend under a network, disk, client and fault model."""

    def __init__(self, config: SimConfig, seed: int,
                 on_step: Callable[["Simulation", str], None] | None = None,
                 timeline: bool = False) -> None:
        self.config = config
        #: Structured events for space-time diagrams (see smr.lamport), when asked for.
        self.timeline: list[tuple[Any, ...]] | None = [] if timeline else None
        self.seed = seed
        self.backend = get_backend(config.backend)
        self.options = {**self.backend.options, **config.backend_options}
        self.invariants = self.backend.invariants() if self.backend.invariants is not None else None
        self.net_rng = random.Random(f"{seed}/network")
        self.fault_rng = random.Random(f"{seed}/faults")
        self.client_rng = random.Random(f"{seed}/clients")
        self.on_step = on_step
        self.now = 0.0
        self._queue: list[tuple[Any, ...]] = []
        self._seq = 0
        self.trace: list[str] | None = [] if config.trace else None
        self._logging = config.trace or timeline  # skip formatting lines nobody keeps
        self.counters = Counters()
        self.history = HistoryRecorder()
        #: The canonical commit history every replica must agree with.
        self.ledger = CommitLedger(SafetyViolation)
        self.committed: dict[int, Any] = self.ledger.entries
        self.violations: list[str] = []
        self.leader_changes = 0
        self.cut: set[tuple[str, str]] = set()
        self.network = config.network
        self.lose_unsynced = config.disk.lose_unsynced
        self.swarm_note: str | None = None
        faults: Iterable[FaultEvent] = config.faults
        if config.swarm:
            drawn = draw_swarm(config, random.Random(f"{seed}/swarm"))
            self.network, self.lose_unsynced, faults = drawn.network, drawn.lose_unsynced, drawn.faults
            self.swarm_note = drawn.describe()
        faults = tuple(faults)
        #: Storage faults in the schedule: full disks are looked for, lost tails need undo records.
        self._storage = any(f.action in STORAGE_ACTIONS for f in faults)
        self._journal = any(f.action == "lose_tail" for f in faults)
        #: A node found damaged comes back empty through a membership change (``smr serve --rejoin-empty``).
        self._rejoin = (any(f.action in STORAGE_DAMAGE for f in faults) and config.disk.checks
                        and config.disk.rejoin and supports_membership(config.backend))
        self._link_delay: dict[tuple[str, str], Callable[[], float]] = {
            (link.src, link.dst): link.latency.sampler(self.net_rng) for link in self.network.links}
        self._default_delay = self.network.latency.sampler(self.net_rng)
        self._sync_delay = config.disk.sync.sampler(self.net_rng)
        self._link_last: dict[tuple[str, str], float] = {}
        self.workload = workload_for(config)
        #: The state-machine class every replica runs (the config's app, else the workload's).
        self.app = resolve_app(config.state_machine or self.workload.state_machine)
        self._skew_rng = random.Random(f"{seed}/skew")
        #: Every node of the run, those stopped for good included.
        self.nodes: dict[str, SimNode] = {}
        for node_id in config.node_ids:
            self._new_node(node_id)
        #: The nodes of the cluster now, up or down (not those stopped for good), in the order they started.
        self.node_ids: tuple[str, ...] = config.node_ids
        #: The cluster's first voters (every node started mid-run is given them).
        self.initial_voters = config.node_ids
        #: The groups of the partition in force (None: none, or a bridge), so a node started mid-run joins one.
        self._groups: list[list[str]] | None = None
        self.admin: AdminClient | None = None
        #: Every admin client: the one that carries changes out in order, and one per change sent at once.
        self.admins: list[AdminClient] = []
        self._membership = any(f.action in MEMBERSHIP_ACTIONS for f in faults)
        self.clients = [SimClient(f"c{i}", i, target=i - 1) for i in range(1, config.clients.count + 1)]
        self._client_by_id = {c.id: c for c in self.clients}
        self._client_stop = config.clients.stop_ms if config.clients.stop_ms is not None else config.duration_ms
        self._faults = sorted(faults, key=lambda f: f.at)
        self._membership = self._membership or self._rejoin
        if self._membership:
            self.admin = AdminClient(self)
            self.admins.append(self.admin)

    # ---------------------------------------------------------------- queue
    def _push(self, time: float, kind: int, a: Any = None, b: Any = None, c: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, a, b, c))

    def _log(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(f"t={self.now:.3f} {text}")
        if self.timeline is not None:
            self.timeline.append(("log", self.now, text))

    # ------------------------------------------------------------------ run
    @property
    def faults(self) -> tuple[FaultEvent, ...]:
        """The run's fault schedule in time order (for a swarm run: the one drawn from the seed)."""
        return tuple(self._faults)

    def run(self, until_ms: float | None = None) -> SimResult:
        """Run to the configured duration (or the first violation) and return the result.

        With ``until_ms`` the run stops early, at that simulated time: everything up to
        it is exactly what the full run does (unlike shortening ``duration_ms``, which
        moves swarm faults and the clients' stop).
        """
        if self.trace is not None:
            self.trace.append(f"# seed={self.seed} backend={self.config.backend} nodes={self.config.nodes} "
                              f"clients={self.config.clients.count} workload={self.config.clients.workload}")
            if self.swarm_note:
                self.trace.append(f"# {self.swarm_note}")
        for node_id in self.node_ids:
            self._boot(node_id)
        for fault in self._faults:
            self._push(fault.at, _FAULT, fault)
        if self.config.clients.mode == "open":
            self.clients = []
            self._push(0.0, _ARRIVAL)
        else:
            for client in self.clients:
                self._push(0.0, _CLIENT_NEXT, client)
        end = self.config.duration_ms if until_ms is None else min(until_ms, self.config.duration_ms)
        queue = self._queue
        pop = heapq.heappop
        counters = self.counters
        try:
            while queue:
                event = queue[0]
                if event[0] > end:
                    break
                pop(queue)
                self.now = event[0]
                counters.events += 1
                kind = event[2]
                if kind == _DELIVER:
                    self._deliver(event[3], event[4], event[5])
                elif kind == _TICK:
                    node = event[3]
                    if node.alive and node.incarnation == event[4]:
                        self._step(node, TICK)
                        self._push(self.now + node.tick_ms, _TICK, node, node.incarnation)
                elif kind == _RELEASE:
                    self._release(event[3], event[4], event[5])
                elif kind == _CLIENT_TIMEOUT:
                    self._client_timeout(event[3], event[4])
                elif kind == _CLIENT_NEXT:
                    self._client_next(event[3])
                elif kind == _CLIENT_RESEND:
                    client = event[3]
                    if client.token == event[4]:
                        self._client_send(client)
                elif kind == _ARRIVAL:
                    self._arrival()
                elif kind == _ADMIN:
                    event[4].on_timer(event[3])
                elif kind == _STOP:
                    node = event[3]
                    if node.incarnation == event[4] or not node.alive:
                        self.stop_node(node.id, "its core reports it retired")
                else:
                    self._fault(event[3])
        except SafetyViolation as exc:
            self.violations.append(str(exc))
            self._log(f"VIOLATION {exc}")
        self.now = min(self.now, end) if not self.violations else self.now
        if not self.violations:
            self._check_states_agree()
        statuses = tuple(self._live_statuses())
        return SimResult(self.seed, self.config, tuple(self.trace or ()), counters,
                         tuple(self.history.finish()), dict(self.committed), tuple(self.violations),
                         self.leader_changes, self.now, statuses, self.swarm_note,
                         tuple(sorted((r for a in self.admins for r in a.finish()),
                                      key=lambda r: r.requested_at)))

    def _check_states_agree(self) -> None:
        """Live replicas that applied the same number of entries must hold the same state.

        Their logs agree (the ledger checks every commit); so a difference here
        means the state machine is not deterministic -- it read a clock, a
        random number or anything else outside the command.
        """
        by_count: dict[int, tuple[str, bytes]] = {}
        for node in self.nodes.values():
            applier = getattr(node.core, "applier", None) if node.alive else None
            if applier is None:
                continue
            try:
                state = applier.snapshot()  # the machine and the session table
            except Exception as exc:  # a user's snapshot failing is a finding, not a crash
                self.violations.append(f"{node.id}: {self.app.name}.snapshot() raised {type(exc).__name__}: {exc}")
                return
            seen = by_count.setdefault(applier.applied, (node.id, state))
            if seen[1] != state:
                self.violations.append(
                    f"replicas {seen[0]} and {node.id} applied the same {applier.applied} entries but hold "
                    f"different {self.app.name} states: is the state machine deterministic?")
                return

    # ---------------------------------------------------------------- nodes
    def _new_node(self, node_id: str) -> SimNode:
        """The simulator's record of a node: its clock rate and its disk (empty)."""
        config = self.config
        skew = 1.0 + self._skew_rng.uniform(-config.clock_skew, config.clock_skew)
        own_disk = config.disk.nodes.get(node_id)
        node = SimNode(node_id, config.tick_ms * skew, sync_delay=self._sync_delay if own_disk is None
                       else own_disk.sampler(self.net_rng))
        if self._journal:
            node.disk.journal = deque(maxlen=JOURNAL_BATCHES)
        self.nodes[node_id] = node
        return node

    def _boot(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.incarnation += 1
        node.alive = True
        node.release_at = self.now
        node.pending_releases = 0
        node.retiring = False
        self.ledger.boot(node_id)
        peers = tuple(n for n in self.node_ids if n != node_id)
        rng = random.Random(f"{self.seed}/{node_id}/{node.incarnation}")
        node.core = self.backend.factory(
            ReplicaConfig(node_id, peers, rng, self.app, self.options, tick_ms=node.tick_ms,
                          initial_voters=self.initial_voters, rejoin_after=node.rejoin_after,
                          rejoin_epoch=node.rejoin_epoch))
        node.driver = Driver(node.core, node_id, on_reject=self._reject)
        watch = getattr(node.core, "watch_executions", None)
        if watch is not None and self.config.check_invariants:
            watch(functools.partial(self._ran_twice, node_id))
        self._step(node, Start(dict(node.durable)))
        # Stagger first ticks by a random fraction so nodes are not in lock-step.
        first = self.now + node.tick_ms * self.net_rng.random()
        self._push(first, _TICK, node, node.incarnation)

    def _reject(self, node_id: str, exc: RemoteProtocolError) -> None:
        self.counters.remote_errors += 1
        self._log(f"{node_id} REJECT {exc}")

    def _ran_twice(self, node_id: str, what: str) -> None:
        """A state machine of ``node_id`` was about to run a client request a second time."""
        raise SafetyViolation(f"{node_id}: {what}")

    def _step(self, node: SimNode, event: Any) -> None:
        driver = node.driver
        assert driver is not None, f"{node.id} is down"
        self._stepped(node, driver, driver.step(event))

    def _synced(self, node: SimNode, ready: Ready) -> None:
        """``ready``'s writes are durable: step its ``after_sync`` into the node's core.

        A Synced that returns nothing only moved the leader's count of its own
        copy (a commit it makes shows in ``committed``), so the per-step checks
        are skipped for it: most Synced steps find no quorum waiting on them.
        """
        driver = node.driver
        assert driver is not None, f"{node.id} is down"
        after = driver.synced(ready)
        if after or self.on_step is not None:
            self._stepped(node, driver, after)

    def _stepped(self, node: SimNode, driver: Driver[ReplicaCore], ready: Ready) -> None:
        """Handle the batch a step of ``node`` returned, then run the per-step checks."""
        if driver.rejected:
            return  # counted and logged by _reject
        if ready:
            became_leader = driver.became_leader  # (a step nested in _handle resets the driver's)
            self._handle(node, ready)
            if became_leader is not None:
                self.leader_changes += 1
                self._log(f"{node.id} LEADER epoch={became_leader}")
        if self.invariants is not None and self.config.check_invariants:
            try:
                self.invariants({n.id: n.core for n in self.nodes.values() if n.alive})
            except AssertionError as exc:
                raise SafetyViolation(f"{self.config.backend} invariant: {exc}") from None
        if self.on_step is not None:
            self.on_step(self, node.id)

    def _handle(self, node: SimNode, ready: Ready) -> None:
        if ready.eager:
            src = node.id
            for send in ready.eager:  # they may leave before this batch's writes are durable
                self._send(src, send.dst, send.message)
        if ready.persist:
            if self._storage and node.disk.full_until > self.now:
                self._disk_refused(node)
                return
            node.unsynced.extend(ready.persist)
            self.counters.writes += len(ready.persist)
            done = max(self.now, node.release_at) + node.sync_delay()
            node.release_at = done
            node.pending_releases += 1
            self._push(done, _RELEASE, node, node.incarnation, (ready, len(ready.persist)))
        elif node.pending_releases:
            # An earlier batch still waits for its sync: this one queues behind it
            # (same time or later; the heap's sequence number keeps the order).
            node.pending_releases += 1
            self._push(node.release_at, _RELEASE, node, node.incarnation, (ready, 0))
        else:
            self._emit(node, ready)

    def _release(self, node: SimNode, incarnation: int, payload: tuple[Ready, int]) -> None:
        if not node.alive or node.incarnation != incarnation:
            return  # the node crashed before the sync completed: nothing leaves
        ready, n_writes = payload
        node.pending_releases -= 1
        if n_writes:
            node.disk.sync(node.durable, node.unsynced[:n_writes])
            del node.unsynced[:n_writes]
            self.counters.syncs += 1
        self._emit(node, ready)

    def _emit(self, node: SimNode, ready: Ready) -> None:
        for c in ready.committed:
            self.ledger.record(node.id, c)
            if self.timeline is not None:
                self.timeline.append(("commit", self.now, node.id, c.index))
        if ready.committed and self._membership and not node.retiring and getattr(node.core, "retired", False):
            # Out of the configuration: it may still send this batch (a removed leader's last commit
            # index), then it stops for good, two ticks on.
            node.retiring = True
            self._log(f"{node.id} RETIRED")
            self._push(self.now + 2 * node.tick_ms, _STOP, node, node.incarnation)
        src = node.id
        for send in ready.messages:
            self._send(src, send.dst, send.message)
        for reply in ready.replies:
            self._send(src, reply.client_id, reply)
        if ready.after_sync is not None:
            self._synced(node, ready)

    # -------------------------------------------------------------- network
    def _send(self, src: str, dst: str, msg: Any) -> None:
        counters = self.counters
        name = type(msg).__name__
        counters.sent[name] += 1
        counters.sent_by_node[src] += 1
        if self.config.count_bytes:
            counters.bytes_sent[name] += len(encode(msg))
        if self.cut and (src, dst) in self.cut:
            counters.dropped[name] += 1
            if self.trace is not None:
                self._log(f"{src}->{dst} DROP(partition) {describe(msg)}")
            if self.timeline is not None:
                self.timeline.append(("msg", self.now, None, src, dst, name, describe(msg)))
            return
        network = self.network
        rng = self.net_rng
        if network.loss and rng.random() < network.loss:
            counters.dropped[name] += 1
            if self.trace is not None:
                self._log(f"{src}->{dst} DROP(loss) {describe(msg)}")
            if self.timeline is not None:
                self.timeline.append(("msg", self.now, None, src, dst, name, describe(msg)))
            return
        copies = 2 if network.duplicate and rng.random() < network.duplicate else 1
        if copies == 2:
            counters.duplicated[name] += 1
        delay_of = self._link_delay.get((src, dst), self._default_delay) if self._link_delay \
            else self._default_delay
        for _ in range(copies):
            at = self.now + delay_of()
            if network.reorder and rng.random() < network.reorder:
                at += rng.uniform(0.0, network.reorder_ms)  # explicitly out of order
            elif network.fifo:
                link = (src, dst)
                last = self._link_last.get(link, 0.0)
                if at < last:
                    at = last  # in order behind the previous message, as over TCP
                self._link_last[link] = at
            self._seq += 1
            heapq.heappush(self._queue, (at, self._seq, _DELIVER, src, dst, msg))
            if self.timeline is not None:
                self.timeline.append(("msg", self.now, at, src, dst, name, describe(msg)))

    def _deliver(self, src: str, dst: str, msg: Any) -> None:
        node = self.nodes.get(dst)
        name = type(msg).__name__
        if node is None:
            client = self._client_by_id.get(dst)
            admin = self._admin_of(dst)
            if client is None and admin is None:
                self.counters.dropped[name] += 1
                if self.trace is not None:
                    self._log(f"{src}->{dst} DROP(no such node) {describe(msg)}")
                return
            self.counters.delivered[name] += 1
            if self.trace is not None:
                self._log(f"{src}->{dst} {describe(msg)}")
            if client is not None:
                self._client_reply(client, msg)
            elif admin is not None:
                admin.on_reply(msg)
            return
        if not node.alive or (self.cut and (src, dst) in self.cut):
            self.counters.dropped[name] += 1
            if self.trace is not None:
                why = "gone" if node.gone else "down" if not node.alive else "partition"
                self._log(f"{src}->{dst} DROP({why}) {describe(msg)}")
            return
        self.counters.delivered[name] += 1
        self.counters.received_by_node[dst] += 1
        if self.trace is not None:
            self._log(f"{src}->{dst} {describe(msg)}")
        if src in self._client_by_id or (self.admins and self._admin_of(src) is not None):
            self._step(node, msg)
        else:
            self._step(node, Receive(src, msg))

    # -------------------------------------------------------------- clients
    def _client_next(self, client: SimClient) -> None:
        if self.now >= self._client_stop:
            client.stopped = True
            return
        command = self.workload.next_command(self.client_rng, client.index)
        client.seq += 1
        client.command = command
        client.op_id = self.history.invoke(client.id, command, self.now)
        client.timeouts = 0
        client.redirects = 0
        if self._logging:
            self._log(f"{client.id} INVOKE seq={client.seq} {command}")
        self._client_send(client)

    def _arrival(self) -> None:
        """Open loop: a fresh client issues one operation; the next arrives after an exponential gap."""
        if self.now >= self._client_stop:
            return
        index = len(self._client_by_id) + 1
        client = SimClient(f"o{index}", index, target=index - 1, one_shot=True)
        self._client_by_id[client.id] = client
        self._client_next(client)
        self._push(self.now + self.client_rng.expovariate(self.config.clients.rate_per_s / 1000.0), _ARRIVAL)

    def _client_send(self, client: SimClient) -> None:
        assert client.command is not None
        if client.leader is not None:
            target = client.leader
        else:
            target = self.node_ids[client.target % len(self.node_ids)]
        client.token += 1
        self._send(client.id, target, ClientRequest(client.id, client.seq, client.command, client.acked))
        self._push(self.now + self.config.clients.timeout_ms, _CLIENT_TIMEOUT, client, client.token)

    def _client_done(self, client: SimClient) -> None:
        client.op_id = None
        client.command = None
        client.token += 1
        if client.one_shot:
            client.stopped = True
        else:
            self._push(self.now + self.config.clients.think_ms, _CLIENT_NEXT, client)

    def _client_reply(self, client: SimClient, reply: Reply) -> None:
        if client.op_id is None or reply.seq != client.seq:
            return  # an answer to an attempt the client already gave up on
        if reply.status == ReplyStatus.ERROR and _session_expired(reply.result):
            # This attempt was not run, but an earlier one may have been: the outcome is unknown,
            # and the client carries on under a new session.
            self.history.unknown(client.op_id)
            client.id, client.acked = f"{client.id}'", 0  # seq runs on: late replies cannot match
            self._client_by_id[client.id] = client
            if self._logging:
                self._log(f"{client.id} SESSION EXPIRED -> UNKNOWN")
            self._client_done(client)
        elif reply.status == ReplyStatus.OK or reply.status == ReplyStatus.ERROR:
            # An error is an outcome too: the command ran (and raised) at one log index.
            self.history.ok(client.op_id, self.now, reply.result)
            if client.command is not None and opens_session(self.app, client.command):
                client.acked = client.seq
            if self._logging:
                status = "OK" if reply.status == ReplyStatus.OK else "ERROR"
                self._log(f"{client.id} {status} seq={client.seq} -> {reply.result!r}")
            self._client_done(client)
        elif reply.status == ReplyStatus.FAIL:
            self.history.fail(client.op_id, self.now)
            if self._logging:
                self._log(f"{client.id} FAIL seq={client.seq}")
            self._client_done(client)
        else:
            client.redirects += 1
            if reply.leader is not None and reply.leader != client.leader and client.redirects <= 3 * len(self.node_ids):
                client.leader = reply.leader
                self._client_send(client)
            else:
                # No useful hint: back off briefly, then try the next node.
                client.leader = None
                client.target += 1
                client.token += 1
                backoff = min(self.config.clients.timeout_ms, 5 * self.config.tick_ms)
                self._push(self.now + backoff, _CLIENT_RESEND, client, client.token)

    def _client_timeout(self, client: SimClient, token: int) -> None:
        if client.token != token or client.op_id is None:
            return
        client.timeouts += 1
        client.leader = None
        client.target += 1
        if client.timeouts >= self.config.clients.max_attempts:
            self.history.unknown(client.op_id)
            if self._logging:
                self._log(f"{client.id} UNKNOWN seq={client.seq} after {client.timeouts} timeouts")
            self._client_done(client)
        else:
            if self._logging:
                self._log(f"{client.id} TIMEOUT seq={client.seq} retry")
            self._client_send(client)

    # --------------------------------------------------------------- faults
    def current_leader(self) -> str | None:
        """The live node that claims leadership with the highest epoch, if any."""
        return current_leader(self._live_statuses())

    def _live_statuses(self) -> Iterator[ReplicaStatus]:
        for node in self.nodes.values():
            if node.alive and node.driver is not None:
                yield node.driver.status()

    def crash(self, node_id: str) -> None:
        """Crash ``node_id``: volatile state is gone; unsynced writes may be lost."""
        node = self.nodes.get(node_id)
        if node is None or not node.alive:
            return
        node.alive = False
        node.core = None
        node.driver = None
        pending = node.unsynced
        keep = self.fault_rng.randint(0, len(pending)) if self.lose_unsynced else len(pending)
        node.disk.sync(node.durable, pending[:keep])
        lost = len(pending) - keep
        self.counters.lost_writes += lost
        node.unsynced = []
        self._log(f"{node_id} CRASH lost_unsynced_writes={lost}")

    def restart(self, node_id: str) -> None:
        """Restart a crashed node from its durable state (not one stopped for good, nor one never started)."""
        node = self.nodes.get(node_id)
        if node is None or node.alive or node.gone or node.out is not None:
            return
        damage, node.disk.damage = node.disk.damage, None
        if damage is not None and self.config.disk.checks:
            self._stay_out(node, damage)
            return
        self._log(f"{node_id} RESTART durable_keys={len(node.durable)}"
                  + (f" (damage not checked: {damage})" if damage is not None else ""))
        self._boot(node_id)

    def _set_groups(self, groups: list[list[str]]) -> None:
        groups = [[n for n in g if n in self.node_ids] for g in groups]  # nodes stopped for good are no side
        listed = {n for g in groups for n in g}
        rest = [n for n in self.node_ids if n not in listed]
        if rest:
            groups = [*groups, rest]
        groups = [g for g in groups if g]
        self._cut_between(groups)
        self._log("PARTITION " + " | ".join(",".join(g) for g in groups))

    def _cut_between(self, groups: list[list[str]]) -> None:
        """Cut every link between two of ``groups`` (and remember them, for nodes started later)."""
        side = {n: i for i, g in enumerate(groups) for n in g}
        self.cut = {(a, b) for a in side for b in side if side[a] != side[b]}
        self._groups = groups

    # ----------------------------------------------------------- membership
    def start_node(self, node_id: str, rejoin_after: int = 0, rejoin_epoch: int = 0) -> None:
        """Start a node that joins the running cluster, with an empty disk; it joins the largest side of a
        partition in force (the first on a tie), and reaches every node across a bridge.

        ``rejoin_after``: the id is that of a node removed before (found
        damaged), added again; its new core waits until it has applied the log
        that far (``ReplicaConfig.rejoin_after``), starting at epoch ``rejoin_epoch``,
        and what its old incarnation sent and is still in flight dies with it (its
        connections closed).
        """
        if rejoin_after:
            self._queue[:] = [e for e in self._queue if not (e[2] == _DELIVER and e[3] == node_id)]
            heapq.heapify(self._queue)
        node = self._new_node(node_id)
        node.rejoin_after, node.rejoin_epoch = rejoin_after, rejoin_epoch
        self.node_ids = (*self.node_ids, node_id)
        self._log(f"{node_id} START (joining; running: {','.join(self.node_ids)})")
        if self._groups is not None:
            largest = max(self._groups, key=len)
            largest.append(node_id)
            self._cut_between(self._groups)
            self._log(f"{node_id} joins side {','.join(largest)}")
        self._boot(node_id)

    def stop_node(self, node_id: str, why: str) -> None:
        """Stop ``node_id`` for good (it left the cluster): like a crash, but it never restarts."""
        node = self.nodes.get(node_id)
        if node is None or node.gone:
            return
        self.crash(node_id)
        node.gone = True
        node.durable = {}
        self.node_ids = tuple(n for n in self.node_ids if n != node_id)
        self._log(f"{node_id} STOP ({why})")

    def rejoin_point(self) -> tuple[int, int]:
        """Where a node added again after its removal starts (``ReplicaConfig.rejoin_after``, ``rejoin_epoch``):
        the commit index and epoch of the live node with the highest commit index -- at or past every entry
        committed so far, and in an epoch at or past the one that committed them."""
        best = max(self._live_statuses(), key=lambda status: status.commit_index, default=None)
        return (0, 0) if best is None else (best.commit_index, best.epoch)

    def admin_timer(self, at: float, token: int, admin: AdminClient) -> None:
        """Wake ``admin`` at ``at`` with ``token``."""
        self._push(at, _ADMIN, token, admin)

    def _admin_of(self, client_id: str) -> AdminClient | None:
        """The admin client that uses session id ``client_id``, if any."""
        for admin in self.admins:
            if client_id in admin.ids:
                return admin
        return None

    def send(self, src: str, dst: str, msg: Any) -> None:
        """Send ``msg`` from ``src`` (a node or a client) to ``dst`` through the simulated network."""
        self._send(src, dst, msg)

    def log(self, text: str) -> None:
        """Add a line to the trace at the current time."""
        self._log(text)

    def _halves(self) -> list[list[str]]:
        nodes = list(self.node_ids)
        self.fault_rng.shuffle(nodes)
        minority = (len(nodes) - 1) // 2 or 1
        return [sorted(nodes[:minority]), sorted(nodes[minority:])]

    def _fault(self, fault: FaultEvent) -> None:
        action = fault.action
        if action == "crash" and fault.node:
            self.crash(fault.node)
        elif action == "crash_leader":
            leader = self.current_leader()
            if leader is None:
                self._log("crash_leader: no leader")
            else:
                self.crash(leader)
        elif action == "restart" and fault.node:
            self.restart(fault.node)
        elif action == "restart_all":
            for node_id in self.node_ids:
                self.restart(node_id)
        elif action == "partition":
            self._set_groups([list(g) for g in fault.groups])
        elif action == "partition_halves":
            self._set_groups(self._halves())
        elif action == "isolate" and fault.node:
            self._set_groups([[fault.node]])
        elif action == "isolate_leader":
            leader = self.current_leader()
            if leader is None:
                self._log("isolate_leader: no leader")
            else:
                self._set_groups([[leader]])
        elif action == "bridge":
            bridge_node = fault.node or self.fault_rng.choice(self.node_ids)
            others = [n for n in self.node_ids if n != bridge_node]
            self.fault_rng.shuffle(others)
            half = len(others) // 2
            a, b = set(others[:half]), set(others[half:])
            self.cut = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
            self._groups = None
            self._log(f"BRIDGE {','.join(sorted(a))} <-{bridge_node}-> {','.join(sorted(b))}")
        elif action == "heal":
            self.cut = set()
            self._groups = None
            self._log("HEAL")
        elif action == "flap":
            if self.now < fault.until_ms:
                if self.cut:
                    self.cut = set()
                    self._groups = None
                    self._log("HEAL (flap)")
                else:
                    self._set_groups(self._halves())
                self._push(self.now + fault.period_ms, _FAULT, fault)
            elif self.cut:
                self.cut = set()
                self._groups = None
                self._log("HEAL (flap over)")
        elif action == "network":
            self.network = attrs.evolve(
                self.network,
                loss=self.network.loss if fault.loss is None else fault.loss,
                duplicate=self.network.duplicate if fault.duplicate is None else fault.duplicate)
            self._log(f"NETWORK loss={self.network.loss} duplicate={self.network.duplicate}")
        elif action in MEMBERSHIP_ACTIONS:
            assert self.admin is not None
            if fault.wait:
                self.admin.request(fault)
            else:  # sent at once, by an admin client of its own, whatever the others have in flight
                lane = AdminClient(self, f"admin{len(self.admins) + 1}")
                self.admins.append(lane)
                lane.request(fault)
        elif action in STORAGE_ACTIONS and fault.node:
            self._storage_fault(fault, fault.node)
        elif action == "clock_leader":
            leader = self.current_leader()
            if leader is None:
                self._log("clock_leader: no leader")
                return
            for node in self.nodes.values():
                rate = fault.rate if node.id == leader else fault.others
                if rate is not None:
                    node.tick_ms = self.config.tick_ms * rate
            self._log(f"CLOCK {leader} ticks x{fault.rate}" + (f", others x{fault.others}" if fault.others else ""))
        else:
            self._log(f"fault {action} needs a node; ignored")

    # ------------------------------------------------------------ storage
    def _storage_fault(self, fault: FaultEvent, node_id: str) -> None:
        """A disk fault on ``node_id`` (smr.sim.disk): damage crashes the node, a full disk refuses writes."""
        node = self.nodes.get(node_id)
        if node is None or node.gone:
            self._log(f"{fault.action} {node_id}: no such node; ignored")
            return
        if fault.action == "disk_full":
            node.disk.full_until = max(node.disk.full_until, fault.until_ms)
            self._log(f"{node_id} DISK FULL until t={fault.until_ms:.3f}")
            return
        self.crash(node_id)
        if fault.action == "wipe":
            what = node.disk.wipe(node.durable)
        elif fault.action == "flip":
            what = node.disk.flip(node.durable, self.fault_rng)
        else:
            what = node.disk.lose_tail(node.durable, fault.batches or 1)
        self._log(f"{node_id} {fault.action.upper()} {what}")

    def _disk_refused(self, node: SimNode) -> None:
        """A write of ``node`` failed (its disk is full): it sits out -- a crash, nothing of the batch
        released but its eager messages -- and restarts from its disk once space returns."""
        until = node.disk.full_until
        self._log(f"{node.id} DISK REFUSED a write; it sits out until t={until:.3f}")
        self.crash(node.id)
        self._push(until, _FAULT, FaultEvent(until, "restart", node=node.id))

    def _stay_out(self, node: SimNode, damage: str) -> None:
        """``node``'s start found its durable state damaged: it stays out, and (with ``disk.rejoin``) the
        admin client removes it and adds it again, empty (what ``smr serve --rejoin-empty`` does)."""
        node.out = damage
        self._log(f"{node.id} STAYS OUT: its start found its state damaged: {damage}")
        if not self._rejoin:
            return
        assert self.admin is not None, "a run whose nodes rejoin has an admin client"
        self.admin.rejoin(node.id)



def simulate(config: SimConfig, seed: int) -> SimResult:
    """Run ``config`` once with ``seed`` and return what happened."""
    return Simulation(config, seed).run()


def workload_for(config: SimConfig) -> Any:
    """The run's workload: the configured one; for an app of the user's with the default, its calls."""
    from workloads import make_workload

    clients = config.clients
    workload = make_workload(clients.workload, clients.workload_options)
    if config.state_machine is not None and clients.workload == "kv" and not clients.workload_options:
        app = resolve_app(config.state_machine)
        if app is not resolve_app(workload.state_machine):
            return make_workload("calls", {"app": config.state_machine})
    return workload


def _session_expired(result: Any) -> bool:
    """True if an error reply says the client's session was dropped (smr.sessions)."""
    return isinstance(CommandError.from_result(result), SessionExpired)

