"""The wire messages of the Paxos synod algorithm (prepare, promise, accept, accepted, nack, learn).

Every class is a frozen attrs value registered with :mod:`smr.wire`, so the
TCP runtime can carry it.  Values are JSON scalars (``smr.commands.Scalar``).
"""

from __future__ import annotations

import attrs

from smr import wire
from smr.commands import Scalar

from .ballot import Ballot


@wire.message
@attrs.frozen
class Prepare:
    """Phase 1a: a proposer asks acceptors to promise ``ballot``."""

    ballot: Ballot


@wire.message
@attrs.frozen
class Promise:
    """Phase 1b: the acceptor promised ``ballot`` and reports what it accepted before (if anything)."""

    ballot: Ballot
    accepted_ballot: Ballot | None = None
    accepted_value: Scalar = None


@wire.message
@attrs.frozen
class Accept:
    """Phase 2a: a proposer asks acceptors to accept ``value`` in ``ballot``."""

    ballot: Ballot
    value: Scalar


@wire.message
@attrs.frozen
class Accepted:
    """Phase 2b: the acceptor accepted ``value`` in ``ballot`` (sent to every learner)."""

    ballot: Ballot
    value: Scalar


@wire.message
@attrs.frozen
class Nack:
    """The acceptor refused ``ballot`` because it already promised the higher ``promised``."""

    ballot: Ballot
    promised: Ballot


@wire.message
@attrs.frozen
class AskDecided:
    """A node that has not learned the value yet asks a peer (the essay's ``finalValue()`` call)."""


@wire.message
@attrs.frozen
class Decided:
    """The sender learned that ``value`` is the final value."""

    value: Scalar
