"""The ``smr check`` subcommand: judge a history file and exit 0/1/2.

Exit codes: 0 linearizable, 1 not linearizable, 2 unknown (budget spent) or
bad input (a one-line error on stderr).  ``--json`` prints exactly one JSON
document on stdout instead of the human report.
"""

from __future__ import annotations

import argparse
import json
import sys

from smr.arguments import positive_float, positive_int
from smr.errors import ConfigError, LocalProtocolError

from ._budget import Budget
from ._check import Explanation, explain
from .formats import FORMATS, infer_format, read_history
from .models import MODELS, Model, make_model
from .verdict import Status

#: The exit code for each verdict.
EXIT_CODES = {Status.LINEARIZABLE: 0, Status.NOT_LINEARIZABLE: 1, Status.UNKNOWN: 2}
#: The exit code for unreadable or malformed input.
EXIT_BAD_INPUT = 2


def register_check(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``check HISTORY_FILE --model ...`` subcommand; its ``func(args)`` returns the exit code."""
    parser = subparsers.add_parser(
        "check", help="check a client history for linearizability",
        description="Check a client history for linearizability. Exit status: 0 linearizable, "
                    "1 not linearizable, 2 unknown (budget exhausted) or bad input.")
    parser.add_argument("history_file", metavar="HISTORY_FILE", help="the history to check")
    parser.add_argument("--model", required=True, choices=sorted(MODELS),
                        help="the sequential specification to check against")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="history format (default: from the file name: .edn -> edn, "
                             ".log -> jepsen-log, otherwise native JSON lines)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="give up with 'unknown' after this many model steps")
    parser.add_argument("--timeout", type=positive_float, default=None,
                        help="give up with 'unknown' after this many wall seconds")
    parser.add_argument("--html", metavar="FILE", default=None,
                        help="also write the verdict as an interactive page: the history per process, "
                             "the linearization found, or the longest prefix and the operation that "
                             "cannot be placed (opens with no network)")
    parser.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Check ``args.history_file`` and print the verdict; return 0, 1 or 2 as documented."""
    fmt = args.format or infer_format(args.history_file)
    try:
        history = read_history(args.history_file, fmt)
        model = make_model(args.model)
        explanation = explain(history, model, Budget(args.max_steps, args.timeout))
    except (ConfigError, LocalProtocolError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"smr check: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    verdict = explanation.verdict
    if args.json:
        document = verdict.to_json()
        document["history"] = {"file": str(args.history_file), "format": fmt}
        print(json.dumps(document, sort_keys=True))
    else:
        print(verdict.describe())
    if args.html:
        _write_page(args.html, explanation, model, str(args.history_file))
    return EXIT_CODES[verdict.status]


def _write_page(path: str, explanation: Explanation, model: Model, source: str) -> None:
    """Write the verdict's HTML page; a page that cannot be written is one line on stderr (the verdict stands)."""
    from .page import render_check_page

    try:
        text = render_check_page(explanation, model, source)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        print(f"smr check: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
