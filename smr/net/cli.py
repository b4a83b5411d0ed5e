"""The TCP runtime's commands: ``smr serve``, ``smr kv``, ``smr status``, ``smr cluster up``,
``smr cluster add/remove/status`` (membership), ``smr crashloop``, and the benchmarks
``smr bench tcp`` / ``smr bench storage``.

:func:`register` adds the first five to the ``smr`` subcommands and
:func:`register_bench` adds the benchmarks under ``smr bench``; ``python -m
smr.net`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from smr import commands
from smr.apps import app_spec, resolve_app
from smr.client import AppClient
from smr.values import to_json
from smr.errors import ConfigError, LocalProtocolError, SMRError
from ..arguments import (ArgumentParser, backend_name, fail, json_object, non_negative_float, non_negative_int,
                         positive_float, positive_int)
from ..output import print_json


def _run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """trio.run ``fn``; a single SMRError inside an exception group comes out on its own."""
    try:
        return trio.run(fn, *args)
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], (SMRError, TimeoutError)):
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found



# ------------------------------------------------------------------ serve
def cmd_serve(args: argparse.Namespace) -> int:
    """Run one replica until SIGTERM or Ctrl-C."""
    from ._config import load_cluster
    from ._node import open_node
    from ._values import CorruptValue

    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    config = load_cluster(args.cluster)
    if args.app is not None:  # the node refuses to start on data another app wrote
        config = attrs.evolve(config, state_machine=app_spec(args.app))
    config.address(args.node)
    config.secret_bytes()

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with open_node(config, args.node, data_dir=args.data, rejoin_empty=args.rejoin_empty) as node:
                print(f"{args.node} ready on port {node.port}", flush=True)
                async with trio.open_nursery() as nursery:

                    async def on_signal() -> None:
                        async for signum in signals:
                            logging.getLogger("smr.net").info("%s: stopping on signal %d", args.node, signum)
                            break
                        nursery.cancel_scope.cancel()

                    async def on_retired() -> None:  # removed from the cluster: exit 0
                        await node.wait_retired()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(on_signal)
                    nursery.start_soon(on_retired)

    try:
        _run(main)
    except CorruptValue as exc:
        raise ConfigError(f"cannot recover: {exc}") from None
    return 0


# --------------------------------------------------------------------- kv
def _kv_command(args: argparse.Namespace) -> commands.Command:
    if args.kv_op == "put":
        return commands.put(args.key, args.value)
    if args.kv_op == "get":
        return commands.get(args.key)
    if args.kv_op == "delete":
        return commands.delete(args.key)
    if args.from_absent:
        if len(args.values) != 1:
            raise LocalProtocolError("cas --from-absent takes KEY NEW")
        return commands.cas(args.key, None, args.values[0])
    if len(args.values) != 2:
        raise LocalProtocolError("cas takes KEY EXPECTED NEW (or --from-absent KEY NEW)")
    return commands.cas(args.key, args.values[0], args.values[1])


def cmd_kv(args: argparse.Namespace) -> int:
    """Run one KV command against a TCP cluster and print its result."""
    from ._client import open_tcp_client

    command = _kv_command(args)

    async def main() -> Any:
        async with open_tcp_client(args.cluster, prefix="cli") as client:
            return await client.submit(command, timeout=args.timeout, attempts=args.attempts)

    try:
        result = _run(main)
    except TimeoutError as exc:
        print(f"smr: {exc} (the command may or may not have been applied)", file=sys.stderr)
        return 1
    if args.json:
        print_json({"command": str(command), "result": result})
    else:
        print("(absent)" if result is None and args.kv_op == "get" else json.dumps(result))
    return 0


# ----------------------------------------------------------------- status
def cmd_status(args: argparse.Namespace) -> int:
    """Print every node's role, epoch, leader and counters; exit 1 if none answers."""
    from ._client import open_tcp_client

    async def main() -> dict[str, Any]:
        async with open_tcp_client(args.cluster, prefix="status") as client:
            return await client.statuses(timeout=args.timeout)

    reports = _run(main)
    apps = {r.app for r in reports.values() if r is not None}
    if len(apps) > 1:
        print(f"smr: WARNING: the nodes run different apps ({', '.join(sorted(apps))}); their states will "
              f"diverge -- start every node with the same cluster file and --app", file=sys.stderr)
    if args.json:
        print_json({n: None if r is None else {
            "role": r.role, "epoch": r.epoch, "leader": r.leader, "commit_index": r.commit_index,
            "backend": r.backend, "uptime_s": r.uptime_s, "counters": r.counters, "refused": r.refused,
            "storage": r.storage, "app": r.app, "sessions": r.sessions} for n, r in reports.items()})
    else:
        print(f"{'node':8s} {'role':10s} {'epoch':>6s} {'leader':8s} {'commit':>8s} {'uptime_s':>9s} "
              f"{'frames in/out':>15s} {'refused':>8s} {'syncs':>7s} {'sessions':>11s}")
        for node, r in reports.items():
            if r is None:
                print(f"{node:8s} (no answer)")
                continue
            print(f"{node:8s} {r.role:10s} {r.epoch:6d} {str(r.leader):8s} {r.commit_index:8d} "
                  f"{r.uptime_s:9.1f} {r.counters.get('frames_in', 0):>7d}/{r.counters.get('frames_out', 0):<7d} "
                  f"{sum(r.refused.values()):8d} {int(r.storage.get('commits', 0)):7d} "
                  f"{r.sessions.get('open', 0):>5d}/{r.sessions.get('max', 0):<5d}")
    return 0 if any(r is not None for r in reports.values()) else 1


# ------------------------------------------------------------------ call
def _cli_value(text: str, hint: Any) -> Any:
    """A command-line argument as a value: as typed for a ``str`` parameter, else JSON where it parses."""
    if hint is str:
        return text
    try:
        return json.loads(text, parse_constant=lambda name: text)  # NaN, Infinity: not values
    except ValueError:
        return text


def _hints(app: type, method: str) -> list[Any]:
    """The type hint of each parameter of ``app.method`` (None where there is none or it will not resolve)."""
    import typing

    spec = getattr(app, "operations", {}).get(method)
    if spec is None:
        return []
    try:
        hints = typing.get_type_hints(spec.function)
    except Exception:
        hints = {}
    return [hints.get(name) for name in list(spec.signature.parameters)[1:]]


def cmd_call(args: argparse.Namespace) -> int:
    """Call one command or query of the cluster's app and print its result as JSON."""
    from smr.machine import CommandError

    from ._client import open_tcp_client
    from ._config import load_cluster

    config = load_cluster(args.cluster)
    app = resolve_app(config.state_machine)

    async def main() -> Any:
        async with open_tcp_client(config, prefix="call") as cluster:
            proxy = AppClient(app, cluster.client(), timeout=args.timeout, attempts=args.attempts)
            hints = _hints(app, args.method)
            values = [_cli_value(a, hints[i] if i < len(hints) else None) for i, a in enumerate(args.args)]
            return await getattr(proxy, args.method)(*values)

    try:
        result = _run(main)
    except CommandError as exc:
        print(f"smr: {app.name}.{args.method} raised {exc}", file=sys.stderr)
        return 1
    except (AttributeError, TypeError) as exc:
        print(f"smr: {exc}", file=sys.stderr)
        return 2
    print_json(to_json(result))
    return 0


# ---------------------------------------------------------------- cluster
def cmd_cluster_up(args: argparse.Namespace) -> int:
    """Start a loopback cluster, print how to use it, and stop it on Ctrl-C or SIGTERM."""
    from ._launcher import LocalTcpCluster

    temporary = args.dir is None
    directory = Path(args.dir or tempfile.mkdtemp(prefix="smr-cluster-"))
    options = args.options or {}
    cluster = LocalTcpCluster(directory, nodes=args.nodes, backend=args.backend,
                              state_machine=args.app, tick_ms=args.tick_ms,
                              backend_options=options, fsync=not args.no_fsync, tls=args.tls)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            cluster.start()
            leader = await cluster.wait_for_leader(args.leader_timeout)
            print(f"cluster of {len(cluster.node_ids)} {cluster.config.backend} nodes is up; leader {leader}")
            print(f"cluster file: {cluster.cluster_file}" + (" (TLS on every link)" if cluster.config.tls else ""))
            print(f"for clients (client key only, no secret): {cluster.client_file}")
            app = resolve_app(cluster.config.state_machine)
            if app.name == "kv":
                print(f"try: smr kv put x 1 --cluster {cluster.cluster_file}")
            else:
                first = sorted(app.operations)[0] if app.operations else "METHOD"
                print(f"app: {app.name} ({', '.join(sorted(app.operations))})")
                print(f"try: smr call {first} ARG... --cluster {cluster.cluster_file}")
            print("Ctrl-C stops it", flush=True)
            async for _ in signals:
                return

    try:
        _run(main)
    except TimeoutError as exc:
        print(f"smr: {exc}", file=sys.stderr)
        return 1
    finally:
        codes = cluster.stop()
        print("stopped: " + ", ".join(f"{n} exit {c}" for n, c in codes.items()), flush=True)
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def cmd_cluster_init(args: argparse.Namespace) -> int:
    """Write a new cluster file (free loopback ports, a fresh secret) for programs that embed their nodes."""
    from ._launcher import CLUSTER_FILE, client_file, write_cluster_file
    from ._storage import private_dir

    directory = private_dir(args.dir)
    path = directory / CLUSTER_FILE
    if path.exists():
        raise ConfigError("a cluster file is already here; choose another directory", file=str(path))
    options = args.options or {}
    config = write_cluster_file(path, nodes=args.nodes, backend=args.backend, state_machine=args.app,
                                tick_ms=args.tick_ms, backend_options=options, fsync=not args.no_fsync,
                                tls=args.tls)
    print(f"wrote {path}: {len(config.nodes)} {config.backend} nodes "
          f"({', '.join(f'{n.id} on {n.host}:{n.port}' for n in config.nodes)})"
          + (", TLS on every link (certificates in tls/)" if config.tls else ""))
    print(f"for clients (client key only, no secret): {client_file(path)}")
    print(f"each program runs one: async with smr.net.open_node({str(path)!r}, NODE_ID, app=...) as node")
    return 0


# ------------------------------------------------------------- membership
def _node_data_dir(config: Any, node: str) -> Path:
    """Where ``smr cluster add`` puts a new node's data: beside the others' (``DIR/NODE`` in a directory
    ``smr cluster up`` made), else ``data/NODE`` beside the cluster file, as ``smr serve`` would."""
    from ._node import default_data_dir

    if config.source is not None:
        here = Path(config.source).resolve().parent
        if config.initial_voters and (here / config.initial_voters[0]).is_dir():
            return here / node
    return default_data_dir(config, node)


def _membership_lines(membership: Any) -> list[str]:
    """The membership as lines for people."""
    joining = dict(membership.joining)
    lines = [f"voters:   {', '.join(membership.voters)}"]
    if membership.outgoing:
        lines.append(f"outgoing: {', '.join(membership.outgoing)} (a joint configuration is being left)")
    lines.append("learners: " + (", ".join(f"{n} (joining{' to replace ' + joining[n] if joining.get(n) else ''})"
                                           if n in joining else n for n in membership.learners) or "none"))
    return lines


def cmd_cluster_add(args: argparse.Namespace) -> int:
    """Start a new node (empty data directory) and add it to the cluster; exit 0 once it is a voter."""
    from ._client import open_tcp_client
    from ._config import NodeAddress, format_address, load_cluster, parse_address
    from ._launcher import running, serve_command, start_detached, update_cluster_file

    try:
        host, port = parse_address(args.address)
    except ValueError as exc:
        raise ConfigError(f"--address: {exc}") from None
    wanted = NodeAddress(args.node, host, port)
    config = load_cluster(args.cluster)
    known = next((n for n in (*config.nodes, *config.added) if n.id == args.node), None)
    if known is None:  # a new node: into the file's added list first, so its own process finds its address
        config = update_cluster_file(args.cluster, lambda c: c.with_added(wanted))
        print(f"{args.node}: written to {args.cluster} (added: {format_address(wanted)})")
    elif known != wanted or args.node in config.initial_voters or args.node in config.removed:
        raise ConfigError(f"{args.node} is already in the cluster file (at {format_address(known)}): a new node "
                          f"needs a new id", file=str(args.cluster))
    address = format_address(wanted)
    pid = None
    if not args.no_start:
        data = Path(args.data) if args.data else _node_data_dir(config, args.node)
        log_file = data.with_name(data.name + ".log")
        pid = start_detached(serve_command(args.cluster, args.node, data), log_file)
        print(f"{args.node}: started (pid {pid}, data {data}, log {log_file})", flush=True)

    async def main() -> Any:
        async with open_tcp_client(config, prefix="cluster-add") as client:
            if pid is not None:
                with trio.move_on_after(args.timeout):
                    while await client.status(args.node, timeout=0.5) is None:
                        if not running(pid):
                            raise LocalProtocolError(f"{args.node} exited before it listened; see {log_file}")
                        await trio.sleep(0.1)
            return await client.add_node(args.node, address, timeout=args.timeout)

    try:
        membership = _run(main)
    except TimeoutError as exc:
        print(f"smr: {exc}", file=sys.stderr)
        return 1
    print(f"{args.node} is a voter")
    for line in _membership_lines(membership):
        print(f"  {line}")
    return 0


def cmd_cluster_remove(args: argparse.Namespace) -> int:
    """Remove a node; exit 0 once the change is committed and the node has stopped."""
    from ._client import open_tcp_client
    from ._config import load_cluster
    from ._launcher import update_cluster_file

    config = load_cluster(args.cluster)

    async def main() -> tuple[Any, bool]:
        async with open_tcp_client(config, prefix="cluster-remove") as client:
            membership = await client.remove_node(args.node, timeout=args.timeout)
            print(f"{args.node} removed (committed); waiting for it to stop", flush=True)
            stopped = False
            with trio.move_on_after(args.timeout):
                while not stopped:
                    report = await client.status(args.node, timeout=0.5)
                    stopped = report is None or report.role == "retired"
                    await trio.sleep(0.1)
            return membership, stopped

    try:
        membership, stopped = _run(main)
    except TimeoutError as exc:
        print(f"smr: {exc}", file=sys.stderr)
        return 1
    if args.node in (*config.initial_voters, *(n.id for n in config.added)):
        update_cluster_file(args.cluster, lambda c: c.with_removed(args.node))
        print(f"{args.node}: recorded as removed in {args.cluster}")
    for line in _membership_lines(membership):
        print(f"  {line}")
    if not stopped:
        print(f"smr: {args.node} still answers after {args.timeout:g} s; stop it by hand", file=sys.stderr)
        return 1
    print(f"{args.node} has stopped")
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    """Print the cluster's membership and each member's status; exit 1 if the membership cannot be read."""
    from ._client import open_tcp_client

    async def main() -> tuple[Any, dict[str, Any]]:
        async with open_tcp_client(args.cluster, prefix="cluster-status") as client:
            membership = await client.membership(timeout=args.timeout, attempts=10)
            return membership, await client.statuses(timeout=args.timeout)

    try:
        membership, reports = _run(main)
    except TimeoutError as exc:
        print(f"smr: the cluster did not answer: {exc}", file=sys.stderr)
        return 1
    joining = dict(membership.joining)

    def place(node: str) -> str:
        if node in membership.voters:
            return "voter"
        if node in membership.outgoing:
            return "voter (leaving)"
        if node in membership.learners:
            return "joining" if node in joining else "learner"
        return "not a member"

    nodes = [*membership.members, *(n for n in reports if n not in membership.members)]
    if args.json:
        print_json({"membership": membership.as_value(), "nodes": {n: {
            "member": place(n), **({} if reports.get(n) is None else {
                "role": reports[n].role, "epoch": reports[n].epoch, "leader": reports[n].leader,
                "commit_index": reports[n].commit_index})} for n in nodes}})
        return 0
    for line in _membership_lines(membership):
        print(line)
    print(f"{'node':8s} {'member':14s} {'role':10s} {'epoch':>6s} {'leader':8s} {'commit':>8s}")
    for node in nodes:
        r = reports.get(node)
        if r is None:
            print(f"{node:8s} {place(node):14s} (no answer)")
        else:
            print(f"{node:8s} {place(node):14s} {r.role:10s} {r.epoch:6d} {str(r.leader):8s} {r.commit_index:8d}")
    return 0


# -------------------------------------------------------------- crashloop
def cmd_crashloop(args: argparse.Namespace) -> int:
    """Kill (or cut the power of) random nodes under load, then check; exit 1 unless linearizable with
    every acknowledged ledger entry read back once."""
    from ._crashloop import crashloop

    options = args.options
    report = _in_directory(args, "smr-crashloop-", lambda directory: _run(lambda: crashloop(
        directory, args.backend, args.kills, args.interval, args.clients, args.seed, options,
        power_loss=args.power_loss)))
    return _print_report(args, report, report["verdict"] == "linearizable" and report["lost"] == 0)


# ---------------------------------------------------------------- catchup
def cmd_catchup(args: argparse.Namespace) -> int:
    """The largest put and a large state reach a follower that was down; exit 1 on any problem."""
    from ._catchup import catchup

    options = args.options
    report = _in_directory(args, "smr-catchup-", lambda directory: _run(
        catchup, directory, args.backend, args.state_mb, args.value_bytes, args.clients, args.seed, options))
    return _print_report(args, report, report["verdict"] == "ok")


def _in_directory(args: argparse.Namespace, prefix: str, run: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run ``run`` in ``--dir`` or a temporary directory (removed afterwards unless ``--keep``)."""
    temporary = args.dir is None
    directory = Path(args.dir or tempfile.mkdtemp(prefix=prefix))
    try:
        return run(directory)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


def _print_report(args: argparse.Namespace, report: dict[str, Any], ok: bool) -> int:
    """Print a command's report (its lines, or JSON with ``--json``); the exit status for ``ok``."""
    if args.json:
        print_json(report)
    else:
        for line in report["lines"]:
            print(line)
    return 0 if ok else 1


def _attack_arguments(p: argparse.ArgumentParser, clients: int) -> None:
    """The options every command that attacks a local cluster under load takes."""
    p.add_argument("--backend", type=backend_name, default="raft")
    p.add_argument("--clients", type=non_negative_int, default=clients, help="KV clients running meanwhile")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--options", type=json_object, default=None, metavar="JSON",
                   help="backend options as a JSON object (e.g. a mutant_* switch)")
    p.add_argument("--dir", default=None, help="cluster directory (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--json", action="store_true")


# ---------------------------------------------------------------- insider
def cmd_insider(args: argparse.Namespace) -> int:
    """Send hostile peer messages to a live cluster under load; exit 1 on a node exit, a lost write or a bad history."""
    from ._insider import insider

    options = args.options
    report = _in_directory(args, "smr-insider-", lambda directory: _run(lambda: insider(
        directory, args.backend, args.messages, args.seed, clients=args.clients, options=options,
        check_seconds=args.check_seconds)))
    return _print_report(args, report, report["ok"])


# ---------------------------------------------------------------- bitflip
def cmd_bitflip(args: argparse.Namespace) -> int:
    """Flip random bits in a stopped node's files; exit 1 if any damaged copy would load and serve."""
    from ._bitflip import bitflip

    temporary = args.dir is None
    directory = Path(args.dir or tempfile.mkdtemp(prefix="smr-bitflip-"))
    try:
        report = bitflip(directory, args.backend, args.trials, args.seed, args.puts)
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print_json(report)
    else:
        o = report["outcomes"]
        print(f"bitflip: {report['backend']}, {report['trials']} single-bit flips of a stopped node's files "
              f"({report['keys']} durable keys), seeds {args.seed}..{args.seed + args.trials - 1}")
        print(f"  refused {o['refused']}   unchanged {o['unchanged']}   served damaged {o['served']}")
        print("  refused by: " + ", ".join(f"{k} {v}" for k, v in sorted(report["refused_by"].items())))
        for line in report["served"]:
            print(f"  SERVED {line}  (replay: smr bitflip --backend {args.backend} --trials 1 --seed "
                  f"{line.split()[1].rstrip(':')})")
    return 1 if report["outcomes"]["served"] else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add serve, kv, status, cluster, crashloop, insider and bitflip to the ``smr`` subcommands."""
    p = subparsers.add_parser("serve", help="run one replica over TCP (one process per node)",
                              description="Run one replica of a cluster file until SIGTERM or Ctrl-C.")
    p.add_argument("--cluster", required=True, metavar="FILE", help="cluster YAML file")
    p.add_argument("--node", required=True, help="this node's id in the cluster file")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="this node's data directory (default: data/NODE beside the cluster file)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--app", default=None, metavar="SPEC",
                   help="the state machine (module:Class, file.py:Class or a built-in); default: the file's")
    p.add_argument("--rejoin-empty", action="store_true",
                   help="if the data directory was emptied (or its database deleted) while the cluster ran "
                        "on, have the cluster remove this node's id and add it again, then catch up as a "
                        "learner: it votes and accepts nothing until it has applied the log past its re-adding "
                        "(without it such a node stays out); a database found damaged at start is moved to "
                        "damaged-<time>/ in the directory and the node rejoins the same way (without it, it "
                        "refuses to start); a no-op on an intact directory or a new cluster")
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("call", help="call a command or query of the app a TCP cluster runs",
                              description="Call METHOD of the cluster's app with ARGs (JSON where they "
                                          "parse as JSON, else strings); print the result as JSON.")
    p.add_argument("method")
    p.add_argument("args", nargs="*", metavar="ARG")
    p.add_argument("--cluster", required=True, metavar="FILE")
    p.add_argument("--timeout", type=positive_float, default=1.0, help="seconds per attempt")
    p.add_argument("--attempts", type=positive_int, default=40)
    p.set_defaults(func=cmd_call)

    p = subparsers.add_parser("kv", help="put/get/cas/delete on a TCP cluster's KV store",
                              description="One operation on the KV store of a running TCP cluster (started "
                                          "with `smr cluster up --app kv`), through a client session that "
                                          "follows redirects and retries; the result is printed as JSON.")
    kv = p.add_subparsers(dest="kv_op", required=True, metavar="OP")
    for name, help_, says in (
            ("put", "write VALUE to KEY", "Write VALUE to KEY; prints the store's reply."),
            ("get", "read KEY", "Read KEY linearizably; prints its value as JSON, or (absent)."),
            ("delete", "delete KEY", "Delete KEY; prints the store's reply."),
            ("cas", "compare-and-set: KEY EXPECTED NEW (or --from-absent KEY NEW)",
             "Set KEY to NEW only if it holds EXPECTED (with --from-absent: only if it is absent); prints "
             "whether it did.")):
        q = kv.add_parser(name, help=help_, description=says + "  Exit 1 if the cluster gave no answer "
                                                               "(the operation may or may not have happened).")
        q.add_argument("key")
        if name == "put":
            q.add_argument("value")
        if name == "cas":
            q.add_argument("values", nargs="+", metavar="VALUE")
            q.add_argument("--from-absent", action="store_true", help="expect KEY to be absent")
        q.add_argument("--cluster", required=True, metavar="FILE")
        q.add_argument("--timeout", type=positive_float, default=1.0, help="seconds per attempt")
        q.add_argument("--attempts", type=positive_int, default=40)
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=cmd_kv)

    p = subparsers.add_parser("status", help="every node's role, epoch, leader and counters",
                              description="Ask every node of a cluster file for its status and print one "
                                          "line per node: role, epoch, leader, commit index, uptime, frames "
                                          "in/out, refused frames, storage syncs and open sessions.  Exit 1 "
                                          "if no node answers.")
    p.add_argument("--cluster", required=True, metavar="FILE")
    p.add_argument("--timeout", type=positive_float, default=1.0, help="seconds to wait for each node")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("cluster", help="start a local cluster on 127.0.0.1; add, remove, status",
                              description="Run a cluster on this machine (up, init) and change or show its "
                                          "membership (add, remove, status).")
    cl = p.add_subparsers(dest="cluster_op", required=True, metavar="OP")
    q = cl.add_parser("up", help="start N `smr serve` processes, wait for a leader, stop on Ctrl-C",
                      description="Write a cluster file for N nodes on 127.0.0.1 (or reuse the one in --dir), "
                                  "start one `smr serve` process per node, wait for a leader and print the "
                                  "cluster file and a command to try; Ctrl-C stops every node.")
    q.add_argument("--nodes", type=positive_int, default=3)
    q.add_argument("--backend", type=backend_name, default="raft")
    q.add_argument("--app", "--state-machine", dest="app", default="kv", metavar="SPEC",
                   help="the state machine every node runs: module:Class, file.py:Class or a built-in "
                        "(kv, counter, dict, repl_counter, locks, write_once)")
    q.add_argument("--tick-ms", type=positive_float, default=10.0)
    q.add_argument("--options", type=json_object, default=None, metavar="JSON",
                   help="backend options as a JSON object")
    q.add_argument("--no-fsync", action="store_true", help="do not sync batches (benchmarks only)")
    q.add_argument("--tls", action="store_true",
                   help="TLS on every link: make a local CA and a certificate per node in tls/ (needs the "
                        "'cryptography' package)")
    q.add_argument("--dir", default=None, help="cluster directory (kept; reused if it has a cluster file)")
    q.add_argument("--leader-timeout", type=positive_float, default=20.0, help="seconds to wait for a leader")
    q.set_defaults(func=cmd_cluster_up)
    q = cl.add_parser("init", help="write a cluster file for N nodes on 127.0.0.1 (for embedded nodes)",
                      description="Write DIR/cluster.yaml (with its secrets) and a client file for N nodes "
                                  "on 127.0.0.1, for programs that each embed one node; start nothing.")
    q.add_argument("--nodes", type=positive_int, default=3)
    q.add_argument("--backend", type=backend_name, default="raft")
    q.add_argument("--app", "--state-machine", dest="app", default="kv", metavar="SPEC",
                   help="the state machine the nodes run (each program may also pass its class to open_node)")
    q.add_argument("--tick-ms", type=positive_float, default=10.0)
    q.add_argument("--options", type=json_object, default=None, metavar="JSON",
                   help="backend options as a JSON object")
    q.add_argument("--no-fsync", action="store_true", help="do not sync batches (benchmarks only)")
    q.add_argument("--tls", action="store_true",
                   help="TLS on every link: make a local CA and a certificate per node in tls/ (needs the "
                        "'cryptography' package)")
    q.add_argument("--dir", required=True, help="where to write cluster.yaml (data/NODE goes beside it)")
    q.set_defaults(func=cmd_cluster_init)
    q = cl.add_parser("add", help="start a new node and add it to a running cluster; wait until it votes",
                      description="Write NODE into the cluster file's 'added' list, start its `smr serve` "
                                  "process (an empty data directory: it joins as a learner and catches up), ask "
                                  "the cluster to add it, and wait until it is a voter.")
    q.add_argument("node", metavar="NODE", help="the new node's id (never one the cluster had before)")
    q.add_argument("--address", required=True, metavar="HOST:PORT", help="where the new node listens")
    q.add_argument("--cluster", required=True, metavar="FILE")
    q.add_argument("--data", default=None, metavar="DIR",
                   help="its data directory (default: beside the other nodes', or data/NODE beside the file)")
    q.add_argument("--no-start", action="store_true",
                   help="do not start the process here (run `smr serve --node NODE` where it lives)")
    q.add_argument("--timeout", type=positive_float, default=60.0, help="seconds until it must be a voter")
    q.set_defaults(func=cmd_cluster_add)
    q = cl.add_parser("remove", help="remove a node from a running cluster; wait until committed and stopped",
                      description="Ask the cluster to remove NODE, wait until the change is committed and "
                                  "the node has stopped, record it in the cluster file and print the new "
                                  "membership.  Exit 1 if it still answers after --timeout.")
    q.add_argument("node", metavar="NODE")
    q.add_argument("--cluster", required=True, metavar="FILE")
    q.add_argument("--timeout", type=positive_float, default=60.0, help="seconds to wait for each step")
    q.set_defaults(func=cmd_cluster_remove)
    q = cl.add_parser("status", help="the cluster's membership and each member's role",
                      description="Print the committed membership (voters, learners, nodes being added or "
                                  "removed) and one line per node: where it stands, role, epoch, leader "
                                  "and commit index.  Exit 1 if the cluster does not answer.")
    q.add_argument("--cluster", required=True, metavar="FILE")
    q.add_argument("--timeout", type=positive_float, default=1.0, help="seconds per attempt")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_cluster_status)

    p = subparsers.add_parser("crashloop", help="kill random nodes under load, then check the history",
                              description="Start a local 3-node cluster, run KV clients and ledger writers "
                                          "against it, kill a random node (SIGKILL) --kills times and restart "
                                          "it, then check the clients' history for linearizability and that "
                                          "every acknowledged ledger append reads back once.  With "
                                          "--power-loss each kill is a power cut (every file of the node back "
                                          "to its last sync; every 5th cut takes all nodes at once).  Prints "
                                          "the kills, the operation counts and the verdict; exit 1 unless "
                                          "linearizable with no acknowledged write lost.")
    _attack_arguments(p, clients=4)
    p.add_argument("--kills", type=non_negative_int, default=5)
    p.add_argument("--power-loss", action="store_true",
                   help="run the nodes over the power-loss shim (needs gcc) and make each kill a power cut")
    p.add_argument("--interval", type=non_negative_float, default=3.0, help="seconds between kills")
    p.set_defaults(func=cmd_crashloop)

    p = subparsers.add_parser("catchup", help="the largest put and a large state reach a follower that was down",
                              description="Stop a follower of a local 3-node cluster, grow the state by "
                                          "--state-mb (with one put as large as the request limit allows), "
                                          "restart it and check that it catches up (by snapshot) and that the "
                                          "history is linearizable.  Prints the figures and the verdict; exit "
                                          "1 on any problem.")
    _attack_arguments(p, clients=2)
    p.add_argument("--state-mb", type=non_negative_float, default=50.0,
                   help="megabytes the state grows by while it is down")
    p.add_argument("--value-bytes", type=positive_int, default=None,
                   help="size of the one large put (default: the largest the request limit allows)")
    p.set_defaults(func=cmd_catchup)

    p = subparsers.add_parser("insider", help="send hostile peer messages to a live cluster under load, then check",
                              description="Join a local 3-node cluster under KV load as an authenticated "
                                          "peer and send it --messages well-typed hostile messages (forged, "
                                          "mutated, replayed); then check that no node exited, no write was "
                                          "lost and the history is linearizable.  Prints what each node "
                                          "refused and the verdict; exit 1 on any problem.")
    _attack_arguments(p, clients=4)
    p.add_argument("--messages", type=non_negative_int, default=100_000)
    p.add_argument("--check-seconds", type=positive_float, default=300.0,
                   help="the linearizability checker's budget")
    p.set_defaults(func=cmd_insider)

    p = subparsers.add_parser("bitflip", help="flip random bits in a stopped node's files; none may load",
                              description="Write --puts values to a local cluster, stop a node, and --trials "
                                          "times flip one random bit of a copy of its files and try to load "
                                          "it.  Prints how many copies were refused, unchanged or served, "
                                          "with a replay command for each served one; exit 1 if any damaged "
                                          "copy loaded and served.")
    p.add_argument("--backend", type=backend_name, default="raft")
    p.add_argument("--trials", type=positive_int, default=1000)
    p.add_argument("--seed", type=int, default=1, help="trial i uses seed + i")
    p.add_argument("--puts", type=positive_int, default=300, help="puts the cluster takes before it is stopped")
    p.add_argument("--dir", default=None, help="cluster directory (default: a temporary one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bitflip)


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcp`` and ``storage`` to the ``smr bench`` subcommands."""
    from ._bench import register_bench as add

    add(bench_subparsers)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m smr.net`` (the same commands as ``smr``)."""
    parser = ArgumentParser(prog="python -m smr.net", description="The TCP runtime of smr.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(sub)
    bench = sub.add_parser("bench", help="benchmarks that print figures",
                           description="Benchmarks of the TCP runtime that print figures.")
    register_bench(bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m smr.net``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, LocalProtocolError) as exc:
        return fail(args.command_prog, exc)
    except KeyboardInterrupt:
        return 130
