"""Multi-Paxos safety invariants, checked by the simulator after every step.

* **One value per slot**: no two different values are each accepted by a
  majority of acceptors (in any ballots) for the same slot.
* **Chosen values stick**: a value a majority accepted equals what any replica
  applied at that slot, and no leader proposes anything else there in a
  higher ballot than the one it was chosen in.

With a changing membership a majority is counted among the voters of the
slot's configuration only (the one applied after slot - alpha; learners and
nodes of other configurations never count), as a live replica that applied
that far and still keeps that part of its configuration history knows it; a
slot whose configuration no live replica knows is checked for agreement of
applied values only.  Without any change, the first voters count.

Only live replicas are visible, so the majority test is a lower bound on what
was chosen; the simulator separately checks that every replica applies the
same value at every slot, across crashes and restarts.  To stay cheap the
check looks at the most recent ``WINDOW`` slots above the lowest applied slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smr.quorum import majority
from smr.replica import Role

WINDOW = 64


def check_invariants(cores: Mapping[str, Any]) -> None:
    """Raise AssertionError naming the property if a multi-Paxos invariant is broken."""
    live = [c for c in cores.values() if hasattr(c, "acceptor")]
    if not live:
        return
    low = min(c.applied for c in live)
    high = max(max(c.next_slot, c.max_accepted + 1) for c in live)
    alpha = live[0].alpha
    static = all(len(c.history) == 1 and c.history[0][1] == c.initial_membership for c in live)
    # no change anywhere: the first voters vote, as before reconfiguration existed
    first = live[0].initial_membership.voters
    voters: Any = frozenset(first)
    quorum = majority(len(first))
    # who knows the configuration applied after slot b: a replica with since <= b <= applied (a history
    # restarted from a snapshot at slot s starts at 0 but holds from s + 1 - alpha on)
    knowers = sorted(((max(c.history[0][0], c.snapshot_slot + 1 - alpha if c.snapshot_slot else 0), c.applied, c)
                      for c in live), key=lambda k: -k[1])
    accepted_maps = [c.acceptor.accepted for c in live]
    nodes = [c.node for c in live]
    logs = [c.log for c in live]
    leaders = [c for c in live if c.role == Role.LEADER and c.proposals]
    # This runs after every simulated step, so it is written for speed: (ballot, value) pairs are
    # compared as tuples, which tests identity before calling the attrs __eq__ of their items.
    for slot in range(max(low + 1, high - WINDOW), high):
        if not static:
            base = slot - alpha
            knower = next((c for since, applied, c in knowers if since <= base <= applied or base <= 0 == since),
                          None)
            if knower is None:
                voters, quorum = frozenset(), 0  # its configuration is not known to any live replica
            else:
                config = knower._applied_config(base)
                voters, quorum = frozenset(config.voters), majority(len(config.voters))
        chosen_pairs: list[tuple[Any, Any]] = []
        accepted = [m[slot] for node, m in zip(nodes, accepted_maps) if slot in m and node in voters]
        if quorum and len(accepted) >= quorum:
            votes: list[list[Any]] = []  # [(ballot, value), count]; a handful per slot
            for pair in accepted:
                for vote in votes:
                    if vote[0] == pair:
                        vote[1] += 1
                        break
                else:
                    votes.append([pair, 1])
            chosen_pairs = [pair for pair, n in votes if n >= quorum]
        chosen = [v for _, v in chosen_pairs]
        if len(chosen) > 1 and any(v != chosen[0] for v in chosen):
            raise AssertionError(f"one value per slot: slot {slot} has different values each "
                                 f"accepted by a majority: {chosen}")
        applied = [log[slot] for log in logs if slot in log]
        if len(applied) > 1 and any(v is not applied[0] and v != applied[0] for v in applied):
            raise AssertionError(f"agreement: replicas applied different values at slot {slot}")
        if chosen and applied and chosen[0] is not applied[0] and chosen[0] != applied[0]:
            raise AssertionError(f"chosen values stick: slot {slot} was chosen as {chosen[0]!r} "
                                 f"but applied as {applied[0]!r}")
        if chosen_pairs and leaders:
            # Paxos's invariant: once v is chosen in ballot b, every proposal in a
            # higher ballot is v.  (A deposed leader may still hold an older proposal.)
            chosen_in, value = chosen_pairs[0] if len(chosen_pairs) == 1 else min(chosen_pairs, key=lambda bv: bv[0])
            for core in leaders:
                proposal = core.proposals.get(slot)
                if proposal is not None and proposal.value is not value and proposal.value != value \
                        and proposal.ballot > chosen_in:
                    raise AssertionError(f"chosen values stick: leader {core.node} proposes "
                                         f"{proposal.value!r} at slot {slot} in ballot {proposal.ballot}, "
                                         f"where {value!r} was chosen in ballot {chosen_in}")
