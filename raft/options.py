"""Raft settings: timeouts in ticks, features, flow control and deliberate mutants.

Every feature is off by default; every ``mutant_*`` switch builds a
deliberately broken Raft so the checkers can be shown to catch it (a test
suite that catches no bug proves nothing): :func:`raft.mutants.build` picks
the subclass of :mod:`raft.mutants` the switch names.  Unknown option names are a
:class:`~smr.errors.LocalProtocolError`, so a typo never silently becomes a
default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from smr.errors import LocalProtocolError
from smr.bounds import BOUND_OPTIONS
from smr.sessions import SESSION_OPTIONS

READ_MODES = ("log", "read_index", "lease")


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise LocalProtocolError(f"raft option {attribute.name} must be a positive int, got {value!r}")


def _flag(instance: object, attribute: attrs.Attribute, value: bool) -> None:
    if not isinstance(value, bool):
        raise LocalProtocolError(f"raft option {attribute.name} must be true or false, got {value!r}")


@attrs.frozen
class RaftOptions:
    """Every Raft setting, with defaults suited to a 10 ms tick.

    Args:
        election_ticks_min: the shortest election timeout, in ticks; also the
            "baseline election timeout" of check-quorum and pre-vote leases.
        election_ticks_max: the longest election timeout; each election draws
            a fresh timeout uniformly from [min, max] with the node's own rng.
        heartbeat_ticks: how often a leader sends heartbeats, in ticks.
        read_mode: "log" (reads go through the log like writes) or
            "read_index" (thesis 6.4: a read-only command is answered once a
            heartbeat round confirms leadership and the state machine has
            applied up to the commit index noted when the read arrived), or
            "lease" (thesis 6.4.1: a leader whose heartbeat round a quorum
            acknowledged answers reads at once, without a message, until
            ``election_ticks_min`` of that round has passed, shortened for
            ``max_clock_drift``; outside its lease it falls back to ReadIndex.
            It turns ``check_quorum`` on: followers ignore votes while they
            hear from the leader, which is what the lease rests on).
        max_clock_drift: the most any node's clock may run fast or slow,
            as a fraction of true time (0.1: each tick lasts 0.9-1.1 of its
            nominal time).  A lease lasts ``election_ticks_min * (1 - d) /
            (1 + d) - 1`` of the leader's ticks; set it below the real drift
            and a leader can answer reads after a new leader was elected.
        snapshot_every: take a snapshot after applying this many entries since
            the last one (0: never compact the log).
        pre_vote: run the pre-vote phase before a real election (thesis 9.6).
        check_quorum: a leader steps down when it has not heard from a
            majority within an election timeout, and followers ignore votes
            while they hear from a live leader (thesis 6.2).
        leadership_transfer: allow :meth:`RaftCore.transfer_leadership`
            (thesis 3.10, TimeoutNow).
        max_batch: most entries in one AppendEntries.
        max_inflight: most AppendEntries with entries outstanding per follower.
        resend_ticks: how long appended entries may go unacknowledged before
            the leader presumes them lost and probes again (0: one heartbeat
            interval, right for a lossy simulated network; a real cluster
            over TCP loses messages only with a connection, and under load
            an acknowledgement can take longer than a heartbeat interval).
        write_in_parallel: a leader's AppendEntries carrying entries leave
            before its own write of them is durable (thesis 10.2.1); it counts
            itself toward the commit quorum only once that write is synced.
            Off: they wait for the sync like every other message.
        mutant_vote_without_log_check: BROKEN: grant votes ignoring the
            up-to-date-log restriction (section 5.4.1).
        mutant_commit_previous_term: BROKEN: commit entries of earlier terms by
            counting replicas (the Figure 8 bug, section 5.4.2).
        mutant_forget_vote: BROKEN: the vote is never written to stable storage.
        mutant_truncate_on_stale_append: BROKEN: a follower drops every entry
            after a (possibly stale) AppendEntries, even without a conflict.
        mutant_count_self_before_sync: BROKEN: the leader counts its own copy
            of an entry toward the commit quorum as soon as it appends it,
            while its write is still in flight (and the entry already sent).
        mutant_concurrent_changes: BROKEN: a leader starts a membership change
            before the previous one is committed (thesis 4.1 allows one at a time).
        mutant_change_before_term_commit: BROKEN: a new leader starts a
            membership change before an entry of its own term is committed
            (the bug Ongaro corrected in 2015).
        mutant_lease_ignores_drift: BROKEN: a lease read trusts the whole
            election timeout, with no margin for clocks that run at different rates.
        mutant_retry_runs_again: BROKEN: a retry of a session's latest request
            is taken for a new one, proposed and run again (the session check off by one).
        mutant_read_without_confirmation: BROKEN: a ReadIndex read is answered
            without a heartbeat round acknowledged by a quorum after it arrived.
        mutant_snapshot_one_ahead: BROKEN: a server restarted from a snapshot
            never applies the entry after it.
    """

    election_ticks_min: int = attrs.field(default=15, validator=_positive)
    election_ticks_max: int = attrs.field(default=30, validator=_positive)
    heartbeat_ticks: int = attrs.field(default=3, validator=_positive)
    read_mode: str = "log"
    max_clock_drift: float = 0.1
    snapshot_every: int = 0
    pre_vote: bool = attrs.field(default=False, validator=_flag)
    check_quorum: bool = attrs.field(default=False, validator=_flag)
    leadership_transfer: bool = attrs.field(default=False, validator=_flag)
    max_batch: int = attrs.field(default=64, validator=_positive)
    max_inflight: int = attrs.field(default=4, validator=_positive)
    resend_ticks: int = 0
    write_in_parallel: bool = attrs.field(default=True, validator=_flag)
    mutant_vote_without_log_check: bool = attrs.field(default=False, validator=_flag)
    mutant_commit_previous_term: bool = attrs.field(default=False, validator=_flag)
    mutant_forget_vote: bool = attrs.field(default=False, validator=_flag)
    mutant_truncate_on_stale_append: bool = attrs.field(default=False, validator=_flag)
    mutant_count_self_before_sync: bool = attrs.field(default=False, validator=_flag)
    mutant_concurrent_changes: bool = attrs.field(default=False, validator=_flag)
    mutant_change_before_term_commit: bool = attrs.field(default=False, validator=_flag)
    mutant_lease_ignores_drift: bool = attrs.field(default=False, validator=_flag)
    mutant_retry_runs_again: bool = attrs.field(default=False, validator=_flag)
    mutant_read_without_confirmation: bool = attrs.field(default=False, validator=_flag)
    mutant_snapshot_one_ahead: bool = attrs.field(default=False, validator=_flag)

    def __attrs_post_init__(self) -> None:
        if self.election_ticks_max < self.election_ticks_min:
            raise LocalProtocolError(
                f"raft option election_ticks_max ({self.election_ticks_max}) is below "
                f"election_ticks_min ({self.election_ticks_min})")
        if self.heartbeat_ticks >= self.election_ticks_min:
            raise LocalProtocolError(
                f"raft option heartbeat_ticks ({self.heartbeat_ticks}) must be below "
                f"election_ticks_min ({self.election_ticks_min})")
        if self.read_mode not in READ_MODES:
            raise LocalProtocolError(
                f"raft option read_mode must be one of {', '.join(READ_MODES)}, got {self.read_mode!r}")
        if self.read_mode == "lease":  # the lease rests on followers ignoring votes while they hear a leader
            object.__setattr__(self, "check_quorum", True)
        if not isinstance(self.max_clock_drift, (int, float)) or isinstance(self.max_clock_drift, bool) \
                or not 0 <= self.max_clock_drift < 1:
            raise LocalProtocolError(f"raft option max_clock_drift must be a number in [0, 1), got "
                                     f"{self.max_clock_drift!r}")
        if not isinstance(self.resend_ticks, int) or isinstance(self.resend_ticks, bool) or self.resend_ticks < 0:
            raise LocalProtocolError(f"raft option resend_ticks must be an int >= 0, got {self.resend_ticks!r}")
        if not isinstance(self.snapshot_every, int) or isinstance(self.snapshot_every, bool) \
                or self.snapshot_every < 0:
            raise LocalProtocolError(
                f"raft option snapshot_every must be an int >= 0, got {self.snapshot_every!r}")

    @property
    def resend_beats(self) -> int:
        """Whole heartbeat intervals an append may go unacknowledged before it is presumed lost."""
        return max(1, -(-self.resend_ticks // self.heartbeat_ticks))

    @property
    def mutants(self) -> tuple[str, ...]:
        """The names of the deliberately broken behaviours switched on."""
        return tuple(a.name for a in attrs.fields(RaftOptions)
                     if a.name.startswith("mutant_") and getattr(self, a.name))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "RaftOptions":
        """Build options from a backend options mapping; unknown names are a LocalProtocolError."""
        known = {a.name for a in attrs.fields(cls)}
        options = {k: v for k, v in options.items()  # the Applier's and LogCore's
                   if k not in SESSION_OPTIONS and k not in BOUND_OPTIONS}
        unknown = sorted(set(options) - known)
        if unknown:
            raise LocalProtocolError(
                f"unknown raft option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(options))


#: The defaults, as the plain mapping a Backend registers.
DEFAULT_OPTIONS: dict[str, Any] = attrs.asdict(RaftOptions())
