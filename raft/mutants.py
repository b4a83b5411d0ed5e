"""Deliberately broken Rafts: each overrides exactly one rule of :class:`raft._core.RaftCore`.

A test suite that catches no bug proves nothing, so every ``mutant_*`` option
of :class:`raft.options.RaftOptions` names one subclass here that breaks one
rule of the paper; the checkers (``raft.invariants``, the linearizability
checker, the conformance catalogue) must catch each of them.  The protocol
itself lives in :mod:`raft._core`, free of these branches: each broken rule is
one overridable method there.

Build cores with :func:`build`: it reads the ``mutant_*`` options of the
config and returns the matching core (the correct :class:`RaftCore` when none
is switched on), so the option names stay the way to select a mutant from the
CLI, scenario files and tests.
"""

from __future__ import annotations

from typing import ClassVar

from smr import sessions
from smr.mutants import MutantSet
from smr.replica import ReplicaConfig

from ._core import RaftCore, _Read
from .messages import AppendEntries, RequestVote
from .options import RaftOptions


class VoteWithoutLogCheck(RaftCore):
    """BROKEN: grants votes ignoring the up-to-date-log restriction (section 5.4.1)."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_vote_without_log_check"})

    def _vote_log_ok(self, m: RequestVote) -> bool:
        """Any candidate's log will do (a leader may lack committed entries)."""
        return True


class CommitPreviousTerm(RaftCore):
    """BROKEN: commits entries of earlier terms by counting replicas (the Figure 8 bug, section 5.4.2)."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_commit_previous_term"})

    def _may_commit(self, index: int) -> bool:
        """Any entry a majority holds is taken as committed, whatever its term."""
        return True


class ForgetVote(RaftCore):
    """BROKEN: the vote is never written to stable storage, so a restarted server may vote twice."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_forget_vote"})

    def _durable_vote(self) -> str | None:
        """Nothing: raft/hard records the term with no vote."""
        return None


class TruncateOnStaleAppend(RaftCore):
    """BROKEN: a follower drops every entry after a (possibly stale) AppendEntries, conflict or not."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_truncate_on_stale_append"})

    def _merge_entries(self, src: str, m: AppendEntries) -> None:
        """Merge as Raft does, then cut the log after the message's last entry."""
        super()._merge_entries(src, m)
        last_new = m.prev_index + len(m.entries)
        if m.entries and self.log.last_index > last_new:
            self._writes.extend(self.log.truncate_from(last_new + 1))


class CountSelfBeforeSync(RaftCore):
    """BROKEN: the leader counts its own copy of an entry when it appends it, not once it is durable.

    Its AppendEntries still leave before that write is synced, so one
    follower's acknowledgement can commit an entry that a crash of the leader
    then loses with the write: the commit rests on a minority's disks.
    """

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_count_self_before_sync"})

    def _wrote_own(self, epoch: int, index: int) -> None:
        """Ask for the Synced as the protocol does, but count our copy at once, as if it were durable."""
        super()._wrote_own(epoch, index)
        self._count_own(index)


class ConcurrentChanges(RaftCore):
    """BROKEN: starts a membership change while the previous one is still uncommitted (thesis 4.1).

    Two single-server changes in flight make three configurations whose
    majorities need not overlap: two leaders can then be elected in one term.
    """

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_concurrent_changes"})

    def _previous_change_committed(self) -> bool:
        """Any change may follow any other at once."""
        return True


class ChangeBeforeTermCommit(RaftCore):
    """BROKEN: a new leader starts a membership change before an entry of its term is committed.

    The bug Ongaro reported on raft-dev in 2015: a change by the previous
    leader that this one never saw can then overlap with its own change.
    """

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_change_before_term_commit"})

    def _own_term_committed(self) -> bool:
        """A change may start as soon as the leader is elected."""
        return True


class LeaseIgnoresDrift(RaftCore):
    """BROKEN: a leader trusts its lease for the whole election timeout, as if every clock ran at one rate.

    A follower whose clock runs fast times out (and votes for a new leader)
    while the old leader's slow clock says its lease still holds.
    """

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_lease_ignores_drift"})

    def _lease_ticks(self) -> int:
        """The whole minimum election timeout, no margin for drift."""
        return self.opts.election_ticks_min



class RetryRunsAgain(RaftCore):
    """BROKEN: the session check is off by one (:class:`smr.sessions.RetryRunsAgain`): a retry of a
    session's latest request is proposed and run again."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_retry_runs_again"})
    applier_class: ClassVar[type[sessions.Applier]] = sessions.RetryRunsAgain


class ReadWithoutConfirmation(RaftCore):
    """BROKEN: a ReadIndex read is answered without waiting for a quorum to acknowledge a heartbeat round
    (thesis 6.4 step 3), so a leader that was deposed without knowing it answers from a stale state."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_read_without_confirmation"})

    def _read_confirmed(self, read: _Read) -> bool:
        """Every read counts as confirmed at once."""
        return True


class SnapshotOneAhead(RaftCore):
    """BROKEN: a server restarted from a snapshot takes it for one entry more than it covers, so it never
    applies the entry after the snapshot."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_snapshot_one_ahead"})

    def _restored_index(self, snapshot_index: int) -> int:
        """One entry too far."""
        return snapshot_index + 1

#: The mutants of :class:`RaftCore`; :func:`build` below is the backend's factory.
_SET = MutantSet(RaftCore, (VoteWithoutLogCheck, CommitPreviousTerm, ForgetVote, TruncateOnStaleAppend,
                            CountSelfBeforeSync, ConcurrentChanges, ChangeBeforeTermCommit, LeaseIgnoresDrift,
                            RetryRunsAgain, ReadWithoutConfirmation,
                            SnapshotOneAhead),
                 lambda options: RaftOptions.from_mapping(options).mutants)
#: Every mutant class, by the option that selects it.
MUTANTS = _SET.by_option
#: The core class implementing exactly a set of mutant options (the correct core for none).
core_class = _SET.core_class


def build(config: ReplicaConfig) -> RaftCore:
    """Build the core ``config`` asks for: the correct one, or the mutant its options switch on."""
    return _SET.build(config)
