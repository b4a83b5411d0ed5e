"""A small reader for the subset of EDN that Jepsen and Knossos histories use.

Supported: maps, vectors, lists, sets, keywords, symbols (``nil``, ``true``,
``false`` and bare names), strings, integers and floats, ``;`` comments,
commas as whitespace, and tagged literals (``#inst "..."``,
``#jepsen.history.Op{...}``), whose tag is dropped.  Vectors and lists become
tuples so values stay hashable; each map records the line it started on.
"""

from __future__ import annotations

import re
from typing import Any

import attrs


class EdnError(ValueError):
    """Text that is not EDN; ``line`` is the 1-based line where reading failed."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@attrs.frozen
class Keyword:
    """An EDN keyword such as ``:invoke``; ``name`` has no colon."""

    name: str

    def __str__(self) -> str:
        return f":{self.name}"


@attrs.frozen
class Symbol:
    """An EDN symbol other than nil/true/false."""

    name: str


class EdnMap(dict[Any, Any]):
    """An EDN map that remembers the line it started on."""

    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line


_TOKEN = re.compile(r"""
    (?P<ws>[\s,]+|;[^\n]*)
  | (?P<open>\#\{|[\[({])
  | (?P<close>[\])}])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<tag>\#[A-Za-z][^\s,\[\](){}"]*)
  | (?P<atom>[^\s,\[\](){}"\#;][^\s,\[\](){}";]*)
""", re.VERBOSE | re.DOTALL)

_INT = re.compile(r"[+-]?\d+N?")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_CLOSERS = {"[": "]", "(": ")", "{": "}", "#{": "}"}


def _atom(text: str, line: int) -> object:
    if text == "nil":
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    if text.startswith(":"):
        if len(text) == 1:
            raise EdnError("a lone ':' is not a keyword", line)
        return Keyword(text[1:])
    if _INT.fullmatch(text):
        return int(text.rstrip("N"))
    if _FLOAT.fullmatch(text):
        return float(text.rstrip("M"))
    if text[0].isdigit() or (text[0] in "+-" and len(text) > 1 and text[1].isdigit()):
        raise EdnError(f"not a number: {text!r}", line)
    if text.startswith("\\"):
        raise EdnError(f"character literals are not supported: {text!r}", line)
    return Symbol(text)


def _string(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def read_all(text: str, first_line: int = 1) -> list[tuple[object, int]]:
    """Return every top-level form in ``text`` with the line it starts on; raise EdnError if malformed."""
    forms: list[tuple[object, int]] = []
    # Each open collection: (opener, items, line it started on).
    stack: list[tuple[str, list[object], int]] = []
    line = first_line
    pos = 0
    tagged = False  # a tag was read and still waits for its form

    def emit(value: object, at: int) -> None:
        """Add a finished form to the open collection, or to the top level."""
        if stack:
            stack[-1][1].append(value)
        else:
            forms.append((value, at))

    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            what = "unterminated string" if text[pos] == '"' else f"unexpected character {text[pos]!r}"
            raise EdnError(what, line)
        token = match.group()
        kind = match.lastgroup
        start_line = line
        line += token.count("\n")
        pos = match.end()
        if kind == "ws":
            continue
        if kind == "tag":
            tagged = True
            continue
        if kind == "open":
            stack.append((token, [], start_line))
            tagged = False
            continue
        if kind == "close":
            if tagged:
                raise EdnError("a tag is not followed by a form", start_line)
            if not stack:
                raise EdnError(f"unbalanced {token!r}", start_line)
            opener, items, at = stack.pop()
            if _CLOSERS[opener] != token:
                raise EdnError(f"{opener!r} opened on line {at} is closed by {token!r}", start_line)
            value: object
            if opener == "{":
                if len(items) % 2:
                    raise EdnError(f"map opened on line {at} has an odd number of forms", start_line)
                edn_map = EdnMap(at)
                for k, v in zip(items[::2], items[1::2]):
                    try:
                        edn_map[k] = v
                    except TypeError:
                        raise EdnError(f"map key {k!r} cannot be a key", at) from None
                value = edn_map
            elif opener == "#{":
                try:
                    value = frozenset(items)
                except TypeError:
                    raise EdnError("set members must be hashable", at) from None
            else:
                value = tuple(items)
            emit(value, at)
            continue
        value = _string(token) if kind == "string" else _atom(token, start_line)
        tagged = False
        emit(value, start_line)
    if stack:
        raise EdnError(f"{stack[-1][0]!r} opened here is never closed", stack[-1][2])
    if tagged:
        raise EdnError("a tag is not followed by a form", line)
    return forms
