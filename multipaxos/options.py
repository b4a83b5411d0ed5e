"""Multi-Paxos settings, with defaults for a 10 ms tick; ``mutant_*`` options break it on purpose."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from smr.errors import LocalProtocolError
from smr.bounds import BOUND_OPTIONS
from smr.sessions import SESSION_OPTIONS

#: How a leader answers a read-only command: through the log (the baseline), after confirming its
#: ballot with a quorum round of heartbeats (``read_index``), or locally while it holds a lease.
READ_MODES = ("log", "read_index", "lease")
#: The largest alpha: a snapshot carries at most alpha + 1 configurations (the one in effect and each
#: change of the window), and a replica refuses a snapshot carrying more than MAX_ALPHA + 1.
MAX_ALPHA = 1023


@attrs.frozen
class MultiPaxosOptions:
    """Timeouts in ticks, batching and pipelining bounds, compaction, and deliberate bugs.

    ``resend_ticks``: how long a slot may stay short of a majority before the
    leader sends its Accept again (0: one heartbeat interval, right for a lossy
    simulated network; over TCP a message is lost only with its connection).

    ``write_in_parallel`` (on by default): a leader's Accept messages leave
    before its own acceptance of their slots is durable; it counts its own
    acceptance only once that write is synced.  Off: they wait for the sync.

    ``alpha``: the configuration of slot i is the one applied after slot
    i - alpha (Lamport, Malkhi and Zhou's alpha window); alpha = 1 is
    stop-and-go, a larger one lets the leader pipeline across a change
    (at most :data:`MAX_ALPHA`).

    ``read_mode``: "log" (reads are ordered like writes), "read_index" (the
    leader confirms its ballot with a quorum round of heartbeat acks, then
    answers once it has applied the commit point noted when the read came),
    or "lease" (a leader whose heartbeat round sent at its tick t was acked by
    a quorum answers locally until t + election_ticks_min * (1 -
    max_clock_drift); acceptors then promise no other proposer within
    election_ticks_min of their own ticks of hearing the leader).

    The ``mutant_*`` switches exist only so the test suite can prove it catches
    real bugs; each is off by default and each breaks safety, but for
    ``mutant_holes_unfilled``, which breaks liveness (the log stops at a hole).
    :func:`multipaxos.mutants.build` picks the subclass of
    :mod:`multipaxos.mutants` the switch names.
    """

    election_ticks_min: int = 15
    election_ticks_max: int = 30
    heartbeat_ticks: int = 3
    backoff_ticks_max: int = 10
    max_batch: int = 64
    max_inflight: int = 4
    snapshot_every: int = 0
    catchup_batch: int = 256
    resend_ticks: int = 0
    write_in_parallel: bool = True
    alpha: int = 16
    read_mode: str = "log"
    max_clock_drift: float = 0.1
    mutant_accept_lower_ballot: bool = False
    mutant_ignore_promised_values: bool = False
    mutant_forget_promise: bool = False
    mutant_apply_unchosen: bool = False
    mutant_count_self_before_sync: bool = False
    mutant_early_configuration: bool = False
    mutant_lease_ignores_drift: bool = False
    mutant_retry_runs_again: bool = False
    mutant_read_without_confirmation: bool = False
    mutant_snapshot_one_ahead: bool = False
    mutant_holes_unfilled: bool = False

    def __attrs_post_init__(self) -> None:
        if not 0 < self.election_ticks_min <= self.election_ticks_max:
            raise LocalProtocolError("need 0 < election_ticks_min <= election_ticks_max")
        if not 0 < self.heartbeat_ticks < self.election_ticks_min:
            raise LocalProtocolError("need 0 < heartbeat_ticks < election_ticks_min")
        if not isinstance(self.resend_ticks, int) or isinstance(self.resend_ticks, bool) or self.resend_ticks < 0:
            raise LocalProtocolError(f"resend_ticks must be an int >= 0, got {self.resend_ticks!r}")
        if self.max_batch < 1 or self.max_inflight < 1:
            raise LocalProtocolError("max_batch and max_inflight must be at least 1")
        if not isinstance(self.write_in_parallel, bool):
            raise LocalProtocolError(f"write_in_parallel must be true or false, got {self.write_in_parallel!r}")
        if not isinstance(self.alpha, int) or isinstance(self.alpha, bool) or not 1 <= self.alpha <= MAX_ALPHA:
            raise LocalProtocolError(f"alpha must be an int from 1 to {MAX_ALPHA}, got {self.alpha!r}")
        if self.read_mode not in READ_MODES:
            raise LocalProtocolError(f"read_mode must be one of {', '.join(READ_MODES)}, got {self.read_mode!r}")
        if isinstance(self.max_clock_drift, bool) or not isinstance(self.max_clock_drift, (int, float)) \
                or not 0 <= self.max_clock_drift < 1:
            raise LocalProtocolError(f"max_clock_drift must be a number in [0, 1), got {self.max_clock_drift!r}")

    @property
    def mutants(self) -> tuple[str, ...]:
        """The names of the deliberately broken behaviours switched on."""
        return tuple(a.name for a in attrs.fields(MultiPaxosOptions)
                     if a.name.startswith("mutant_") and getattr(self, a.name))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "MultiPaxosOptions":
        """Build options from a backend options mapping; unknown names are a LocalProtocolError."""
        known = {a.name for a in attrs.fields(cls)}
        options = {k: v for k, v in options.items()  # the Applier's and LogCore's
                   if k not in SESSION_OPTIONS and k not in BOUND_OPTIONS}
        unknown = sorted(set(options) - known)
        if unknown:
            raise LocalProtocolError(f"unknown multi-Paxos options {unknown}; known: {sorted(known)}")
        return cls(**dict(options))
