"""Command-line entry points: ``smr experiment election`` and ``smr bench messages``.

:func:`register` adds the ``experiment`` command (with its ``election``
sub-command) to the top-level ``smr`` parser; :func:`register_bench` adds
``messages`` to the ``smr bench`` group.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..arguments import positive_float, positive_int
from ..errors import LocalProtocolError
from ..sim.latency import Latency
from ..table import render_table
from .election import DEFAULT_RANGES, ELECTION_BACKENDS, PAPER_LATENCY, ElectionSetup, parse_range
from .messages import MESSAGE_BACKENDS, MessageCount, count_messages
from ..output import print_json

_TARGET_RATIO = 1.05



def _backends(text: str | None, default: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(default)
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise LocalProtocolError(f"--backend must be one of {', '.join(allowed)}; got {text!r}")
    return names


def parse_latency(text: str) -> Latency:
    """Parse a one-way delay: ``"7"`` (constant ms) or ``"6-8"`` (uniform between the bounds)."""
    try:
        if "-" in text:
            low, high = (float(p) for p in text.split("-", 1))
            return Latency("uniform", low=low, high=high)
        return Latency("constant", mean=float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"latency looks like 7 or 6-8 (ms), got {text!r}: {exc}") from None


def _ranges(text: str) -> list[tuple[int, int]]:
    try:
        return [parse_range(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _option(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"an option looks like name=value, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


# ------------------------------------------------------------ smr experiment election
def cmd_election(args: argparse.Namespace) -> int:
    """Run the Figure 16 election experiment and print its figures (files in a new run directory).

    Exit 1 if a trial violated a safety invariant; 128 + the signal's number
    when stopped by SIGINT or SIGTERM (the finished trials are reported first).
    """
    from ..campaign import exit_code_for, stop_on_signals, workers_from
    from ..results import open_run
    from .election_campaign import run_campaign
    from .election_report import render_summaries, summarize, write_raw

    backends = _backends(args.backend, ("raft", "multipaxos"), ELECTION_BACKENDS)
    ranges = args.ranges if args.ranges is not None else list(DEFAULT_RANGES)
    workers = workers_from(args)
    setups = [ElectionSetup(backend, low, high, latency=args.latency, cap_ms=args.cap,
                            options=tuple(args.option), check_invariants=not args.no_check)
              for backend in backends for low, high in ranges]
    first = setups[0]
    setup_doc = {"nodes": first.nodes, "latency": first.latency.describe(), "tick_ms": 1.0,
                 "heartbeat": "half the minimum election timeout", "clock_skew": first.clock_skew,
                 "cap_ms": first.cap_ms, "margin_ms": first.margin_ms, "options": dict(first.options),
                 "check_invariants": first.check_invariants, "base_seed": args.seed,
                 "trials_per_range": args.trials}
    run = None if args.no_files else open_run(
        args, "election", {**setup_doc, "backends": backends, "ranges": [f"{lo}-{hi}" for lo, hi in ranges],
                           **workers.to_json()}, root=args.out)
    started = time.perf_counter()
    with stop_on_signals() as stop, workers.executor(stop) as executor:
        trials = run_campaign(setups, args.trials, base_seed=args.seed, jobs=args.jobs,
                              progress=not args.quiet, executor=executor, stop=stop)
    wall = time.perf_counter() - started
    summaries = summarize(trials)
    files: list[str] = []
    if run is not None:
        from .election_plot import plot_cdf

        for backend in backends:
            mine = [t for t in trials if t.backend == backend]
            files += [str(p) for p in write_raw(mine, {**setup_doc, "backend": backend},
                                                run.path / f"election-{backend}")]
        files += [str(p) for p in plot_cdf(
            trials, f"time without a leader after a leader crash: {', '.join(backends)}\n"
                    f"{first.nodes} servers, one-way delay {first.latency.describe()}, "
                    f"{args.trials} trials per range and backend, seed {args.seed}", run.path / "election")]
    violations = sum(s.violations for s in summaries)
    if args.json:
        print_json({"experiment": "election", "setup": setup_doc, "wall_s": round(wall, 2),
                     "ranges": [s.to_json() for s in summaries], "files": files})
    else:
        print(f"leader election after a leader crash (Figure 16 of the extended Raft paper): "
              f"{first.nodes} servers, one-way delay {first.latency.describe()}, 1 ms ticks, "
              f"heartbeat = min timeout / 2, {args.trials} trials per range, seed {args.seed}")
        for backend in backends:
            print(f"\n{backend}: time without a leader (ms; statistics over converged trials)")
            print(render_summaries([s for s in summaries if s.backend == backend], first.cap_ms))
        if files:
            print(f"\nwrote {', '.join(files)}")
        print(f"wall time {wall:.1f} s ({len(trials)} trials, {workers.describe()})")
    code = 0
    if violations:
        print(f"{violations} trial(s) violated a safety invariant; see the raw data", file=sys.stderr)
        code = 1
    if stop:
        code = exit_code_for(stop.reason)
        print(f"smr: stopped by {stop.reason} after {len(trials)} of {len(setups) * args.trials} trials"
              f"{f'; the finished ones are in {run.path}' if run is not None else ''}", file=sys.stderr)
    if run is not None:
        run.finish("stopped" if stop else "complete", code, files)
    return code


def _add_election(sub: argparse._SubParsersAction) -> None:
    from ..campaign import add_worker_arguments
    from ..results import default_root

    p = sub.add_parser(
        "election", help="time to replace a crashed leader (Figure 16 of the extended Raft paper)",
        description="Crash the leader of a 5-server cluster just after a heartbeat, with two "
                    "followers one entry behind, and time how long the survivors go without a leader, "
                    "for each election timeout range.")
    p.add_argument("--backend", default=None,
                   help=f"one or more of {', '.join(ELECTION_BACKENDS)}, comma-separated "
                        "(default: raft,multipaxos)")
    p.add_argument("--trials", type=positive_int, default=1000, help="trials per range")
    p.add_argument("--ranges", type=_ranges, default=None,
                   help="comma-separated election timeout ranges in ms, e.g. 150-150,150-300 "
                        "(default: the paper's ten)")
    p.add_argument("--seed", type=int, default=1, help="base seed; each trial derives its own")
    add_worker_arguments(p)
    p.add_argument("--cap", type=positive_float, default=60_000.0,
                   help="a trial with no leader this many ms after the crash counts as not converged")
    p.add_argument("--latency", type=parse_latency, default=PAPER_LATENCY,
                   help="one-way delay in ms: constant (7) or uniform (6-8, the default)")
    p.add_argument("--option", type=_option, action="append", default=[], metavar="NAME=VALUE",
                   help="override a backend option (repeatable), e.g. backoff_ticks_max=10")
    p.add_argument("--no-check", action="store_true", help="skip the per-step safety checks (faster)")
    p.add_argument("--out", default=default_root(), metavar="DIR",
                   help="results root: each run writes a new directory in it with the raw data and the "
                        "CDF plots (default smr-results, or $SMR_RESULTS)")
    p.add_argument("--no-files", action="store_true", help="write no files")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_election)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``smr experiment`` (sub-command ``election``) to the top-level parser."""
    p = subparsers.add_parser("experiment", help="reproduce experiments from the papers",
                              description="Experiments that reproduce published figures.")
    sub = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    _add_election(sub)


# ------------------------------------------------------------ smr bench messages
def explain(count: MessageCount) -> str:
    """One sentence: the ratio against the target and, if it misses, which messages cause it."""
    head = f"{count.backend}: {count.per_command:.3f} messages/command, optimum {count.optimum:.3f} " \
           f"(b = {count.batch:.2f}), ratio {count.ratio:.3f}"
    if count.ratio <= _TARGET_RATIO:
        return f"{head}: within the {_TARGET_RATIO} target"
    excess = count.per_command - count.optimum
    names = {"heartbeats": "heartbeats",
             "heartbeat_replies": "acknowledgements beyond one per command-carrying message "
                                  "(replies to heartbeats)",
             "resends_and_acks": f"re-sent command-carrying messages and their acks "
                                 f"({count.resends} re-sends after {count.rejections} rejections)",
             "other": "other messages"}
    parts = [f"{names[k]} {v:.3f}/command" for k, v in count.overhead.items() if abs(v) >= 0.005]
    return f"{head}: misses the {_TARGET_RATIO} target by {excess:.3f} messages/command: {'; '.join(parts)}"


def render_counts(counts: list[MessageCount]) -> str:
    """The side-by-side table of message counts, one column per backend."""
    types = sorted({t for c in counts for t in c.per_type})
    rows: list[tuple[Any, ...]] = [
        ("committed commands", *(c.commands for c in counts)),
        ("peer messages", *(c.peer_messages for c in counts)),
        ("messages per command", *(round(c.per_command, 3) for c in counts)),
        ("batch size b", *(round(c.batch, 3) for c in counts)),
        ("optimum 2(N-1)/b", *(round(c.optimum, 3) for c in counts)),
        ("ratio (target <= 1.05)", *(round(c.ratio, 3) for c in counts)),
        ("overhead: heartbeats /cmd", *(round(c.overhead["heartbeats"], 3) for c in counts)),
        ("overhead: extra acks /cmd", *(round(c.overhead["heartbeat_replies"], 3) for c in counts)),
        ("overhead: re-sends + acks /cmd", *(round(c.overhead["resends_and_acks"], 3) for c in counts)),
        ("overhead: other /cmd", *(round(c.overhead["other"], 3) for c in counts)),
        ("rejected appends", *(c.rejections for c in counts)),
        *((f"sent {t}", *(c.per_type.get(t, 0) for c in counts)) for t in types),
    ]
    return render_table(("", *(c.backend for c in counts)), rows)


def cmd_messages(args: argparse.Namespace) -> int:
    """Count steady-state peer messages per committed command and compare them with 2(N-1)/b."""
    backends = _backends(args.backend, MESSAGE_BACKENDS, MESSAGE_BACKENDS + ("raft-pv-cq",))
    started = time.perf_counter()
    counts = [count_messages(b, clients=args.clients, warmup_ms=args.warmup, window_ms=args.window,
                             seed=args.seed, latency=args.latency) for b in backends]
    wall = time.perf_counter() - started
    if args.json:
        print_json({"benchmark": "messages", "target_ratio": _TARGET_RATIO, "wall_s": round(wall, 2),
                     "results": [c.to_json() for c in counts]})
        return 0
    first = counts[0]
    print(f"peer messages per committed command: {first.nodes} nodes, {args.clients} closed-loop KV "
          f"clients, one-way delay {first.latency}, {args.warmup:g} ms warm-up, "
          f"{args.window:g} ms measured, seed {args.seed}")
    print(render_counts(counts))
    for c in counts:
        print(explain(c))
    print(f"wall time {wall:.1f} s")
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    """Add ``smr bench messages`` to the bench group."""
    p = bench_subparsers.add_parser(
        "messages", help="peer messages per committed command vs the 2(N-1)/b optimum",
        description="Count steady-state peer messages per committed command on a 5-node cluster "
                    "and compare them with the optimum 2(N-1)/b for the observed batch size b.")
    p.add_argument("--backend", default=None,
                   help="raft, multipaxos or raft-pv-cq, comma-separated (default: raft and multipaxos "
                        "side by side)")
    p.add_argument("--clients", type=positive_int, default=10, help="closed-loop clients")
    p.add_argument("--warmup", type=positive_float, default=1000.0, help="simulated ms before counting starts")
    p.add_argument("--window", type=positive_float, default=3000.0, help="simulated ms counted")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--latency", type=parse_latency, default=None,
                   help="one-way delay in ms, constant (1) or uniform (0.5-1.5); default: the "
                        "simulator's default network")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_messages)
