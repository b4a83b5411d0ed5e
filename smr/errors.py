"""Errors split by blame, as h11 does it.

A :class:`RemoteProtocolError` means a peer sent us something that breaks the
protocol (malformed, from an unknown node, impossible in our state): the input
is dropped and counted, and the replica keeps serving.  A
:class:`LocalProtocolError` means the caller misused an API: it is raised with
a message naming what was wrong.
"""

from __future__ import annotations


class SMRError(Exception):
    """Base class of every error this project raises on purpose."""


class LocalProtocolError(SMRError):
    """The caller misused an API (bad argument, wrong order of calls)."""


class RemoteProtocolError(SMRError):
    """A peer sent input that violates the protocol; drop it and count it."""


class ConfigError(SMRError):
    """A configuration or scenario file is malformed.

    The message always names the file, and where known the line and field.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.line = line
        self.field = field
        where = []
        if file is not None:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
