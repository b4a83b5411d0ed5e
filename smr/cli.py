"""The ``smr`` command line: simulate, compare, check, benchmark, tell the essay's story."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import attrs

from .arguments import (ArgumentParser, backend_name, fail, listed, non_negative_int, positive_float,
                        positive_int)
from .errors import ConfigError, LocalProtocolError
from .output import print_json


# ------------------------------------------------------------------- smr sim
#: The backend smr sim runs when neither --backend nor the scenario file names one.
SIM_BACKEND = "raft"


def _sim_config(args: argparse.Namespace) -> Any:
    from .sim import ClientConfig, SimConfig, load_scenario

    if args.scenario and args.config:
        raise LocalProtocolError("give a scenario file or --config, not both")
    if args.config:
        from .sim import parse_scenario

        config = parse_scenario(args.config, "--config")
    elif args.scenario:
        config = load_scenario(args.scenario, backend=args.backend)
    else:
        config = SimConfig(backend=args.backend, nodes=args.nodes, duration_ms=args.duration,
                           swarm=args.swarm,
                           clients=ClientConfig(count=args.clients, workload=args.workload))
    overrides: dict[str, Any] = {}
    if (args.scenario or args.config) and args.backend_given:
        overrides["backend"] = args.backend
    if args.option:
        options = dict(config.backend_options)
        for item in args.option:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise LocalProtocolError(f"--option needs KEY=VALUE, got {item!r}")
            from .yamlfiles import load_yaml_value

            options[key] = load_yaml_value(raw, f"--option {key}")
        overrides["backend_options"] = options
    if args.no_trace and not args.trace_out:
        overrides["trace"] = False
    return attrs.evolve(config, **overrides) if overrides else config


def _fixed(value: float | None) -> str:
    """A figure with 3 decimals, or "-" when there is none (no operation completed)."""
    return "-" if value is None else f"{value:.3f}"


def cmd_sim(args: argparse.Namespace) -> int:
    """Run one simulation and print its summary (trace and history to files on request)."""
    from .history import dump_history
    from .summary import summarize

    args.backend_given = args.backend is not None
    args.backend = args.backend or SIM_BACKEND
    config = _sim_config(args)
    from .sim import simulate

    result = simulate(config, args.seed)
    if args.trace_out:
        text = "\n".join(result.trace) + "\n"
        if args.trace_out == "-":
            sys.stdout.write(text)
        else:
            with open(args.trace_out, "w", encoding="utf-8") as f:
                f.write(text)
    if args.history_out:
        with open(args.history_out, "w", encoding="utf-8") as f:
            dump_history(result.history, f)
    summary = summarize(result, tuple(f.at for f in config.faults))
    if args.json:
        print_json({"seed": args.seed, "replay": result.replay, "summary": summary.to_json(),
                     "counters": result.counters.to_json(), "swarm": result.swarm})
    elif args.trace_out != "-":
        print(f"seed {args.seed}  backend {config.backend}  nodes {config.nodes}  "
              f"simulated {config.duration_ms:g} ms")
        if result.swarm:
            print(result.swarm)
        print(f"ops ok={summary.ok} fail={summary.failed} unknown={summary.unknown}  "
              f"commits={len(result.committed)}  leader changes={summary.leader_changes}  "
              f"deliveries={result.counters.deliveries}")
        print(f"latency ms p50={_fixed(summary.latency_p50)} p99={_fixed(summary.latency_p99)}  "
              f"messages/command={_fixed(summary.messages_per_command)}")
    if not args.json:  # on stderr when stdout carries the trace
        print(f"replay: {result.replay}", file=sys.stderr if args.trace_out == "-" else sys.stdout)
    if result.violations:
        for v in result.violations:
            print(f"VIOLATION: {v}", file=sys.stderr)
        print(f"seed {args.seed}; replay with: {result.replay}", file=sys.stderr)
        return 1
    return 0


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run one deterministic simulation",
                       description="Run one seeded simulation and print its seed, backend, operation "
                                   "counts, latency and messages per command, then the command that replays "
                                   "it; the same seed gives the same trace.  Exit 1 if a safety invariant "
                                   "was violated.")
    p.add_argument("scenario", nargs="?",
                   help="a scenario YAML file or a built-in scenario's name, e.g. kv-leader-crash (default: "
                        "built from the flags)")
    p.add_argument("--backend", type=backend_name, default=None,
                   help=f"backend name (see `smr backends`); default: the scenario file's, else {SIM_BACKEND}")
    p.add_argument("--nodes", type=positive_int, default=5, help="replicas")
    p.add_argument("--duration", type=positive_float, default=2000.0, help="simulated milliseconds")
    p.add_argument("--clients", type=non_negative_int, default=3, help="closed-loop clients")
    p.add_argument("--workload", default="kv", help="the clients' workload (kv, counter, orders, ...)")
    p.add_argument("--swarm", action="store_true", help="draw fault settings from the seed")
    p.add_argument("--config", metavar="YAML", help="the whole scenario inline (as replay commands print it)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a backend option (repeatable), e.g. --option pre_vote=true")
    p.add_argument("--seed", type=int, default=1, help="the seed every random choice of the run comes from")
    p.add_argument("--trace", dest="trace_out", metavar="FILE", help="write the trace ('-' for stdout)")
    p.add_argument("--history", dest="history_out", metavar="FILE", help="write the client history (JSON lines)")
    p.add_argument("--no-trace", action="store_true", help="do not record a trace (faster)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_sim)


# ------------------------------------------------------------- smr backends
def cmd_backends(args: argparse.Namespace) -> int:
    """List every backend: built-ins, plugins (``smr.backends`` entry points) and registered ones.

    A plugin that fails to load is listed with its error and the exit code is 1.
    """
    from .registry import BackendLoadError, backend_sources, get_backend

    rows: list[dict[str, Any]] = []
    for source in backend_sources():
        row: dict[str, Any] = {"name": source.name, "origin": source.origin, "source": source.where(),
                               "target": source.target, "distribution": source.distribution}
        if source.origin == "shadowed":
            row["description"] = f"not used: a built-in or registered backend is already called {source.name!r}"
        else:
            try:
                backend = get_backend(source.name)
            except BackendLoadError as exc:
                row["error"] = str(exc)
                row["description"] = f"FAILED TO LOAD: {exc}"
            else:
                row["description"] = backend.description
                row["replicated_log"] = backend.replicated_log
        rows.append(row)
    if args.json:
        print_json(rows)
    else:
        width = max(len(r["name"]) for r in rows)
        where = max(len(r["source"]) for r in rows)
        for r in rows:
            kind = "-" if "replicated_log" not in r else "log" if r["replicated_log"] else "value"
            print(f"{r['name']:{width}s}  {r['source']:{where}s}  {kind:5s}  {r['description']}")
    return 1 if any("error" in r for r in rows) else 0


def _add_backends(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backends", help="list the backends: built-ins, plugins and registered ones",
                       description="List every backend by name, with where it comes from (built-in, a plugin "
                                   "package's smr.backends entry point, or registered by a program), whether it "
                                   "serves a replicated log or one value, and its description.")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_backends)


# -------------------------------------------------------------- smr compare
def _add_compare(sub: argparse._SubParsersAction) -> None:
    from .campaign import add_worker_arguments
    from .compare import cmd_compare
    from .results import default_root

    p = sub.add_parser("compare", help="run backends side by side on the same scenarios and seeds",
                       description="Run every selected backend on the same scenarios, faults and seeds, "
                                   "and print the figures side by side.")
    p.add_argument("scenarios", nargs="*",
                   help="scenario YAML files or built-in scenarios' names, e.g. kv-leader-crash (default: every "
                        "built-in scenario)")
    p.add_argument("--backends", type=listed(backend_name), default=None,
                   help="comma-separated backend names (default: every replicated-log backend)")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per scenario and backend")
    p.add_argument("--first-seed", type=int, default=1)
    add_worker_arguments(p, default_jobs=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default=default_root(), metavar="DIR",
                   help="results root: each run writes a new directory in it (inputs, compare.json, "
                        "histories, plots) and links it as latest (default smr-results, or $SMR_RESULTS)")
    p.add_argument("--no-plots", action="store_true", help="write no files")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_compare)


# ---------------------------------------------------------------- smr trace
def cmd_trace(args: argparse.Namespace) -> int:
    """Write an interactive Lamport (space-time) diagram of a run's first election and faults, or of a window."""
    from . import lamport
    from .sim import load_scenario

    out = args.out or f"trace-{args.backend}-{args.seed}.html"
    if not out.endswith((".html", ".htm")):
        raise LocalProtocolError(f"--out {out}: smr trace writes an HTML page (the hand-drawn SVG output was "
                                 "dropped for the interactive diagram); give a .html name")
    config = attrs.evolve(load_scenario(args.scenario), backend=args.backend)
    recording = lamport.record_span(config, args.seed, args.from_ms, args.to_ms, with_clients=not args.no_clients)
    diagram = lamport.diagram(recording, args.max_messages)
    text = lamport.page(diagram)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    (window,) = diagram.windows
    print(f"wrote {out} ({len(text.encode()) / 1e6:.1f} MB): {config.backend}, seed {args.seed}, "
          f"{window.start:g} to {window.end:g} ms, {len(diagram.messages):,} messages")
    for note in diagram.notes:
        print(f"  {note}")
    print(f"replay: {config.replay_command(args.seed)}")
    return 0


def _add_trace(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="write an interactive Lamport diagram of a run (HTML)",
                       description="Run a scenario and write a self-contained HTML page (no network needed) "
                                   "with its Lamport (space-time) diagram and client operations: zoom, pan, a "
                                   "time window, filters by message type and node, hover or click a message. "
                                   "By default the window runs from 0 to just after the first election and "
                                   "every fault's election.")
    p.add_argument("seed", type=int, help="the seed of the run")
    p.add_argument("scenario", help="a scenario YAML file or a built-in scenario's name, e.g. kv-leader-crash")
    p.add_argument("--backend", type=backend_name, default="raft", help="backend to run the scenario on")
    p.add_argument("--from", dest="from_ms", type=float, default=None, metavar="MS",
                   help="start of the window in simulated ms (default 0)")
    p.add_argument("--to", "--until", dest="to_ms", type=float, default=None, metavar="MS",
                   help="end of the window in simulated ms (default: just after the first election and "
                        "every fault's election)")
    p.add_argument("--max-messages", type=positive_int, default=20_000, metavar="N",
                   help="draw at most N messages; the window is cut short, and says so (default 20000)")
    p.add_argument("--out", default=None, help="output .html file (default trace-BACKEND-SEED.html)")
    p.add_argument("--no-clients", action="store_true", help="draw only the replicas' lanes")
    p.set_defaults(func=cmd_trace)


# ---------------------------------------------------------------- smr bench
def _add_bench(sub: argparse._SubParsersAction) -> None:
    from .bench import register as register_sim_bench
    from .bench_reads import register as register_reads_bench

    p = sub.add_parser("bench", help="benchmarks that print figures (never run as tests)",
                       description="Benchmarks that print figures: simulator speed, read costs, checker "
                                   "throughput, real TCP clusters, storage, and peer messages per command.  "
                                   "They are never run as tests.")
    from .checker.bench import register_bench as register_checker_bench

    from .experiments.cli import register_bench as register_messages_bench
    from .net.cli import register_bench as register_tcp_bench

    bench_sub: argparse._SubParsersAction = p.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    register_sim_bench(bench_sub)
    register_reads_bench(bench_sub)
    register_checker_bench(bench_sub)
    register_tcp_bench(bench_sub)
    register_messages_bench(bench_sub)


def build_parser() -> argparse.ArgumentParser:
    """Return the full ``smr`` argument parser."""
    parser = ArgumentParser(
        prog="smr", description="Raft and multi-Paxos behind one replicated-log contract, side by side.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"smr {__version__}")
    sub: argparse._SubParsersAction = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from synod.cli import register as register_essay

    from .checker.cli import register_check
    from .conformance.cli import register as register_conformance
    from .experiments.cli import register as register_experiments
    from .mutation import register as register_mutation
    from .net.cli import register as register_net
    from .results import register as register_results

    _add_compare(sub)
    _add_sim(sub)
    _add_trace(sub)
    register_check(sub)
    register_essay(sub)
    register_net(sub)
    register_experiments(sub)
    register_conformance(sub)
    _add_backends(sub)
    register_results(sub)
    _add_bench(sub)
    register_mutation(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smr`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a results directory records
    try:
        return int(args.func(args))
    except (ConfigError, LocalProtocolError) as exc:  # bad input, named by the error; a bug keeps its traceback
        return fail(args.command_prog, exc)
    except OSError as exc:
        if exc.filename is None:  # not a file the command line named (a bug, or the network)
            raise
        return fail(args.command_prog, f"{exc.filename}: {exc.strerror}")


if __name__ == "__main__":
    sys.exit(main())
