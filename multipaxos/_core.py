"""The multi-Paxos replica: every state transition lives in this module.

A log of synod instances, one per slot, sharing one acceptor promise
(:class:`synod.acceptor.MultiAcceptor`) so that a leader runs phase 1 once for
all slots from its first unchosen one, then only phase 2 per batch of commands:

* **Election.** A replica that hears no leader for a randomised number of
  ticks takes a ballot (round above any seen, its own id) and sends
  ``Prepare(ballot, first_unchosen)``.  Any replica may win -- unlike Raft
  there is no up-to-date check -- and then *recovers* the log from the
  promises: for every slot it re-proposes the highest-ballot accepted value
  reported (:class:`synod.proposer.MultiPrepareQuorum`), fills gaps with
  no-ops, and learns chosen values or a snapshot it lacked (Howard & Mortier's
  point: Paxos elects anyone and catches up in phase 1).
* **Replication.** The leader assigns slots, accepts locally and sends
  ``Accept`` batches, at most ``max_inflight`` outstanding (pipelining) with up
  to ``max_batch`` commands each (batching).  A slot is chosen once a
  majority accepted it in the leader's ballot.
* **Learning.** ``commit`` on every ``Accept`` and ``Heartbeat`` says which
  prefix is chosen; a replica whose accepted value for a slot carries the
  leader's ballot knows it is the chosen one, otherwise it asks for a
  ``Catchup``.  Replicas apply chosen slots in order through the exactly-once
  :class:`smr.sessions.Applier`.
* **Preemption.** A higher ballot anywhere sends a leader or candidate back
  to follower; ``Nack`` carries the higher ballot; randomised back-off lets
  duelling proposers settle.

Persist before you promise: every acceptor change is drained into the same
``Ready`` as the reply that depends on it, and the runtime syncs it first.
The one exception is the leader's write in parallel: its ``Accept`` messages
go out in ``Ready.eager``, before its own acceptance of their slots is
durable.  They promise nothing on its behalf -- its promise of its own ballot
was synced in phase 1, before its ``Prepare`` left, so before it won; the
``commit`` they carry counts only durable acceptances.  Each acceptance of its
own asks for a :class:`~smr.replica.Synced` of the ballot's round and the slot
(``_wrote_own``), and the leader adds itself to a slot's quorum only in
:meth:`MultiPaxosCore._on_synced`, for a Synced of the ballot it leads.

**Reconfiguration** follows Lamport, Malkhi and Zhou, "Reconfiguring a State
Machine" (SIGACT News 41(1), 2010), section 4's alpha window: membership
commands (:mod:`smr.membership`) are ordinary slots, applied by the
:class:`smr.sessions.Applier`, and the configuration of slot i is the one
applied after slot i - alpha (slots 1..alpha use ``initial_membership``); a
change takes effect whole, with no joint phase.  The rules that keep this safe:

* a slot counts as chosen only once every slot up to i - alpha is applied
  (its configuration is then certain) and a quorum of *that* configuration
  accepted it (:meth:`MultiPaxosCore._quorum_config`);
* a candidate's phase 1 needs a quorum of every configuration of the slots
  applied+1 .. applied+alpha; a leader proposes at slot i only once i's
  configuration is known (no change command pending at or below i - alpha)
  and a quorum of it promised its ballot: when a new configuration enters
  the window it sends ``Prepare`` with its same ballot to the new voters,
  re-proposes what they report, and only then proposes there
  (:meth:`MultiPaxosCore._may_propose`); when idle it fills the window with
  no-ops so a change takes effect promptly;
* every node of the configurations in (and one window behind) the leader's
  window gets its messages: old members keep serving old slots; a removed
  node is ``retired`` once every slot of a configuration naming it is applied
  and a quorum of the newest configuration has applied them too (``held`` on
  heartbeats); a removed leader stops proposing, fills its last slots and
  steps down; a node that is no voter never campaigns, except a replaced
  voter whose slots the new voters do not hold yet (it keeps the
  configurations that show them across restarts, and campaigns to catch the
  new voters up); a leader counts as live -- refusing the Prepare of a node
  outside its configurations -- only while a quorum answers it, and answers
  such a Prepare with a heartbeat whose ``held`` lets a replaced voter see
  that its hand-off is done (and ignores a Nack from such a node);
* a learner listed in ``membership.joining`` is promoted by the leader once
  its heartbeat acks show it caught up; new members catch up through the
  ``Catchup``/snapshot machinery (a snapshot carries the configurations of
  the alpha slots after it);
* ``membership`` (what a runtime dials, and the simulator's admin consults
  before stopping a removed node) is the configuration of the next slot to
  apply, as a restart would find it: it switches alpha slots after a change
  is applied, once a snapshot taken at that point is durable
  (:meth:`MultiPaxosCore._effect_changed`), so no restarted member ever needs
  a node that was let go;
* a node started to join (``config.joining``) takes messages from leaders it
  does not know yet; any other node takes a proposer's messages from a node
  no configuration it knows names only if they show the sender ahead of it
  (a node added while it was down or behind) and it hears no live leader
  (:meth:`MultiPaxosCore._may_be_newer`); replies only from nodes it knows;
  and acceptors ignore ``Prepare`` from nodes outside their configurations
  while they hear from a live leader.

**Reads** (``read_mode``): through the log (the baseline); ``read_index``,
multi-Paxos's ReadIndex: a leader that has chosen its recovered slots notes
its applied slot, confirms its ballot with a quorum round of heartbeat acks
and answers once applied; ``lease``: a heartbeat round sent at the leader's
tick t and acked by a quorum of every configuration in its window gives a
lease until t + :func:`smr.leases.lease_ticks` (election_ticks_min shortened
for max_clock_drift, as Raft's; :meth:`MultiPaxosCore._lease_ticks`); acceptors promise no other proposer
within election_ticks_min of their own ticks of hearing the leader.

The module has the shape of :mod:`raft._core`: one way in (``step``), one
central check (:meth:`MultiPaxosCore._on_message`: a known sender, a known
message), then the handler table ``_HANDLERS`` (bottom of this module) keyed by
(role, message type), with an explicit ``_ignore`` where a role drops a
message.  Roles are :class:`smr.replica.Role` members; majorities come from
:mod:`smr.quorum`.  Each rule a ``mutant_*`` option breaks is one overridable
method here (:meth:`MultiPaxosCore._accept_values`,
:meth:`MultiPaxosCore._values_to_propose`,
:meth:`MultiPaxosCore._drain_acceptor`, :meth:`MultiPaxosCore._quorum_config`,
:meth:`MultiPaxosCore._lease_ticks`, :meth:`MultiPaxosCore._wrote_own` from
:class:`smr.log_core.LogCore`); the broken variants are subclasses
in :mod:`multipaxos.mutants`, built by :func:`multipaxos.mutants.build`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any, Callable, ClassVar

from smr.bounds import MAX_EPOCH, MAX_EPOCH_JUMP, MAX_INDEX, ChunkBuffer, chunk_of, request_bytes, take_within
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.replica import (ClientRequest, Committed, ReplicaConfig, ReplicaStatus, ReplyStatus, Role, Send,
                         Synced, Write)
from smr.leases import lease_ticks
from smr.log_core import LogCore
from smr.quorum import majority
from smr.membership import MAX_NODE_ID, Membership, is_change, membership_command
from smr.sessions import NOOP_ENTRY, Applier, same_command
from smr.values import CorruptValue
from synod.acceptor import MultiAcceptor, SlotAccepted, SlotPromise, SlotVote
from synod.ballot import Ballot
from synod.proposer import AcceptQuorum, MultiPrepareQuorum

from .messages import (Accept, Accepted, Behind, Catchup, CatchupRequest, Heartbeat, HeartbeatAck, Nack, Prepare,
                       Promise, PromisePart, SlotValue, Snapshot, SnapshotChunk, SnapshotRequest)
from .options import MAX_ALPHA, MultiPaxosOptions

#: Multi-Paxos's roles, as the shared :class:`smr.replica.Role` members.
FOLLOWER, CANDIDATE, LEADER = Role.FOLLOWER, Role.CANDIDATE, Role.LEADER
#: Durable keys: the acceptor's promise is ``ACCEPTOR_PREFIX + "promised"``, slot s is under
#: ``ACCEPTOR_PREFIX + "slot/%012d" % s``; the latest snapshot is under ``SNAPSHOT_KEY``; ``KNOWN_KEY``
#: lists the nodes it learned of from configurations (written only once one names a node not in the first).
ACCEPTOR_PREFIX = "mp/acc/"
SNAPSHOT_KEY = "mp/snapshot"
#: Durable key: every node a configuration this replica applied named (so a restart still takes their messages).
KNOWN_KEY = "mp/known"
#: The most parts one promise may come in (a peer naming more is refused).
MAX_PROMISE_PARTS = 1 << 16
#: The most slots a new leader recovers in phase 1; further behind, it lets another lead.
MAX_RECOVERY_SLOTS = 1 << 16
#: Heartbeat rounds a leader keeps telling a removed node it may retire before it stops waiting for its ack.
MAX_LEAVING_ROUNDS = 64
#: The most snapshots a replica waits to hear are durable (a runtime that never answers ``after_sync``).
MAX_SYNC_MARKS = 64
#: The epoch of the ``Synced`` a batch that writes a snapshot asks for (ballot rounds start at 1).
SNAPSHOT_EPOCH = 0
#: A snapshot whose alpha window holds a change starts with this key (the configurations of the slots after it).
WINDOW_TAG = '{"mp_window":'


def _value_of(slot_value: SlotValue) -> ClientRequest:
    return slot_value.value


class _Batch:
    __slots__ = ("first", "last")

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last


class _Read:
    """A read_index read: answer ``request`` once heartbeat round ``round`` is confirmed and ``index`` applied."""

    __slots__ = ("index", "round", "request", "confirmed")

    def __init__(self, index: int, round: int, request: ClientRequest) -> None:
        self.index, self.round, self.request, self.confirmed = index, round, request, False


def _is_quorum(config: Membership, acceptors: set[str]) -> bool:
    """True if ``acceptors`` hold a majority of ``config``'s voters (cheap: this runs per slot)."""
    need = majority(len(config.voters))
    return len(acceptors) >= need and sum(a in acceptors for a in config.voters) >= need


def _with_window(data: str, window: list[tuple[int, Membership]]) -> str:
    """Snapshot text ``data`` carrying the configurations ``window`` of the slots after it."""
    rows = json.dumps([[slot, m.as_value()] for slot, m in window], sort_keys=True, separators=(",", ":"))
    return f"{WINDOW_TAG}{rows},{data[1:]}"


def _window_of(data: str) -> list[tuple[int, Membership]] | None:
    """The configurations a snapshot text carries (None: none, its own applies); ValueError if malformed."""
    if not data.startswith(WINDOW_TAG):
        return None
    try:
        rows, _ = json.JSONDecoder().raw_decode(data, len(WINDOW_TAG))
        if not isinstance(rows, list) or not 0 < len(rows) <= MAX_ALPHA + 1:
            raise ValueError(f"a snapshot's window is a non-empty list of at most {MAX_ALPHA + 1} rows")
        window = []
        for row in rows:
            if not isinstance(row, list) or len(row) != 2 or type(row[0]) is not int or not 0 <= row[0] < MAX_INDEX:
                raise ValueError("a window row is [slot, membership]")
            window.append((row[0], Membership.from_value(row[1])))
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"a snapshot's configuration window is malformed: {exc}") from None
    return window


class MultiPaxosCore(LogCore):
    """One multi-Paxos replica (proposer, acceptor and learner); see the module docstring."""

    backend: ClassVar[str] = "multipaxos"
    builder: ClassVar[str] = "multipaxos.mutants.build"

    def __init__(self, config: ReplicaConfig) -> None:
        self.opts = MultiPaxosOptions.from_mapping(config.options)
        self.alpha = self.opts.alpha
        #: (slot, configuration applied after it), oldest first; the first one holds from slot 0 on.
        self.history: list[tuple[int, Membership]] = []
        #: Every node a configuration this replica knows ever named (and itself): who may send to us.
        self.known: set[str] = set()
        super().__init__(config, frozenset(self.opts.mutants), self.opts.write_in_parallel)
        self.history = [(0, self.initial_membership)]
        self.known = {self.node, *self.initial_membership.members}
        self.acceptor = MultiAcceptor(ACCEPTOR_PREFIX)
        self.max_accepted = 0                            # highest slot the acceptor ever accepted
        self.applier = self._new_applier()
        self.applied = 0
        self.snapshot_slot = 0
        self.snapshot_data: str | None = None
        self.log: dict[int, ClientRequest] = {}        # chosen and applied, above the snapshot
        self.chosen: dict[int, ClientRequest] = {}     # chosen, not applied yet
        self.max_round = 0
        self.role: Role = FOLLOWER
        self.ballot: Ballot | None = None               # ours, as candidate or leader
        self.leader_ballot: Ballot | None = None        # the leader we follow (or ours)
        self.election_elapsed = 0
        self.election_timeout = self._draw_timeout(backoff=False)
        self.heartbeat_elapsed = 0
        self.catchup_cooldown = 0
        # candidate state
        self.prepare: MultiPrepareQuorum | None = None
        self.promise_chosen: dict[int, ClientRequest] = {}
        self.promise_snapshot: Snapshot | None = None
        self.promise_parts: dict[str, dict[int, PromisePart]] = {}
        #: A snapshot arriving from the leader in chunks (volatile: a restarted replica starts it over).
        self.incoming = ChunkBuffer(self.bounds.max_snapshot_bytes)
        # leader state
        self.next_slot = 1
        self.proposals: dict[int, AcceptQuorum] = {}
        self.own_durable = 0                             # our acceptances are synced up to this slot
        self.batches: list[_Batch] = []
        #: Requests waiting for a slot, by (client, seq), oldest first (a dict: O(1) to find a retry).
        self.queue: dict[tuple[str, int], ClientRequest] = {}
        self.in_log: dict[tuple[str, int], int] = {}
        self.waiting: set[tuple[str, int]] = set()
        self.ticks = 0                                   # leader ticks, the clock of the two below
        self.last_broadcast = 0                          # tick of the last Accept/Heartbeat to all
        self.sent_at: dict[int, int] = {}                # slot -> tick its Accept last went out
        # reconfiguration (leader state unless noted)
        self.prepared: set[str] = set()                  # who promised our ballot (phase 1 done with them)
        self.prepare_sent: dict[str, int] = {}           # node -> tick we last asked it for a promise
        self.deferred: dict[int, ClientRequest] = {}     # recovered values not yet proposed (slot -> value)
        self.deferred_ballots: dict[int, Ballot] = {}    # the ballot each recovered value was accepted in
        self.deferred_keys: dict[tuple[str, int], int] = {}  # (client, seq) -> its slot in deferred
        self.change_slots: set[int] = set()              # slots above applied holding a membership change
        self.blocked: set[int] = set()                   # slots waiting for their configuration to be certain
        self.recovered_last = 0                          # the last slot recovered in phase 1
        self.promoting: set[str] = set()                 # learners we proposed to promote
        self.promotions = 0                              # promotions queued while leading (their queue keys)
        #: Removed nodes a leader still heartbeats until they heard that their slots are held:
        #: node -> [its last slot, the round that first told it so (0: not yet), the round it left at].
        self.leaving: dict[str, list[int]] = {}
        self.held = 0                                    # a quorum of the newest configuration applied this much
        #: The configuration of slot applied+1 (volatile); ``membership`` follows it once a snapshot holds it.
        self.effect = self.initial_membership
        self.effect_slot = 0                             # the snapshot slot ``membership`` was taken at
        self.snapshot_written: tuple[int, Membership] | None = None  # this step's snapshot, and its effect
        #: Snapshots written, not known durable yet: (the Synced their batch asked for, slot, effect), oldest first.
        self.sync_marks: deque[tuple[Synced, int, Membership]] = deque(maxlen=MAX_SYNC_MARKS)
        # reads and leases
        self.hb_round = 0                                # the last heartbeat round that asks for acks
        self.round_tick: dict[int, int] = {}             # round -> our tick it went out at
        self.peer_heard: dict[str, int] = {}             # peer -> our tick (as leader) it last answered our ballot
        self.acked_round: dict[str, int] = {}
        self.peer_applied: dict[str, int] = {}
        self.lease_until = 0                             # in our ticks as leader (a lease while ticks < it)
        self.reads: list[_Read] = []
        self.reads_waiting: list[ClientRequest] = []
        self.since_leader = 0                            # our ticks since we last heard a leader (any node)
        self.heard_leader: str | None = None             # the node we heard lead, last

    # ------------------------------------------------------------- surface
    def status(self) -> ReplicaStatus:
        """Role, ballot round as epoch, believed leader, and the applied (chosen) prefix."""
        leader = self.leader_ballot.node if self.leader_ballot is not None else None
        epoch = self.ballot.round if self.role != FOLLOWER and self.ballot else (
            self.leader_ballot.round if self.leader_ballot else self.max_round)
        return ReplicaStatus(self.node, self.role, epoch, leader, self.applied)

    @property
    def retired(self) -> bool:
        """True once this node may stop: no configuration of an unchosen slot names it, and a quorum holds them.

        A leader reported (``held``) that a quorum of the newest configuration
        has applied every slot of a configuration naming it, so its own copy
        is needed by nobody.  A joining node is not retired before it was added.
        """
        if self.node in self._newest.members or not self.readmitted:
            return False
        if self.config.joining and self.node not in self.applier.left:
            return False
        return self.held >= self._last_slot_naming(self.node, voters_only=False)

    @property
    def readmitted(self) -> bool:
        """False while this node, rejoining from an emptied directory, has not applied every slot a
        configuration of its lost incarnation may govern: until then it promises, accepts and campaigns nothing.

        Its removal is chosen at or before ``config.rejoin_after`` and takes
        effect alpha slots later; once it has applied those slots it reports
        them as chosen in any promise, so its empty acceptor can never stand in
        for what the lost incarnation accepted or promised there.
        """
        return not self.config.rejoin_after or self.applied >= self.config.rejoin_after + self.alpha - 1

    # ------------------------------------------------------ configurations
    @property
    def _newest(self) -> Membership:
        """The newest applied configuration (the applier's)."""
        membership = self.applier.membership
        assert membership is not None, "a multi-Paxos applier always holds a membership"
        return membership

    def _applied_config(self, slot: int) -> Membership:
        """The configuration in effect after applying ``slot`` (``slot`` <= applied, within the kept history)."""
        for applied_at, membership in reversed(self.history):
            if applied_at <= slot:
                return membership
        return self.history[0][1]

    def _config_of(self, slot: int) -> Membership | None:
        """The configuration of ``slot``: applied after slot - alpha; None while that is not certain.

        Beyond what is applied, it is certain only to a leader with no change
        among the values it holds at or below slot - alpha (it knows every slot
        it proposed; the values it holds are what its ballot can choose).
        """
        base = slot - self.alpha
        if base <= self.applied:
            return self._applied_config(base)
        if any(c <= base for c in self.change_slots):
            return None
        return self._newest

    def _quorum_config(self, slot: int) -> Membership | None:
        """The configuration whose quorum chooses ``slot``, once every slot it depends on is applied (else None)."""
        return self._applied_config(slot - self.alpha) if slot - self.alpha <= self.applied else None

    def _window(self) -> list[Membership]:
        """The configurations of slots applied+1 .. applied+alpha (all certain: they follow applied slots)."""
        first = self.applied + 1 - self.alpha
        window = [self._applied_config(first)]
        window += [m for s, m in self.history if first < s <= self.applied and m != window[-1]]
        return window

    def _last_slot_naming(self, node: str, voters_only: bool) -> int:
        """The last slot whose configuration names ``node`` (as a voter, if asked), as far as the history shows."""
        index = len(self.history)
        while index > 0 and node not in (self.history[index - 1][1].voters if voters_only
                                         else self.history[index - 1][1].members):
            index -= 1
        if index == 0:
            return 0
        if index == len(self.history):
            return MAX_INDEX  # the newest configuration still names it
        return self.history[index][0] + self.alpha - 1

    def _config_applied(self, slot: int) -> None:
        """The applier's configuration changed at ``slot``: record it, and talk to whom it names."""
        membership = self.applier.membership
        assert membership is not None
        for node in set(membership.members) - set(self.history[-1][1].members):
            if node in self.applier.left:  # removed before, added again: maybe another incarnation (rejoining)
                self._forget_peer(node)
        self.history.append((slot, membership))
        self._learn_nodes(membership)
        self._refresh_membership()

    def _forget_peer(self, node: str) -> None:
        """Drop what this leader heard from ``node`` (what it applied, the rounds it acked): void for a new
        incarnation, which must catch up before it is promoted, and whose acks count from now on."""
        for heard in (self.peer_applied, self.acked_round, self.peer_heard):
            heard.pop(node, None)
        self.promoting.discard(node)
        self.leaving.pop(node, None)

    def _learn_nodes(self, membership: Membership) -> None:
        """Add the nodes ``membership`` names to those we take messages from (durably, if any is new)."""
        if not set(membership.members) <= self.known:
            self.known.update(membership.members)
            self._writes.append(Write(KNOWN_KEY, sorted(self.known)))

    def _trim_history(self) -> None:
        """Forget configurations no slot from applied+1-2*alpha on uses (who we talk to looks one window back)."""
        keep_from = self._kept_from(self.applied + 1 - 2 * self.alpha)
        if len(self.history) > 1 and self.history[1][0] <= keep_from:
            while len(self.history) > 1 and self.history[1][0] <= keep_from:
                self.history.pop(0)
            self._refresh_membership()

    def _in_effect(self) -> Membership:
        """The configuration in effect: the one of slot applied+1, the next this replica applies."""
        return self._applied_config(self.applied + 1 - self.alpha)

    def _effect_changed(self) -> None:
        """The configuration of the next slot changed: snapshot, so ``membership`` follows once that is durable.

        ``membership`` is the configuration in effect as a restart would find
        it: it switches alpha slots after a change is applied (when the change's
        first slot is next) and only once a snapshot of that point is durable,
        so a runtime that stops a node no member's ``membership`` names (the
        simulator's admin) never strands slots a restarted member still needs
        it for; and a quorum's acks of that point (``held``) leave after it.
        """
        dropped = not set(self.effect.members) <= set(self._in_effect().members)
        self.effect = self._in_effect()
        if not self._take_snapshot() and not dropped and not self.sync_marks:
            self._put_in_effect(self.effect, self.applied)  # no snapshot (the state cannot take one): adding is safe

    def _put_in_effect(self, membership: Membership, slot: int) -> None:
        """Make ``membership`` (in effect after applied slot ``slot``, durably) this replica's ``membership``."""
        if slot >= self.effect_slot:
            self.effect_slot = slot
            if membership != self.membership:
                self._set_membership(membership)
                self._refresh_membership()

    def _refresh_membership(self) -> None:
        """Talk to every node of the configurations in use (peers); ``membership`` stays (see _effect_changed)."""
        newest = self.applier.membership
        assert newest is not None
        before = set(self.peers)
        self._set_membership(self.membership)
        first = self.applied + 1 - 2 * self.alpha
        nodes = set(newest.members)
        nodes.update(self._applied_config(first).members)
        for s, m in self.history:
            if s > first:
                nodes.update(m.members)
        nodes.discard(self.node)
        if self.role == LEADER:  # a node leaving the configurations in use is told when it may retire
            for gone in before - nodes - set(self.leaving):
                # every slot of a configuration naming it is applied by now: once a quorum holds those, it may go
                self.leaving[gone] = [self.applied, 0, self.hb_round]
            nodes.update(self.leaving)
        self.peers = tuple(sorted(nodes))

    def _set_history(self, window: list[tuple[int, Membership]] | None) -> None:
        """Restart the history from a snapshot's window (or from its applied configuration alone)."""
        membership = self.applier.membership
        assert membership is not None
        if window is None:
            window = [(0, membership)]
        self.history = [(0, window[0][1]), *window[1:]]
        for _, m in self.history:
            self._learn_nodes(m)
        self._refresh_membership()

    def _snapshot_text(self) -> str | None:
        """The applier's snapshot, carrying the configurations of the alpha slots after it when one changed."""
        data = self._snapshot_state()
        if data is None:
            return None
        first = self._kept_from(self.applied + 1 - self.alpha)
        if not any(s > first for s, _ in self.history[1:]):
            return data
        window = [(0, self._applied_config(first)), *((s, m) for s, m in self.history[1:] if s > first)]
        data = _with_window(data, window)
        self._snapshot_taken(data)
        return data

    # ------------------------------------------------------------- outputs
    def _send(self, dst: str, msg: Any) -> None:
        self._messages.append(Send(dst, msg))

    def _broadcast(self, msg: Any) -> None:
        for peer in self.peers:
            self._messages.append(Send(peer, msg))

    def _redirect(self, request: ClientRequest) -> None:
        leader = self.leader_ballot.node if self.leader_ballot is not None else None
        self._reply(request, ReplyStatus.REDIRECT, leader=None if leader == self.node else leader)

    def _pending_writes(self) -> tuple[Write, ...]:
        """This step's writes: ours first, then the acceptor's (promise, acceptances).

        A batch that writes a snapshot asks for a ``Synced`` (if it does not
        already), which tells us the snapshot is durable (``_on_synced``).
        """
        if self.snapshot_written is not None:
            if self._after_sync is None:
                self._after_sync = Synced(SNAPSHOT_EPOCH, self.snapshot_written[0])
            self.sync_marks.append((self._after_sync, *self.snapshot_written))
            self.snapshot_written = None
        return tuple(self._writes) + self._drain_acceptor()

    def _drain_acceptor(self) -> tuple[Write, ...]:
        """The acceptor's durable writes of this step (promise, acceptances): in the Ready of the replies."""
        return self.acceptor.drain_writes()

    # ------------------------------------------------------------- helpers
    def _draw_timeout(self, backoff: bool) -> int:
        timeout = self.rng.randint(self.opts.election_ticks_min, self.opts.election_ticks_max)
        if backoff:
            timeout += self.rng.randint(0, self.opts.backoff_ticks_max)
        return timeout

    def _reset_election_timer(self, backoff: bool = False) -> None:
        self.election_elapsed = 0
        self.election_timeout = self._draw_timeout(backoff)

    def _see_round(self, ballot: Ballot) -> None:
        if ballot.round > self.max_round:
            self.max_round = ballot.round

    def _become_follower(self, leader: Ballot | None, backoff: bool = False) -> None:
        was_leader = self.role == LEADER
        if was_leader:
            # Requests we were ordering may still be chosen by the next leader;
            # their clients will retry there and be answered from the session table.
            self.waiting.clear()
            self.queue.clear()
            self.in_log.clear()
            self.proposals.clear()
            self.batches.clear()
            self.sent_at.clear()
            self._clear_leadership()
        self.role = FOLLOWER
        if was_leader:
            self._refresh_membership()  # the removed nodes it was telling when to retire are no peers now
        self.ballot = None
        self.prepare = None
        self.leader_ballot = leader
        self._reset_election_timer(backoff)

    def _clear_leadership(self) -> None:
        """Forget what only a leader keeps for reconfiguration and reads (waiting reads' clients retry)."""
        self.prepared.clear()
        self.prepare_sent.clear()
        self.deferred.clear()
        self.deferred_ballots.clear()
        self.deferred_keys.clear()
        self.change_slots.clear()
        self.blocked.clear()
        self.promoting.clear()
        self.promotions = 0
        self.leaving.clear()
        self.round_tick.clear()
        self.acked_round.clear()
        self.peer_applied.clear()
        self.peer_heard.clear()
        self.lease_until = 0
        self.reads.clear()
        self.reads_waiting.clear()

    # -------------------------------------------------------------- start
    def _start(self, durable: Mapping[str, Any]) -> None:
        if self.started:
            raise LocalProtocolError(f"multipaxos {self.node}: Start given twice to one incarnation")
        self.acceptor = MultiAcceptor.restore(durable, ACCEPTOR_PREFIX)
        self.max_accepted = max(self.acceptor.accepted, default=0)
        snap = durable.get(SNAPSHOT_KEY)
        if snap is not None:
            self.applier.restore(snap["data"].encode())
            self.applied = self.snapshot_slot = self._restored_slot(int(snap["last_slot"]))
            self.snapshot_data = snap["data"]
            self._snapshot_taken(snap["data"])
            self._set_history(_window_of(snap["data"]))
            self.effect = self._in_effect()
            self._put_in_effect(self.effect, self.applied)
        known = durable.get(KNOWN_KEY)
        if isinstance(known, list):
            self.known.update(str(n) for n in known)
        rounds = [b.round for b, _ in self.acceptor.accepted.values()]
        if self.acceptor.promised is not None:
            rounds.append(self.acceptor.promised.round)
        self.max_round = max(rounds, default=0)
        if self.opts.read_mode == "lease" and self.acceptor.promised is not None:
            # it may have acked a leader's heartbeat just before it crashed: no promise to
            # anyone for election_ticks_min of its ticks, as if it had just heard that leader
            self.heard_leader = ""
        self.started = True

    def _restored_slot(self, last_slot: int) -> int:
        """The slot a restart from a snapshot taken after applying ``last_slot`` has applied: that one."""
        return last_slot

    # --------------------------------------------------------------- ticks
    def _tick(self) -> None:
        if self.catchup_cooldown:
            self.catchup_cooldown -= 1
        self.since_leader += 1
        if self.role == LEADER:
            # Followers hear from the leader at least once per heartbeat interval (an
            # Accept counts), and an Accept unanswered for a whole interval is sent again.
            self.ticks += 1
            # a leader is live (refuses disruptive Prepares) only while a quorum answers it
            self.since_leader, self.heard_leader = self._quorum_silence(), self.node
            self.heartbeat_elapsed += 1
            if self.heartbeat_elapsed >= self.opts.heartbeat_ticks:
                self.heartbeat_elapsed = 0
                self._resend_unchosen()
                if self._wants_acks():
                    self._heartbeat_round()
                if self.queue or self.deferred or len(self.history) > 1 or self.change_slots:
                    self._pump()  # a Prepare to new voters may be due again, or the window filled
                if self.role != LEADER:
                    return
            if self.ticks - self.last_broadcast >= self.opts.heartbeat_ticks:
                assert self.ballot is not None
                self._broadcast(Heartbeat(self.ballot, self.applied, 0, self.held))
                self.last_broadcast = self.ticks
            self._step_down_if_removed()
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            if not self._may_campaign():
                self._reset_election_timer()  # a learner, a joining or a retired node never campaigns
                return
            self._campaign()

    def _may_campaign(self) -> bool:
        """True if this node campaigns when it hears no leader: a voter, or a replaced voter not yet retired.

        A voter that was replaced while the new voters missed the change (they
        were down when it was chosen) may be the only node that can catch them
        up: it campaigns as a proposer -- a proposer needs a quorum of each
        slot's voters to promise, not to be one of them -- and steps down once
        a quorum of the newest configuration holds every slot it votes in
        (``held``; swarm seed 5565).
        """
        return self.readmitted and (self.node in self._newest.voters or self._handoff_slot() > 0)

    def _handoff_slot(self) -> int:
        """The last slot this replaced voter votes in while a quorum of the newest configuration may lack it, or 0.

        Until ``held`` reaches it, the node keeps the configurations that show
        it (history and snapshots), so a restart does not forget the duty.
        """
        last = self._last_slot_naming(self.node, voters_only=True)
        return last if 0 < last < MAX_INDEX and self.held < last else 0

    def _kept_from(self, slot: int) -> int:
        """``slot``, or earlier while a hand-off is due: history and snapshots keep the configuration naming us."""
        handoff = self._handoff_slot()
        return min(slot, handoff - self.alpha) if handoff else slot

    def _wants_acks(self) -> bool:
        """True if heartbeats ask for acks: reads need them, learners' promotion and retirement, and a quiet quorum."""
        return (self.opts.read_mode != "log" or len(self.history) > 1 or bool(self._newest.joining)
                or bool(self.leaving) or self._quorum_silence() >= self.opts.election_ticks_min // 2)

    def _quorum_silence(self) -> int:
        """Our ticks as leader since a quorum of every configuration in our window last answered our ballot.

        A leader whose quorum is gone (its peers retired or cut off while it
        missed the changes that replaced them) must not keep refusing, as a
        live leader, the Prepare of a node it does not know (swarm seed 3444).
        """
        heard = {**self.peer_heard, self.node: self.ticks}
        return self.ticks - min(m.committed(heard) for m in self._window())

    def _heartbeat_round(self) -> None:
        """Send every peer a heartbeat of a new round, asking for an ack (leases, reads, progress)."""
        assert self.ballot is not None
        self.hb_round += 1
        self.round_tick[self.hb_round] = self.ticks
        for node, (last, told, since) in list(self.leaving.items()):
            if not told and self.held >= last:
                self.leaving[node][1] = self.hb_round  # this heartbeat tells it: an ack lets it go
            elif self.hb_round - since > MAX_LEAVING_ROUNDS:
                self._let_go(node)  # down, or gone: no longer waited for
        self._broadcast(Heartbeat(self.ballot, self.applied, self.hb_round, self.held))
        self.last_broadcast = self.ticks

    def _let_go(self, node: str) -> None:
        """Stop heartbeating removed ``node``."""
        del self.leaving[node]
        self.peers = tuple(p for p in self.peers if p != node)  # else the refresh would count it as leaving anew
        self._refresh_membership()

    def _step_down_if_removed(self) -> None:
        """A leader no longer a voter steps down once every slot it votes in is applied and held by a quorum."""
        if self.node in self._newest.voters:
            return
        last = self._last_slot_naming(self.node, voters_only=True)
        if self.applied >= last and self.held >= last:
            self._become_follower(None)

    def _resend_unchosen(self) -> None:
        """Re-send Accept for slots still short of a majority (their messages may be lost)."""
        if not self.proposals:
            return
        assert self.ballot is not None
        due = self.ticks - (self.opts.resend_ticks or self.opts.heartbeat_ticks)
        stale = {s for s in self.proposals if self.sent_at.get(s, 0) <= due}
        for peer in self.peers:
            missing = sorted(s for s in stale if peer not in self.proposals[s].acceptors)
            for first, values in self._runs(missing):
                self._send_eager(peer, Accept(self.ballot, first, values, self.applied))
        for slot in stale:
            self.sent_at[slot] = self.ticks

    def _runs(self, slots: list[int]) -> list[tuple[int, tuple[ClientRequest, ...]]]:
        """Group sorted slots into contiguous runs of at most ``max_batch`` proposals."""
        runs: list[tuple[int, list[ClientRequest]]] = []
        budget, size = self.bounds.max_batch_bytes, 0
        for slot in slots:
            value = self.proposals[slot].value
            cost = request_bytes(value)
            if runs and runs[-1][0] + len(runs[-1][1]) == slot and len(runs[-1][1]) < self.opts.max_batch \
                    and size + cost <= budget:
                runs[-1][1].append(value)
                size += cost
            else:
                runs.append((slot, [value]))
                size = cost
        return [(first, tuple(values)) for first, values in runs]

    # ------------------------------------------------------------ election
    def _campaign(self) -> None:
        if self.max_round >= MAX_EPOCH:
            self._reset_election_timer()
            return  # no round left to campaign in (peers refuse rounds beyond MAX_EPOCH)
        self.max_round += 1
        ballot = Ballot(self.max_round, self.node)
        self.role = CANDIDATE
        self.ballot = ballot
        self.leader_ballot = None
        self._reset_election_timer(backoff=True)
        from_slot = self.applied + 1
        window = tuple(m.voters for m in self._window())
        self.prepare = MultiPrepareQuorum(ballot, self.quorum, from_slot, voter_sets=window)
        self.promise_chosen = {}
        self.promise_snapshot = None
        self.promise_parts = {}
        own = self.acceptor.on_prepare(ballot, from_slot)
        assert isinstance(own, SlotPromise)
        self.prepare.add(self.node, own)
        self._broadcast(Prepare(ballot, from_slot))
        if self.prepare.reached:
            self._become_leader()

    def _on_prepare(self, src: str, msg: Prepare) -> None:
        if not self.readmitted:
            return  # rejoining from an emptied directory: no promise yet (see ``readmitted``)
        if self.heard_leader is not None and self.heard_leader != src \
                and self.since_leader < self.opts.election_ticks_min \
                and (self.opts.read_mode == "lease" or src not in self.peers):
            # we hear a live leader: no promise to another proposer within the lease
            # (read_mode lease), nor to a node outside our configurations (disruption)
            if self.role == LEADER and src not in self.peers:
                # it may be a replaced voter campaigning to hand its slots over: it learns from
                # our ``held`` whether a quorum of the newest configuration holds them already
                # (a round of acks first brings ``held`` up to date for its next campaign)
                assert self.ballot is not None
                self._heartbeat_round()
                self._send(src, Heartbeat(self.ballot, self.applied, 0, self.held))
            return
        self._see_round(msg.ballot)
        if msg.from_slot <= self.snapshot_slot and self.snapshot_data is not None \
                and len(self.snapshot_data) > self.bounds.snapshot_chunk_bytes:
            # the candidate lacks slots only our snapshot holds, and it does not fit in a promise:
            # no promise (and no timer reset), so one that is up to date can win and catch it up
            self._send(src, Behind(msg.ballot, self.applied))
            return
        reply = self.acceptor.on_prepare(msg.ballot, msg.from_slot)
        if not isinstance(reply, SlotPromise):
            self._send(src, Nack(msg.ballot, reply.promised))
            return
        if self.role != FOLLOWER and self.ballot is not None and self.ballot < msg.ballot:
            self._become_follower(None, backoff=True)
        elif self.role == FOLLOWER:
            if self.leader_ballot is not None and self.leader_ballot < msg.ballot:
                self.leader_ballot = None  # a new candidate is taking over
            self._reset_election_timer()
        accepted = tuple(SlotValue(v.slot, v.value, v.ballot) for v in reply.accepted)
        chosen = tuple(SlotValue(s, v) for s, v in sorted(self.log.items()) if s >= msg.from_slot)
        snapshot = None
        if self.snapshot_data is not None and msg.from_slot <= self.snapshot_slot:
            snapshot = Snapshot(self.snapshot_slot, self.snapshot_data)
        self._send_promise(src, Promise(msg.ballot, msg.from_slot, accepted, chosen, snapshot))

    def _send_promise(self, dst: str, promise: Promise) -> None:
        """Send ``promise``, in :class:`PromisePart` messages if it exceeds the byte bound.

        Every accepted value goes (phase 1 needs them all); the chosen values
        only help the candidate learn, so only those that fit in part 0 go.
        """
        budget = self.bounds.max_batch_bytes
        snapshot_size = len(promise.snapshot.data) if promise.snapshot is not None else 0
        accepted_sizes = [request_bytes(v.value) for v in promise.accepted]
        chosen_sizes = [request_bytes(v.value) for v in promise.chosen]
        if snapshot_size + sum(accepted_sizes) + sum(chosen_sizes) <= budget:
            self._send(dst, promise)
            return
        groups: list[list[SlotValue]] = [[]]
        size = snapshot_size
        for value, cost in zip(promise.accepted, accepted_sizes):
            if groups[-1] and size + cost > budget:
                groups.append([])
                size = 0
            groups[-1].append(value)
            size += cost
        room = budget - (snapshot_size + sum(accepted_sizes[:len(groups[0])]))
        chosen: list[SlotValue] = []
        for value, cost in zip(promise.chosen, chosen_sizes):
            if cost > room:
                break
            chosen.append(value)
            room -= cost
        for part, group in enumerate(groups):
            self._send(dst, PromisePart(promise.ballot, promise.from_slot, part, len(groups), tuple(group),
                                        tuple(chosen) if part == 0 else (),
                                        promise.snapshot if part == 0 else None))

    def _on_promise_part(self, src: str, msg: PromisePart) -> None:
        """Collect a promise sent in parts; count it once every part is here."""
        if msg.ballot != self.ballot:
            return  # for an earlier campaign of ours
        parts = self.promise_parts.setdefault(src, {})
        parts[msg.part] = msg
        if len(parts) < msg.parts or any(p.parts != msg.parts for p in parts.values()):
            return
        del self.promise_parts[src]
        ordered = [parts[i] for i in range(msg.parts)]
        self._on_promise(src, Promise(msg.ballot, msg.from_slot,
                                      tuple(v for p in ordered for v in p.accepted),
                                      ordered[0].chosen, ordered[0].snapshot))

    def _on_behind(self, src: str, msg: Behind) -> None:
        """An acceptor would not promise: we lack slots only its snapshot holds.  Let another lead."""
        if msg.ballot == self.ballot and msg.applied > self.applied:
            self._become_follower(None, backoff=True)

    def _on_promise(self, src: str, msg: Promise) -> None:
        if msg.ballot != self.ballot:
            return  # for an earlier campaign of ours
        if self.role == LEADER:
            self._on_late_promise(src, msg)
            return
        assert self.prepare is not None, "a candidate collects promises"
        votes = tuple(SlotVote(v.slot, v.ballot, v.value) for v in msg.accepted if v.ballot is not None)
        for sv in msg.chosen:
            self.promise_chosen[sv.slot] = sv.value
        if msg.snapshot is not None and (self.promise_snapshot is None
                                         or msg.snapshot.last_slot > self.promise_snapshot.last_slot):
            self.promise_snapshot = msg.snapshot
        if self.prepare.add(src, SlotPromise(msg.ballot, msg.from_slot, votes)):
            self._become_leader()

    def _become_leader(self) -> None:
        assert self.prepare is not None and self.ballot is not None
        prepare = self.prepare
        if self.promise_snapshot is not None and self.promise_snapshot.last_slot > self.applied:
            self._install_snapshot(self.promise_snapshot)
        for slot, value in self.promise_chosen.items():
            if slot > self.applied:
                self.chosen.setdefault(slot, value)
        self._apply()
        values = self._values_to_propose(prepare)
        self._lead_clock(v.time for v in (*values.values(), *self.chosen.values()))
        self.max_round = max(self.max_round, prepare.highest_round())
        last = max([self.applied, *values, *self.chosen], default=self.applied)
        if last - self.applied > MAX_RECOVERY_SLOTS:
            # Recovering that many slots here would hold the node for long: one closer to the
            # front (there is one: someone accepted them) can lead, and we catch up from it.
            self._become_follower(None, backoff=True)
            return
        self.role = LEADER
        self.leader_ballot = self.ballot
        self.prepare = None
        self.promise_chosen = {}
        self.promise_snapshot = None
        self.next_slot = self.applied + 1
        self.own_durable = self.applied  # what this ballot accepts counts once it is synced
        self.proposals.clear()
        self.batches.clear()
        self._clear_leadership()
        self.prepared = set(prepare.promises)
        self.since_leader, self.heard_leader = 0, self.node
        self.heartbeat_elapsed = 0
        self.ticks = self.last_broadcast = 0
        self.sent_at = {}
        ballots: dict[int, Ballot] = {}
        for promise in prepare.promises.values():
            for vote in promise.accepted:
                if vote.slot not in ballots or vote.ballot > ballots[vote.slot]:
                    ballots[vote.slot] = vote.ballot
        for slot in range(self.applied + 1, last + 1):
            if slot in ballots:
                self.deferred_ballots[slot] = ballots[slot]
            recovered = self.chosen.get(slot) or values.get(slot)
            if recovered is None:  # no promiser reported a value there, and it is not known chosen
                self._fill_gap(slot)
                continue
            self._put_deferred(slot, recovered)
            if is_change(recovered.command):
                self.change_slots.add(slot)
        self.recovered_last = last
        if not self._propose_deferred():
            self._broadcast(Heartbeat(self.ballot, self.applied, 0, self.held))
        self._pump()

    def _propose_deferred(self) -> int:
        """Propose the recovered values, from ``next_slot`` on, while their configuration lets us; how many."""
        assert self.ballot is not None
        proposed = []
        while self.next_slot in self.deferred and self._may_propose(self.next_slot):
            slot = self.next_slot
            self.deferred_ballots.pop(slot, None)
            self._propose(slot, self._take_deferred(slot))
            proposed.append(slot)
            self.next_slot += 1
        for first, batch in self._runs(proposed):
            self._broadcast_eager(Accept(self.ballot, first, batch, self.applied))
        if proposed:
            self.last_broadcast = self.ticks
        for slot in proposed:
            self.sent_at[slot] = self.ticks
        self._check_chosen(proposed)
        return len(proposed)

    def _may_propose(self, slot: int) -> bool:
        """True if we may propose at ``slot``: its configuration is known and a quorum of it promised.

        A configuration whose quorum has not promised our ballot yet gets a
        ``Prepare`` (again each heartbeat interval) from its voters that have not.
        The configuration need not name us: a proposer is not an acceptor, and
        a node a replacement added leads before its own configuration's first
        slot (swarm seed 635 wedged when it would not propose the old voters'
        last alpha slots, which nobody else could while it led); its own
        acceptance counts only where it votes (``Membership.is_quorum``).
        """
        config = self._config_of(slot)
        if config is None:
            return False
        return self._prepared_by(config)

    def _prepared_by(self, config: Membership) -> bool:
        """True if a quorum of ``config`` promised our ballot; else ask (again each heartbeat interval) its voters that have not."""
        if config.is_quorum(self.prepared):
            return True
        assert self.ballot is not None
        for voter in config.voters:
            sent = self.prepare_sent.get(voter)
            if voter not in self.prepared and (sent is None or self.ticks - sent >= self.opts.heartbeat_ticks):
                self.prepare_sent[voter] = self.ticks
                self._send(voter, Prepare(self.ballot, self.applied + 1))
        return False

    def _on_late_promise(self, src: str, msg: Promise) -> None:
        """A promise of our ballot from a voter of a configuration entering our window: recover what it reports."""
        if src in self.prepared:
            return
        for sv in msg.chosen:
            if sv.slot > self.applied:
                self.chosen.setdefault(sv.slot, sv.value)
        if msg.snapshot is not None and any(slot not in self.chosen for slot in
                                            range(max(self.next_slot, self.applied + 1),
                                                  msg.snapshot.last_slot + 1)):
            # slots we have not proposed are chosen, some known to us only through its snapshot:
            # we cannot re-propose their values, so one that is up to date leads (seed 3621's kin)
            self._become_follower(None, backoff=True)
            return
        self.prepared.add(src)
        last = self.next_slot - 1
        # A slot the promiser knows chosen is proposed again with that very value (swarm seed 3621:
        # a leader whose configuration grew proposed its clients' commands in slots a quorum
        # of the new configuration had chosen while it was cut off; they could never apply).
        for slot, chosen in self.chosen.items():
            if slot >= self.next_slot:
                self._defer(slot, chosen, None)
        for value in msg.accepted:
            slot, ballot = value.slot, value.ballot
            if slot < self.next_slot or ballot is None or slot in self.chosen or slot <= self.applied:
                # proposed already, on a quorum's promises of that slot's configuration; or known chosen
                # (a chosen slot leaves ``chosen`` once applied, which may come before we propose it again)
                continue
            known = self.deferred_ballots.get(slot)
            if known is None or ballot > known:
                self._defer(slot, value.value, ballot)
        last = max([last, *self.deferred])
        if last - self.applied > MAX_RECOVERY_SLOTS:
            self._become_follower(None, backoff=True)  # as in _become_leader: let one closer to the front lead
            return
        if last >= self.next_slot:
            for slot in range(self.next_slot, last + 1):
                if slot not in self.deferred:
                    self._fill_gap(slot)
            self.recovered_last = max(self.recovered_last, last)
        self._pump()
        self._serve_reads()  # reads may have waited for this configuration's promises

    def _fill_gap(self, slot: int) -> None:
        """Queue a no-op for ``slot``, below the last slot the promisers reported but with no value reported there.

        The log applies in order, so such a hole must be decided before
        anything after it is applied: a no-op decides it.  It is proposed only
        once a quorum of the slot's configuration has promised our ballot
        (``_may_propose``), and a promise heard before then that reports a
        value for the slot replaces it (``_on_late_promise``: the no-op has
        no ballot to beat).
        """
        self._put_deferred(slot, NOOP_ENTRY)

    def _defer(self, slot: int, value: ClientRequest, ballot: Ballot | None) -> None:
        """Queue ``value`` for ``slot`` until we may propose there; ``ballot``: the one it was accepted in (None: chosen)."""
        self._put_deferred(slot, value)
        if ballot is None:
            self.deferred_ballots.pop(slot, None)
        else:
            self.deferred_ballots[slot] = ballot
        (self.change_slots.add if is_change(value.command) else self.change_slots.discard)(slot)

    def _put_deferred(self, slot: int, value: ClientRequest) -> None:
        """Hold ``value`` for ``slot`` in ``deferred`` (indexed by its client key).

        A client value it displaces (a late promise reported a higher ballot's
        value, or the slot's chosen one) is queued anew if its client waits
        for it: the client's retry waited for it rather than take a slot.
        """
        old = self.deferred.get(slot)
        if old is not None and old.client_id:
            key = (old.client_id, old.seq)
            if self.deferred_keys.get(key) == slot:
                del self.deferred_keys[key]
            if key in self.waiting and key not in self.in_log and key not in self.queue \
                    and key not in self.deferred_keys:
                self.queue[key] = old
        self.deferred[slot] = value
        if value.client_id:
            self.deferred_keys[(value.client_id, value.seq)] = slot

    def _take_deferred(self, slot: int) -> ClientRequest:
        """Take the value held for ``slot`` out of ``deferred`` (and its index)."""
        value = self.deferred.pop(slot)
        key = (value.client_id, value.seq)
        if self.deferred_keys.get(key) == slot:
            del self.deferred_keys[key]
        return value

    def _values_to_propose(self, prepare: MultiPrepareQuorum) -> dict[int, ClientRequest]:
        """Phase 1's one rule, per slot: re-propose the value of the highest ballot any promiser accepted."""
        return prepare.values_to_propose()

    # ---------------------------------------------------------- replication
    def _propose(self, slot: int, value: ClientRequest) -> None:
        assert self.ballot is not None
        quorum = AcceptQuorum(self.ballot, value, self.quorum)
        self.proposals[slot] = quorum
        if slot > self.applied:  # (a recovered slot may be applied already: its value holds nothing back)
            if value.client_id:
                self.in_log[(value.client_id, value.seq)] = slot
            if is_change(value.command):
                self.change_slots.add(slot)
        reply = self.acceptor.on_accept(self.ballot, slot, value)
        if isinstance(reply, SlotAccepted):
            self.max_accepted = max(self.max_accepted, slot)
            self._wrote_own(self.ballot.round, slot)  # our acceptance counts once it is durable

    def _pump(self) -> None:
        """Send queued commands as new Accept batches while the pipeline has room (recovered values first)."""
        if self.role != LEADER:
            return
        if self.deferred:
            self._propose_deferred()
            if self.deferred:
                return
        while self.queue and len(self.batches) < self.opts.max_inflight and self._may_propose(self.next_slot):
            assert self.ballot is not None
            take: list[ClientRequest] = []
            first, size = self.next_slot, 0
            while self.queue and len(take) < self.opts.max_batch and (not take or self._may_propose(self.next_slot)):
                key = next(iter(self.queue))
                cost = request_bytes(self.queue[key])
                if take and size + cost > self.bounds.max_batch_bytes:
                    break  # a frame holds only so many bytes
                value = self._stamp(self.queue.pop(key))
                size += cost
                take.append(value)
                self._propose(self.next_slot, value)
                self.next_slot += 1
            self.batches.append(_Batch(first, self.next_slot - 1))
            self._broadcast_eager(Accept(self.ballot, first, tuple(take), self.applied))
            self.last_broadcast = self.ticks
            for slot in range(first, self.next_slot):
                self.sent_at[slot] = self.ticks
            self._check_chosen(list(range(first, self.next_slot)))
        if not self.queue and self.role == LEADER:
            self._fill_window()

    def _fill_window(self) -> None:
        """Idle after applying a change: fill the slots up to where it takes effect with no-ops, so it does promptly."""
        target = max((s + self.alpha - 1 for s, _ in self.history[1:]), default=0)
        if target < self.next_slot:
            return
        assert self.ballot is not None
        proposed = []
        while self.next_slot <= target and self._may_propose(self.next_slot):
            self._propose(self.next_slot, NOOP_ENTRY)
            proposed.append(self.next_slot)
            self.next_slot += 1
        for first, batch in self._runs(proposed):
            self._broadcast_eager(Accept(self.ballot, first, batch, self.applied))
        for slot in proposed:
            self.sent_at[slot] = self.ticks
        if proposed:
            self.last_broadcast = self.ticks
        self._check_chosen(proposed)

    def _follow_leader(self, src: str, ballot: Ballot) -> bool:
        """Take ``src`` (leading ``ballot``) as leader, or Nack it if we promised higher; True if followed."""
        self._see_round(ballot)
        if self.acceptor.refuses(ballot):
            self._nack(src, ballot)
            return False
        self._follow(ballot)
        return True

    def _nack(self, src: str, ballot: Ballot) -> None:
        promised = self.acceptor.promised
        assert promised is not None, "only a ballot below our promise is refused"
        self._send(src, Nack(ballot, promised))

    def _follow(self, ballot: Ballot) -> None:
        if self.role != FOLLOWER and self.ballot != ballot:
            self._become_follower(ballot)
        self.leader_ballot = ballot
        self.since_leader, self.heard_leader = 0, ballot.node
        self._reset_election_timer()

    def _on_accept(self, src: str, msg: Accept) -> None:
        self._see_round(msg.ballot)
        if not self.readmitted:  # rejoining from an emptied directory: it learns what is chosen, accepts nothing
            if self._follow_leader(src, msg.ballot):
                self._learn(msg.ballot, msg.commit)
            return
        if not self._accept_values(msg):
            self._nack(src, msg.ballot)
            return
        self._follow(msg.ballot)
        self.max_accepted = max(self.max_accepted, msg.first_slot + len(msg.values) - 1)
        self._send(src, Accepted(msg.ballot, msg.first_slot, len(msg.values)))
        self._learn(msg.ballot, msg.commit)

    def _accept_values(self, msg: Accept) -> bool:
        """Phase 2b for every slot of ``msg``: False (accepting nothing) if we promised a higher ballot."""
        if self.acceptor.refuses(msg.ballot):
            return False
        for offset, value in enumerate(msg.values):
            self.acceptor.on_accept(msg.ballot, msg.first_slot + offset, value)
        return True

    def _on_accepted(self, src: str, msg: Accepted) -> None:
        if msg.ballot != self.ballot:
            return  # for an earlier leadership of ours
        self.peer_heard[src] = self.ticks
        slots = []
        for slot in range(msg.first_slot, msg.first_slot + msg.count):
            quorum = self.proposals.get(slot)
            if quorum is not None:
                quorum.add(src, msg.ballot)
                slots.append(slot)
        self._check_chosen(slots)
        self._pump()

    def _broadcast_eager(self, accept: Accept) -> None:
        """Send ``accept`` to every peer, maybe before our own acceptance of its slots is durable."""
        for peer in self.peers:
            self._send_eager(peer, accept)

    def _on_synced(self, event: Synced) -> None:
        """A batch is durable: a snapshot it wrote puts its configuration in effect; our acceptances count."""
        if any(mark[0] == event for mark in self.sync_marks):
            while self.sync_marks:  # batches are durable in order: every snapshot up to this batch's is
                synced, slot, effect = self.sync_marks.popleft()
                self._put_in_effect(effect, slot)
                if synced == event:
                    break
        if self.role != LEADER or self.ballot is None or event.epoch != self.ballot.round \
                or event.index <= self.own_durable:
            return  # written in a leadership we lost (no quorum of ours to count it in), or counted
        first = self.own_durable + 1
        self._count_own(event.index)
        self._check_chosen(list(range(first, event.index + 1)))
        self._pump()

    def _count_own(self, index: int) -> None:
        """Add our own acceptance to every open slot up to ``index`` (we lead one ballot; syncs come in order)."""
        assert self.ballot is not None
        for slot in range(self.own_durable + 1, index + 1):
            quorum = self.proposals.get(slot)
            accepted = self.acceptor.accepted.get(slot)
            if quorum is not None and accepted is not None and accepted[0] == self.ballot:
                quorum.add(self.node, self.ballot)
        if index > self.own_durable:
            self.own_durable = index

    def _check_chosen(self, slots: list[int]) -> None:
        """Take as chosen each of ``slots`` a quorum of its configuration accepted in our ballot, then apply.

        A slot whose configuration is not certain yet (slot - alpha not
        applied) waits in ``blocked`` and is counted once it is.
        """
        pending = sorted(slots)
        while pending:
            for slot in pending:
                quorum = self.proposals.get(slot)
                if quorum is None:
                    self.blocked.discard(slot)
                    continue
                config = self._quorum_config(slot)
                if config is None:
                    self.blocked.add(slot)
                    continue
                self.blocked.discard(slot)
                if _is_quorum(config, quorum.acceptors):
                    if slot > self.applied:  # (a recovered slot may be applied already)
                        self.chosen[slot] = quorum.value
                    del self.proposals[slot]
                    self.sent_at.pop(slot, None)
            before = self.applied
            self._apply()
            pending = sorted(s for s in self.blocked if self._quorum_config(s) is not None) \
                if self.applied > before and self.blocked else []
        while self.batches and all(s not in self.proposals for s in
                                   range(self.batches[0].first, self.batches[0].last + 1)):
            self.batches.pop(0)

    def _on_heartbeat(self, src: str, msg: Heartbeat) -> None:
        if self.role == LEADER and msg.ballot == self.ballot:
            return  # our own ballot: only we send its heartbeats (a replay)
        if self._handoff_slot():  # a replaced voter: any leader's held says whether the new voters hold our slots
            self.held = max(self.held, msg.held)
            if not self._handoff_slot() and self.acceptor.refuses(msg.ballot):
                if self.role == CANDIDATE:
                    self._become_follower(None)  # handed over: no campaign, and no Nack (we vote in none of its slots)
                return
        if self._follow_leader(src, msg.ballot):
            self.held = max(self.held, msg.held)
            self._learn(msg.ballot, msg.commit)
            if msg.round:
                self._send(src, HeartbeatAck(msg.ballot, msg.round, self.applied))

    def _on_heartbeat_ack(self, src: str, msg: HeartbeatAck) -> None:
        """A peer follows our ballot and has applied ``msg.applied``: confirm reads, extend the lease, promote."""
        if msg.ballot != self.ballot:
            return  # for an earlier leadership of ours
        self.peer_heard[src] = self.ticks
        self.peer_applied[src] = max(self.peer_applied.get(src, 0), msg.applied)
        leaving = self.leaving.get(src)
        if leaving is not None and leaving[1] and msg.round >= leaving[1]:
            self._let_go(src)  # it heard that its slots are held: it retires by itself
        if msg.round > self.acked_round.get(src, 0):
            self.acked_round[src] = msg.round
            self._confirm_round()
        newest = self._newest
        self.held = max(self.held, newest.committed({**self.peer_applied, self.node: self.applied}))
        for learner, _ in newest.joining:
            if learner not in self.promoting and learner in self.peer_applied \
                    and self.peer_applied[learner] + self.opts.max_batch >= self.applied:
                self.promoting.add(learner)  # caught up: the leader proposes its promotion (thesis 4.2.1's rule)
                self.promotions += 1
                self.queue[("", -self.promotions)] = ClientRequest("", 0, membership_command("promote", learner))
        self._pump()
        self._step_down_if_removed()

    def _confirm_round(self) -> None:
        """The newest heartbeat round a quorum of every configuration in our window acked: reads and the lease."""
        rounds = {**self.acked_round, self.node: self.hb_round}
        confirmed = min(m.committed(rounds) for m in self._window())
        if confirmed <= 0:
            return
        sent = self.round_tick.get(confirmed)
        if sent is not None:
            self.lease_until = max(self.lease_until, sent + self._lease_ticks())
        for old in [r for r in self.round_tick if r < confirmed]:
            del self.round_tick[old]
        for read in self.reads:
            if self._read_confirmed(read, confirmed):
                read.confirmed = True
        self._serve_reads()

    def _read_confirmed(self, read: _Read, confirmed: int) -> bool:
        """True if heartbeat round ``confirmed``, acked by a quorum of every configuration in our window, is
        the one ``read`` waits for or later: our ballot still led when it arrived."""
        return read.round <= confirmed

    def _lease_ticks(self) -> int:
        """How long (in our ticks) a quorum's ack of a heartbeat round leases us the reads: the drift bound applied."""
        return lease_ticks(self.opts.election_ticks_min, self.opts.max_clock_drift)

    # ---------------------------------------------------------------- reads
    def _recovered(self) -> bool:
        """True once every slot recovered in phase 1 is chosen and applied (what earlier leaders acknowledged).

        Phase 1 must also cover every configuration in our window: until a
        quorum of one that entered it since we were elected promised our
        ballot, a lower ballot may still choose slots there that we would
        not read (a review of swarm seed 3621's fix); such voters are asked.
        """
        return (not self.deferred and self.applied >= self.recovered_last
                and all([self._prepared_by(config) for config in self._window()]))

    def _read(self, request: ClientRequest) -> None:
        """A read-only command at the leader: from the lease, or once a heartbeat round confirms our ballot."""
        if not self._recovered():
            self.reads_waiting.append(request)
            return
        if self.opts.read_mode == "lease" and self.ticks < self.lease_until:
            status, result = self.applier.query(request.command)
            self._reply(request, status, result)
            return
        self.reads.append(_Read(self.applied, self.hb_round + 1, request))
        self._heartbeat_round()
        self._confirm_round()

    def _serve_reads(self) -> None:
        """Answer the confirmed reads whose commit point is applied; register reads that waited for recovery."""
        if self.role != LEADER:
            return
        if self.reads_waiting and self._recovered():
            waiting, self.reads_waiting = self.reads_waiting, []
            for request in waiting:
                self._read(request)
        while self.reads and self.reads[0].confirmed and self.reads[0].index <= self.applied:
            read = self.reads.pop(0)
            status, result = self.applier.query(read.request.command)
            self._reply(read.request, status, result)

    def _on_nack(self, src: str, msg: Nack) -> None:
        self._see_round(msg.promised)
        if self.role == LEADER and src not in self.peers:
            return  # it votes in none of our slots (a removed node answering the heartbeat we sent it)
        if self.ballot is not None and msg.ballot == self.ballot and self.ballot < msg.promised:
            self._become_follower(None, backoff=True)  # (a follower has no ballot of its own)

    # ------------------------------------------------------------- learning
    def _learn(self, ballot: Ballot, commit: int) -> None:
        """Learn slots up to ``commit``: a value accepted in the leader's ballot is the chosen one."""
        slot = self.applied + 1
        while slot <= commit:
            if slot not in self.chosen:
                accepted = self.acceptor.accepted.get(slot)
                if accepted is None or accepted[0] != ballot:
                    break
                self.chosen[slot] = accepted[1]
            slot += 1
        self._apply()
        if self.applied < commit and self.catchup_cooldown == 0:
            self.catchup_cooldown = self.opts.heartbeat_ticks
            transfer = self.incoming.key
            if transfer is not None and transfer[0] > self.applied:  # resume the snapshot where it stopped
                self._send(ballot.node, SnapshotRequest(ballot, transfer[0], self.incoming.received))
            else:
                self._send(ballot.node, CatchupRequest(ballot, self.applied + 1))

    def _on_catchup_request(self, src: str, msg: CatchupRequest) -> None:
        if msg.ballot != self.ballot:
            return  # for an earlier leadership of ours
        snapshot = None
        start = msg.from_slot
        if start <= self.snapshot_slot and self.snapshot_data is not None and start not in self.log:
            if len(self.snapshot_data) > self.bounds.snapshot_chunk_bytes:
                self._send_chunk(src, 0)  # too large for one message: in chunks, the replica pulling
                return
            snapshot = Snapshot(self.snapshot_slot, self.snapshot_data)
            start = self.snapshot_slot + 1
        end = min(self.applied, start + self.opts.catchup_batch - 1)
        chosen = [SlotValue(s, self.log[s]) for s in range(start, end + 1) if s in self.log]
        budget = self.bounds.max_batch_bytes - (len(snapshot.data) if snapshot is not None else 0)
        del chosen[take_within(chosen, budget, key=_value_of):]
        self._send(src, Catchup(self.ballot, tuple(chosen), snapshot))

    def _send_chunk(self, dst: str, offset: int) -> None:
        """Send ``dst`` the chunk of our snapshot that starts at ``offset``."""
        assert self.ballot is not None and self.snapshot_data is not None
        part, done = chunk_of(self.snapshot_data, offset, self.bounds.snapshot_chunk_bytes)
        self._send(dst, SnapshotChunk(self.ballot, self.snapshot_slot, offset, part, done))

    def _on_snapshot_request(self, src: str, msg: SnapshotRequest) -> None:
        """A replica holds part of a snapshot: send the next chunk of ours (from 0 if it holds another)."""
        if msg.ballot != self.ballot or self.snapshot_data is None:
            return  # for an earlier leadership of ours
        self._send_chunk(src, msg.received if msg.last_slot == self.snapshot_slot else 0)

    def _on_snapshot_chunk(self, src: str, msg: SnapshotChunk) -> None:
        """Reassemble a snapshot sent in chunks, pulling the next one; install it once whole."""
        if msg.ballot != self.leader_ballot or self.role == LEADER:
            return  # from a leader we no longer follow (we asked the one we follow)
        if msg.last_slot <= self.applied:
            self.incoming.clear()
            return  # we have that much already
        key = (msg.last_slot, 0)
        if not self.incoming.add(key, msg.offset, msg.data) or not msg.done:
            self._send(src, SnapshotRequest(msg.ballot, msg.last_slot, self.incoming.received_of(key)))
            return
        self._install_snapshot(Snapshot(msg.last_slot, self.incoming.take()))
        self._apply()
        self.catchup_cooldown = 0

    def _on_catchup(self, src: str, msg: Catchup) -> None:
        if msg.ballot != self.leader_ballot or self.role == LEADER:
            return  # an answer from a leader we no longer follow (we asked the one we follow)
        if msg.snapshot is not None and msg.snapshot.last_slot > self.applied:
            self._install_snapshot(msg.snapshot)
        for sv in msg.chosen:
            if sv.slot > self.applied:
                self.chosen.setdefault(sv.slot, sv.value)
        self._apply()
        self.catchup_cooldown = 0

    def _snapshot_problem(self, data: str) -> str:
        """Why snapshot text from a peer does not restore (a state machine and sessions, aside), or ''.

        A message that carries a snapshot is checked whole before it touches
        any state, even when the snapshot is older than what we applied and
        would be skipped: a correct peer never sends one that does not restore,
        so the chosen values beside it cannot be trusted either.
        """
        try:
            self._restore_aside(data)
        except (CorruptValue, ValueError) as exc:
            return f"a snapshot that does not restore: {exc}"
        return ""

    def _restore_aside(self, data: str) -> tuple[Applier, list[tuple[int, Membership]] | None]:
        """A fresh state machine restored from snapshot text, and the configurations it carries
        (CorruptValue or ValueError if it does not restore); ours stay untouched."""
        applier = self._new_applier()
        applier.restore(data.encode())
        return applier, _window_of(data)

    def _install_snapshot(self, snap: Snapshot) -> None:
        try:
            applier, window = self._restore_aside(snap.data)
        except (CorruptValue, ValueError) as exc:
            raise RemoteProtocolError(f"multipaxos {self.node}: a snapshot from a peer does not restore: {exc}"
                                      ) from None
        self.applier = applier
        self.applied = self.snapshot_slot = snap.last_slot
        self.snapshot_data = snap.data
        self._snapshot_taken(snap.data)
        self.log = {s: v for s, v in self.log.items() if s > snap.last_slot}
        self.chosen = {s: v for s, v in self.chosen.items() if s > snap.last_slot}
        self._writes.append(Write(SNAPSHOT_KEY, {"last_slot": snap.last_slot, "data": snap.data}))
        self.acceptor.forget_below(snap.last_slot + 1)
        self.change_slots = {c for c in self.change_slots if c > snap.last_slot}
        self._set_history(window)
        self.effect = self._in_effect()
        self.snapshot_written = (snap.last_slot, self.effect)

    def _apply(self) -> None:
        while self.applied + 1 in self.chosen:
            slot = self.applied + 1
            value = self.chosen.pop(slot)
            before = self.applier.membership
            status, result = self.applier.apply(value)
            self._count_applied(value)
            self.applied = slot
            self.change_slots.discard(slot)
            if self.applier.membership is not before:
                self._config_applied(slot)
            self.log[slot] = value
            self._committed.append(Committed(slot, value))
            key = (value.client_id, value.seq)
            if key in self.waiting:
                self.waiting.discard(key)
                self._reply(value, status, result)
            self.in_log.pop(key, None)
        self._trim_history()
        self._answer_parked()
        if self.reads or self.reads_waiting:
            self._serve_reads()
        effect = self._in_effect()
        if effect is not self.effect and effect != self.effect:
            self._effect_changed()  # the first slot of a newer configuration is next
        elif self._snapshot_due(self.applied - self.snapshot_slot, self.opts.snapshot_every) \
                or self._readmission_due(self.snapshot_slot):
            self._take_snapshot()

    def _take_snapshot(self) -> bool:
        """Snapshot the applied state (durably, in this step's batch); False if the state cannot take one now."""
        if self.snapshot_slot == self.applied and self.snapshot_data is not None:
            self.snapshot_written = (self.applied, self._in_effect())
            return True  # it is one already (installed, or taken this step)
        data = self._snapshot_text()
        if data is None:
            return False  # keep the log: it still holds everything the snapshot would have
        self.snapshot_slot = self.applied
        self.snapshot_data = data
        self._writes.append(Write(SNAPSHOT_KEY, {"last_slot": self.applied, "data": data}))
        self.snapshot_written = (self.applied, self._in_effect())
        self.log = self._log_tail()
        self.acceptor.forget_below(self.applied + 1)
        return True

    def _log_tail(self) -> dict[int, ClientRequest]:
        """The newest applied slots a leader keeps past a snapshot: about one pipeline of requests.

        A replica that kept up lags by at most that much (after a leader
        change it must ask for the slots it accepted in an older ballot), so
        it catches up from these rather than by a transfer of the whole state.
        """
        budget = self.opts.max_inflight * self.bounds.max_batch_bytes
        tail: dict[int, ClientRequest] = {}
        for slot in range(self.applied, self.applied - self.opts.catchup_batch, -1):
            value = self.log.get(slot)
            if value is None:
                break
            budget -= request_bytes(value)
            if budget < 0:
                break
            tail[slot] = value
        return dict(sorted(tail.items()))

    # -------------------------------------------------------------- clients
    def _on_client(self, request: ClientRequest) -> None:
        if self.role != LEADER:
            self._redirect(request)
            return
        done, status, result = self.applier.lookup(request)
        if done:
            self._reply(request, status, result)
            return
        if self.opts.read_mode != "log" and self.applier.machine.is_read_only(request.command):
            self._read(request)
            return
        key = (request.client_id, request.seq)
        if self._ordering(request):
            prior = self._in_flight(key)
            if prior is None or same_command(prior.command, request.command):
                self.waiting.add(key)  # already being ordered; answer when it is applied
            else:  # another command holds this (client, seq): refused once that one is applied
                self._park(request)
            return
        self.waiting.add(key)
        self.queue[key] = request
        self._pump()

    def _ordering(self, request: ClientRequest) -> bool:
        """True while this leader queues, proposes, has chosen but not applied, or recovered and will
        propose again, ``request``'s (client, seq)."""
        key = (request.client_id, request.seq)
        return key in self.in_log or key in self.queue or self._awaiting_proposal(key) is not None

    def _awaiting_proposal(self, key: tuple[str, int]) -> ClientRequest | None:
        """The recovered value under (client, seq) ``key`` that waits to be proposed again, or None."""
        slot = self.deferred_keys.get(key)
        return None if slot is None else self.deferred[slot]

    def _in_flight(self, key: tuple[str, int]) -> ClientRequest | None:
        """The request this leader is ordering under (client, seq) ``key``: queued, proposed, chosen or recovered."""
        queued = self.queue.get(key)
        if queued is not None:
            return queued
        slot = self.in_log.get(key)
        if slot is None:
            return self._awaiting_proposal(key)
        proposal = self.proposals.get(slot)
        value = proposal.value if proposal is not None else self.chosen.get(slot)
        return value if isinstance(value, ClientRequest) else None

    # ------------------------------------------------------------- messages
    def _on_message(self, src: str, msg: Any) -> None:
        if src == self.node or not 0 < len(src) <= MAX_NODE_ID \
                or (src not in self.known and not self.config.joining and not self._may_be_newer(src, msg)):
            raise RemoteProtocolError(f"multipaxos {self.node}: message from unknown node {src!r}")
        handler = _HANDLERS.get((self.role, type(msg)))
        if handler is None:
            raise RemoteProtocolError(f"multipaxos {self.node} ({self.role}): no rule for "
                                      f"{type(msg).__name__} from {src}")
        problem = self._impossible(src, msg)
        if problem:
            raise RemoteProtocolError(f"multipaxos {self.node}: impossible {type(msg).__name__} from {src}: "
                                      f"{problem}")
        handler(self, src, msg)

    def _may_be_newer(self, src: str, msg: Any) -> bool:
        """True if ``src``, named by no configuration we know, may lead one we have not applied yet.

        A node added while we were down or behind leads, campaigns and
        catches us up like any other (a proposer needs no membership to be
        followed), so we take what a proposer sends -- but only what could be
        true: a proposer is a voter of the configurations of the slots it
        proposes, and every configuration up to alpha slots past our applied
        prefix is one we know, so its ``Prepare`` must start, and its
        ``Accept``/``Heartbeat`` commit point lie, beyond our applied prefix.
        And, as ``Prepare`` from outside our configurations, not while we
        hear a live leader: nothing per unknown sender is kept but the
        ballot we then follow (one leader at a time).
        """
        if isinstance(msg, Prepare):
            ahead = msg.from_slot > self.applied + 1
        elif isinstance(msg, (Accept, Heartbeat)):
            ahead = msg.commit > self.applied
        elif isinstance(msg, (Catchup, SnapshotChunk)):
            # only the leader we follow is answered: it proved itself ahead with a Heartbeat or an Accept
            return self.leader_ballot is not None and msg.ballot == self.leader_ballot and self.leader_ballot.node == src
        else:
            return False  # a reply: only to messages we sent, and we send only to nodes we know
        return ahead and (self.heard_leader in (None, src) or self.since_leader >= self.opts.election_ticks_min)

    def _ignore(self, src: str, msg: Any) -> None:
        """Drop ``msg``: this role has no use for it (e.g. a reply to a role we no longer hold)."""

    def _impossible(self, src: str, msg: Any) -> str:
        """Why no correct peer could have sent ``msg`` (out-of-range numbers, a ballot not its own), or ''.

        Checked before ``msg`` touches any state, so a peer's message can be
        dropped (and counted by the runtime), never reach an assertion.
        """
        ballots = [msg.ballot, *([msg.promised] if isinstance(msg, Nack) else [])]
        values: tuple[SlotValue, ...] = ()
        requests: tuple[ClientRequest, ...] = msg.values if isinstance(msg, Accept) else ()
        if isinstance(msg, (Promise, PromisePart)):
            values = (*msg.accepted, *msg.chosen)
            ballots.extend(v.ballot for v in msg.accepted if v.ballot is not None)
            if any(v.ballot is None for v in msg.accepted):
                return "an accepted value without its ballot"
        elif isinstance(msg, Catchup):
            values = msg.chosen
        if isinstance(msg, (Promise, PromisePart, Catchup)) and any(v.ballot is not None for v in msg.chosen):
            return "a chosen value carries a ballot"  # (only an accepted one names the ballot it was accepted in)
        highest = min(MAX_EPOCH, self.max_round + MAX_EPOCH_JUMP)
        for ballot in ballots:
            # any well-formed node id may own a ballot: a node may lead a configuration we have not applied
            # yet (who sent a proposer's message is checked below and in _on_message)
            if not 0 <= ballot.round <= highest or not 0 < len(ballot.node) <= MAX_NODE_ID:
                return (f"ballot {ballot.round}.{ballot.node[:40]!r} is out of range (0..{highest}) or names "
                        f"no node")
        leaders = (Prepare, Accept, Heartbeat, Catchup, SnapshotChunk)  # what only the ballot's owner sends
        if isinstance(msg, (*leaders, CatchupRequest, SnapshotRequest)) \
                and msg.ballot.node != (src if isinstance(msg, leaders) else self.node):
            return "its ballot is not the sender's (or, for a request to the leader, not ours)"
        if isinstance(msg, (Promise, PromisePart)) and any(
                v.ballot is not None and msg.ballot < v.ballot for v in msg.accepted):
            return "it reports a value accepted in a ballot above the one it promises"
        if isinstance(msg, Accepted) and msg.ballot == self.ballot and msg.first_slot + msg.count > self.next_slot:
            return f"it acknowledges slots up to {msg.first_slot + msg.count - 1}, beyond what we proposed"
        for request in (*requests, *(v.value for v in values)):
            problem = self._impossible_request(request)
            if problem:
                return problem
        slots = [v.slot for v in values]
        if isinstance(msg, (Prepare, Promise, PromisePart, CatchupRequest)):
            slots.append(msg.from_slot)
        if isinstance(msg, (Accept, Accepted)):
            count = len(msg.values) if isinstance(msg, Accept) else msg.count
            if not 1 <= count < MAX_INDEX:  # (a leader sends no Accept without values)
                return "its count is out of range"
            slots += [msg.first_slot, msg.first_slot + count]
        if isinstance(msg, (Accept, Heartbeat)) and msg.commit != 0:  # 0: nothing chosen yet
            slots.append(msg.commit)
        if isinstance(msg, Heartbeat) and (not 0 <= msg.round < MAX_INDEX or not 0 <= msg.held < MAX_INDEX):
            return "its round or held slot is out of range"
        if isinstance(msg, HeartbeatAck):
            if not 0 <= msg.applied < MAX_INDEX or not 0 < msg.round < MAX_INDEX:
                return "its round or applied slot is out of range"
            if msg.ballot == self.ballot and msg.round > self.hb_round:
                return f"it acknowledges heartbeat round {msg.round}, beyond the {self.hb_round} we sent"
        if isinstance(msg, Behind) and msg.applied != 0:
            slots.append(msg.applied)
        if isinstance(msg, (SnapshotChunk, SnapshotRequest)):
            slots.append(msg.last_slot)
        snapshot = msg.snapshot if isinstance(msg, (Promise, PromisePart, Catchup)) else None
        if snapshot is not None:
            slots.append(snapshot.last_slot)
        if not all(1 <= slot < MAX_INDEX for slot in slots):
            return "a slot is out of range"
        if isinstance(msg, PromisePart) and not 0 <= msg.part < msg.parts <= MAX_PROMISE_PARTS:
            return f"part {msg.part} of {msg.parts}"
        if isinstance(msg, (SnapshotChunk, SnapshotRequest)):
            offset = msg.offset if isinstance(msg, SnapshotChunk) else msg.received
            if not 0 <= offset < MAX_INDEX:
                return "its offset is out of range"
        # last, being the dearest: a carried snapshot the handler will use (a promise for our ballot, a
        # catch-up from the leader we follow) must restore, even one it will skip as older than applied
        if snapshot is not None and msg.ballot == (self.leader_ballot if isinstance(msg, Catchup) else self.ballot):
            return self._snapshot_problem(snapshot.data)
        return ""


# ==================================================================== the handler table
#: What each role does with each message from a known peer: (role, type) -> method.
#: Every pair is listed; ``_ignore`` marks a message the role drops on purpose.
_Handler = Callable[[MultiPaxosCore, str, Any], None]
_HANDLERS: dict[tuple[Role, type], _Handler] = {
    # a follower is an acceptor and a learner
    (FOLLOWER, Prepare): MultiPaxosCore._on_prepare,
    (FOLLOWER, Promise): MultiPaxosCore._ignore,              # to a campaign that is over
    (FOLLOWER, Accept): MultiPaxosCore._on_accept,
    (FOLLOWER, Accepted): MultiPaxosCore._ignore,             # to a leadership we lost
    (FOLLOWER, Heartbeat): MultiPaxosCore._on_heartbeat,
    (FOLLOWER, Nack): MultiPaxosCore._on_nack,                # still raises the round we know
    (FOLLOWER, CatchupRequest): MultiPaxosCore._ignore,       # we do not lead
    (FOLLOWER, Catchup): MultiPaxosCore._on_catchup,
    (FOLLOWER, PromisePart): MultiPaxosCore._ignore,
    (FOLLOWER, Behind): MultiPaxosCore._ignore,
    (FOLLOWER, SnapshotRequest): MultiPaxosCore._ignore,
    (FOLLOWER, SnapshotChunk): MultiPaxosCore._on_snapshot_chunk,
    (FOLLOWER, HeartbeatAck): MultiPaxosCore._ignore,         # to a leadership we lost
    # a candidate collects promises (phase 1) and yields to a higher ballot
    (CANDIDATE, Prepare): MultiPaxosCore._on_prepare,
    (CANDIDATE, Promise): MultiPaxosCore._on_promise,
    (CANDIDATE, Accept): MultiPaxosCore._on_accept,
    (CANDIDATE, Accepted): MultiPaxosCore._ignore,
    (CANDIDATE, Heartbeat): MultiPaxosCore._on_heartbeat,
    (CANDIDATE, Nack): MultiPaxosCore._on_nack,
    (CANDIDATE, CatchupRequest): MultiPaxosCore._ignore,
    (CANDIDATE, Catchup): MultiPaxosCore._on_catchup,
    (CANDIDATE, PromisePart): MultiPaxosCore._on_promise_part,
    (CANDIDATE, Behind): MultiPaxosCore._on_behind,
    (CANDIDATE, SnapshotRequest): MultiPaxosCore._ignore,
    (CANDIDATE, SnapshotChunk): MultiPaxosCore._on_snapshot_chunk,
    (CANDIDATE, HeartbeatAck): MultiPaxosCore._ignore,
    # a leader counts acceptances (phase 2) and serves catch-up requests
    (LEADER, Prepare): MultiPaxosCore._on_prepare,
    (LEADER, Promise): MultiPaxosCore._on_promise,            # late, or from a configuration entering our window
    (LEADER, Accept): MultiPaxosCore._on_accept,
    (LEADER, Accepted): MultiPaxosCore._on_accepted,
    (LEADER, Heartbeat): MultiPaxosCore._on_heartbeat,
    (LEADER, Nack): MultiPaxosCore._on_nack,
    (LEADER, CatchupRequest): MultiPaxosCore._on_catchup_request,
    (LEADER, Catchup): MultiPaxosCore._on_catchup,
    (LEADER, PromisePart): MultiPaxosCore._on_promise_part,   # the same, in parts
    (LEADER, Behind): MultiPaxosCore._on_behind,
    (LEADER, SnapshotRequest): MultiPaxosCore._on_snapshot_request,
    (LEADER, SnapshotChunk): MultiPaxosCore._on_snapshot_chunk,
    (LEADER, HeartbeatAck): MultiPaxosCore._on_heartbeat_ack,
}
