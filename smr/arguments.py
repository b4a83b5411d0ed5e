"""How every ``smr`` command reads its command line: one parser class, one help format, shared argument types.

:class:`ArgumentParser` is the parser of ``smr`` and, through
``add_subparsers``, of every command and subcommand under it, wherever it is
registered: each one's ``--help`` shows the defaults (:class:`HelpFormatter`),
and a bad argument is one line on stderr (``smr sim: error: ...``) and exit
status 2.  The argument types (:func:`positive_int`, :func:`backend_name`,
:func:`listed`, ...) refuse bad values while the command line is parsed, so a
command never starts on them.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import textwrap
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

#: The exit status of a command given bad arguments or bad input files.
EXIT_BAD_INPUT = 2

_NO_DEFAULT_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
                       argparse._HelpAction, argparse._VersionAction, argparse._CountAction,
                       argparse._SubParsersAction)


class HelpFormatter(argparse.HelpFormatter):
    """Help that ends every option's line with its default, and keeps a description's paragraphs.

    A default is left out where it says nothing (None, False, an empty list, a
    flag) or where the help text already explains it (it mentions "default").
    A description is re-wrapped paragraph by paragraph; lines that start with
    a space (examples, formulas) are kept as written.
    """

    @staticmethod
    def shows_default(action: argparse.Action) -> bool:
        """True if ``action``'s help line should end with ``(default: ...)``."""
        if isinstance(action, _NO_DEFAULT_ACTIONS) or action.default in (None, False, [], (), argparse.SUPPRESS):
            return False
        if action.help is not None and "default" in action.help.lower():
            return False
        return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        return f"{text} (default: %(default)s)" if self.shows_default(action) else text

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self.shows_default(action):  # argparse prints no help line at all otherwise
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = textwrap.dedent(text).strip("\n").split("\n\n")
        out = []
        for paragraph in paragraphs:
            lines = paragraph.splitlines()
            if any(line.startswith(" ") for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                         subsequent_indent=indent))
        return "\n\n".join(out)


class ArgumentParser(argparse.ArgumentParser):
    """The parser of every ``smr`` command: defaults in ``--help``, one-line errors with exit status 2.

    Subcommands made with ``add_subparsers`` are of this class too, and each
    records its own name (``smr kv put``) as ``args.command_prog`` for error messages.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.set_defaults(command_prog=self.prog)

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE`` on one line and exit with status 2."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: object) -> int:
    """Print ``PROG: error: MESSAGE`` on one line of stderr; return the bad-input exit status."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


# ------------------------------------------------------------------ argument types
def _number(text: str, kind: Callable[[str], Any], what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def int_at_least(low: int) -> Callable[[str], int]:
    """An argument type: a whole number no smaller than ``low``."""
    def parse(text: str) -> int:
        value: int = _number(text, int, "a whole number")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


#: A whole number >= 1 (counts of nodes, seeds, trials ...).
positive_int = int_at_least(1)
#: A whole number >= 0 (clients, kills ...).
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argument type: a finite number greater than 0 (durations, timeouts)."""
    value: float = _number(text, float, "a number")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """An argument type: a finite number no smaller than 0."""
    value: float = _number(text, float, "a number")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text!r}")
    return value


def backend_name(text: str) -> str:
    """An argument type: the name of a backend ``smr backends`` lists."""
    from .errors import LocalProtocolError
    from .registry import get_backend

    try:
        get_backend(text)
    except LocalProtocolError as exc:  # unknown, or a plugin that fails to load
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def one_of(choices: Iterable[str]) -> Callable[[str], str]:
    """An argument type: one of ``choices`` (for items of a :func:`listed` option; else use ``choices=``)."""
    known = tuple(choices)

    def parse(text: str) -> str:
        if text not in known:
            raise argparse.ArgumentTypeError(f"unknown {text!r}; choose from {', '.join(known)}")
        return text
    return parse


def listed(item: Callable[[str], Any]) -> Callable[[str], str]:
    """An argument type: a comma-separated list whose every item ``item`` accepts, kept as the text given."""
    def parse(text: str) -> str:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list with no empty items, got {text!r}")
        for part in parts:
            item(part)
        return ",".join(parts)
    return parse


def json_object(text: str) -> dict[str, Any]:
    """An argument type: a JSON object, e.g. ``'{"max_batch": 256}'``."""
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return found
