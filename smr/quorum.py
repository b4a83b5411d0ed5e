"""Majority-quorum arithmetic, in one place for every core (etcd's ``quorum/majority.go`` plays this part).

A cluster of ``voters`` nodes decides by strict majority.  Everything a core
counts goes through these functions:

* :func:`majority` -- how many nodes make a majority;
* :func:`has_majority` -- whether that many acknowledgements (votes, acks of a
  heartbeat round, replies heard in a check-quorum window) are enough;
* :func:`vote_result` -- an election's state from the votes received so far;
* :func:`committed_index` -- the highest log index a majority holds, given
  each voter's match index.

Any two majorities of the same cluster share a node; that is the whole reason
a majority decision cannot be contradicted by another one.  The functions are
pure and import nothing beyond the standard library.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any


def majority(voters: int) -> int:
    """The size of a strict majority of ``voters`` nodes (1 for a cluster of one)."""
    if voters < 1:
        raise ValueError(f"a cluster needs at least one voter, got {voters}")
    return voters // 2 + 1


def has_majority(acks: int, voters: int) -> bool:
    """True when ``acks`` distinct nodes of a ``voters``-node cluster form a majority."""
    return acks >= majority(voters)


class VoteResult(enum.Enum):
    """Where an election stands: won, lost (a majority refused), or still open."""

    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def vote_result(votes: Mapping[Any, bool], voters: int) -> VoteResult:
    """The state of an election from ``votes`` (voter -> granted) in a ``voters``-node cluster.

    Won once a majority granted; lost once a majority refused.  In a cluster of
    an even size an election can become unwinnable a vote earlier than that
    (half refused); it then stays pending until its timeout, as Raft's
    candidates always have.
    """
    granted = sum(votes.values())
    needed = majority(voters)
    if granted >= needed:
        return VoteResult.WON
    if len(votes) - granted >= needed:
        return VoteResult.LOST
    return VoteResult.PENDING


def committed_index(matches: Iterable[int]) -> int:
    """The highest index that a majority of the voters holds, given one match index per voter."""
    ordered = sorted(matches, reverse=True)
    return ordered[majority(len(ordered)) - 1]
