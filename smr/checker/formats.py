"""Readers for histories recorded outside this project: Jepsen/Knossos EDN and ``jepsen.util`` logs.

Both formats are streams of events -- ``invoke``, then ``ok``/``fail``/``info``
from the same process -- which are paired by process into
:class:`smr.history.Operation` values.  ``info`` (and a ``fail`` whose value
is ``:timed-out``) means the outcome is unknown; an invocation never
completed is unknown too.  Events are timed by their position in the file,
which is the real-time order Jepsen recorded; the ``nemesis`` process is
skipped.

Commands keep Jepsen's ``:f`` name (``read``/``write``/``cas`` are the
register model's ops; the KV model accepts them as ``get``/``put``/``cas``):
``read``-like ops (read, get, final_value) take no arguments and return the
completion's value; ``write``/``put``/``append`` take the value and return None; ``cas``
takes ``[expected new]`` and returns True (Jepsen fails a cas that does not
match); any other op takes the invocation's value as its argument and
returns the completion's value.  A value ``[key v]`` (``jepsen.independent``)
puts the operation on key ``key``.  A malformed event raises ConfigError
naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from smr.commands import Command, Scalar
from smr.errors import ConfigError
from smr.history import Operation, Outcome, iter_history

from ._edn import EdnError, EdnMap, Keyword, Symbol, read_all

#: History file formats :func:`read_history` understands.
FORMATS = ("native", "edn", "jepsen-log")

_READ_OPS = frozenset({"read", "get", "final_value"})
_WRITE_OPS = frozenset({"write", "put", "append"})
_TYPES = {"invoke", "ok", "fail", "info"}
_TIMED_OUT = Keyword("timed-out")
_PROCESS, _TYPE, _F, _VALUE, _ERROR = (Keyword(k) for k in ("process", "type", "f", "value", "error"))


def _show(value: object) -> str:
    """Render an EDN value the way it was written (keywords with their colon)."""
    if isinstance(value, Keyword):
        return str(value)
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, tuple):
        return "[" + " ".join(_show(v) for v in value) + "]"
    if value is None:
        return "nil"
    return repr(value)


def _scalar(value: object, source: str, line: int) -> Scalar:
    if isinstance(value, Keyword):
        return value.name
    if isinstance(value, Symbol):
        return value.name
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(f"value {_show(value)} is not a scalar (nil, boolean, integer, string or keyword)",
                      file=source, line=line)


def _is_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2


def _split_key(f: str, value: object) -> tuple[str, object, bool]:
    """Return (key, value without key, whether the value was an independent [key value] tuple)."""
    if not isinstance(value, tuple) or len(value) != 2 or (f == "cas" and not _is_pair(value[1])):
        return "", value, False
    key, inner = value
    if isinstance(key, Keyword):
        return key.name, inner, True
    if isinstance(key, (int, str)) and not isinstance(key, bool):
        return str(key), inner, True
    return "", value, False


class _Pairer:
    """Turns a stream of Jepsen events into operations, pairing each completion with its invocation."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.time = 0
        self.open: dict[str, tuple[int, str, object, float, int]] = {}
        self.done: list[Operation] = []
        self.next_id = 0

    def event(self, process: object, kind: object, f: object, value: object, line: int,
              extras: tuple[object, ...] = ()) -> None:
        """Feed one event read from ``line``."""
        if isinstance(process, (Keyword, Symbol)) and process.name == "nemesis":
            return
        if not isinstance(process, int) or isinstance(process, bool):
            raise ConfigError(f"process must be an integer or :nemesis, got {_show(process)}",
                              file=self.source, line=line)
        if not isinstance(kind, Keyword) or kind.name not in _TYPES:
            raise ConfigError(f"type must be one of :invoke :ok :fail :info, got {_show(kind)}",
                              file=self.source, line=line)
        if not isinstance(f, (Keyword, Symbol, str)):
            raise ConfigError(f"f must be a keyword, got {_show(f)}", file=self.source, line=line)
        fname = f if isinstance(f, str) else f.name
        self.time += 1
        proc = str(process)
        if kind.name == "invoke":
            if proc in self.open:
                raise ConfigError(f"process {proc} invokes again before its operation on line "
                                  f"{self.open[proc][4]} completed", file=self.source, line=line)
            self.open[proc] = (self.next_id, fname, value, float(self.time), line)
            self.next_id += 1
            return
        if proc not in self.open:
            raise ConfigError(f"process {proc} completes an operation it never invoked",
                              file=self.source, line=line)
        op_id, invoked_f, invoke_value, invoke_time, invoke_line = self.open.pop(proc)
        if invoked_f != fname:
            raise ConfigError(f"process {proc} invoked :{invoked_f} (line {invoke_line}) but "
                              f"completes :{fname}", file=self.source, line=line)
        if kind.name == "info" or (kind.name == "fail" and _TIMED_OUT in (value, *extras)):
            self._add(op_id, proc, fname, invoke_value, None, invoke_time, None, Outcome.UNKNOWN,
                      invoke_line)
        else:
            outcome = Outcome.OK if kind.name == "ok" else Outcome.FAIL
            self._add(op_id, proc, fname, invoke_value, value, invoke_time, float(self.time),
                      outcome, line)

    def _add(self, op_id: int, proc: str, f: str, invoke_value: object, ok_value: object,
             invoke: float, complete: float | None, outcome: Outcome, line: int) -> None:
        key, arg, independent = _split_key(f, invoke_value)
        if f in _READ_OPS:
            args: tuple[Scalar, ...] = ()
        elif f == "cas":
            if not isinstance(arg, tuple) or len(arg) != 2:
                raise ConfigError(f"cas needs a value [expected new], got {_show(arg)}",
                                  file=self.source, line=line)
            args = tuple(_scalar(a, self.source, line) for a in arg)
        elif arg is None:
            args = ()
        else:
            args = (_scalar(arg, self.source, line),)
        result: Scalar = None
        if outcome is Outcome.OK:
            if f == "cas":
                result = True
            elif f not in _WRITE_OPS:
                if independent and _is_pair(ok_value):
                    ok_value = ok_value[1]  # type: ignore[index]
                result = _scalar(ok_value, self.source, line)
        self.done.append(Operation(op_id, proc, Command(f, key, args), invoke, complete, outcome, result))

    def finish(self) -> list[Operation]:
        """Close every still-open invocation as unknown; return the operations by id."""
        for proc, (op_id, f, value, invoke, line) in sorted(self.open.items(), key=lambda kv: kv[1][0]):
            self._add(op_id, proc, f, value, None, invoke, None, Outcome.UNKNOWN, line)
        self.open.clear()
        return sorted(self.done, key=lambda op: op.id)


def parse_edn_history(text: str, source: str = "<edn>") -> list[Operation]:
    """Parse a Jepsen/Knossos EDN history (one op map per line, or vectors of them) into operations."""
    try:
        forms = read_all(text)
    except EdnError as exc:
        raise ConfigError(f"not EDN: {exc}", file=source, line=exc.line) from None
    pairer = _Pairer(source)
    for form, line in forms:
        for item in (form if isinstance(form, tuple) else (form,)):
            if not isinstance(item, EdnMap):
                raise ConfigError(f"expected an operation map {{:process .. :type .. :f ..}}, "
                                  f"got {_show(item)}", file=source, line=line)
            for field in ("process", "type", "f"):
                if Keyword(field) not in item:
                    raise ConfigError(f"operation map has no :{field}", file=source, line=item.line,
                                      field=field)
            pairer.event(item[_PROCESS], item[_TYPE], item[_F],
                         item.get(_VALUE), item.line, (item.get(_ERROR),))
    return pairer.finish()


_LOG_EVENT = re.compile(r"jepsen\.util\s*[-:]\s+(?=(?:-?\d+|:\w+)\s+:)(?P<event>.*)$")


def parse_jepsen_log(text: str, source: str = "<jepsen-log>") -> list[Operation]:
    """Parse the ``INFO jepsen.util - 3 :invoke :write 4`` lines of a Jepsen log into operations.

    Lines that are not ``jepsen.util`` events are ignored.
    """
    pairer = _Pairer(source)
    for lineno, line in enumerate(text.splitlines(), 1):
        match = _LOG_EVENT.search(line)
        if match is None:
            continue
        try:
            forms = [form for form, _ in read_all(match.group("event"), lineno)]
        except EdnError as exc:
            raise ConfigError(f"not a jepsen.util event: {exc}", file=source, line=lineno) from None
        if len(forms) < 3:
            raise ConfigError("a jepsen.util event needs process, type and f", file=source, line=lineno)
        process, kind, f = forms[:3]
        value = forms[3] if len(forms) > 3 else None
        pairer.event(process, kind, f, value, lineno, tuple(forms[4:]))
    return pairer.finish()


def infer_format(path: str | Path) -> str:
    """Return the format a history file's name suggests: edn for .edn, jepsen-log for .log, else native."""
    suffix = Path(path).suffix.lower()
    return {".edn": "edn", ".log": "jepsen-log"}.get(suffix, "native")


def read_history(path: str | Path, fmt: str | None = None) -> list[Operation]:
    """Read a history file in ``fmt`` (one of FORMATS; None: inferred from the name)."""
    fmt = fmt or infer_format(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown history format {fmt!r}; choose one of {', '.join(FORMATS)}",
                          file=str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    return parse_history(text, fmt, str(path))


def parse_history(text: str, fmt: str, source: str = "<history>") -> list[Operation]:
    """Parse history ``text`` in ``fmt`` (one of FORMATS)."""
    if fmt == "edn":
        return parse_edn_history(text, source)
    if fmt == "jepsen-log":
        return parse_jepsen_log(text, source)
    if fmt == "native":
        return list(iter_history(text.splitlines(), source))
    raise ConfigError(f"unknown history format {fmt!r}; choose one of {', '.join(FORMATS)}", file=source)

