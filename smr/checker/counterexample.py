"""What a person needs to see when a history is not linearizable.

A :class:`Counterexample` names the partition that failed, the longest
linearizable prefix the search found, the operation that no order could
place after it, the model state at that point, and a text timeline of the
operations around the failure: one line per operation, with a bar over a
shared time axis from invocation ``[`` to completion ``]`` (``>`` runs off the
right edge for an operation whose outcome is unknown).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import attrs

from smr.history import Operation, Outcome, operation_to_json

#: Width of the timeline's bar column, in characters.
TIMELINE_WIDTH = 48
#: At most this many operations appear in a timeline.
TIMELINE_MAX_OPS = 24
#: How many of the prefix's last operations the timeline reaches back to.
TIMELINE_CONTEXT = 3


def format_result(op: Operation) -> str:
    """Return how an operation ended: its result, ``?`` if unknown, ``failed`` if it failed."""
    if op.outcome is Outcome.UNKNOWN:
        return "?"
    if op.outcome is Outcome.FAIL:
        return "failed"
    return repr(op.result)


def format_operation(op: Operation) -> str:
    """Return a one-line rendering: id, process, command, result and interval."""
    end = "" if op.complete is None else f"{op.complete:g}"
    return (f"#{op.id} {op.process}: {op.command} -> {format_result(op)} "
            f"({op.outcome.value}, {op.invoke:g}..{end})")


@attrs.frozen
class Counterexample:
    """Why one partition of a history is not linearizable.

    ``prefix`` is the longest linearizable prefix found, in linearization
    order; ``failed`` is the operation whose completion no order extending
    that prefix could reach; ``state`` renders the model state after
    ``prefix``; ``timeline`` is the text picture, one string per line.
    """

    model: str
    partition: str
    prefix: tuple[Operation, ...]
    failed: Operation
    state: str
    timeline: tuple[str, ...]

    def describe(self, last: int = 10) -> str:
        """Return a readable multi-line explanation, showing the prefix's last ``last`` operations."""
        lines = [
            f"Partition {self.partition} (model {self.model}): after the longest linearizable prefix "
            f"found ({len(self.prefix)} operations), the state is {self.state},",
            "and no order could place this operation before it completed:",
            f"  {format_operation(self.failed)}",
            "",
            "Longest linearizable prefix" + (f" (last {last} of {len(self.prefix)}):"
                                              if len(self.prefix) > last else ":"),
        ]
        start = max(0, len(self.prefix) - last)
        if not self.prefix:
            lines.append("  (empty: the operation cannot even come first)")
        for n, op in enumerate(self.prefix[start:], start + 1):
            lines.append(f"  {n:>4}. {format_operation(op)}")
        lines += ["", "Timeline of the operations around it:"]
        lines += [f"  {line}" for line in self.timeline]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable form of the counterexample."""
        return {
            "model": self.model,
            "partition": self.partition,
            "prefix": [operation_to_json(op) for op in self.prefix],
            "failed": operation_to_json(self.failed),
            "state": self.state,
            "timeline": list(self.timeline),
        }


def _window(ops: Sequence[Operation], prefix: Sequence[Operation], failed: Operation) -> list[Operation]:
    """Return the operations overlapping the failure and the prefix's last few steps."""
    lo = min([failed.invoke] + [op.invoke for op in prefix[-TIMELINE_CONTEXT:]])
    hi = failed.end
    shown = [op for op in ops if op.invoke <= hi and op.end >= lo]
    if len(shown) > TIMELINE_MAX_OPS:
        shown.sort(key=lambda op: (op is not failed, abs(op.invoke - failed.invoke), op.id))
        shown = shown[:TIMELINE_MAX_OPS]
    shown.sort(key=lambda op: (op.invoke, op.id))
    return shown


def render_timeline(shown: Sequence[Operation], positions: dict[int, int],
                    failed: Operation | None = None) -> list[str]:
    """Return one line per operation: linearization position, process, bar over time, command, result.

    Args:
        shown: the operations to draw, in the order to draw them.
        positions: ``id(op)`` -> 1-based position in the linearized prefix.
        failed: the operation to flag with ``!!``.
    """
    if not shown:
        return []
    t0 = min(op.invoke for op in shown)
    finite = [op.complete for op in shown if op.complete is not None]
    t1 = max(finite + [op.invoke for op in shown])
    span = (t1 - t0) or 1.0
    width = TIMELINE_WIDTH

    def col(t: float) -> int:
        """Return the bar column of time ``t``."""
        return min(width - 1, max(0, round((t - t0) / span * (width - 1))))

    proc_width = max(len("process"), *(len(op.process) for op in shown))
    lines = [
        f"{'lin':>4}  {'process':<{proc_width}}  {('time ' + format(t0, 'g')):<{width // 2}}"
        f"{format(t1, 'g'):>{width - width // 2}}  operation",
    ]
    for op in shown:
        bar = [" "] * width
        a = col(op.invoke)
        if op.complete is None:
            for x in range(a, width):
                bar[x] = "-"
            bar[a] = "["
            bar[width - 1] = ">"
        else:
            b = col(op.complete)
            for x in range(a, b + 1):
                bar[x] = "-"
            bar[a] = "["
            bar[b] = "]" if b > a else "|"
        if op is failed:
            mark = "!!"
        elif id(op) in positions:
            mark = str(positions[id(op)])
        else:
            mark = ""
        lines.append(f"{mark:>4}  {op.process:<{proc_width}}  {''.join(bar)}  "
                     f"#{op.id} {op.command} -> {format_result(op)}")
    lines.append(f"{'':>4}  {'':<{proc_width}}  lin: position in the prefix; !!: could not be placed;"
                 f" > : outcome unknown")
    return lines


def build_counterexample(model: str, partition: Hashable, ops: Sequence[Operation],
                         order: Sequence[int], blocked: int, state: str) -> Counterexample:
    """Return the counterexample for a failed search over ``ops`` (indices ``order`` and ``blocked``)."""
    prefix = tuple(ops[i] for i in order)
    failed = ops[blocked]
    positions = {id(op): n for n, op in enumerate(prefix, 1)}
    shown = _window(ops, prefix, failed)
    timeline = tuple(render_timeline(shown, positions, failed))
    return Counterexample(model, repr(partition), prefix, failed, state, timeline)
