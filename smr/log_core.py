"""What every replicated-log core shares: its identity, one way in, its output buffers, one way out.

Raft and multi-Paxos subclass :class:`LogCore`, so both have the same shape:
``step`` checks that ``Start`` comes first and dispatches each input to one
method (``_start``, ``_tick``, ``_on_message``, ``_on_client``,
``_on_synced``); the transitions collect their outputs in ``_writes``,
``_messages``, ``_committed``, ``_replies`` and ``_eager``; ``_flush`` turns
them into one :class:`~smr.replica.Ready` (``EMPTY`` when nothing happened).
A core decides the order of its own durable writes in ``_pending_writes``.
Every tick advances the node's log clock; a new leader sets it to the
log's time (``_lead_clock``) and stamps it into the requests it appends
(``_stamp``), which is how sessions expire at the same log index on every
replica (:mod:`smr.sessions`).

**The leader's write in parallel.**  A leader sends the replication messages
that carry its entries through ``_send_eager`` (they may leave before its own
write is durable: ``Ready.eager``) and reports each write of its own copy
with ``_wrote_own(epoch, index)``, which asks the runtime for a
:class:`~smr.replica.Synced` once the batch is durable (``Ready.after_sync``).
The core counts its own copy toward a quorum only in ``_on_synced``.  With the
backend option ``write_in_parallel: false`` the eager messages wait for the
sync like every other message (the counting is the same).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from .bounds import MessageBounds, request_bytes
from .errors import LocalProtocolError
from .membership import Membership
from .quorum import majority
from .replica import (EMPTY, ClientRequest, Committed, Input, Ready, ReplicaConfig, Receive, Reply, Send,
                      Start, Synced, Tick, Write)
from .sessions import Applier, ExecutionWatch, SessionLimits, reply_to

#: Requests a leader holds at once while another command holds their (client, seq) (see ``_park``).
MAX_PARKED = 1024


class LogCore:
    """The shared surface of a replicated-log core; subclasses write the protocol's transitions."""

    backend: ClassVar[str]
    #: The ``mutant_*`` options this class implements (none: this is the correct protocol).
    mutants: ClassVar[frozenset[str]] = frozenset()
    #: The function (as "package.mutants.build") that builds a core with mutants switched on.
    builder: ClassVar[str]
    #: Changes of more than one voter go through a joint configuration (Raft), else take effect whole.
    joint_consensus: ClassVar[bool] = False
    #: The state machine and session table each replica applies through (a mutant may swap in a broken one).
    applier_class: ClassVar[type[Applier]] = Applier

    def __init__(self, config: ReplicaConfig, mutants_asked: frozenset[str],
                 write_in_parallel: bool = True) -> None:
        self.config = config
        self.node = config.node
        #: The configuration before any log entry (the same on every replica, joiners included).
        self.initial_membership = Membership.of(config.initial_voters or config.members)
        #: The configuration in effect; every change goes through ``_set_membership``.
        self.membership = self.initial_membership
        self.peers: tuple[str, ...] = ()
        self.voters = 0
        self.quorum = 0
        self._set_membership(self.initial_membership)
        self.rng: random.Random = config.rng
        if mutants_asked != self.mutants:
            raise LocalProtocolError(
                f"{self.backend} {self.node}: options switch on mutants {sorted(mutants_asked)}, but "
                f"{type(self).__name__} implements {sorted(self.mutants)}; build cores with "
                f"{self.builder}(config)")
        self.started = False
        self.session_limits = SessionLimits.from_options(config.options)
        #: How large this core lets a replication message or a snapshot chunk grow (smr.bounds).
        self.bounds = MessageBounds.from_options(config.options)
        #: The size of the latest snapshot, and the request bytes applied since (``snapshot_log_ratio``).
        self.snapshot_size = 0
        self.applied_since_snapshot = 0
        #: The log clock (ms): advanced by every tick, stamped into the entries this node appends as leader.
        self.clock_ms = 0.0
        #: Snapshots the state machine could not take (the log is then not compacted), and the last reason.
        self.snapshot_failures = 0
        self.snapshot_error: str | None = None
        #: Where every state machine of this core reports a request run twice (``watch_executions``).
        self._report_double_run: Callable[[str], None] | None = None
        self._snapshot_retry_at = 0
        # outputs of the current step
        self._writes: list[Write] = []
        self._messages: list[Send] = []
        self._committed: list[Committed] = []
        self._replies: list[Reply] = []
        self._eager: list[Send] = []
        self._after_sync: Synced | None = None
        #: Eager messages leave before the leader's own write is durable (else they wait, like the rest).
        self.write_in_parallel = write_in_parallel
        #: Requests reusing a (client, seq) that another command holds in flight: answered from the
        #: session table once it is applied (``SequenceReused``), never with that command's outcome.
        self.parked: list[ClientRequest] = []

    @property
    def readmitted(self) -> bool:
        """False while this node, rejoining from an emptied directory (``config.rejoin_after``), may not
        campaign, vote, promise or accept yet: it has not applied the log past its own removal."""
        return True

    def _readmission_due(self, snapshot_index: int) -> bool:
        """True once a rejoining node is :attr:`readmitted` but its last snapshot (at ``snapshot_index``) is
        from before: a snapshot then makes readmission survive a restart (which restores what it applied from
        the snapshot alone), so a restarted member votes at once instead of waiting for a leader to catch it
        up -- which, with the leader down, a three-node cluster could not elect."""
        return bool(self.config.rejoin_after) and self.readmitted and snapshot_index < self.config.rejoin_after

    @property
    def retired(self) -> bool:
        """True once this node has left the cluster: a committed configuration no longer names it.

        A runtime may then stop the node for good.  A node joining a running
        cluster is not retired before it was ever added, nor a rejoining one
        before it is :attr:`readmitted` (it applies its own removal on the way:
        the protocol may override this where a removal takes effect later
        than it is applied).
        """
        if not self.readmitted:
            return False
        applier: Applier = getattr(self, "applier")
        applied = applier.membership
        if applied is None or self.node in applied.members:
            return False
        return self.node in applier.left or not self.config.joining

    def _set_membership(self, membership: Membership) -> None:
        """Put ``membership`` in effect: the peers this node talks to and the quorum sizes follow it."""
        self.membership = membership
        self.peers = tuple(n for n in membership.members if n != self.node)
        self.voters = len(membership.voters)
        self.quorum = majority(self.voters)

    def step(self, event: Input) -> Ready:
        """Consume one input and return its outputs; persist them before sending all but ``eager`` (smr.replica)."""
        if isinstance(event, Start):
            self._start(event.durable)
        elif not self.started:
            raise LocalProtocolError(f"{self.backend} {self.node}: the first input must be Start, got {event!r}")
        elif isinstance(event, Tick):
            self.clock_ms += self.config.tick_ms
            self._tick()
        elif isinstance(event, Receive):
            self._on_message(event.src, event.message)
        elif isinstance(event, ClientRequest):
            self._on_client(event)
        elif isinstance(event, Synced):
            self._on_synced(event)
        else:
            raise LocalProtocolError(f"{self.backend} {self.node}: cannot step {event!r}")
        return self._flush()

    # ------------------------------------------------------- the protocol's part
    def _start(self, durable: Mapping[str, Any]) -> None:
        """Restore from the durable state that survived (the first input of an incarnation)."""
        raise NotImplementedError

    def _tick(self) -> None:
        """One logical clock tick."""
        raise NotImplementedError

    def _on_message(self, src: str, message: Any) -> None:
        """A message from peer ``src``."""
        raise NotImplementedError

    def _on_client(self, request: ClientRequest) -> None:
        """A client's command."""
        raise NotImplementedError

    def _on_synced(self, event: Synced) -> None:
        """This node's own writes are durable up to ``event.index`` (asked for by ``_wrote_own``)."""
        raise NotImplementedError

    def _count_own(self, index: int) -> None:
        """Count the leader's own copy of everything up to ``index`` toward its quorums."""
        raise NotImplementedError

    def _ordering(self, request: ClientRequest) -> bool:
        """True while this leader still orders a command under ``request``'s (client, seq)."""
        raise NotImplementedError

    def _reply(self, request: ClientRequest, status: str, result: Any = None,
               leader: str | None = None) -> None:
        """Answer ``request``; the reply names its command by digest (a client takes only its own)."""
        self._replies.append(reply_to(request, status, result, leader))

    # ------------------------------------------------------------ checking peers
    def _impossible_request(self, request: ClientRequest) -> str:
        """Why ``request`` could never be in a correct log, or ''.

        A leader proposes no command its state machine refuses
        (:meth:`smr.machine.StateMachine.refusal`), and opens sessions only for clients.
        """
        refused = getattr(self, "applier").refusal(request)
        return "" if refused is None else f"a command that is refused: {refused}"

    # ------------------------------------------------------------ applying
    def _park(self, request: ClientRequest) -> None:
        """Hold ``request``, whose (client, seq) another command holds in flight, until that one is applied.

        At most ``MAX_PARKED`` wait (more are dropped: their clients retry and
        then get the same answer from the session table).
        """
        if len(self.parked) < MAX_PARKED:
            self.parked.append(request)

    def _answer_parked(self) -> None:
        """Answer every parked request whose (client, seq) has now been applied (under another command)."""
        if not self.parked:
            return
        applier: Applier = getattr(self, "applier")
        waiting = []
        for request in self.parked:
            done, status, result = applier.lookup(request)
            if done:
                self._reply(request, status, result)
            elif request.client_id in applier.sessions or self._ordering(request):
                waiting.append(request)  # (a client's first command opens its session once applied)
            # else its session is gone (expired, evicted) or leadership moved: its client's retry learns
        self.parked = waiting

    def _new_applier(self) -> Applier:
        """A fresh state machine and session table, with this cluster's session limits."""
        applier = self.applier_class(self.config.state_machine, self.session_limits, self.initial_membership,
                                     self.joint_consensus)
        if self._report_double_run is not None:
            applier.watch = ExecutionWatch(self._report_double_run)
        return applier

    def watch_executions(self, report: Callable[[str], None]) -> None:
        """Have this core's state machines, now and after any snapshot, call ``report`` with a description
        whenever a client request would run a second time (the exactly-once check of every simulated run)."""
        self._report_double_run = report
        applier: Applier = getattr(self, "applier")
        applier.watch = ExecutionWatch(report)

    def _count_applied(self, request: ClientRequest) -> None:
        """Add ``request`` to what was applied since the last snapshot (only if a ratio asks for it)."""
        if self.bounds.snapshot_log_ratio:
            self.applied_since_snapshot += request_bytes(request)

    def _snapshot_due(self, entries_since: int, every: int) -> bool:
        """True if a snapshot is due: ``every`` entries applied since the last, and enough bytes for the ratio."""
        if not every or entries_since < every:
            return False
        ratio = self.bounds.snapshot_log_ratio
        return not ratio or self.applied_since_snapshot >= ratio * self.snapshot_size

    def _snapshot_taken(self, data: str) -> None:
        """A snapshot of ``data`` now covers everything applied (taken here, installed or restored)."""
        self.snapshot_size = len(data)
        self.applied_since_snapshot = 0

    def _snapshot_state(self) -> str | None:
        """The applier's snapshot as text, or None if the state machine cannot take one now.

        A user's state can stop being snapshottable (a set stored by a command);
        every replica then fails alike, so the core keeps serving without
        compacting, and counts the failure (``snapshot_failures``,
        ``snapshot_error``) for status reports, rather than crash every node.
        """
        applier: Applier = getattr(self, "applier")
        if applier.applied < self._snapshot_retry_at:
            return None  # it failed lately: try again only after some more entries
        try:
            data = applier.snapshot().decode("ascii")
        except Exception as exc:
            self.snapshot_failures += 1
            self.snapshot_error = f"{type(exc).__name__}: {exc}"[:500]
            self._snapshot_retry_at = applier.applied + min(2 ** self.snapshot_failures, 4096)
            return None
        self._snapshot_taken(data)
        return data

    def _lead_clock(self, stamps: Iterable[int]) -> None:
        """A new leader's clock starts from the log's time, not its own uptime.

        So log time never jumps forward at a failover (it can only run slow by
        the time nobody led): sessions and lock leases never end early.
        """
        applier: Applier = getattr(self, "applier")
        self.clock_ms = float(max(applier.time_ms, *stamps, 0))

    def _stamp(self, request: ClientRequest) -> ClientRequest:
        """``request`` as a leader appends it: stamped with the log clock (never behind what was applied)."""
        applier: Applier = getattr(self, "applier")
        self.clock_ms = max(self.clock_ms, applier.time_ms)
        return ClientRequest(request.client_id, request.seq, request.command, request.acked, int(self.clock_ms))

    # ---------------------------------------------------------------- outputs
    def _send_eager(self, dst: str, message: Any) -> None:
        """Send a leader's replication message that may leave before this batch's writes are durable."""
        self._eager.append(Send(dst, message))

    def _wrote_own(self, epoch: int, index: int) -> None:
        """The leader wrote its own copy up to ``index`` in ``epoch``: ask for a Synced once it is durable.

        The copy counts toward a quorum only then (``_on_synced``): a write
        still in flight can vanish in a crash, while the eager messages that
        carried it may already have been acknowledged by the followers.
        """
        self._after_sync = Synced(epoch, index)

    def _pending_writes(self) -> tuple[Write, ...]:
        """This step's durable writes, in the order they must be applied (a core may add its own)."""
        return tuple(self._writes)

    def _flush(self) -> Ready:
        """Collect this step's outputs into one Ready (``EMPTY`` if nothing happened)."""
        persist = self._pending_writes()
        eager, after_sync = self._eager, self._after_sync
        if not (persist or self._messages or self._committed or self._replies or eager or after_sync):
            return EMPTY
        if not eager:
            ready = Ready(persist, tuple(self._messages), tuple(self._committed), tuple(self._replies), (),
                          after_sync)
        elif self.write_in_parallel:
            ready = Ready(persist, tuple(self._messages), tuple(self._committed), tuple(self._replies),
                          tuple(eager), after_sync)
            self._eager = []
        else:  # the eager messages wait for the sync, with the others
            ready = Ready(persist, (*eager, *self._messages), tuple(self._committed), tuple(self._replies), (),
                          after_sync)
            self._eager = []
        self._writes, self._messages, self._committed, self._replies = [], [], [], []
        self._after_sync = None
        return ready
