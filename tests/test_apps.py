"""The state-machine API: methods as commands, the data model, error outcomes, bounded sessions, one registration path."""

from __future__ import annotations

from typing import Any

import pytest
from app_fixtures import Dice, Ledger

import smr
from smr.apps import app_spec, resolve_app
from smr.commands import Command
from smr.errors import ConfigError
from smr.machine import CommandError
from smr.registry import get_backend
from smr.replica import ClientRequest, ReplyStatus
from smr.sessions import Applier, SessionLimits
from smr.sim import ClientConfig, FaultEvent, SimConfig, Simulation, simulate
from smr.testing import Network

LOG_BACKENDS = ("raft", "multipaxos")

#: Values no runtime can carry, and the words the TypeError must use for each.
BAD_VALUES: list[tuple[Any, str]] = [
    ({1, 2}, "a set cannot be carried"),
    (1 + 2j, "a complex cannot be carried"),
    (float("nan"), "is not finite"),
    (2 ** 70, "outside the 64-bit range"),
    ({1: "x"}, "is not a str"),
    (object(), "a object cannot be carried"),
]


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# ------------------------------------------------------------------ the class
def test_methods_become_commands_and_queries_with_their_signatures() -> None:
    ops = Ledger.operations
    assert {n: s.kind for n, s in ops.items()} == {
        "credit": "command", "debit": "command", "echo": "command", "balance": "query", "attempts": "query",
        "blob": "query"}
    assert ops["credit"].keyed and not ops["echo"].keyed
    ledger = Ledger()
    assert ledger.apply(Command("credit", "a", (5,))) == 5
    assert ledger.is_read_only(Command("balance", "a")) and not ledger.is_read_only(Command("debit", "a", (1,)))
    with pytest.raises(CommandError, match="UnknownCommand: Ledger has no command or query 'nope'"):
        ledger.apply(Command("nope"))
    with pytest.raises(CommandError, match=r"BadArguments: Ledger.credit\(key, amount\) got 3 argument\(s\)"):
        ledger.apply(Command("credit", "a", (1, 2)))
    with pytest.raises(CommandError, match="takes no key"):
        ledger.apply(Command("echo", "k", (1,)))


def test_a_class_that_cannot_be_a_state_machine_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="'args' is variadic positional"):
        class Bad(smr.StateMachine):
            @smr.command
            def f(self, *args: int) -> None: ...
    with pytest.raises(TypeError, match="'noop' is reserved"):
        class Worse(smr.StateMachine):
            @smr.command
            def noop(self) -> None: ...


def test_snapshots_are_derived_from_the_attributes_and_keep_tuples_and_order() -> None:
    a = Ledger()
    for key in ("z", "a", "m"):
        a.apply(Command("credit", key, (3,)))
    b = Ledger()
    b.restore(a.snapshot())
    assert b.log == [("z", 3), ("a", 3), ("m", 3)] and list(b.balances) == ["z", "a", "m"]
    assert b.snapshot() == a.snapshot()


def test_state_that_is_not_plain_data_is_refused_with_the_path_to_it() -> None:
    class Sets(smr.StateMachine):
        def __init__(self) -> None:
            self.members: dict[str, set[str]] = {"x": set()}

    with pytest.raises(ConfigError, match=r"Sets state\['members'\]\['x'\]: a set cannot be carried.*override"):
        resolve_app(Sets)


# ------------------------------------------------------------- the data model
@pytest.mark.parametrize("value, words", BAD_VALUES + [(_nested(70), "nest deeper than 64")])
def test_a_value_no_runtime_carries_is_a_type_error_at_the_call_site(value: Any, words: str) -> None:
    with pytest.raises(TypeError, match=words):
        Command("put", "x", (value,))
    with pytest.raises(TypeError, match=f"argument 'value' of Ledger.echo.*: .*{words}"):
        smr.commands_for(Ledger).echo(value)


def test_the_data_model_arrives_as_it_would_over_the_wire() -> None:
    from smr import wire

    value = {"list": [1, 2.5, None, True], "tuple": (1, "a"), "bytes": bytearray(b"\x00\xff"),
             "$odd": {"$bytes": "not a tag"}, "big": 2 ** 64 - 1, "neg": -(2 ** 63)}
    command = smr.commands_for(Ledger).echo(value)
    assert command.args[0] == {"list": [1, 2.5, None, True], "tuple": [1, "a"], "bytes": b"\x00\xff",
                               "$odd": {"$bytes": "not a tag"}, "big": 2 ** 64 - 1, "neg": -(2 ** 63)}
    request = ClientRequest("c", 1, command)
    assert wire.decode(wire.encode(request)) == request


# ------------------------------------------------------------- error outcomes
def test_an_exception_inside_a_command_is_the_replicated_outcome_and_retries_get_it_again() -> None:
    applier = Applier(Ledger)
    status, result = applier.apply(ClientRequest("c1", 1, Command("debit", "a", (5,))))
    assert status == ReplyStatus.ERROR
    assert result == {"error": "ValueError", "message": "a holds 0, cannot pay 5"}
    assert applier.apply(ClientRequest("c1", 1, Command("debit", "a", (5,)))) == (status, result)
    assert applier.machine.apply(Command("attempts")) == 1  # applied once, its change kept
    error = CommandError.from_result(result)
    assert (error.kind, error.message) == ("ValueError", "a holds 0, cannot pay 5")


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_a_raising_command_gives_every_replica_the_same_outcome_and_the_caller_an_error(backend: str) -> None:
    registered = get_backend(backend)
    assert registered.invariants is not None
    net = Network(registered.factory, 3, dict(registered.options), 0, Ledger, registered.invariants())
    net.elect("n1")
    net.request("n1", Command("credit", "a", (3,)), "c1", 1)
    net.request("n1", Command("debit", "a", (5,)), "c1", 2)
    net.request("n1", Command("credit", "a", (1,)), "c1", 3)
    net.tick_all(10)
    assert net.replies_to("c1", 2)[-1].status == ReplyStatus.ERROR
    assert net.replies_to("c1", 3)[-1].result == 4  # the cluster kept serving
    appliers = {node: getattr(core, "applier") for node, core in net.cores.items()}
    states = {node: (a.sessions["c1"], a.machine.snapshot()) for node, a in appliers.items()}
    assert len(set(map(repr, states.values()))) == 1, states


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_raising_commands_under_faults_leave_the_replicas_in_agreement(backend: str) -> None:
    faults = (FaultEvent(600, "crash_leader"), FaultEvent(900, "partition_halves"), FaultEvent(1300, "heal"),
              FaultEvent(1500, "restart_all"))
    config = SimConfig(backend=backend, state_machine=Ledger, duration_ms=2500, faults=faults,
                       backend_options={"snapshot_every": 50}, clients=ClientConfig(count=4))
    result = simulate(config, 11)
    assert result.ok, (result.violations, result.replay)
    errors = [op for op in result.history if isinstance(op.result, dict) and op.result.get("error") == "ValueError"]
    assert errors, "the generated calls should include debits that raise"
    late = [op for op in result.history if op.invoke > 1600 and op.outcome.value == "ok"]
    assert late, "the cluster must keep serving after the errors and the faults"


def test_the_agreement_check_catches_a_state_machine_that_is_not_deterministic() -> None:
    """A deliberately broken app (it reads the global random generator) must make the run red."""
    result = simulate(SimConfig(backend="raft", state_machine=Dice, duration_ms=800), 1)
    assert not result.ok
    assert "is the state machine deterministic?" in result.violations[0]


# ----------------------------------------------------------------- sessions
@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_a_session_expires_on_every_replica_at_the_same_log_index(backend: str) -> None:
    registered = get_backend(backend)
    assert registered.invariants is not None
    check = registered.invariants()
    dropped_at: dict[str, int] = {}
    seen: set[str] = set()

    def watch(cores: Any) -> None:
        check(cores)
        for node, core in cores.items():
            sessions = core.applier.sessions
            if "c1" in sessions:
                seen.add(node)
            elif node in seen and node not in dropped_at:
                dropped_at[node] = core.applier.applied

    options = {**registered.options, "session_timeout_ms": 200}
    net = Network(registered.factory, 3, options, 0, Ledger, watch)
    net.elect("n1")
    net.request("n1", Command("credit", "a", (1,)), "c1", 1)
    net.stabilize()
    for i in range(2, 12):
        net.tick_all(5)  # 50 ms of log time per round, at 10 ms a tick
        net.request("n1", Command("credit", "b", (1,)), f"c{i}", 1)
        net.stabilize()
    net.tick_all(5)
    assert seen == set(net.ids)
    assert set(dropped_at) == set(net.ids) and len(set(dropped_at.values())) == 1, dropped_at
    # the client comes back: a clear error, and its command is not run
    net.step("n1", ClientRequest("c1", 2, Command("credit", "a", (1,)), acked=1))
    net.tick_all(5)
    error = next(r for r in net.replies_to("c1", 2) if r.status == ReplyStatus.ERROR)
    assert isinstance(error.result, dict) and error.result["error"] == "SessionExpired"
    assert all(getattr(core, "applier").machine.balances["a"] == 1 for core in net.cores.values())


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_the_session_table_stays_bounded_under_ten_thousand_one_shot_clients(backend: str) -> None:
    config = SimConfig(backend=backend, duration_ms=5200, trace=False, count_bytes=False,
                       backend_options={"max_sessions": 1000, "snapshot_every": 2000},
                       clients=ClientConfig(mode="open", rate_per_s=2000, timeout_ms=500))
    sim = Simulation(config, 3)
    result = sim.run()
    assert result.ok, result.violations
    assert len(result.history) >= 10_000
    for node in sim.nodes.values():
        assert node.core is not None
        applier = getattr(node.core, "applier")
        assert len(applier.sessions) <= 1000
    assert max(getattr(node.core, "applier").dropped for node in sim.nodes.values()) >= 9000


def test_session_limits_are_options_every_log_backend_accepts_and_checks() -> None:
    assert SessionLimits.from_options({"max_sessions": 5, "election_ticks_min": 3}).max_sessions == 5
    with pytest.raises(smr.LocalProtocolError, match="max_sessions must be an int >= 1"):
        SessionLimits(max_sessions=0)


# ------------------------------------------------------- one registration path
def test_an_app_is_named_by_class_by_module_or_by_file(tmp_path: Any) -> None:
    assert resolve_app("app_fixtures:Ledger") is Ledger
    assert app_spec(Ledger) == "app_fixtures:Ledger" or app_spec(Ledger).endswith("app_fixtures.py:Ledger")
    assert resolve_app("kv") is smr.KVStore and app_spec(smr.ReplLockManager) == "locks"
    path = tmp_path / "shop.py"
    path.write_text("import smr\n\nclass Shop(smr.StateMachine):\n    @smr.command\n    def buy(self) -> None: ...\n")
    assert resolve_app(f"{path}:Shop").operations.keys() == {"buy"}
    for spec, words in (("nope", "give a built-in"), ("no_such_module_x:A", "cannot import no_such_module_x"),
                        ("app_fixtures:Nope", "has no attribute 'Nope'"), ("smr.commands:NOOP", "not a subclass")):
        with pytest.raises(ConfigError, match=words):
            resolve_app(spec)


# --------------------------------------------------- what a hostile app or client does
def test_exceptions_that_cannot_print_and_system_exit_are_outcomes_not_crashes() -> None:
    from app_fixtures import Hostile

    applier = Applier(Hostile)
    assert applier.apply(ClientRequest("c", 1, Command("unprintable"))) == (
        "error", {"error": "Unprintable", "message": "<unprintable Unprintable>"})
    assert applier.apply(ClientRequest("c", 2, Command("exit"))) == ("error", {"error": "SystemExit", "message": "3"})


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_state_that_stops_being_snapshottable_is_reported_and_the_cluster_keeps_serving(backend: str) -> None:
    from app_fixtures import Hostile

    registered = get_backend(backend)
    net = Network(registered.factory, 3, {**registered.options, "snapshot_every": 3}, 0, Hostile)
    net.elect("n1")
    net.request("n1", Command("poison"), "c1", 1)
    for seq in range(2, 10):
        net.request("n1", Command("append", "", (b"ab",)), "c1", seq)
        net.tick_all(2)
    assert net.replies_to("c1", 9)[-1].result == 16
    failures = {node: getattr(core, "snapshot_failures") for node, core in net.cores.items()}
    assert all(n >= 1 for n in failures.values()), failures
    assert "a set cannot be carried" in str(getattr(net.cores["n2"], "snapshot_error"))
    result = simulate(SimConfig(backend=backend, state_machine=Hostile, duration_ms=600,
                                backend_options={"snapshot_every": 3}), 2)
    assert any("snapshot() raised" in v or "cannot be carried" in v for v in result.violations), result.violations


def test_a_bytearray_attribute_comes_back_from_a_snapshot_as_a_bytearray() -> None:
    from app_fixtures import Hostile

    a = Hostile()
    a.apply(Command("append", "", (b"xy",)))
    b = Hostile()
    b.restore(a.snapshot())
    assert type(b.buffer) is bytearray and b.buffer == bytearray(b"xy")


def test_a_first_request_retried_after_its_session_was_evicted_is_not_run_twice() -> None:
    applier = Applier(Ledger, SessionLimits(max_sessions=2))
    first = ClientRequest("a", 1, Command("credit", "k", (1,)))   # applied; its answer is lost
    assert applier.apply(first) == ("ok", 1)
    for other in ("b", "c"):                                       # ... and the session is evicted
        applier.apply(ClientRequest(other, 1, Command("credit", "z", (1,))))
    assert "a" not in applier.sessions
    status, result = applier.apply(first)                          # the retry, still never answered
    assert status == "error" and isinstance(result, dict) and result["error"] == "SessionExpired"
    assert applier.machine.apply(Command("balance", "k")) == 1
    copy = Applier(Ledger, SessionLimits(max_sessions=2))
    copy.restore(applier.snapshot())
    assert copy.apply(first)[0] == "error"                         # the memory survives a snapshot


def test_an_integer_of_thousands_of_digits_is_refused_on_the_wire_and_on_disk() -> None:
    from smr import wire
    from smr.net._values import loads

    with pytest.raises(smr.RemoteProtocolError):  # the old JSON frame that killed every node
        wire.decode(b'{"t": "smr.ClientRequest", "b": {"client_id": "c", "seq": ' + b"7" * 5000 + b"}}")
    with pytest.raises(smr.CorruptValue, match="not JSON"):
        loads(b"7" * 5000)
    with pytest.raises(smr.LocalProtocolError, match="cannot be put on the wire"):  # msgpack: 64 bits
        wire.encode(ClientRequest("c", 2 ** 70, Command("noop")))


def test_framework_names_cannot_be_commands_and_nested_classes_can_be_apps() -> None:
    for name in ("apply", "restore", "snapshot", "name", "_private"):
        with pytest.raises(TypeError, match="is reserved"):
            type("Clash", (smr.StateMachine,), {name: smr.command(lambda self: None)})
    assert resolve_app("app_fixtures:Holder.Nested").operations.keys() == {"ping"}


def test_a_module_that_exits_while_importing_is_a_config_error(tmp_path: Any) -> None:
    path = tmp_path / "quits.py"
    path.write_text("raise SystemExit(2)\n")
    with pytest.raises(ConfigError, match="cannot import .*SystemExit"):
        resolve_app(f"{path}:App")


def test_a_method_that_keeps_an_argument_does_not_change_the_log_entry_that_carried_it() -> None:
    from app_fixtures import Bag

    bag = Bag()
    init = Command("init", "", ([1],))
    bag.apply(init)
    bag.apply(Command("add", "", (2,)))
    assert init.args == ([1],) and bag.items == [1, 2]


async def test_a_query_answered_by_read_index_does_not_cost_the_client_its_next_command() -> None:
    from app_fixtures import Bag

    async with smr.open_local_cluster(Bag, backend="raft", options={"read_mode": "read_index"}) as cluster:
        bag = cluster.client(Bag)
        assert await bag.count() == 0        # no session made on the replicas for this
        assert await bag.add(7) == 1         # ... so this must not be refused as SessionExpired
        assert await bag.count() == 1


@pytest.mark.parametrize("data", [
    b'{"machine": "", "sessions": [], "applied": Infinity, "time_ms": 0, "dropped": 0, "recently_dropped": []}',
    b'{"machine": "", "sessions": [["c", 1, "ok", ' + b"[" * 3000 + b"]" * 3000 + b', 0]], "applied": 1, '
    b'"time_ms": 0, "dropped": 0, "recently_dropped": []}',
    b'{"machine": "e30=", "sessions": [], "applied": true, "time_ms": 0, "dropped": 0, "recently_dropped": []}',
])
def test_a_malformed_snapshot_is_a_corrupt_value_and_leaves_the_applier_as_it_was(data: bytes) -> None:
    applier = Applier(Ledger)
    applier.apply(ClientRequest("c", 1, Command("credit", "a", (1,))))
    before = applier.snapshot()
    with pytest.raises(smr.CorruptValue):
        applier.restore(data)
    assert applier.snapshot() == before


def test_a_multipaxos_replica_refuses_a_snapshot_that_does_not_restore_and_keeps_serving() -> None:
    from multipaxos.messages import Catchup, Snapshot

    registered = get_backend("multipaxos")
    net = Network(registered.factory, 3, dict(registered.options), 0, Ledger)
    net.elect("n1")
    ballot = getattr(net.cores["n1"], "ballot")
    ready = net.step("n2", smr.Receive("n1", Catchup(ballot, (), Snapshot(5, "not a snapshot"))))
    assert not ready and net.drivers["n2"].remote_errors == 1
    net.request("n1", Command("credit", "a", (2,)), "c1", 1)
    net.tick_all(5)
    assert net.replies_to("c1", 1)[-1].result == 2
    assert getattr(net.cores["n2"], "applier").machine.balances == {"a": 2}


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_a_new_leader_stamps_the_log_time_not_its_own_uptime(backend: str) -> None:
    registered = get_backend(backend)
    net = Network(registered.factory, 3, dict(registered.options), 0, Ledger)
    net.elect("n1")
    net.request("n1", Command("credit", "a", (1,)), "c1", 1)
    net.tick_all(5)
    before = max(getattr(core, "applier").time_ms for core in net.cores.values())
    setattr(net.cores["n2"], "clock_ms", 10.0 ** 9)  # n2 has been up far longer than the log has run
    net.elect("n2")
    net.request("n2", Command("credit", "a", (1,)), "c2", 1)
    net.tick_all(5)
    after = getattr(net.cores["n2"], "applier").time_ms
    assert before <= after < before + 10_000, (before, after)


def test_smr_compare_judges_a_users_app_by_the_replicas_agreement() -> None:
    from smr.compare import AGREED, compare, render_cells

    config = SimConfig(state_machine=Ledger, duration_ms=800, name="ledger",
                       faults=(FaultEvent(300, "crash_leader"), FaultEvent(500, "restart_all")))
    cells = compare([config], ["raft", "multipaxos"], [1, 2], jobs=1)
    assert all(r.verdict == AGREED and not r.workload_problems for c in cells for r in c.runs)
    assert "no model, 2/2 agree" in render_cells(cells)
    assert all(any(op.command.op in Ledger.operations for op in r.history) for c in cells for r in c.runs)
