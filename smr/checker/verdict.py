"""The answer of a linearizability check: linearizable, not linearizable, or unknown."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from .counterexample import Counterexample


class Status(str, enum.Enum):
    """The three possible answers; ``unknown`` means the budget ran out first."""

    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown"


@attrs.frozen
class Verdict:
    """A check's answer with what it cost, and a counterexample when not linearizable.

    ``operations`` counts the operations judged (failed ones are dropped);
    ``partitions`` how many independent pieces the history split into and
    ``checked`` how many of them were fully decided.
    """

    status: Status
    model: str
    reason: str
    operations: int
    partitions: int
    checked: int
    steps: int
    elapsed: float
    counterexample: Counterexample | None = None

    @property
    def linearizable(self) -> bool:
        """True exactly when the history was shown to be linearizable."""
        return self.status is Status.LINEARIZABLE

    def describe(self) -> str:
        """Return the verdict for a person: a headline, the reason, and any counterexample."""
        lines = [
            f"{self.status.value.upper()}: {self.reason}",
            f"(model {self.model}, {self.operations} operations in {self.partitions} partition(s), "
            f"{self.checked} decided, {self.steps} model steps, {self.elapsed:.3f} s)",
        ]
        if self.counterexample is not None:
            lines += ["", self.counterexample.describe()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable form of the verdict and its counterexample."""
        return {
            "verdict": self.status.value,
            "model": self.model,
            "reason": self.reason,
            "operations": self.operations,
            "partitions": self.partitions,
            "checked": self.checked,
            "steps": self.steps,
            "elapsed": round(self.elapsed, 6),
            "counterexample": None if self.counterexample is None else self.counterexample.to_json(),
        }
