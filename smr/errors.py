"""Errors split by blame, as h11 does it.

A :class:`RemoteProtocolError` means a peer sent us something that breaks the
protocol (malformed, from an unknown node, impossible in our state): the input
is dropped and counted, and the replica keeps serving.  A
:class:`LocalProtocolError` means the caller misused an API: it is raised with
a message naming what was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence


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

    @classmethod
    def listing(cls, file: str, problems: Sequence[tuple[int | None, str | None, str]]) -> ConfigError:
        """One error for several (line, field, message) problems of ``file``, one per line as
        ``file:line: field: message``; its own line and field are the first problem's."""
        lines = [":".join([file, *([str(line)] if line is not None else [])]) + ": "
                 + (f"{field}: " if field else "") + message for line, field, message in problems]
        error = cls(f"{len(problems)} problems:\n  " + "\n  ".join(lines), file=file)
        error.line, error.field = problems[0][0], problems[0][1]
        return error
