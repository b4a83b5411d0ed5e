"""Paxos ballots: (round, node) pairs, totally ordered, unique per proposer."""

from __future__ import annotations

import functools
from typing import Any

import attrs


def node_key(node: str) -> tuple[int, str]:
    """Order node ids as the bully algorithm does: by their number, then by name."""
    digits = "".join(ch for ch in node if ch.isdigit())
    return (int(digits) if digits else -1, node)


@functools.total_ordering
@attrs.frozen(order=False)
class Ballot:
    """A ballot number: ``round`` first, then the proposing ``node`` breaks ties.

    Two proposers never share a ballot because the node id is part of it; a
    proposer moves to a higher ballot by taking a higher round.
    """

    round: int
    node: str

    @property
    def key(self) -> tuple[int, tuple[int, str]]:
        """The sort key: (round, bully order of node)."""
        return (self.round, node_key(self.node))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Ballot):
            return NotImplemented
        return self.key < other.key

    def to_json(self) -> list[Any]:
        """Return the ballot as a JSON-ready ``[round, node]`` pair."""
        return [self.round, self.node]

    @classmethod
    def from_json(cls, obj: Any) -> "Ballot":
        """Rebuild a ballot from :meth:`to_json` output."""
        round_, node = obj
        return cls(int(round_), str(node))

    def __str__(self) -> str:
        return f"{self.round}.{self.node}"
