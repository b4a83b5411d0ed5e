"""One-line text renderings of messages for traces (``AppendEntries term=3 ...``)."""

from __future__ import annotations

from typing import Any

import attrs

_FIELDS: dict[type, tuple[str, ...]] = {}


def _value(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        if len(v) > 3:
            return f"[{len(v)} items]"
        return "[" + ",".join(_value(x) for x in v) + "]"
    if attrs.has(type(v)):
        return "{" + describe(v) + "}"
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    if isinstance(v, str):
        return v if v.isidentifier() and len(v) <= 24 else repr(v[:24])
    return repr(v)


def describe(msg: Any) -> str:
    """Return ``Name field=value ...`` for an attrs message (long lists shown as counts)."""
    custom = getattr(msg, "trace", None)
    if callable(custom):
        return str(custom())
    cls = type(msg)
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(a.name for a in attrs.fields(cls)) if attrs.has(cls) else ()
        _FIELDS[cls] = names
    if not names:
        return cls.__name__ if attrs.has(cls) else repr(msg)
    return cls.__name__ + " " + " ".join(f"{n}={_value(getattr(msg, n))}" for n in names)
