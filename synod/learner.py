"""The Paxos learner: a value is chosen once a majority accepted it in one ballot."""

from __future__ import annotations

from typing import Any

import attrs

from .ballot import Ballot


@attrs.define
class Learner:
    """Counts acceptances per ballot and reports the chosen value."""

    quorum: int
    votes: dict[Ballot, set[str]] = attrs.field(factory=dict)
    values: dict[Ballot, Any] = attrs.field(factory=dict)
    chosen: Any = None

    def add(self, src: str, ballot: Ballot, value: Any) -> Any:
        """Count ``src``'s acceptance of ``value`` in ``ballot``; return the chosen value once known, else None."""
        self.values.setdefault(ballot, value)
        voters = self.votes.setdefault(ballot, set())
        voters.add(src)
        if self.chosen is None and len(voters) >= self.quorum:
            self.chosen = self.values[ballot]
        return self.chosen
