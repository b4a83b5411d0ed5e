"""How durable values are stored: a registered message as its wire bytes, anything else as tagged JSON.

Backends write arbitrary Python values made of ``None``/bool/int/float/str,
lists, tuples, dicts with string keys, bytes and registered wire messages
(:mod:`smr.wire`).  Most writes are log entries -- registered messages -- and
those are stored as a zero byte and their msgpack wire encoding (no JSON text
starts with a zero byte): 2 us to encode and 6 to decode a Raft entry here,
against 15 and 31 through JSON.  Everything else (terms, votes, snapshots)
is JSON, where plain JSON would turn tuples into lists and attrs records
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


#: The first byte of a value stored as a wire message.
_WIRE = b"\x00"


def dumps(value: Any) -> bytes:
    """Encode a durable value: a registered message as its wire bytes, anything else as compact ASCII JSON."""
    if wire.is_message(value):
        return _WIRE + wire.encode(value)  # LocalProtocolError if a field cannot be encoded
    return _JSON.encode(to_storable(value)).encode("ascii")


def loads(data: bytes) -> Any:
    """Decode bytes made by :func:`dumps`, or raise CorruptValue."""
    if data[:1] == _WIRE:
        try:
            return wire.decode(data[1:])
        except RemoteProtocolError as exc:
            raise CorruptValue(f"stored message does not decode: {exc}") from None
        except RecursionError:
            raise CorruptValue("stored message is nested too deeply") from None
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also an int of over 4,300 digits
        raise CorruptValue(f"stored value is not JSON: {exc}") from None
    return from_storable(obj)
