"""How long a leader lease lasts, in the leader's own ticks, for both protocols.

A leader may answer reads from its own state while no other leader can have
been elected.  Every follower (acceptor) that acknowledged a heartbeat round
heard it no earlier than the round started, and then ignores votes (refuses
other proposers' promises) for ``election_ticks_min`` of *its* ticks.  Its
wait can end a tick early (the heartbeat arrives between two of its ticks),
and clocks run at different rates: if every tick lasts between ``1 - d`` and
``1 + d`` of its nominal time (``d = max_clock_drift``), a follower's
``election_ticks_min - 1`` ticks last at least ``(election_ticks_min - 1) *
(1 - d)`` nominal ticks, and the leader's ``L`` ticks at most ``L * (1 + d)``.
So ``L = floor(election_ticks_min * (1 - d) / (1 + d)) - 1`` never outlasts
the followers' promise (``floor(m * r) - 1 <= (m - 1) * r`` for ``r <= 1``).
"""

from __future__ import annotations


def lease_ticks(election_ticks_min: int, max_clock_drift: float) -> int:
    """The ticks a lease lasts from the start of the heartbeat round a quorum acknowledged (see module)."""
    return int(election_ticks_min * (1 - max_clock_drift) / (1 + max_clock_drift)) - 1
