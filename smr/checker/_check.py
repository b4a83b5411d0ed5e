"""Checking a whole history: split it into independent pieces, search each, combine the answers."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from smr.history import Operation, Outcome

from ._budget import Budget, Meter
from ._search import search
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


def check(history: Iterable[Operation], model: Model, budget: Budget | None = None) -> Verdict:
    """Judge whether ``history`` is linearizable under ``model`` within ``budget`` (default: unlimited).

    Raises LocalProtocolError if an operation is not one ``model`` defines.
    """
    ops = list(history)
    for op in ops:
        model.validate(op.command)
    meter = Meter(budget or Budget())
    pieces = partition(ops, model)
    judged = sum(len(piece) for piece in pieces.values())
    # Small pieces first: they are cheap, and a failure in one ends the check early.
    order = sorted(pieces, key=lambda k: len(pieces[k]))

    def verdict(status: Status, reason: str, checked: int,
                counterexample: Counterexample | None = None) -> Verdict:
        """Return the verdict with this check's totals filled in."""
        return Verdict(status, model.name, reason, judged, len(pieces), checked, meter.steps,
                       meter.elapsed(), counterexample)

    for checked, key in enumerate(order):
        piece = pieces[key]
        found = search(model, piece, meter)
        if found.linearizable is None:
            return verdict(Status.UNKNOWN, f"{meter.exhausted_by} after deciding {checked} of "
                           f"{len(pieces)} partition(s); no verdict", checked)
        if not found.linearizable:
            cex = build_counterexample(model.name, key, piece, found.order, found.blocked,
                                       model.describe(found.state))
            return verdict(Status.NOT_LINEARIZABLE,
                           f"partition {key!r} has no linearization: operation #{cex.failed.id} "
                           f"cannot be placed", checked + 1, cex)
    return verdict(Status.LINEARIZABLE, "every partition has a linearization", len(pieces))
