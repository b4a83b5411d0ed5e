"""Client histories: what clients asked, when, and what they were told.

A history is the input of the linearizability checker.  Each
:class:`Operation` is one client call from invocation to completion:

* ``ok``      -- it happened, and ``result`` is what it returned;
* ``fail``    -- it definitely did not happen (e.g. rejected before ordering);
* ``unknown`` -- the client gave up (timeout): it may take effect at any point
  after its invocation, or never.  ``complete`` is then ``None``.

The native file format is JSON lines, one operation per line, written by
:func:`dump_history` and read by :func:`load_history`.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from .commands import Command
from .values import CorruptValue, Value, from_json, to_json
from .errors import ConfigError


class Outcome(str, enum.Enum):
    """How a client operation ended."""

    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


@attrs.frozen
class Operation:
    """One client call: invocation, completion and outcome.

    Times are in simulated (or wall) milliseconds; ``complete`` is None for
    ``unknown`` operations, which stay open for ever.
    """

    id: int
    process: str
    command: Command
    invoke: float
    complete: float | None
    outcome: Outcome
    result: Value = None

    def __attrs_post_init__(self) -> None:
        if not math.isfinite(self.invoke) or (self.complete is not None and not math.isfinite(self.complete)):
            raise ValueError(f"operation {self.id}: times must be finite numbers")
        if self.outcome is Outcome.UNKNOWN:
            if self.complete is not None:
                raise ValueError(f"operation {self.id}: unknown outcome cannot have a completion time")
        elif self.complete is None or self.complete < self.invoke:
            raise ValueError(f"operation {self.id}: completion must be given and not before invocation")

    @property
    def end(self) -> float:
        """The time after which the operation cannot take effect (inf if unknown)."""
        return float("inf") if self.complete is None else self.complete


@attrs.define
class HistoryRecorder:
    """Builds a history as a run goes: ``invoke`` then exactly one of ``ok``/``fail``/``unknown``."""

    operations: list[Operation] = attrs.field(factory=list)
    _open: dict[int, tuple[str, Command, float]] = attrs.field(factory=dict)
    _next_id: int = 0

    def invoke(self, process: str, command: Command, time: float) -> int:
        """Record an invocation and return its operation id."""
        op_id = self._next_id
        self._next_id += 1
        self._open[op_id] = (process, command, time)
        return op_id

    def _close(self, op_id: int, outcome: Outcome, time: float | None, result: Value) -> Operation:
        process, command, invoked = self._open.pop(op_id)
        op = Operation(op_id, process, command, invoked, time, outcome, result)
        self.operations.append(op)
        return op

    def ok(self, op_id: int, time: float, result: Value) -> Operation:
        """Record that operation ``op_id`` completed with ``result``."""
        return self._close(op_id, Outcome.OK, time, result)

    def fail(self, op_id: int, time: float) -> Operation:
        """Record that operation ``op_id`` definitely did not take effect."""
        return self._close(op_id, Outcome.FAIL, time, None)

    def unknown(self, op_id: int) -> Operation:
        """Record that operation ``op_id`` may or may not have taken effect."""
        return self._close(op_id, Outcome.UNKNOWN, None, None)

    def finish(self) -> list[Operation]:
        """Close every still-open operation as unknown; return all operations by id."""
        for op_id in sorted(self._open):
            self.unknown(op_id)
        return sorted(self.operations, key=lambda o: o.id)


def operation_to_json(op: Operation) -> dict[str, Any]:
    """Return the native JSON object for one operation."""
    return {
        "id": op.id, "process": op.process, "op": op.command.op, "key": op.command.key,
        "args": [to_json(a) for a in op.command.args], "invoke": op.invoke, "complete": op.complete,
        "outcome": op.outcome.value, "result": to_json(op.result),
    }


def operation_from_json(obj: dict[str, Any]) -> Operation:
    """Parse one native JSON object into an Operation (KeyError/ValueError if malformed)."""
    command = Command(str(obj["op"]), str(obj.get("key", "")), tuple(from_json(a) for a in obj.get("args", ())))
    return Operation(int(obj["id"]), str(obj["process"]), command, float(obj["invoke"]),
                     None if obj.get("complete") is None else float(obj["complete"]),
                     Outcome(obj["outcome"]), from_json(obj.get("result")))


def dump_history(operations: Iterable[Operation], out: IO[str]) -> None:
    """Write operations as native JSON lines."""
    for op in operations:
        out.write(json.dumps(operation_to_json(op), sort_keys=True) + "\n")


def iter_history(lines: Iterable[str], source: str = "<history>") -> Iterator[Operation]:
    """Parse native JSON lines; a bad line raises ConfigError naming source and line."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield operation_from_json(json.loads(line))
        except (KeyError, ValueError, TypeError, CorruptValue) as exc:
            raise ConfigError(f"not a native history operation ({exc})", file=source, line=lineno) from None


def load_history(path: str | Path) -> list[Operation]:
    """Read a native JSON-lines history file."""
    with open(path, encoding="utf-8") as f:
        return list(iter_history(f, str(path)))
