"""How durable values are stored: a tagged JSON encoding that round-trips every backend's writes.

Backends write arbitrary Python values made of ``None``/bool/int/float/str,
lists, tuples, dicts with string keys, bytes and registered wire messages
(:mod:`smr.wire`).  Plain JSON would turn tuples into lists and attrs records
into nothing, so four tags keep the types:

* ``{"$msg": {"t": ..., "b": ...}}`` -- a registered attrs message (``wire.to_obj``);
* the tags of :func:`smr.values.to_json` for tuples, bytes, dicts with
  non-string keys and dicts whose own keys start with ``$``.

Every other value passes through as JSON.  The decoder accepts exactly what
the encoder makes; anything else is :class:`CorruptValue`.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from smr import values, wire
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.values import CorruptValue as CorruptValue

_MSG = "$msg"
# ASCII with escapes: a lone surrogate a client smuggled into a string must not crash the node.
# Made once: ``json.dumps`` with options builds a new encoder per call.
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _message(value: Any) -> Any:
    if attrs.has(type(value)):
        return {_MSG: wire.to_obj(value)}  # LocalProtocolError if not registered
    raise LocalProtocolError(f"cannot store a value of type {type(value).__name__}")


def _tagged(tag: str, body: Any) -> Any:
    if tag != _MSG:
        raise CorruptValue(f"unknown stored tag {tag!r}")
    try:
        return wire.from_obj(body)
    except RemoteProtocolError as exc:
        raise CorruptValue(f"stored message does not decode: {exc}") from None


def to_storable(value: Any) -> Any:
    """Return the tagged JSON form of a durable value; LocalProtocolError if it has none."""
    try:
        return values.to_json(value, state=True, other=_message, where="durable value")
    except TypeError as exc:
        raise LocalProtocolError(f"cannot store: {exc}") from None


def from_storable(obj: Any) -> Any:
    """Rebuild a durable value from :func:`to_storable` output, or raise CorruptValue."""
    return values.from_json(obj, other=_tagged)


def dumps(value: Any) -> bytes:
    """Encode a durable value to compact UTF-8 JSON bytes."""
    return _JSON.encode(to_storable(value)).encode("ascii")


def loads(data: bytes) -> Any:
    """Decode bytes made by :func:`dumps`, or raise CorruptValue."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also an int of over 4,300 digits
        raise CorruptValue(f"stored value is not JSON: {exc}") from None
    return from_storable(obj)
