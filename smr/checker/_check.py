"""Checking a whole history: split it into independent pieces, search each, combine the answers."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import attrs

from smr.history import Operation, Outcome

from ._budget import Budget, Meter
from ._search import SearchResult, search
from .counterexample import Counterexample, build_counterexample
from .models import Model
from .verdict import Status, Verdict


def partition(history: Iterable[Operation], model: Model) -> dict[Hashable, list[Operation]]:
    """Split a history into independent sub-histories by ``model.partition_key``, dropping failed operations.

    The pieces share nothing: each can be checked on its own (in any order, or
    in parallel), and the history is linearizable exactly when all are.
    """
    pieces: dict[Hashable, list[Operation]] = {}
    for op in history:
        if op.outcome is Outcome.FAIL:
            continue
        pieces.setdefault(model.partition_key(op.command), []).append(op)
    return pieces


@attrs.frozen
class Explanation:
    """A verdict with what the search found in each partition it decided, for drawing.

    ``pieces`` maps each partition key to its operations (failed ones
    dropped); ``found`` maps each partition the search decided to its
    :class:`SearchResult` (indices into that partition's operations), so a
    linearizable partition carries a linearization and a failed one its
    longest linearizable prefix and the operation that could not be placed.
    """

    verdict: Verdict
    pieces: dict[Hashable, list[Operation]]
    found: dict[Hashable, SearchResult]


def check(history: Iterable[Operation], model: Model, budget: Budget | None = None) -> Verdict:
    """Judge whether ``history`` is linearizable under ``model`` within ``budget`` (default: unlimited).

    Raises LocalProtocolError if an operation is not one ``model`` defines.
    """
    return explain(history, model, budget).verdict


def explain(history: Iterable[Operation], model: Model, budget: Budget | None = None) -> Explanation:
    """Judge ``history`` as :func:`check` does, keeping each decided partition's search result."""
    ops = list(history)
    for op in ops:
        model.validate(op.command)
    meter = Meter(budget or Budget())
    pieces = partition(ops, model)
    judged = sum(len(piece) for piece in pieces.values())
    # Small pieces first: they are cheap, and a failure in one ends the check early.
    order = sorted(pieces, key=lambda k: len(pieces[k]))
    decided: dict[Hashable, SearchResult] = {}

    def explained(status: Status, reason: str, counterexample: Counterexample | None = None) -> Explanation:
        """Return the explanation with this check's totals filled in."""
        verdict = Verdict(status, model.name, reason, judged, len(pieces), len(decided), meter.steps,
                          meter.elapsed(), counterexample)
        return Explanation(verdict, pieces, decided)

    for key in order:
        piece = pieces[key]
        found = search(model, piece, meter)
        if found.linearizable is None:
            return explained(Status.UNKNOWN, f"{meter.exhausted_by} after deciding {len(decided)} of "
                             f"{len(pieces)} partition(s); no verdict")
        decided[key] = found
        if not found.linearizable:
            cex = build_counterexample(model.name, key, piece, found.order, found.blocked,
                                       model.describe(found.state))
            return explained(Status.NOT_LINEARIZABLE,
                             f"partition {key!r} has no linearization: operation #{cex.failed.id} "
                             f"cannot be placed", cex)
    return explained(Status.LINEARIZABLE, "every partition has a linearization")
