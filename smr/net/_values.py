"""How durable values are stored: a tagged JSON encoding that round-trips every backend's writes.

Backends write arbitrary Python values made of ``None``/bool/int/float/str,
lists, tuples, dicts with string keys, bytes and registered wire messages
(:mod:`smr.wire`).  Plain JSON would turn tuples into lists and attrs records
into nothing, so four tags keep the types:

* ``{"$msg": {"t": ..., "b": ...}}`` -- a registered attrs message (``wire.to_obj``);
* ``{"$tuple": [...]}`` -- a tuple;
* ``{"$bytes": "<base64>"}`` -- bytes;
* ``{"$dict": {...}}`` -- a dict whose own keys start with ``$`` (so it cannot
  be mistaken for a tag).

Every other value passes through as JSON.  The decoder accepts exactly what
the encoder makes; anything else is :class:`CorruptValue`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import attrs

from smr import wire
from smr.errors import LocalProtocolError, RemoteProtocolError, SMRError

_MSG, _TUPLE, _BYTES, _DICT = "$msg", "$tuple", "$bytes", "$dict"
_TAGS = frozenset((_MSG, _TUPLE, _BYTES, _DICT))
# ASCII with escapes: a lone surrogate a client smuggled into a string must not crash the node.
# Made once: ``json.dumps`` with options builds a new encoder per call.
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class CorruptValue(SMRError):
    """A stored value cannot be decoded: the storage was damaged or written by other code."""


def to_storable(value: Any) -> Any:
    """Return the tagged JSON form of a durable value; LocalProtocolError if it has none."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LocalProtocolError(f"cannot store the non-finite float {value!r}")
        return value
    if isinstance(value, list):
        return [to_storable(v) for v in value]
    if isinstance(value, tuple):
        return {_TUPLE: [to_storable(v) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise LocalProtocolError(f"cannot store a dict with non-string keys: {sorted(map(repr, value))[:3]}")
        body = {k: to_storable(v) for k, v in value.items()}
        return {_DICT: body} if any(k.startswith("$") for k in value) else body
    if isinstance(value, (bytes, bytearray)):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if attrs.has(type(value)):
        return {_MSG: wire.to_obj(value)}  # LocalProtocolError if not registered
    raise LocalProtocolError(f"cannot store a value of type {type(value).__name__}")


def from_storable(obj: Any) -> Any:
    """Rebuild a durable value from :func:`to_storable` output, or raise CorruptValue."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [from_storable(v) for v in obj]
    if not isinstance(obj, dict):
        raise CorruptValue(f"unexpected stored JSON of type {type(obj).__name__}")
    if len(obj) == 1:
        (tag, body), = obj.items()
        if tag == _MSG:
            try:
                return wire.from_obj(body)
            except RemoteProtocolError as exc:
                raise CorruptValue(f"stored message does not decode: {exc}") from None
        if tag == _TUPLE:
            if not isinstance(body, list):
                raise CorruptValue("a stored tuple must hold a list")
            return tuple(from_storable(v) for v in body)
        if tag == _BYTES:
            try:
                return base64.b64decode(body, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise CorruptValue("stored bytes are not base64") from None
        if tag == _DICT:
            if not isinstance(body, dict):
                raise CorruptValue("a stored $dict must hold a mapping")
            return {k: from_storable(v) for k, v in body.items()}
    if any(k in _TAGS for k in obj):
        raise CorruptValue(f"malformed tagged value with keys {sorted(obj)}")
    return {k: from_storable(v) for k, v in obj.items()}


def dumps(value: Any) -> bytes:
    """Encode a durable value to compact UTF-8 JSON bytes."""
    return _JSON.encode(to_storable(value)).encode("ascii")


def loads(data: bytes) -> Any:
    """Decode bytes made by :func:`dumps`, or raise CorruptValue."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptValue(f"stored value is not JSON: {exc}") from None
    return from_storable(obj)
