"""What a leader knows about one follower's log (etcd's ``Progress``): plain data, no transitions.

States, as in etcd raft:

* ``probe`` -- the leader does not know where the follower's log matches; it
  sends one AppendEntries at a time (at most one per heartbeat or reply) and
  backs off on rejection;
* ``replicate`` -- the follower is in sync; the leader pipelines up to
  ``max_inflight`` AppendEntries, advancing ``next`` optimistically;
* ``snapshot`` -- ``next`` fell into the compacted prefix; an InstallSnapshot
  is outstanding.

When to switch state is decided in :mod:`raft._core`; the small ``become_*``
helpers here only reset the bookkeeping of the new state.
"""

from __future__ import annotations

from collections import deque

import attrs

PROBE, REPLICATE, SNAPSHOT = "probe", "replicate", "snapshot"


@attrs.define
class Progress:
    """A leader's view of one follower: match/next indices and flow control."""

    next: int
    match: int = 0
    state: str = PROBE
    #: probe: an AppendEntries was sent and neither a reply nor a heartbeat came since.
    probe_sent: bool = False
    #: replicate: (last index, heartbeat round sent in) of every unacknowledged AppendEntries.
    inflight: deque[tuple[int, int]] = attrs.field(factory=deque)
    #: snapshot: the index of the snapshot sent and ticks since it was sent.
    pending_snapshot: int = 0
    snapshot_ticks: int = 0
    #: snapshot: where the chunk last sent starts in the snapshot's text.
    snapshot_offset: int = 0
    #: the highest heartbeat round this follower answered in the leader's term (ReadIndex).
    acked_round: int = 0
    #: heard from in the current check-quorum window.
    recent_active: bool = True

    def become_probe(self, next_index: int) -> None:
        """Forget the pipeline and probe from ``next_index``."""
        self.state = PROBE
        self.next = max(next_index, self.match + 1)
        self.probe_sent = False
        self.inflight.clear()
        self.pending_snapshot = 0

    def become_replicate(self) -> None:
        """The follower matches up to ``match``: pipeline from ``match + 1``."""
        self.state = REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()
        self.pending_snapshot = 0

    def become_snapshot(self, index: int) -> None:
        """An InstallSnapshot ending at ``index`` is on its way."""
        self.state = SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_ticks = 0
        self.snapshot_offset = 0
        self.inflight.clear()
