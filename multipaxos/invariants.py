"""Multi-Paxos safety invariants, checked by the simulator after every step.

* **One value per slot**: no two different values are each accepted by a
  majority of acceptors (in any ballots) for the same slot.
* **Chosen values stick**: a value a majority accepted equals what any replica
  applied at that slot, and no leader proposes anything else there in a
  higher ballot than the one it was chosen in.

Only live replicas are visible, so the majority test is a lower bound on what
was chosen; the simulator separately checks that every replica applies the
same value at every slot, across crashes and restarts.  To stay cheap the
check looks at the most recent ``WINDOW`` slots above the lowest applied slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WINDOW = 64


def check_invariants(cores: Mapping[str, Any]) -> None:
    """Raise AssertionError naming the property if a multi-Paxos invariant is broken."""
    live = [c for c in cores.values() if hasattr(c, "acceptor")]
    if not live:
        return
    low = min(c.applied for c in live)
    high = max(max(c.next_slot, c.max_accepted + 1) for c in live)
    quorum = live[0].quorum
    for slot in range(max(low + 1, high - WINDOW), high):
        votes: list[list[Any]] = []  # [ballot, value, count]; a handful per slot, so compare by hand
        for core in live:
            accepted = core.acceptor.accepted.get(slot)
            if accepted is None:
                continue
            for vote in votes:
                if vote[0] == accepted[0] and vote[1] == accepted[1]:
                    vote[2] += 1
                    break
            else:
                votes.append([accepted[0], accepted[1], 1])
        majority = [(b, v) for b, v, n in votes if n >= quorum]
        chosen = [v for _, v in majority]
        if any(v != chosen[0] for v in chosen):
            raise AssertionError(f"one value per slot: slot {slot} has different values each "
                                 f"accepted by a majority: {chosen}")
        applied = [core.log[slot] for core in live if slot in core.log]
        if any(v != applied[0] for v in applied):
            raise AssertionError(f"agreement: replicas applied different values at slot {slot}")
        if chosen and applied and chosen[0] != applied[0]:
            raise AssertionError(f"chosen values stick: slot {slot} was chosen as {chosen[0]!r} "
                                 f"but applied as {applied[0]!r}")
        if majority:
            # Paxos's invariant: once v is chosen in ballot b, every proposal in a
            # higher ballot is v.  (A deposed leader may still hold an older proposal.)
            chosen_in, value = min(majority, key=lambda bv: bv[0])
            for core in live:
                proposal = core.proposals.get(slot) if core.role == "leader" else None
                if proposal is not None and proposal.ballot > chosen_in and proposal.value != value:
                    raise AssertionError(f"chosen values stick: leader {core.node} proposes "
                                         f"{proposal.value!r} at slot {slot} in ballot {proposal.ballot}, "
                                         f"where {value!r} was chosen in ballot {chosen_in}")
