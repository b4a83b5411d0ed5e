"""Raft's messages and durable records: frozen attrs classes registered with :mod:`smr.wire`.

Every message carries the sender's ``term`` (the receiver compares it first,
in one place: ``RaftCore._on_message``).  The sender's id is not a field: the
runtime hands it over in :class:`smr.replica.Receive`.

Durable records (what :class:`smr.replica.Write` stores under the ``raft/``
keys) are registered too, so every runtime can encode them with the one
converter:

* ``raft/hard`` -> :class:`HardState` (current term and vote);
* ``raft/log/{index:012d}`` -> :class:`Entry`;
* ``raft/snapshot`` -> :class:`SnapshotRecord`.
"""

from __future__ import annotations

import attrs

from smr import wire
from smr.replica import ClientRequest

HARD_KEY = "raft/hard"
SNAPSHOT_KEY = "raft/snapshot"
LOG_PREFIX = "raft/log/"


def log_key(index: int) -> str:
    """The durable key of log entry ``index``."""
    return f"{LOG_PREFIX}{index:012d}"


# ---------------------------------------------------------------- durable
@wire.message
@attrs.frozen
class HardState:
    """The state a server must never forget: its current term and its vote in that term."""

    term: int
    vote: str | None = None


@wire.message
@attrs.frozen
class Entry:
    """One log entry: the term of the leader that created it and the client request it carries."""

    term: int
    request: ClientRequest


@wire.message
@attrs.frozen
class SnapshotRecord:
    """A compacted log prefix: last included index and term, and the Applier snapshot as text."""

    index: int
    term: int
    data: str


# --------------------------------------------------------------- messages
@wire.message
@attrs.frozen
class RequestVote:
    """A candidate asks for a vote (section 5.2); ``pre_vote`` marks the thesis 9.6 probe.

    For a pre-vote, ``term`` is the term the candidate *would* campaign in.
    ``transfer`` is set by a candidate that campaigns because of a TimeoutNow,
    so voters disregard their check-quorum lease (thesis 3.10 / 6.2).
    """

    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False


@wire.message
@attrs.frozen
class RequestVoteReply:
    """A vote (or pre-vote) granted or refused."""

    term: int
    granted: bool
    pre_vote: bool = False


@wire.message
@attrs.frozen
class AppendEntries:
    """Replicate ``entries`` after (prev_index, prev_term); also the heartbeat (section 5.3).

    ``round`` numbers the leader's heartbeat rounds and is echoed in the reply,
    so the leader knows which followers confirmed it after a read arrived.
    """

    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int
    round: int = 0

    def trace(self) -> str:
        """A one-line rendering for traces."""
        span = (f" entries={self.prev_index + 1}..{self.prev_index + len(self.entries)}"
                if self.entries else "")
        return (f"AppendEntries term={self.term} prev={self.prev_index}/{self.prev_term}"
                f"{span} commit={self.commit}")


@wire.message
@attrs.frozen
class AppendEntriesReply:
    """The answer to an AppendEntries or an InstallSnapshot.

    On success ``index`` is the last index known to match the leader's log.
    On a rejection ``index`` is the rejected ``prev_index``, and the fast
    back-off hint is ``conflict_term`` (the follower's term at that index, 0
    if its log is too short) with ``conflict_index`` (the first index of that
    term in its log, or its last index + 1).
    """

    term: int
    success: bool
    index: int
    conflict_term: int = 0
    conflict_index: int = 0
    round: int = 0


@wire.message
@attrs.frozen
class InstallSnapshot:
    """Replace a lagging follower's log prefix by the leader's snapshot (section 7), one chunk at a time.

    ``snapshot.data`` is the chunk that starts at ``offset`` in the snapshot's
    text; ``done`` marks the last one (thesis 5.3: a snapshot travels in
    chunks of bounded size).  The follower answers a chunk that is not the
    last with :class:`InstallSnapshotReply`, the last one with an
    :class:`AppendEntriesReply` once the snapshot is installed.
    """

    term: int
    snapshot: SnapshotRecord
    round: int = 0
    offset: int = 0
    done: bool = True

    def trace(self) -> str:
        """A one-line rendering for traces (the data is shown by size only)."""
        part = "" if self.offset == 0 and self.done else f" offset={self.offset}{' done' if self.done else ''}"
        return (f"InstallSnapshot term={self.term} last={self.snapshot.index}/{self.snapshot.term} "
                f"size={len(self.snapshot.data)}{part}")


@wire.message
@attrs.frozen
class InstallSnapshotReply:
    """A follower holds the first ``received`` characters of the leader's snapshot ending at ``index``.

    The leader sends the next chunk from there (a chunk lost or refused is sent again from ``received``).
    """

    term: int
    index: int
    received: int
    round: int = 0


@wire.message
@attrs.frozen
class TimeoutNow:
    """The leader tells its chosen successor to campaign at once (thesis 3.10)."""

    term: int


RaftMessage = (RequestVote, RequestVoteReply, AppendEntries, AppendEntriesReply, InstallSnapshot,
               InstallSnapshotReply, TimeoutNow)
