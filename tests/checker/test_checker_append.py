"""The kv model's ``append`` (Porcupine's and Jepsen's kv workloads): the real KVStore, the model, the readers."""

from __future__ import annotations

import random

import pytest

from smr.checker import Status, check, generate_history, make_model
from smr.checker.formats import parse_edn_history
from smr.commands import Command
from smr.errors import LocalProtocolError
from smr.history import Operation, Outcome
from smr.state_machines import KVStore


@pytest.mark.parametrize(("clients", "operations"), [(1, 200), (10, 200), (50, 50)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_get_put_append_histories_of_the_real_store_pass_and_one_corrupted_read_fails(
        clients: int, operations: int, seed: int) -> None:
    history = generate_history(random.Random(seed), operations=operations, clients=clients, model="kv", keys=6,
                               values=4, append=True, unknown_rate=0.1)
    assert {op.command.op for op in history} == {"get", "put", "append"}
    assert check(history, make_model("kv")).status is Status.LINEARIZABLE
    reads = [i for i, op in enumerate(history) if op.outcome is Outcome.OK and op.command.op == "get"]
    victim = history[random.Random(seed).choice(reads)]
    history[history.index(victim)] = Operation(victim.id, victim.process, victim.command, victim.invoke,
                                               victim.complete, victim.outcome, "never-written")
    verdict = check(history, make_model("kv"))
    assert verdict.status is Status.NOT_LINEARIZABLE and verdict.counterexample is not None


def test_append_concatenates_strings_and_refuses_anything_else() -> None:
    store = KVStore()
    store.append("k", "a")
    store.put("n", None)
    store.append("n", "x")
    store.append("k", "b")
    assert store.data == {"k": "ab", "n": "x"}
    store.put("i", 3)
    with pytest.raises(TypeError):
        store.append("i", "a")
    with pytest.raises(TypeError):
        store.append("k", 1)  # type: ignore[arg-type]


def _op(i: int, p: str, cmd: Command, start: float, end: float, result: object) -> Operation:
    return Operation(i, p, cmd, start, end, Outcome.OK, result)


def test_the_model_orders_appends_by_what_reads_saw() -> None:
    kv = make_model("kv")
    a, b = Command("append", "k", ("a",)), Command("append", "k", ("b",))
    get = Command("get", "k")
    ok = [_op(0, "p0", a, 0, 10, None), _op(1, "p1", b, 0, 10, None), _op(2, "p2", get, 11, 12, "ba")]
    assert check(ok, kv).status is Status.LINEARIZABLE
    torn = [*ok[:2], _op(2, "p2", get, 11, 12, "a")]  # both appends completed before the read
    assert check(torn, kv).status is Status.NOT_LINEARIZABLE
    on_int = [_op(0, "p0", Command("put", "k", (1,)), 0, 1, None), _op(1, "p1", a, 2, 3, None)]
    assert check(on_int, kv).status is Status.NOT_LINEARIZABLE  # the real store fails that append
    with pytest.raises(LocalProtocolError, match="append takes a string"):
        kv.validate(Command("append", "k", (1,)))


def test_the_edn_reader_takes_jepsen_appends() -> None:
    text = "\n".join([
        '{:process 0 :type :invoke :f :append :value [:x "a"]}',
        '{:process 0 :type :ok :f :append :value [:x "a"]}',
        '{:process 1 :type :invoke :f :read :value [:x nil]}',
        '{:process 1 :type :ok :f :read :value [:x "a"]}',
    ])
    history = parse_edn_history(text)
    assert history[0].command == Command("append", "x", ("a",)) and history[0].result is None
    assert check(history, make_model("kv")).status is Status.LINEARIZABLE
