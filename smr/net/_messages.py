"""The few messages a TCP client exchanges with a node besides ClientRequest and Reply."""

from __future__ import annotations

import attrs

from smr import wire
from smr.replica import ClientRequest, Reply


@wire.message
@attrs.frozen
class RequestBatch:
    """Several client requests in one frame: what a connection's sessions queued while it was writing."""

    requests: tuple[ClientRequest, ...]


@wire.message
@attrs.frozen
class ReplyBatch:
    """Several replies in one frame: what a node had ready for one client connection at once."""

    replies: tuple[Reply, ...]


@wire.message
@attrs.frozen
class StatusQuery:
    """A client asks a node how it is doing (answered at once, outside the log)."""


@wire.message
@attrs.frozen
class StatusReport:
    """A node's answer to :class:`StatusQuery`: role, epoch, leader belief and counters.

    ``refused`` counts frames dropped per reason (see ``smr.net._frames.REASONS``).
    """

    node: str
    backend: str
    role: str
    epoch: int
    leader: str | None
    commit_index: int
    uptime_s: float
    counters: dict[str, int] = attrs.field(factory=dict)
    refused: dict[str, int] = attrs.field(factory=dict)
    storage: dict[str, float] = attrs.field(factory=dict)
    #: The state machine it runs, and its client session table: open, max and dropped sessions.
    app: str = ""
    sessions: dict[str, int] = attrs.field(factory=dict)
    #: The configuration this node has applied: ``voters``, ``learners`` and (Raft, while joint)
    #: ``outgoing`` (empty for a backend without membership).
    membership: dict[str, list[str]] = attrs.field(factory=dict)
    #: How its storage makes a write durable, as SQLite reports it: ``journal_mode`` ("wal") and
    #: ``synchronous`` ("FULL" with fsync, "OFF" without).
    durability: dict[str, str] = attrs.field(factory=dict)
