"""The whole Raft state machine: every transition of every role lives in this module.

:class:`RaftCore` is a sans-IO replica (see :mod:`smr.replica` for the
contract).  It follows the extended Raft paper (Ongaro and Ousterhout, 2014)
and Ongaro's thesis, structured like etcd raft:

* one way in: :meth:`RaftCore.step`; ticks, peer messages and client requests
  are all inputs;
* **one central term check** (:meth:`RaftCore._on_message`): a message from a
  higher term turns us into a follower of that term (except pre-votes, and
  votes ignored under a check-quorum lease); a message from a lower term is
  answered with our term or dropped; only then is it dispatched through the
  handler table ``_HANDLERS`` (bottom of this module), keyed by
  (role, message type) like etcd's ``stepFollower``/``stepCandidate``/
  ``stepLeader``: every pair has an entry, an explicit ``_ignore`` where a
  role drops a message (a reply to a role it no longer holds);
* quorum arithmetic (votes, the commit index, acks) comes from
  :mod:`smr.quorum`;
* timeouts count ticks; each election draws its timeout from the node's own
  ``config.rng`` in [election_ticks_min, election_ticks_max].

**Ordering rule.**  Every change to the term, the vote or the log is in the
``persist`` of the same :class:`~smr.replica.Ready` as the messages that
depend on it (a vote reply, an AppendEntries acknowledgement), and the runtime
syncs ``persist`` before it sends them.  ``raft/hard`` always comes first
in ``persist``, log deletes come before the appends that replace them, so any
prefix of the writes that survives a crash is a consistent state.

**The one exception: the leader's append in parallel** (thesis 10.2.1).  A
leader's AppendEntries carrying entries go out in ``Ready.eager``, before its
own write of them is durable: they promise nothing on its behalf (its term was
synced before its RequestVotes left, so before it won; its commit index counts
only durable copies).  Each append asks for a :class:`~smr.replica.Synced` of
the term and the last index written (``_wrote_own``); the leader's own match
index in the commit count is ``own_durable``, which only
:meth:`RaftCore._on_synced` advances, for a Synced of the term it leads.
Votes, acknowledgements, heartbeats and snapshots keep the ordering rule.

Roles (:class:`smr.replica.Role`): ``FOLLOWER``, ``PRECANDIDATE`` (pre-vote,
thesis 9.6), ``CANDIDATE``, ``LEADER``.  Client requests reach the log only on the leader; others answer
``REDIRECT`` with their best guess of the leader.  Committed entries are
applied in order through :class:`~smr.sessions.Applier` (exactly-once client
sessions) and answered on the leader that appended them.

**Mutants.**  Each rule the ``mutant_*`` options break is one overridable method
here -- :meth:`RaftCore._vote_log_ok`, :meth:`RaftCore._may_commit`,
:meth:`RaftCore._durable_vote`, :meth:`RaftCore._merge_entries`,
:meth:`RaftCore._wrote_own` (from :class:`smr.log_core.LogCore`) -- and the
broken variants are subclasses in :mod:`raft.mutants`, built by
:func:`raft.mutants.build`.  This module holds only the correct protocol.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Callable, ClassVar

import attrs

from smr.bounds import MAX_EPOCH, MAX_EPOCH_JUMP, MAX_INDEX, ChunkBuffer, chunk_of, take_within
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.membership import LEAVE_JOINT, Membership, MembershipError, changed, fold, is_change, membership_command
from smr.quorum import VoteResult
from smr.replica import (ClientRequest, Committed, Ready, ReplicaConfig, ReplicaStatus, ReplyStatus,
                         Role, Send, Synced, Write)
from smr.leases import lease_ticks
from smr.log_core import LogCore
from smr.sessions import NOOP_ENTRY, same_command
from smr.values import CorruptValue

from .log import RaftLog
from .messages import (HARD_KEY, LOG_PREFIX, SNAPSHOT_KEY, AppendEntries, AppendEntriesReply, Entry,
                       HardState, InstallSnapshot, InstallSnapshotReply, RaftMessage, RequestVote,
                       RequestVoteReply, SnapshotRecord, TimeoutNow, log_key)
from .options import RaftOptions
from .progress import PROBE, REPLICATE, SNAPSHOT, Progress

#: Raft's roles, as the shared :class:`smr.replica.Role` members (kept as module names for importers).
FOLLOWER, PRECANDIDATE, CANDIDATE, LEADER = Role.FOLLOWER, Role.PRECANDIDATE, Role.CANDIDATE, Role.LEADER


def _request_of(entry: Entry) -> ClientRequest:
    return entry.request


@attrs.define
class _Read:
    """A ReadIndex read: answer ``request`` once round ``round`` is confirmed and ``index`` applied."""

    index: int
    round: int
    request: ClientRequest
    confirmed: bool = False


class RaftCore(LogCore):
    """One Raft server as a pure state machine; see the module docstring for the ordering rule."""

    backend: ClassVar[str] = "raft"
    builder: ClassVar[str] = "raft.mutants.build"
    joint_consensus: ClassVar[bool] = True

    def __init__(self, config: ReplicaConfig) -> None:
        self.opts = RaftOptions.from_mapping(config.options)
        self.log = RaftLog()
        #: The index of the latest membership change in the log (0: none beyond the applied state).
        self.conf_index = 0
        self.progress: dict[str, Progress] = {}
        self.role: Role = FOLLOWER
        super().__init__(config, frozenset(self.opts.mutants), self.opts.write_in_parallel)
        self.applier = self._new_applier()
        self.snapshot: SnapshotRecord | None = None
        #: A snapshot arriving from the leader in chunks (volatile: a restarted follower starts it over).
        self.incoming = ChunkBuffer(self.bounds.max_snapshot_bytes)
        # persistent (mirrored in raft/hard)
        self.term = 0
        self.voted_for: str | None = None
        # volatile
        self.leader: str | None = None
        self.commit_index = 0
        self.last_applied = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self.opts.election_ticks_max
        self.votes: dict[str, bool] = {}
        # leader only
        self.own_durable = 0  # our own log is synced up to here in this term: our match in the commit count
        self.round = 0   # stamped on every leader message; ReadIndex waits for a quorum of acks
        self.beat = 0    # tick-driven heartbeat intervals: the clock for presuming messages lost
        self.pending: dict[int, ClientRequest] = {}
        self.in_log: dict[str, tuple[int, int]] = {}
        self.reads: list[_Read] = []
        self.reads_waiting: list[ClientRequest] = []
        # leader lease (read_mode lease): ticks led, when each heartbeat round started, the lease's end
        self.lead_ticks = 0
        self.round_started: deque[tuple[int, int]] = deque()
        self.lease_until = 0
        self.lease_void = False  # a TimeoutNow went out: voters may ignore their lease for it
        #: A restarted node forgot which leader it heard: with leases, it ignores votes for a timeout first.
        self.booting = False
        self.transferee: str | None = None
        #: Removed nodes this leader still replicates to, so they learn they were removed.
        self.leaving: dict[str, int] = {}  # node -> our lead_ticks when it was removed
        self.transfer_elapsed = 0
        self.transfer_sent = False
        self._hard_dirty = False  # raft/hard changed in this step

    # ================================================================ surface
    def status(self) -> ReplicaStatus:
        """Role, current term (as epoch), known leader and commit index."""
        return ReplicaStatus(self.node, self.role, self.term, self.leader, self.commit_index)

    @property
    def readmitted(self) -> bool:
        """False while this node, rejoining from an emptied directory, has not applied the log up to
        ``config.rejoin_after`` (at or past its own removal): until then it grants no vote and never campaigns.

        Once it holds its removal, its log is more up to date than that of
        any candidate lacking it, so its vote never helps elect a leader that
        could lose what its lost incarnation acknowledged.
        """
        return self.last_applied >= self.config.rejoin_after

    def transfer_leadership(self, to: str) -> Ready:
        """Hand leadership to peer ``to`` (thesis 3.10): catch it up, then send TimeoutNow."""
        if not self.opts.leadership_transfer:
            raise LocalProtocolError("leadership transfer needs the raft option leadership_transfer")
        if to == self.node or not self.membership.votes_in(to):
            raise LocalProtocolError(f"raft {self.node}: cannot transfer leadership to {to!r}, which is not "
                                     f"another voter")
        if self.role != LEADER:
            raise LocalProtocolError(f"raft {self.node}: only the leader can transfer leadership "
                                     f"(role: {self.role})")
        self.transferee = to
        self.transfer_elapsed = 0
        self.transfer_sent = False
        self._maybe_send_timeout_now()
        pr = self.progress[to]
        if not self.transfer_sent and pr.state != SNAPSHOT:
            pr.become_probe(pr.match + 1)  # catch it up first, from what it surely holds
            self._send_append(to, allow_empty=True)
        return self._flush()

    @property
    def is_leader(self) -> bool:
        """True while this server is the leader of its current term."""
        return self.role == LEADER

    # ================================================================ outputs
    def _send(self, dst: str, message: Any) -> None:
        self._messages.append(Send(dst, message))

    def _broadcast(self, message: Any) -> None:
        for peer in self.peers:
            self._messages.append(Send(peer, message))

    def _redirect(self, request: ClientRequest) -> None:
        hint = self.leader if self.leader != self.node else self.transferee
        self._reply(request, ReplyStatus.REDIRECT, leader=hint)

    def _pending_writes(self) -> tuple[Write, ...]:
        """This step's writes, raft/hard (term and vote) first when it changed."""
        if self._hard_dirty:
            self._hard_dirty = False
            return (Write(HARD_KEY, HardState(self.term, self._durable_vote())), *self._writes)
        return tuple(self._writes)

    def _durable_vote(self) -> str | None:
        """The vote written to raft/hard with the term: the vote itself (Figure 2: persist votedFor)."""
        return self.voted_for

    # ================================================================ restart
    def _start(self, durable: Mapping[str, Any]) -> None:
        if self.started:
            raise LocalProtocolError(f"raft {self.node}: Start given twice to one incarnation")
        hard = durable.get(HARD_KEY)
        if hard is not None:
            if not isinstance(hard, HardState):
                raise LocalProtocolError(f"raft {self.node}: durable {HARD_KEY} holds {hard!r}")
            self.term, self.voted_for = hard.term, hard.vote
        if self.term < self.config.rejoin_epoch:  # rejoining: no stale leader may count what we acknowledge
            self.term, self.voted_for = self.config.rejoin_epoch, None
            self._hard_dirty = True
        snap = durable.get(SNAPSHOT_KEY)
        if snap is not None:
            if not isinstance(snap, SnapshotRecord):
                raise LocalProtocolError(f"raft {self.node}: durable {SNAPSHOT_KEY} holds {snap!r}")
            self.applier.restore(snap.data.encode())
            self._snapshot_taken(snap.data)
            self.log = RaftLog(snap.index, snap.term)
            self.snapshot = snap
            self.commit_index = self.last_applied = self._restored_index(snap.index)
        gap = False
        for key in sorted(k for k in durable if k.startswith(LOG_PREFIX)):
            index = int(key[len(LOG_PREFIX):])
            if index == self.log.last_index + 1 and not gap:
                entry = durable[key]
                if not isinstance(entry, Entry):
                    raise LocalProtocolError(f"raft {self.node}: durable {key} holds {entry!r}")
                self.log.entries.append(entry)
            else:
                # compacted, or beyond a hole left by a crash: never part of the log again
                gap = gap or index > self.log.last_index
                self._writes.append(Write(log_key(index), None))
        self._recompute_membership()
        self.booting = self.opts.read_mode == "lease" and bool(durable)  # a restart, not a first boot
        self.started = True
        self._reset_election_timer()

    def _restored_index(self, snapshot_index: int) -> int:
        """The index a restart from a snapshot of the log up to ``snapshot_index`` has applied: that one."""
        return snapshot_index

    # ================================================================ membership (thesis ch. 4)
    def _set_membership(self, membership: Membership) -> None:
        """Put ``membership`` in effect.

        The peers are its members and, until a removal is committed, the
        members it removes: a leader replicates to both, so a removed node
        learns of its removal and can retire (``retired``).  Quorums count the
        voters of ``membership`` alone.
        """
        super()._set_membership(membership)
        applied = self.applier.membership if hasattr(self, "applier") else None
        if applied is not None and applied.members != membership.members:
            self.peers = tuple(sorted({*self.peers, *applied.members} - {self.node}))
        if self.role == LEADER:
            for peer in self.peers:
                if self.leaving.pop(peer, None) is not None:
                    # removed and added again: maybe another incarnation (an emptied node rejoining), so
                    # what we knew of its log is void; probed afresh, it is promoted once it has caught up
                    self.progress.pop(peer, None)
                if peer not in self.progress:
                    self.progress[peer] = Progress(next=self.log.last_index + 1)
                    self._send_append(peer, allow_empty=True)  # probe the new member at once
            for peer in self.progress.keys() - set(self.peers):
                self.leaving.setdefault(peer, self.lead_ticks)  # replicated to until it holds its removal
                self._let_go(peer)
            if self.transferee is not None and not membership.votes_in(self.transferee):
                self.transferee = None  # no longer a voter: the transfer is off

    def _let_go(self, peer: str, force: bool = False) -> None:
        """Stop replicating to a removed ``peer`` once it holds our commit index (or at once, if ``force``)."""
        pr = self.progress[peer]
        if pr.match >= self.commit_index or force:
            self._send_heartbeat(peer)  # its last: the commit index that tells it it was removed
            del self.progress[peer]
            self.leaving.pop(peer, None)

    def _recompute_membership(self) -> None:
        """Thesis 4.1: the configuration in effect is the latest in the log, committed or not.

        That is the applied configuration with every change after it in the
        log folded in; called whenever the log lost entries (a conflict, a
        snapshot) or was loaded.
        """
        self.conf_index = 0
        tail = self.log.slice(self.last_applied + 1, self.log.last_index)
        self._fold_in(self.applier.membership or self.initial_membership, self.last_applied + 1, tail,
                      always=True)

    def _log_grew(self, first: int, entries: Iterable[Entry]) -> None:
        """``entries`` joined the log at index ``first``: a change among them takes effect now (appended, not committed)."""
        self._fold_in(self.membership, first, entries)

    def _fold_in(self, base: Membership, first: int, entries: Iterable[Entry], always: bool = False) -> None:
        """Put in effect ``base`` with the changes among ``entries`` (from index ``first``) folded in, as every
        replica applies them (:func:`smr.membership.fold`); the last of them is the pending change."""
        changes = []
        for index, entry in enumerate(entries, start=first):
            if is_change(entry.request.command):
                changes.append(entry.request.command)
                self.conf_index = index
        if changes or always:
            self._set_membership(fold(base, changes, joint_consensus=True))

    def _change_blocked(self) -> str:
        """Why this leader may not start a membership change now, or ''."""
        if not self._own_term_committed():
            return ("this leader has not committed an entry of its own term yet (the 2015 correction to "
                    "thesis 4.1); retry")
        if not self._previous_change_committed():
            return f"the membership change at index {self.conf_index} is not committed yet; retry"
        if self.membership.joint:
            return "the cluster is leaving a joint configuration; retry"
        return ""

    def _own_term_committed(self) -> bool:
        """A change waits for an entry of the leader's term to commit (else two changes can overlap)."""
        return self.log.term_at(self.commit_index) == self.term

    def _previous_change_committed(self) -> bool:
        """Thesis 4.1: one single-server change at a time (the next waits for the last to commit)."""
        return self.conf_index <= self.commit_index

    def _on_change_request(self, request: ClientRequest) -> None:
        """A client asks for a membership change: append it, answered once it is committed.

        The entry carries no client session (every replica folds it into its
        configuration exactly as it is written); a retry of a change that was
        committed meanwhile is answered with the MembershipError it now gets.
        """
        refused = self.applier.refusal(request)
        if refused is not None:
            self._reply(request, ReplyStatus.ERROR, refused.to_result())
            return
        blocked = self._change_blocked()
        if blocked:
            self._reply(request, ReplyStatus.ERROR, {"error": "ChangeInProgress", "message": blocked})
            return
        try:
            after = changed(self.membership, request.command, joint_consensus=True)
        except MembershipError as exc:
            self._reply(request, ReplyStatus.ERROR, exc.to_result())
            return
        behind = sorted(n for n in set(after.voters) - set(self.membership.voters) - {self.node}
                        if n not in self.progress or self.progress[n].match < self.commit_index)
        if behind:  # thesis 4.2.1: a new voter first catches up as a learner
            self._reply(request, ReplyStatus.ERROR, {"error": "ChangeInProgress", "message": (
                f"{', '.join(behind)} would vote before catching up (add it as a learner first); retry")})
            return
        self.pending[self._append_change(request.command)] = request

    def _append_change(self, command: Any) -> int:
        """Append a membership change as an entry of no session, and replicate it."""
        index = self._append((ClientRequest("", 0, command),))
        self._bcast_append()
        self._maybe_commit()
        return index

    def _advance_membership(self) -> None:
        """As leader, carry a change on once it is committed: leave a joint configuration, promote a learner
        that has caught up (thesis 4.2.1), or step down if the configuration no longer names us (4.2.2)."""
        if self.role != LEADER or self.conf_index > self.commit_index:
            return
        if not self.membership.votes_in(self.node):
            self._step_down_removed()
            return
        if not self._own_term_committed():
            return
        if self.membership.joint:
            self._append_change(LEAVE_JOINT)
            return
        for learner, _ in self.membership.joining:
            pr = self.progress.get(learner)
            if pr is not None and pr.match >= self.commit_index:
                self._append_change(membership_command("promote", learner))
                return

    def _step_down_removed(self) -> None:
        """Thesis 4.2.2: a leader removed by a committed change steps down (handing over if it can)."""
        if self.opts.leadership_transfer:
            caught_up = [p for p, pr in self.progress.items()
                         if self.membership.votes_in(p) and pr.match == self.log.last_index]
            if caught_up:
                self._send(min(caught_up), TimeoutNow(self.term))
                self.lease_void = True
        self._become_follower(self.term, None)

    # ================================================================ ticks
    def _tick(self) -> None:
        if self.role == LEADER:
            self._tick_leader()
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_timeout:
            if not self._may_campaign():
                self._reset_election_timer()  # a learner, a joiner or a removed node: it never campaigns
                return
            self._campaign(pre=self.opts.pre_vote)

    def _may_campaign(self) -> bool:
        """A voter of our newest configuration campaigns; so does one its newest change removes, uncommitted.

        Thesis 4.2.2: a leader that appended its own removal manages the new
        configuration without counting itself.  If it loses leadership before
        the change commits (a higher term from a partitioned voter), the voters
        that lack the change cannot elect anyone without its vote, which it
        refuses (its log is longer), and it waited forever for a leader; so it
        campaigns, counting votes among the new configuration's voters only
        (``Membership.election``), finishes the change and steps down.
        """
        if not self.readmitted:
            return False
        if self.membership.votes_in(self.node):
            return True
        committed = self.applier.membership or self.initial_membership
        return self.conf_index > self.commit_index and committed.votes_in(self.node)

    def _tick_leader(self) -> None:
        opts = self.opts
        self.lead_ticks += 1
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.transferee is not None:
            self.transfer_elapsed += 1
            if self.transfer_elapsed >= opts.election_ticks_min:
                self.transferee = None  # the transfer did not finish in an election timeout: abort
        if self.election_elapsed >= opts.election_ticks_min:
            self.election_elapsed = 0
            for peer, since in list(self.leaving.items()):
                if self.lead_ticks - since >= opts.election_ticks_min:
                    self._let_go(peer, force=True)  # removed a whole election timeout ago: no longer waited for
            if opts.check_quorum:
                active = [self.node, *(peer for peer, pr in self.progress.items() if pr.recent_active)]
                for pr in self.progress.values():
                    pr.recent_active = False
                if not self.membership.is_quorum(active):
                    self._become_follower(self.term, None)  # thesis 6.2: lost touch with a majority
                    return
        if self.heartbeat_elapsed >= opts.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self.beat += 1
            self._bcast_heartbeat(detect_loss=True)

    def _reset_election_timer(self) -> None:
        self.election_elapsed = 0
        self.randomized_timeout = self.rng.randint(self.opts.election_ticks_min,
                                                   self.opts.election_ticks_max)

    def _in_lease(self) -> bool:
        """True while we hear from a live leader (check-quorum's reason to ignore votes), or may have
        before a restart (with leases: a leader may still count on us)."""
        return (self.leader is not None or self.booting) and self.election_elapsed < self.opts.election_ticks_min

    # ================================================================ roles
    def _become_follower(self, term: int, leader: str | None, reset_timer: bool = True) -> None:
        was_leader = self.role == LEADER
        if term > self.term:
            self.term = term
            self.voted_for = None
            self._hard_dirty = True
        if reset_timer or self.role != FOLLOWER:
            self._reset_election_timer()
        self.role = FOLLOWER
        self.leader = leader
        self.votes = {}
        if was_leader:
            self._drop_leader_state()

    def _drop_leader_state(self) -> None:
        for request in self.pending.values():
            self._redirect(request)
        for read in self.reads:
            self._redirect(read.request)
        for request in self.reads_waiting:
            self._redirect(request)
        self.progress = {}
        self.leaving = {}
        self.pending = {}
        self.in_log = {}
        self.reads = []
        self.reads_waiting = []
        self.transferee = None

    def _campaign(self, pre: bool, transfer: bool = False) -> None:
        if self.term >= MAX_EPOCH:
            self._reset_election_timer()
            return  # no term left to campaign in (peers refuse terms beyond MAX_EPOCH)
        self.booting = False
        if pre:
            self.role = PRECANDIDATE
            term = self.term + 1  # the term we would campaign in; ours does not change yet
        else:
            self.term += 1
            self.voted_for = self.node
            self._hard_dirty = True
            self.role = CANDIDATE
            term = self.term
        self.leader = None
        self.votes = {self.node: True}
        self._reset_election_timer()
        if self._tally() is not VoteResult.PENDING:
            return  # our own vote decided it: a cluster of one
        self._broadcast(RequestVote(term, self.log.last_index, self.log.last_term, pre_vote=pre,
                                    transfer=transfer))

    def _tally(self) -> VoteResult:
        """Act on the votes so far: won -> next phase or lead; lost -> follow; and say which."""
        result = self.membership.election(self.votes)
        if result is VoteResult.WON:
            if self.role == PRECANDIDATE:
                self._campaign(pre=False)
            else:
                self._become_leader()
        elif result is VoteResult.LOST:
            self._become_follower(self.term, None)
        return result

    def _become_leader(self) -> None:
        self._lead_clock(e.request.time for e in self.log.entries[-1:])  # stamps never decrease in a log
        self.role = LEADER
        self.leader = self.node
        self.votes = {}
        self.heartbeat_elapsed = 0
        self.election_elapsed = 0
        self.round = 0
        self.beat = 0
        self.lead_ticks = self.lease_until = 0
        self.round_started = deque([(0, 0)])
        self.lease_void = False
        self.transferee = None
        self.own_durable = self.commit_index  # what this term appends counts once it is synced
        nxt = self.log.last_index + 1
        self.progress = {peer: Progress(next=nxt) for peer in self.peers}
        self.in_log = {}
        for index in range(self.commit_index + 1, self.log.last_index + 1):
            request = self.log.entry(index).request
            if request.client_id:
                self.in_log[request.client_id] = (request.seq, index)
        self._append((NOOP_ENTRY,))  # section 8: commit an entry of the new term at once
        self._bcast_append()
        self._maybe_commit()

    # ================================================================ messages
    def _on_message(self, src: str, m: Any) -> None:
        if src == self.node:
            raise RemoteProtocolError(f"raft {self.node}: a message that claims to come from this node")
        if not isinstance(m, RaftMessage):
            raise RemoteProtocolError(f"raft {self.node}: unexpected {type(m).__name__} from {src}")
        problem = self._impossible(m)
        if problem:
            raise RemoteProtocolError(f"raft {self.node}: impossible {type(m).__name__} from {src}: {problem}")
        # ---- the central term check
        if m.term > self.term:
            if isinstance(m, RequestVote):
                if self.opts.check_quorum and not m.transfer and self._in_lease():
                    return  # thesis 6.2: we hear from a live leader, so ignore the disruption
                if not m.pre_vote:
                    # Figure 2: a follower's timer restarts only on hearing the current leader
                    # or granting a vote, not on a (possibly hopeless) candidate's higher term;
                    # otherwise a stale node that keeps campaigning can hold off every election.
                    self._become_follower(m.term, None, reset_timer=False)
            elif isinstance(m, RequestVoteReply) and m.pre_vote and m.granted:
                pass  # a granted pre-vote carries the term we would campaign in
            else:
                leader = src if isinstance(m, (AppendEntries, InstallSnapshot, TimeoutNow)) else None
                self._become_follower(m.term, leader)
        elif m.term < self.term:
            if isinstance(m, (AppendEntries, InstallSnapshot)):
                # tell the stale leader about the newer term so it steps down
                prev = m.prev_index if isinstance(m, AppendEntries) else m.snapshot.index
                self._send(src, AppendEntriesReply(self.term, False, prev, round=m.round))
            elif isinstance(m, RequestVote):
                # Figure 2: refuse with our term, so the candidate learns it. A stale voter the
                # candidate knows of, but which does not know the candidate (it missed the change
                # that added it), never campaigns at it: without this answer neither would ever
                # reach the other's term (swarm seed 6026, no pre-vote).
                self._send(src, RequestVoteReply(self.term, False, pre_vote=m.pre_vote))
            return
        # ---- dispatch by role and type
        handler = _HANDLERS.get((self.role, type(m)))
        if handler is None:
            raise RemoteProtocolError(f"raft {self.node} ({self.role}): no rule for "
                                      f"{type(m).__name__} from {src}")
        handler(self, src, m)

    def _ignore(self, src: str, m: Any) -> None:
        """Drop ``m``: this role has no use for it (e.g. a reply to a role we no longer hold)."""

    def _leads(self, term: int) -> bool:
        """True if this node leads ``term`` (so a reply of that term answers a message it sent)."""
        return self.role == LEADER and term == self.term

    def _impossible(self, m: Any) -> str:
        """Why no correct peer could have sent ``m`` (out-of-range numbers, a log that contradicts itself), or ''.

        Checked before ``m`` touches any state, so a peer's message can be
        dropped (and counted by the runtime), never reach an assertion.
        """
        if not 0 <= m.term <= min(MAX_EPOCH, self.term + MAX_EPOCH_JUMP):
            return f"term {m.term} is outside 0..{MAX_EPOCH} or more than {MAX_EPOCH_JUMP} ahead of ours"
        if isinstance(m, RequestVote):
            if not (0 <= m.last_log_index < MAX_INDEX and 0 <= m.last_log_term <= m.term):
                return "its last log entry is out of range"
        elif isinstance(m, AppendEntries):
            if not (0 <= m.prev_index < MAX_INDEX - len(m.entries) and 0 <= m.prev_term <= m.term
                    and 0 <= m.commit < MAX_INDEX and m.round >= 0):
                return "an index, term or round is out of range"
            floor = m.prev_term
            for entry in m.entries:
                if not floor <= entry.term <= m.term:
                    return f"entry terms must not decrease nor pass the leader's ({entry.term})"
                floor = entry.term
                if entry.request.client_id and is_change(entry.request.command):
                    return "a membership change entry carries a client session (a leader writes them with none)"
                problem = self._impossible_request(entry.request)
                if problem:
                    return problem
        elif isinstance(m, AppendEntriesReply):
            if not (0 <= m.index < MAX_INDEX and 0 <= m.conflict_term <= m.term
                    and 0 <= m.conflict_index < MAX_INDEX and m.round >= 0):
                return "an index, term or round is out of range"
            if self._leads(m.term) and (m.index > self.log.last_index or m.round > self.round):
                return f"it answers index {m.index} or round {m.round}, beyond what this leader sent"
        elif isinstance(m, InstallSnapshot):
            snap = m.snapshot
            if not (1 <= snap.index < MAX_INDEX and 1 <= snap.term <= m.term and 0 <= m.offset < MAX_INDEX
                    and m.round >= 0):
                return "its index, term, offset or round is out of range"
        elif isinstance(m, InstallSnapshotReply):
            if not (0 <= m.index < MAX_INDEX and 0 <= m.received < MAX_INDEX and m.round >= 0):
                return "its index, size or round is out of range"
            ours = self.snapshot
            if self._leads(m.term) and (m.round > self.round or ours is None or (
                    m.index == ours.index and m.received > len(ours.data))):
                return "it answers a snapshot or round this leader never sent"
        return ""

    # ---------------------------------------------------------------- votes
    def _vote_log_ok(self, m: RequestVote) -> bool:
        """Section 5.4.1: vote only for a candidate whose log is at least as up to date as ours."""
        return self.log.is_up_to_date(m.last_log_index, m.last_log_term)

    def _on_request_vote(self, src: str, m: RequestVote) -> None:
        if not self.readmitted:  # rejoining from an emptied directory: no vote before it holds its removal
            self._send(src, RequestVoteReply(self.term, False, pre_vote=m.pre_vote))
            return
        log_ok = self._vote_log_ok(m)
        if m.pre_vote:
            # thesis 9.6: grant only if we would vote, and we hear from no live leader
            live_leader = self.role == LEADER or (self._in_lease() and not m.transfer)
            grant = m.term > self.term and log_ok and not live_leader
            self._send(src, RequestVoteReply(m.term if grant else self.term, grant, pre_vote=True))
            return
        can_vote = self.voted_for == src or (self.voted_for is None and self.leader is None)
        grant = can_vote and log_ok
        if grant:
            self.voted_for = src
            self._hard_dirty = True  # the vote is on disk before the reply leaves (Ready contract)
            self._reset_election_timer()
        self._send(src, RequestVoteReply(self.term, grant))

    def _on_pre_vote_reply(self, src: str, m: RequestVoteReply) -> None:
        if not m.pre_vote:
            return  # a real vote from an older campaign
        if m.term != (self.term + 1 if m.granted else self.term):
            return  # an answer to an older pre-vote
        self.votes[src] = m.granted
        self._tally()

    def _on_vote_reply(self, src: str, m: RequestVoteReply) -> None:
        if m.pre_vote:
            return  # an answer to the pre-vote phase we left
        if self.votes.get(src):
            return  # a vote once granted in a term stands (a refusal of our older term's request may follow it)
        self.votes[src] = m.granted
        self._tally()

    def _check_transfers_on(self, src: str) -> None:
        if not self.opts.leadership_transfer:
            raise RemoteProtocolError(f"raft {self.node}: TimeoutNow from {src} but transfers are off")

    def _on_timeout_now(self, src: str, m: TimeoutNow) -> None:
        self._check_transfers_on(src)
        if src == self.leader and self.membership.votes_in(self.node) and self.readmitted:
            self._campaign(pre=False, transfer=True)  # thesis 3.10: skip pre-vote and the lease

    def _on_late_timeout_now(self, src: str, m: TimeoutNow) -> None:
        self._check_transfers_on(src)  # we campaign or lead already: nothing to hand over

    # ---------------------------------------------------------------- follower side
    def _on_rival_leader(self, src: str, m: AppendEntries | InstallSnapshot) -> None:
        raise RemoteProtocolError(f"raft {self.node}: {src} claims to lead term {self.term}, "
                                  f"which this server leads")

    def _follow(self, src: str) -> None:
        if self.role != FOLLOWER:
            self._become_follower(self.term, src)
        self.leader = src
        self.election_elapsed = 0

    def _on_append(self, src: str, m: AppendEntries) -> None:
        self._follow(src)
        log = self.log
        if m.prev_index < self.commit_index:
            # everything up to our commit index matches any leader's log (Leader Completeness)
            self._send(src, AppendEntriesReply(self.term, True, self.commit_index, round=m.round))
            return
        local = log.term_at(m.prev_index)
        if local != m.prev_term:
            if local is None:  # our log is too short
                hint_term, hint_index = 0, log.last_index + 1
            else:
                hint_term, hint_index = local, log.first_index_of_term(m.prev_index)
            self._send(src, AppendEntriesReply(self.term, False, m.prev_index, hint_term, hint_index,
                                               round=m.round))
            return
        last_before, generation = self.log.last_index, self.log.generation
        self._merge_entries(src, m)
        if self.log.generation != generation or self.conf_index > self.log.last_index:
            self._recompute_membership()  # entries were cut: a change among them no longer holds
        elif self.log.last_index > last_before:
            self._log_grew(last_before + 1, self.log.slice(last_before + 1, self.log.last_index))
        last_new = m.prev_index + len(m.entries)
        if m.commit > self.commit_index:
            self._commit_to(min(m.commit, last_new))
        self._send(src, AppendEntriesReply(self.term, True, last_new, round=m.round))

    def _merge_entries(self, src: str, m: AppendEntries) -> None:
        """Section 5.3, our log matching ``m`` up to prev_index: append the entries we lack.

        Skip entries we already hold; truncate only at a real conflict (same
        index, different term), never because the message is stale.
        """
        log = self.log
        for k, entry in enumerate(m.entries):
            index = m.prev_index + 1 + k
            if index > log.last_index:
                self._writes.extend(log.append(m.entries[k:]))
                return
            if log.term_at(index) != entry.term:
                if index <= self.commit_index:
                    raise RemoteProtocolError(
                        f"raft {self.node}: {src} sent entry {index} conflicting with a committed one")
                self._writes.extend(log.truncate_from(index))
                self._writes.extend(log.append(m.entries[k:]))
                return

    def _on_install_snapshot(self, src: str, m: InstallSnapshot) -> None:
        self._follow(src)
        snap = m.snapshot
        if snap.index <= self.commit_index:
            self.incoming.clear()
            self._send(src, AppendEntriesReply(self.term, True, self.commit_index, round=m.round))
            return
        if self.log.term_at(snap.index) == snap.term:
            # we hold the snapshot's last entry: keep the log after it (section 7)
            self.incoming.clear()
            self._commit_to(snap.index)
        else:
            if not (m.offset == 0 and m.done):  # one chunk of several: reassemble, then install
                key = (snap.index, snap.term)
                if not self.incoming.add(key, m.offset, snap.data) or not m.done:
                    self._send(src, InstallSnapshotReply(self.term, snap.index, self.incoming.received_of(key),
                                                         m.round))
                    return
                snap = SnapshotRecord(snap.index, snap.term, self.incoming.take())
            applier = self._new_applier()
            try:
                applier.restore(snap.data.encode())
            except (UnicodeEncodeError, ValueError, KeyError, TypeError, AttributeError,
                    LocalProtocolError, CorruptValue) as exc:
                raise RemoteProtocolError(f"raft {self.node}: bad snapshot from {src}: {exc!r}") from None
            # Crash-safe order: entries beyond the snapshot go first, then the snapshot is
            # written, and only then the entries it covers, so no prefix of this batch
            # leaves the node with less than it acknowledged.
            deletes = self.log.reset(snap.index, snap.term)
            self._writes.extend(w for w in deletes if int(w.key.rsplit("/", 1)[1]) > snap.index)
            self._writes.append(Write(SNAPSHOT_KEY, snap))
            self._writes.extend(w for w in deletes if int(w.key.rsplit("/", 1)[1]) <= snap.index)
            self.applier = applier
            self._snapshot_taken(snap.data)
            self.snapshot = snap
            self.commit_index = self.last_applied = snap.index
            self._recompute_membership()
        self._send(src, AppendEntriesReply(self.term, True, snap.index, round=m.round))

    # ---------------------------------------------------------------- leader side
    def _append(self, requests: Iterable[ClientRequest]) -> int:
        first = self.log.last_index + 1
        self._writes.extend(self.log.append(Entry(self.term, self._stamp(r)) for r in requests))
        self._wrote_own(self.term, self.log.last_index)
        self._log_grew(first, self.log.slice(first, self.log.last_index))
        return self.log.last_index

    def _bcast_append(self) -> None:
        for peer in list(self.progress):
            self._send_append(peer, allow_empty=False)

    def _send_append(self, peer: str, allow_empty: bool) -> None:
        """Send what ``peer`` is missing, as far as its flow-control state allows."""
        pr = self.progress[peer]
        log = self.log
        while True:
            if pr.state == SNAPSHOT or (pr.state == PROBE and pr.probe_sent) or \
                    (pr.state == REPLICATE and len(pr.inflight) >= self.opts.max_inflight):
                return
            prev = pr.next - 1
            prev_term = log.term_at(prev)
            if prev_term is None:
                self._send_snapshot(peer)
                return
            last = min(log.last_index, prev + self.opts.max_batch)
            entries = log.slice(prev + 1, last) if last > prev else ()
            fit = take_within(entries, self.bounds.max_batch_bytes, key=_request_of)
            if fit < len(entries):  # a frame holds only so many bytes
                entries, last = entries[:fit], prev + fit
            if not entries and not allow_empty:
                return
            message = AppendEntries(self.term, prev, prev_term, entries, self.commit_index, self.round)
            if entries:
                self._send_eager(peer, message)  # it may leave before our own write of them is durable
            else:
                self._send(peer, message)
            if pr.state == PROBE:
                pr.probe_sent = True
                return
            if not entries:
                return
            pr.next = last + 1  # replicate: optimistic, pipelined
            pr.inflight.append((last, self.beat))
            allow_empty = False

    def _send_snapshot(self, peer: str, offset: int = 0) -> None:
        """Send ``peer`` the chunk of our snapshot that starts at ``offset`` (the whole of it if it fits)."""
        snap = self.snapshot
        assert snap is not None, "the log is compacted, so a snapshot exists"
        part, done = chunk_of(snap.data, offset, self.bounds.snapshot_chunk_bytes)
        chunk = snap if offset == 0 and done else SnapshotRecord(snap.index, snap.term, part)
        self._send(peer, InstallSnapshot(self.term, chunk, self.round, offset, done))
        pr = self.progress[peer]
        if pr.state != SNAPSHOT or pr.pending_snapshot != snap.index:
            pr.become_snapshot(snap.index)
        pr.snapshot_ticks = 0
        pr.snapshot_offset = offset

    def _on_snapshot_reply(self, src: str, m: InstallSnapshotReply) -> None:
        """A follower holds part of our snapshot: send the next chunk (or start over, if it holds another)."""
        pr = self.progress.get(src)
        if pr is None:
            return  # from a node our configuration no longer names
        pr.recent_active = True
        self._ack_round(pr, m.round)
        if pr.state != SNAPSHOT or self.snapshot is None:
            return  # answered by a whole snapshot or a later append already
        if m.index != self.snapshot.index:
            self._send_snapshot(src)  # a transfer of a snapshot we no longer hold: send the current one
        elif m.received != pr.snapshot_offset:
            self._send_snapshot(src, m.received)  # the next chunk, or resend from where it stopped

    def _send_heartbeat(self, peer: str) -> None:
        pr = self.progress[peer]
        prev = pr.match if self.log.term_at(pr.match) is not None else self.log.snapshot_index
        self._send(peer, AppendEntries(self.term, prev, self.log.term_at(prev) or 0, (),
                                       min(self.commit_index, pr.match), self.round))

    def _bcast_heartbeat(self, detect_loss: bool = False) -> None:
        """Send every follower a heartbeat stamped with a new round.

        Only the tick-driven heartbeat (``detect_loss``) also presumes lost the
        appends and snapshots unacknowledged for a whole heartbeat interval; a
        heartbeat sent early to confirm a ReadIndex leaves that clock alone.
        """
        self.round += 1
        if self.opts.read_mode == "lease":
            self.round_started.append((self.round, self.lead_ticks))
            self._extend_lease()  # a quorum of one (a single voter) confirms its round at once
        for peer, pr in list(self.progress.items()):
            if pr.state == PROBE:
                if detect_loss:
                    pr.probe_sent = False  # the probe doubles as the heartbeat
                    self._send_append(peer, allow_empty=True)
                else:
                    self._send_heartbeat(peer)
            elif pr.state == REPLICATE:
                if detect_loss and pr.inflight and pr.inflight[0][1] < self.beat - self.opts.resend_beats:
                    # unacknowledged for resend_ticks (a heartbeat interval by default): presumed lost
                    pr.become_probe(pr.match + 1)
                    self._send_append(peer, allow_empty=True)
                else:
                    self._send_heartbeat(peer)
            else:
                if detect_loss:
                    pr.snapshot_ticks += self.opts.heartbeat_ticks
                if detect_loss and pr.snapshot_ticks >= self.opts.election_ticks_min:
                    self._send_snapshot(peer, pr.snapshot_offset)  # presumed lost: send that chunk again
                else:
                    self._send_heartbeat(peer)

    def _ack_round(self, pr: Progress, round: int) -> None:
        """A follower answered heartbeat round ``round``: it may confirm waiting ReadIndex reads."""
        if round > pr.acked_round:
            pr.acked_round = round
            if self.opts.read_mode == "lease":
                self._extend_lease()
            if self.reads:
                self._check_reads()

    def _on_append_reply(self, src: str, m: AppendEntriesReply) -> None:
        pr = self.progress.get(src)
        if pr is None:
            return  # from a node our configuration no longer names
        pr.recent_active = True
        self._ack_round(pr, m.round)
        if m.success:
            advanced = m.index > pr.match
            if advanced:
                pr.match = m.index
            while pr.inflight and pr.inflight[0][0] <= m.index:
                pr.inflight.popleft()
            if pr.state == PROBE and m.index >= pr.next - 1:
                pr.become_replicate()
            elif pr.state == SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_replicate()
            elif pr.state == REPLICATE and pr.next <= pr.match:
                pr.next = pr.match + 1
            if advanced:
                self._maybe_commit()
                self._advance_membership()  # a learner may have caught up
            if self.role != LEADER:
                return
            if src in self.leaving:
                self._let_go(src)
                if src not in self.progress:
                    return
            self._maybe_send_timeout_now()
            self._send_append(src, allow_empty=False)
            return
        # a rejection
        if pr.state == SNAPSHOT or m.index <= pr.match:
            return  # stale, or a heartbeat refused while the snapshot travels
        if pr.state == PROBE and m.index != pr.next - 1:
            return  # answers an older probe
        # fast back-off (section 5.3): skip the follower's whole conflicting term at once
        if m.conflict_term > 0:
            last_of_term = self.log.last_index_of_term(m.conflict_term)
            nxt = last_of_term + 1 if last_of_term is not None else m.conflict_index
        else:
            nxt = m.conflict_index
        pr.become_probe(max(1, min(nxt, m.index)))
        self._send_append(src, allow_empty=True)

    def _on_synced(self, event: Synced) -> None:
        """Our log is durable up to ``event.index``: as leader of that term, our copy now counts."""
        if self.role != LEADER or event.epoch != self.term or event.index <= self.own_durable:
            return  # written in a leadership we lost (no quorum of ours to count it in), or counted
        self._count_own(event.index)
        self._maybe_commit()

    def _ordering(self, request: ClientRequest) -> bool:
        """True while this leader's log may hold an entry under ``request``'s (client, seq) not yet applied.

        ``in_log`` keeps a client's newest entry only: one at or past ``request.seq``
        means the client's earlier entries are in the log too, unapplied as long as
        the client has no session (its first applied entry opens one).
        """
        prior = self.in_log.get(request.client_id)
        return prior is not None and prior[0] >= request.seq

    def _count_own(self, index: int) -> None:
        """Our own match index in the commit count (our log only grows while we lead; syncs come in order)."""
        if index > self.own_durable:
            self.own_durable = index

    def _maybe_commit(self) -> None:
        matches = {peer: pr.match for peer, pr in self.progress.items()}
        matches[self.node] = self.own_durable  # counted only while we are a voter of the configuration
        n = self.membership.committed(matches)
        if n > self.commit_index and self._may_commit(n):
            self._commit_to(n)

    def _may_commit(self, index: int) -> bool:
        """Section 5.4.2: only an entry of the current term is committed by counting replicas."""
        return self.log.term_at(index) == self.term

    def _maybe_send_timeout_now(self) -> None:
        to = self.transferee
        pr = self.progress.get(to) if to is not None else None
        if to is not None and pr is not None and not self.transfer_sent and pr.match == self.log.last_index:
            self._send(to, TimeoutNow(self.term))
            self.transfer_sent = True
            self.lease_void = True  # its voters may disregard their lease: no more lease reads this term

    # ================================================================ clients
    def _on_client(self, request: ClientRequest) -> None:
        if self.role != LEADER or self.transferee is not None:
            self._redirect(request)
            return
        if is_change(request.command):
            self._on_change_request(request)
            return
        done, status, result = self.applier.lookup(request)
        if done:
            self._reply(request, status, result)
            return
        if self.opts.read_mode != "log" and self.applier.machine.is_read_only(request.command):
            if self.opts.read_mode == "lease" and self._holds_lease():
                status, result = self.applier.query(request.command)
                self._reply(request, status, result)
            else:
                self._read_index(request)
            return
        prior = self.in_log.get(request.client_id)
        if prior is not None and prior[0] == request.seq:
            if same_command(self.log.entry(prior[1]).request.command, request.command):
                self.pending[prior[1]] = request  # a retry of an entry in flight: answer it on commit
            else:  # another command holds this (client, seq): refused once that one is applied
                self._park(request)
            return
        index = self._append((request,))
        self.pending[index] = request
        self.in_log[request.client_id] = (request.seq, index)
        self._bcast_append()
        self._maybe_commit()

    # ---------------------------------------------------------------- leases (thesis 6.4.1)
    def _lease_ticks(self) -> int:
        """How long a lease lasts in our ticks: a follower's shortest timeout, as slow as drift can make it."""
        return lease_ticks(self.opts.election_ticks_min, self.opts.max_clock_drift)

    def _extend_lease(self) -> None:
        """A quorum has heard a heartbeat round: until our lease from its start runs out, nobody else leads.

        Every follower that acknowledged round r reset its election timer no
        earlier than r started, and ignores votes for ``election_ticks_min`` of
        its ticks after (check-quorum), so no other leader can be elected
        before the lease ends.
        """
        rounds = {peer: pr.acked_round for peer, pr in self.progress.items()}
        rounds[self.node] = self.round
        confirmed = self.membership.committed(rounds)
        started = self.round_started
        while len(started) > 1 and started[1][0] <= confirmed:
            started.popleft()
        if started and started[0][0] <= confirmed:
            self.lease_until = max(self.lease_until, started[0][1] + self._lease_ticks())

    def _holds_lease(self) -> bool:
        """True while this leader may answer a read from its own state (lease held, its term committed)."""
        return (self.lead_ticks < self.lease_until and not self.lease_void
                and self.log.term_at(self.commit_index) == self.term)

    # ---------------------------------------------------------------- ReadIndex (thesis 6.4)
    def _read_index(self, request: ClientRequest) -> None:
        if self.log.term_at(self.commit_index) != self.term:
            self.reads_waiting.append(request)  # no entry of our term committed yet
            return
        self._register_reads((request,))

    def _register_reads(self, requests: Iterable[ClientRequest]) -> None:
        confirm_round = self.round + 1
        for request in requests:
            self.reads.append(_Read(self.commit_index, confirm_round, request))
        self._bcast_heartbeat()  # sends round confirm_round
        self._check_reads()

    def _check_reads(self) -> None:
        for read in self.reads:
            if read.confirmed:
                continue
            if not self._read_confirmed(read):
                break  # later reads have later rounds
            read.confirmed = True
        self._serve_reads()

    def _read_confirmed(self, read: _Read) -> bool:
        """True once a quorum acknowledged the heartbeat round ``read`` waits for: we were still the leader
        when it arrived (thesis 6.4, step 3), so no later leader can have committed what it would miss."""
        acks = [self.node, *(peer for peer, pr in self.progress.items() if pr.acked_round >= read.round)]
        return self.membership.is_quorum(acks)

    def _serve_reads(self) -> None:
        while self.reads and self.reads[0].confirmed and self.reads[0].index <= self.last_applied:
            read = self.reads.pop(0)
            status, result = self.applier.query(read.request.command)
            self._reply(read.request, status, result)

    # ================================================================ commit and apply
    def _commit_to(self, index: int) -> None:
        if index <= self.commit_index:
            return
        self.commit_index = index
        self._apply()
        if self.role == LEADER and self.reads_waiting and self.log.term_at(index) == self.term:
            waiting, self.reads_waiting = self.reads_waiting, []
            self._register_reads(waiting)
        self._advance_membership()

    def _apply(self) -> None:
        leader = self.role == LEADER
        while self.last_applied < self.commit_index:
            index = self.last_applied + 1
            request = self.log.entry(index).request
            status, result = self.applier.apply(request)
            self._count_applied(request)
            if is_change(request.command):
                self._set_membership(self.membership)  # a removal is committed: stop replicating there
            self.last_applied = index
            self._committed.append(Committed(index, request))
            if leader:
                waiting = self.pending.pop(index, None)
                if waiting is not None and same_command(waiting.command, request.command) and (
                        (waiting.client_id, waiting.seq) == (request.client_id, request.seq)
                        or (not request.client_id and is_change(request.command))):
                    self._reply(waiting, status, result)
                if self.in_log.get(request.client_id) == (request.seq, index):
                    del self.in_log[request.client_id]
        self._answer_parked()
        if self.reads:
            self._serve_reads()
        if self._snapshot_due(self.last_applied - self.log.snapshot_index, self.opts.snapshot_every) \
                or self._readmission_due(self.log.snapshot_index):
            self._take_snapshot()

    def _take_snapshot(self) -> None:
        """Section 7: write the applied state, then forget the log prefix it covers."""
        index = self.last_applied
        term = self.log.term_at(index)
        assert term is not None
        data = self._snapshot_state()
        if data is None:
            return  # keep the log: it still holds everything the snapshot would have
        self.snapshot = SnapshotRecord(index, term, data)
        self._writes.append(Write(SNAPSHOT_KEY, self.snapshot))
        self._writes.extend(self.log.compact(index))


# ==================================================================== the handler table
#: What each role does with each message that passed the central term check: (role, type) -> method.
#: Every pair is listed; ``_ignore`` marks a message the role drops on purpose.
_Handler = Callable[[RaftCore, str, Any], None]
_HANDLERS: dict[tuple[Role, type], _Handler] = {
    # a follower obeys the leader of its term, votes, and hands over on TimeoutNow
    (FOLLOWER, AppendEntries): RaftCore._on_append,
    (FOLLOWER, InstallSnapshot): RaftCore._on_install_snapshot,
    (FOLLOWER, AppendEntriesReply): RaftCore._ignore,       # to a leadership we lost
    (FOLLOWER, InstallSnapshotReply): RaftCore._ignore,
    (FOLLOWER, RequestVote): RaftCore._on_request_vote,
    (FOLLOWER, RequestVoteReply): RaftCore._ignore,         # to a campaign that is over
    (FOLLOWER, TimeoutNow): RaftCore._on_timeout_now,
    # a pre-candidate counts pre-votes; a leader of the term it probes for turns it into a follower
    (PRECANDIDATE, AppendEntries): RaftCore._on_append,
    (PRECANDIDATE, InstallSnapshot): RaftCore._on_install_snapshot,
    (PRECANDIDATE, AppendEntriesReply): RaftCore._ignore,
    (PRECANDIDATE, InstallSnapshotReply): RaftCore._ignore,
    (PRECANDIDATE, RequestVote): RaftCore._on_request_vote,
    (PRECANDIDATE, RequestVoteReply): RaftCore._on_pre_vote_reply,
    (PRECANDIDATE, TimeoutNow): RaftCore._on_late_timeout_now,
    # a candidate counts votes; a leader of its own term turns it into a follower
    (CANDIDATE, AppendEntries): RaftCore._on_append,
    (CANDIDATE, InstallSnapshot): RaftCore._on_install_snapshot,
    (CANDIDATE, AppendEntriesReply): RaftCore._ignore,
    (CANDIDATE, InstallSnapshotReply): RaftCore._ignore,
    (CANDIDATE, RequestVote): RaftCore._on_request_vote,
    (CANDIDATE, RequestVoteReply): RaftCore._on_vote_reply,
    (CANDIDATE, TimeoutNow): RaftCore._on_late_timeout_now,
    # a leader replicates; another leader of its own term is a protocol violation
    (LEADER, AppendEntries): RaftCore._on_rival_leader,
    (LEADER, InstallSnapshot): RaftCore._on_rival_leader,
    (LEADER, AppendEntriesReply): RaftCore._on_append_reply,
    (LEADER, InstallSnapshotReply): RaftCore._on_snapshot_reply,
    (LEADER, RequestVote): RaftCore._on_request_vote,
    (LEADER, RequestVoteReply): RaftCore._ignore,           # to the campaign we won
    (LEADER, TimeoutNow): RaftCore._on_late_timeout_now,
}
