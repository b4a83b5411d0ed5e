"""Deliberately broken multi-Paxos: each overrides exactly one rule of the core.

A test suite that catches no bug proves nothing, so every ``mutant_*`` option
of :class:`multipaxos.options.MultiPaxosOptions` names one subclass here that
breaks one rule of Paxos; the checkers (``multipaxos.check_invariants``, the
comparison of applied entries, the linearizability checker, the conformance
catalogue) must catch each of them.  The protocol itself lives in
:mod:`multipaxos._core`, free of these branches.

Build cores with :func:`build`: it reads the ``mutant_*`` options of the
config and returns the matching core (the correct :class:`MultiPaxosCore`
when none is switched on).
"""

from __future__ import annotations

from typing import ClassVar

from smr import sessions
from smr.membership import Membership
from smr.mutants import MutantSet
from smr.replica import ClientRequest, ReplicaConfig, Write
from synod.proposer import MultiPrepareQuorum

from ._core import MultiPaxosCore, _Read
from .messages import Accept
from .options import MultiPaxosOptions


class AcceptLowerBallot(MultiPaxosCore):
    """BROKEN: an acceptor accepts (and follows) an Accept of a ballot below its promise."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_accept_lower_ballot"})

    def _accept_values(self, msg: Accept) -> bool:
        """Take every value, through the acceptor's unsafe door when the promise forbids it."""
        for offset, value in enumerate(msg.values):
            slot = msg.first_slot + offset
            if self.acceptor.refuses(msg.ballot):
                self.acceptor.accept_despite_promise(msg.ballot, slot, value)
            else:
                self.acceptor.on_accept(msg.ballot, slot, value)
        return True


class IgnorePromisedValues(MultiPaxosCore):
    """BROKEN: a new leader ignores the values its promisers accepted and fills every slot afresh."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_ignore_promised_values"})

    def _values_to_propose(self, prepare: MultiPrepareQuorum) -> dict[int, ClientRequest]:
        """Nothing to re-propose: a chosen value may be replaced."""
        return {}


class ForgetPromise(MultiPaxosCore):
    """BROKEN: the acceptor's promise is never written to stable storage, so a restart forgets it."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_forget_promise"})

    def _drain_acceptor(self) -> tuple[Write, ...]:
        """The acceptor's writes without the promise."""
        promise_key = self.acceptor.promise_key
        return tuple(w for w in super()._drain_acceptor() if w.key != promise_key)


class ApplyUnchosen(MultiPaxosCore):
    """BROKEN: a replica applies a value as soon as it accepts it, before a majority has."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_apply_unchosen"})

    def _accept_values(self, msg: Accept) -> bool:
        """Accept as Paxos does, then take every accepted value as chosen."""
        if not super()._accept_values(msg):
            return False
        for offset, value in enumerate(msg.values):
            slot = msg.first_slot + offset
            if slot > self.applied:
                self.chosen[slot] = value
        return True


class CountSelfBeforeSync(MultiPaxosCore):
    """BROKEN: the leader counts its own acceptance of a slot when it makes it, not once it is durable.

    Its Accepts still leave before that write is synced, so one acceptor's
    Accepted can choose a value that a crash of the leader then loses with the
    write: the choice rests on a minority's disks.
    """

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_count_self_before_sync"})

    def _wrote_own(self, epoch: int, index: int) -> None:
        """Ask for the Synced as the protocol does, but count our acceptance at once, as if it were durable."""
        super()._wrote_own(epoch, index)
        self._count_own(index)


class EarlyConfiguration(MultiPaxosCore):
    """BROKEN: a slot is counted chosen by a quorum of the configuration applied after the slot before it.

    With alpha > 1 that configuration is not yet the slot's own (that one is
    applied after slot - alpha): a leader takes a new configuration's quorum
    for slots that every other replica, and every later leader's phase 1,
    still assigns to the old one, so two different values can be chosen there.
    """

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_early_configuration"})

    def _quorum_config(self, slot: int) -> Membership | None:
        """The configuration after slot - 1, as if alpha were 1."""
        return self._applied_config(slot - 1) if slot - 1 <= self.applied else None


class LeaseIgnoresDrift(MultiPaxosCore):
    """BROKEN: a leader's lease lasts election_ticks_min of its own ticks, with no margin for clock drift.

    Acceptors wait election_ticks_min of *their* ticks before promising
    another proposer; if their clocks run faster than the leader's, a new
    leader is chosen, and commits, while the old one still answers reads
    from its lease: a stale read.
    """

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_lease_ignores_drift"})

    def _lease_ticks(self) -> int:
        """The whole election_ticks_min."""
        return self.opts.election_ticks_min



class RetryRunsAgain(MultiPaxosCore):
    """BROKEN: the session check is off by one (:class:`smr.sessions.RetryRunsAgain`): a retry of a
    session's latest request is proposed and run again."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_retry_runs_again"})
    applier_class: ClassVar[type[sessions.Applier]] = sessions.RetryRunsAgain


class ReadWithoutConfirmation(MultiPaxosCore):
    """BROKEN: a read is answered on any heartbeat round a quorum once acked, not one sent after it arrived,
    so a leader that was deposed without knowing it answers from a stale state."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_read_without_confirmation"})

    def _read_confirmed(self, read: _Read, confirmed: int) -> bool:
        """Any confirmed round will do."""
        return True


class SnapshotOneAhead(MultiPaxosCore):
    """BROKEN: a replica restarted from a snapshot takes it for one slot more than it covers, so it never
    applies the slot after the snapshot."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_snapshot_one_ahead"})

    def _restored_slot(self, last_slot: int) -> int:
        """One slot too far."""
        return last_slot + 1


class HolesUnfilled(MultiPaxosCore):
    """BROKEN: a new leader re-proposes the values its quorum reported but leaves the slots between them
    that nobody reported empty, so the log never applies past such a hole."""

    mutants: ClassVar[frozenset[str]] = frozenset({"mutant_holes_unfilled"})

    def _fill_gap(self, slot: int) -> None:
        """Leave the hole."""


#: The mutants of :class:`MultiPaxosCore`; :func:`build` below is the backend's factory.
_SET = MutantSet(MultiPaxosCore, (AcceptLowerBallot, IgnorePromisedValues, ForgetPromise, ApplyUnchosen,
                                  CountSelfBeforeSync, EarlyConfiguration, LeaseIgnoresDrift,
                                  RetryRunsAgain, ReadWithoutConfirmation,
                                  SnapshotOneAhead, HolesUnfilled),
                 lambda options: MultiPaxosOptions.from_mapping(options).mutants)
#: Every mutant class, by the option that selects it.
MUTANTS = _SET.by_option
#: The core class implementing exactly a set of mutant options (the correct core for none).
core_class = _SET.core_class


def build(config: ReplicaConfig) -> MultiPaxosCore:
    """Build the core ``config`` asks for: the correct one, or the mutant its options switch on."""
    return _SET.build(config)
