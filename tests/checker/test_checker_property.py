"""Property tests: the checker accepts what a real state machine did, and rejects a corrupted read.

Histories come from :func:`smr.checker.generate_history`, which runs the real
``smr.state_machines`` machines with every operation taking effect at a
random instant inside its interval.  A brute-force enumeration of all orders
cross-checks the search on tiny random histories, linearizable or not.
"""

from __future__ import annotations

import itertools
import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smr.checker import UNKNOWN, Status, check, generate_history, make_model
from smr.checker.models import Model
from smr.commands import Command, Scalar
from smr.history import Operation, Outcome

MODEL_NAMES = ("register", "kv", "counter", "write_once", "order")
_READ_OPS = {"read", "get", "final_value"}

fast = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def generated(draw: st.DrawFn, max_ops: int = 60) -> tuple[str, list[Operation]]:
    model = draw(st.sampled_from(MODEL_NAMES))
    history = generate_history(
        random.Random(draw(st.integers(0, 2**32))),
        operations=draw(st.integers(0, max_ops)),
        clients=draw(st.integers(1, 6)),
        model=model,
        keys=draw(st.integers(1, 3)),
        values=draw(st.integers(1, 4)),
        unknown_rate=draw(st.sampled_from([0.0, 0.1, 0.3])),
        fail_rate=draw(st.sampled_from([0.0, 0.1])),
    )
    return model, history


@fast
@given(generated())
def test_histories_of_a_real_state_machine_are_linearizable(case: tuple[str, list[Operation]]) -> None:
    """Whatever the concurrency, a history the real machine produced has a linearization."""
    model, history = case
    verdict = check(history, make_model(model))
    assert verdict.status is Status.LINEARIZABLE, verdict.describe()


def _corrupt(model: str, op: Operation) -> Operation:
    """The same read, returning a value no operation ever wrote (or a total no adds can make)."""
    never: Scalar = -1 if model == "counter" else "never-written"
    return Operation(op.id, op.process, op.command, op.invoke, op.complete, op.outcome, never)


@fast
@given(generated(), st.data())
def test_a_read_of_a_never_written_value_is_caught(case: tuple[str, list[Operation]],
                                                  data: st.DataObject) -> None:
    """Corrupting one ok read to return a never-written value makes the history non-linearizable."""
    model, history = case
    reads = [i for i, op in enumerate(history) if op.outcome is Outcome.OK and op.command.op in _READ_OPS]
    if not reads:
        return
    victim = data.draw(st.sampled_from(reads))
    history[victim] = _corrupt(model, history[victim])
    verdict = check(history, make_model(model))
    assert verdict.status is Status.NOT_LINEARIZABLE
    assert verdict.counterexample is not None
    # No order can get past the corrupted read's completion, so the op blamed completes no later.
    assert verdict.counterexample.failed.end <= history[victim].end


# --- brute force cross-check -----------------------------------------------------------------


def brute_force(model: Model, ops: list[Operation]) -> bool:
    """Try every subset of unknown operations and every order respecting real time."""
    ops = [op for op in ops if op.outcome is not Outcome.FAIL]
    ok = [op for op in ops if op.outcome is Outcome.OK]
    unknown = [op for op in ops if op.outcome is Outcome.UNKNOWN]
    for r in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, r):
            pool = ok + list(chosen)
            for order in itertools.permutations(pool):
                if any(order[b].end < order[a].invoke for a in range(len(order))
                       for b in range(a + 1, len(order))):
                    continue  # b completed before a was invoked, but comes after it
                by_key: dict[object, object] = {}
                good = True
                for op in order:
                    key = model.partition_key(op.command)
                    state = by_key.get(key, model.init())
                    result = UNKNOWN if op.outcome is Outcome.UNKNOWN else op.result
                    new = model.step(state, op.command, result)  # type: ignore[arg-type]
                    if new is None:
                        good = False
                        break
                    by_key[key] = new
                if good:
                    return True
    return False


_SHAPES = {
    "register": [("read", 0), ("write", 1), ("cas", 2)],
    "kv": [("get", 0), ("put", 1), ("cas", 2), ("delete", 0)],
    "counter": [("add", 1), ("read", 0)],
    "write_once": [("try_init", 1), ("final_value", 0)],
}


@st.composite
def random_history(draw: st.DrawFn) -> tuple[str, list[Operation]]:
    """Up to 5 operations with random intervals and random results: often not linearizable."""
    model = draw(st.sampled_from(sorted(_SHAPES)))
    values = st.sampled_from([None, 1, 2]) if model != "counter" else st.integers(0, 3)
    ops = []
    for i in range(draw(st.integers(1, 5))):
        op, arity = draw(st.sampled_from(_SHAPES[model]))
        args = tuple(draw(st.integers(1, 2) if model == "counter" else st.sampled_from([1, 2]))
                     for _ in range(arity))
        key = draw(st.sampled_from(["", "x"])) if model != "register" else ""
        invoke = draw(st.integers(0, 6))
        outcome = draw(st.sampled_from([Outcome.OK, Outcome.OK, Outcome.UNKNOWN, Outcome.FAIL]))
        complete = None if outcome is Outcome.UNKNOWN else invoke + draw(st.integers(0, 4))
        if outcome is not Outcome.OK:
            result = None
        elif op in ("cas", "delete"):
            result = draw(st.booleans())
        elif op in ("write", "put"):
            result = None
        else:
            result = draw(values)
        ops.append(Operation(i, f"p{i}", Command(op, key, args), invoke, complete, outcome, result))
    return model, ops


@settings(max_examples=300, deadline=None)
@given(random_history())
def test_search_agrees_with_brute_force(case: tuple[str, list[Operation]]) -> None:
    """On tiny histories the search's answer equals exhaustive enumeration of all orders."""
    name, ops = case
    model = make_model(name)
    expected = Status.LINEARIZABLE if brute_force(model, ops) else Status.NOT_LINEARIZABLE
    assert check(ops, model).status is expected


def test_ten_thousand_operations_with_twenty_clients_in_seconds() -> None:
    """The search handles a 10 000-operation KV history from 20 clients quickly."""
    history = generate_history(random.Random(7), operations=10_000, clients=20, model="kv", keys=8,
                               unknown_rate=0.01, fail_rate=0.01)
    started = time.perf_counter()
    verdict = check(history, make_model("kv"))
    assert verdict.status is Status.LINEARIZABLE
    assert time.perf_counter() - started < 10
