"""The wire messages of multi-Paxos: phase 1 once per leader, phase 2 per batch of slots.

Every class is a frozen attrs value registered with :mod:`smr.wire`.  Log
values are :class:`smr.replica.ClientRequest` (a no-op is ``NOOP_ENTRY``).
"""

from __future__ import annotations

import attrs

from smr import wire
from smr.replica import ClientRequest
from synod.ballot import Ballot


@attrs.frozen
class SlotValue:
    """A value for one slot (chosen, or accepted in ``ballot`` when given)."""

    slot: int
    value: ClientRequest
    ballot: Ballot | None = None


@attrs.frozen
class Snapshot:
    """A state machine snapshot covering every slot up to ``last_slot``."""

    last_slot: int
    data: str


@wire.message
@attrs.frozen
class Prepare:
    """Phase 1a for every slot from ``from_slot`` on: promise ``ballot``."""

    ballot: Ballot
    from_slot: int


@wire.message
@attrs.frozen
class Promise:
    """Phase 1b: ``ballot`` promised for all slots.

    ``accepted`` lists the sender's accepted (ballot, value) per slot >=
    ``from_slot``; ``chosen`` the values it knows are chosen there; and
    ``snapshot`` is set when slots the leader lacks are only in a snapshot.
    """

    ballot: Ballot
    from_slot: int
    accepted: tuple[SlotValue, ...] = ()
    chosen: tuple[SlotValue, ...] = ()
    snapshot: Snapshot | None = None


@wire.message
@attrs.frozen
class Accept:
    """Phase 2a for slots ``first_slot``.. in ``ballot``; ``commit``: every slot up to it is chosen."""

    ballot: Ballot
    first_slot: int
    values: tuple[ClientRequest, ...]
    commit: int


@wire.message
@attrs.frozen
class Accepted:
    """Phase 2b: slots ``first_slot`` .. ``first_slot + count - 1`` accepted in ``ballot``."""

    ballot: Ballot
    first_slot: int
    count: int


@wire.message
@attrs.frozen
class Nack:
    """A refusal: the sender already promised the higher ballot ``promised``."""

    ballot: Ballot
    promised: Ballot


@wire.message
@attrs.frozen
class Heartbeat:
    """The leader of ``ballot`` is alive; every slot up to ``commit`` is chosen.

    ``round`` > 0 asks for a :class:`HeartbeatAck` (read confirmation, leases,
    learners' progress); ``held``: a quorum of the newest configuration has
    applied every slot up to it (how a removed member knows it may retire).
    """

    ballot: Ballot
    commit: int
    round: int = 0
    held: int = 0


@wire.message
@attrs.frozen
class HeartbeatAck:
    """The answer to a :class:`Heartbeat` of ``round`` in ``ballot``: the sender has applied up to ``applied``."""

    ballot: Ballot
    round: int
    applied: int


@wire.message
@attrs.frozen
class CatchupRequest:
    """A replica asks the leader for the chosen values from ``from_slot`` on."""

    ballot: Ballot
    from_slot: int


@wire.message
@attrs.frozen
class Catchup:
    """Chosen values (and a snapshot when the slots were compacted away) for a lagging replica."""

    ballot: Ballot
    chosen: tuple[SlotValue, ...] = ()
    snapshot: Snapshot | None = None


@wire.message
@attrs.frozen
class PromisePart:
    """Phase 1b in ``parts`` messages, when one :class:`Promise` would exceed the byte bound.

    Part ``part`` (0-based) carries some of the accepted values; part 0 also
    the chosen values that fit and the snapshot.  The candidate counts the
    promise once it holds every part.
    """

    ballot: Ballot
    from_slot: int
    part: int
    parts: int
    accepted: tuple[SlotValue, ...] = ()
    chosen: tuple[SlotValue, ...] = ()
    snapshot: Snapshot | None = None


@wire.message
@attrs.frozen
class Behind:
    """No promise for ``ballot``: its ``from_slot`` lies in the sender's snapshot, too large for a Promise.

    ``applied`` is how far the sender has applied; the candidate gives up its
    campaign and catches up from whoever leads next.
    """

    ballot: Ballot
    applied: int


@wire.message
@attrs.frozen
class SnapshotChunk:
    """Part of the leader's snapshot for a lagging replica: ``data`` starts at ``offset``; ``done`` on the last."""

    ballot: Ballot
    last_slot: int
    offset: int
    data: str
    done: bool

    def trace(self) -> str:
        """A one-line rendering for traces (the data is shown by size only)."""
        return (f"SnapshotChunk ballot={self.ballot.round}.{self.ballot.node} last_slot={self.last_slot} "
                f"offset={self.offset} size={len(self.data)}{' done' if self.done else ''}")


@wire.message
@attrs.frozen
class SnapshotRequest:
    """A replica holds the first ``received`` characters of the snapshot ending at ``last_slot``: next chunk."""

    ballot: Ballot
    last_slot: int
    received: int
