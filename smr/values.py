"""The values a command carries: the JSON data model plus bytes, the same in every runtime.

A command's arguments and result are *values*: ``None``, ``bool``, ``int``
(64-bit), finite ``float``, ``str``, ``bytes``, lists of values and dicts with
string keys.  :func:`canonical` checks a value at the call site and returns
the form every runtime carries unchanged -- a tuple becomes a list and a
``bytearray`` becomes ``bytes``, exactly as they would after a trip over
the wire -- so the simulator, the in-process cluster and the TCP cluster
hand a state machine the same objects.  Anything else is a ``TypeError``
that names the offending part (``argument 2 of deposit: [1]: a set ...``).

:func:`to_json` / :func:`from_json` give every value (and, with
``state=True``, the richer state a :class:`~smr.machine.StateMachine`
snapshot holds: tuples and dicts with non-string keys) a JSON form that
round-trips exactly and keeps dict order.  Tags keep the types JSON lacks:
``{"$bytes": base64}`` (and ``$bytearray`` in state), ``{"$tuple": [...]}``,
``{"$map": [[k, v], ...]}`` and ``{"$dict": {...}}`` for a dict whose own
keys start with ``$``.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import TYPE_CHECKING, Any, Callable, Union

from .errors import SMRError

#: A value a command argument or result may hold (see the module docstring).
if TYPE_CHECKING:
    Value = Union[None, bool, int, float, str, bytes, list["Value"], dict[str, "Value"]]
else:  # at run time a Value field is checked by canonical(), not by its annotation: codecs see Any
    Value = Any

#: The widest integers every runtime carries (signed and unsigned 64-bit).
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 64 - 1
#: How deeply lists and dicts may nest.
MAX_DEPTH = 64

_BYTES, _BYTEARRAY, _TUPLE, _MAP, _DICT = "$bytes", "$bytearray", "$tuple", "$map", "$dict"
#: The largest int JSON text can hold for Python to read back (its int/str conversion limit).
_JSON_INT_LIMIT = 10 ** 4000
_SCALARS = (type(None), bool)


def _text(value: str, where: str) -> str:
    """``value`` if it is valid Unicode text (UTF-8 encodable: no lone surrogates), else TypeError."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _refuse(where, "a str with a lone surrogate is not text") from None
    return value


class CorruptValue(SMRError):
    """Encoded bytes or JSON do not decode to a value: damaged, or written by other code."""


def _repr(value: Any) -> str:
    """``repr(value)`` for a message, short, and never raising."""
    try:
        text = repr(value)
    except BaseException:
        return f"<{type(value).__name__} with a failing repr>"
    return text if len(text) <= 60 else text[:57] + "..."


def _refuse(where: str, what: str) -> TypeError:
    return TypeError(f"{where}: {what}; a command carries None, bool, int, float, str, bytes, "
                     f"lists and dicts with str keys")


def _inner(where: str, index: object, depth: int) -> str:
    """The path of an element, for error messages (deep paths end in ``[...]``)."""
    if depth < 6:
        return f"{where}[{index}]"
    return where if where.endswith("[...]") else f"{where}[...]"


def canonical(value: Any, where: str = "value", depth: int = 0) -> Value:
    """Return ``value`` as every runtime carries it, or raise TypeError naming what cannot be carried."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is str:
        return _text(value, where)
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise _refuse(where, f"the int {value if abs(value) < 10 ** 30 else '(huge)'} "
                                 f"is outside the 64-bit range")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _refuse(where, f"the float {value!r} is not finite")
        return value
    if kind is bytes:
        return value
    if depth >= MAX_DEPTH:
        raise _refuse(where, f"lists and dicts nest deeper than {MAX_DEPTH}")
    if kind is list or kind is tuple:
        return [canonical(v, _inner(where, i, depth), depth + 1) for i, v in enumerate(value)]
    if kind is dict:
        out: dict[str, Value] = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _refuse(where, f"the dict key {_repr(k)} is not a str")
            _text(k, where)
            out[k] = canonical(v, _inner(where, _repr(k), depth), depth + 1)
        return out
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    if isinstance(value, (list, tuple)):  # a subclass (a namedtuple, a UserList-like list): its items
        return canonical(list(value), where, depth)
    if isinstance(value, dict):  # defaultdict, OrderedDict, Counter: a plain dict of the same items
        return canonical(dict(value), where, depth)
    # A subclass of int, float or str (an IntEnum, a str Enum): carry the plain value it holds,
    # read through the base type so that an overridden __str__ or __int__ plays no part.
    if isinstance(value, int):
        return canonical(int.__int__(value), where, depth)
    if isinstance(value, float):
        return canonical(float.__float__(value), where, depth)
    if isinstance(value, str):
        return _text(str.__str__(value), where)
    raise _refuse(where, f"a {kind.__name__} cannot be carried")


def canonical_args(args: Any) -> tuple[Value, ...]:
    """Return a command's argument tuple in canonical form (TypeError names a bad argument)."""
    if type(args) is not tuple:
        if isinstance(args, (str, bytes)) or not hasattr(args, "__iter__"):
            raise TypeError(f"command arguments must be a tuple, got {type(args).__name__}")
        args = tuple(args)
    for a in args:
        kind = type(a)
        if not (kind in _SCALARS or (kind is str and a.isascii()) or (kind is int and INT_MIN <= a <= INT_MAX)):
            return tuple(canonical(a, f"argument {i + 1}") for i, a in enumerate(args))
    return args  # the common case: scalars only, nothing to copy


# ------------------------------------------------------------------ JSON form
def to_json(value: Any, *, state: bool = False, other: Callable[[Any], Any] | None = None,
            where: str = "value") -> Any:
    """Return the JSON form of a value (``state``: also tuples and non-str keys; ``other``: anything else)."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        if not -_JSON_INT_LIMIT < value < _JSON_INT_LIMIT:
            raise _refuse(where, "an int of 4,000 digits or more cannot be stored")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _refuse(where, f"the float {value!r} is not finite")
        return value
    if kind is bytes or (kind is bytearray and not state):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if kind is bytearray:  # state keeps its type: a restored replica must hold what a live one holds
        return {_BYTEARRAY: base64.b64encode(value).decode("ascii")}
    if kind is list or (kind is tuple and not state):
        return [to_json(v, state=state, other=other, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is tuple:
        return {_TUPLE: [to_json(v, state=state, other=other, where=f"{where}[{i}]")
                         for i, v in enumerate(value)]}
    if kind is dict:
        if all(type(k) is str for k in value):
            body = {k: to_json(v, state=state, other=other, where=f"{where}[{_repr(k)}]") for k, v in value.items()}
            return {_DICT: body} if any(k.startswith("$") for k in value) else body
        if not state:
            raise _refuse(where, f"the dict has non-str keys such as "
                                 f"{_repr(next(k for k in value if type(k) is not str))}")
        return {_MAP: [[to_json(k, state=True, other=other, where=f"{where} key"),
                        to_json(v, state=True, other=other, where=f"{where}[{_repr(k)}]")] for k, v in value.items()]}
    if other is not None:
        return other(value)
    raise _refuse(where, f"a {kind.__name__} cannot be carried")


def _key(obj: Any) -> Any:
    """A decoded map key made hashable (a list from a tuple key's JSON stays a tuple)."""
    return tuple(_key(k) for k in obj) if isinstance(obj, list) else obj


def from_json(obj: Any, *, other: Callable[[str, Any], Any] | None = None) -> Any:
    """Rebuild a value from :func:`to_json` output, or raise CorruptValue."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [from_json(v, other=other) for v in obj]
    if not isinstance(obj, dict):
        raise CorruptValue(f"unexpected JSON of type {type(obj).__name__}")
    if len(obj) == 1:
        (tag, body), = obj.items()
        if tag == _BYTES or tag == _BYTEARRAY:
            try:
                data = base64.b64decode(body, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise CorruptValue("tagged bytes are not base64") from None
            return data if tag == _BYTES else bytearray(data)
        if tag == _TUPLE:
            if not isinstance(body, list):
                raise CorruptValue("a $tuple must hold a list")
            return tuple(from_json(v, other=other) for v in body)
        if tag == _MAP:
            if not isinstance(body, list) or not all(isinstance(p, list) and len(p) == 2 for p in body):
                raise CorruptValue("a $map must hold [key, value] pairs")
            try:
                return {_key(from_json(k, other=other)): from_json(v, other=other) for k, v in body}
            except TypeError as exc:  # an unhashable key
                raise CorruptValue(f"a $map key is not hashable: {exc}") from None
        if tag == _DICT:
            if not isinstance(body, dict):
                raise CorruptValue("a $dict must hold a mapping")
            return {k: from_json(v, other=other) for k, v in body.items()}
        if other is not None and tag.startswith("$"):
            return other(tag, body)
    if any(k.startswith("$") for k in obj):
        raise CorruptValue(f"malformed tagged value with keys {sorted(obj)[:5]}")
    return {k: from_json(v, other=other) for k, v in obj.items()}
