"""The checker's HTML page: what it computes (linearization points, the states a stuck operation could see) and says."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from smr.checker import Status, explain, generate_history, make_model
from smr.checker.page import linearization_points, render_check_page, states_it_could_see
from smr.cli import main
from smr.commands import Command
from smr.history import Operation, Outcome, dump_history


def _op(n: int, process: str, op: str, args: tuple[object, ...], invoke: float, complete: float | None,
        result: object = None) -> Operation:
    outcome = Outcome.UNKNOWN if complete is None else Outcome.OK
    return Operation(n, process, Command(op, "x", args), invoke, complete, outcome, result)


def test_a_stuck_read_could_have_seen_every_write_concurrent_with_it_and_the_last_one_before() -> None:
    history = [
        _op(1, "a", "write", (1,), 0.0, 1.0),
        _op(2, "b", "write", (2,), 2.0, 5.0),
        _op(3, "c", "write", (3,), 3.0, 6.0),
        _op(4, "d", "read", (), 4.0, 7.0, 9),  # 9 was never written
        _op(5, "a", "write", (5,), 8.0, 9.0),  # after the read: never visible to it
    ]
    model = make_model("register")
    explanation = explain(history, model)
    assert explanation.verdict.status is Status.NOT_LINEARIZABLE
    found = explanation.found["x"]
    assert history[found.blocked].id == 4
    states, complete = states_it_could_see(model, explanation.pieces["x"], found.blocked, found.order, found.state)
    assert complete and states == ["1", "2", "3"]


def test_an_operation_that_completed_before_the_stuck_one_began_must_precede_it() -> None:
    history = [
        _op(1, "a", "write", (1,), 0.0, 1.0),
        _op(2, "a", "write", (2,), 1.5, 2.0),  # completed before the read began: 1 is gone
        _op(3, "b", "read", (), 3.0, 4.0, 7),
        _op(4, "c", "write", (4,), 0.5, None),  # unknown outcome: may take effect any time, or never
    ]
    model = make_model("register")
    explanation = explain(history, model)
    found = explanation.found["x"]
    states, _ = states_it_could_see(model, explanation.pieces["x"], found.blocked, found.order, found.state)
    assert states == ["2", "4"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_linearization_points_lie_inside_each_operation_and_never_go_back(seed: int) -> None:
    history = generate_history(random.Random(seed), operations=150, clients=8, model="kv", keys=3, values=3,
                               append=True, unknown_rate=0.1)
    explanation = explain(history, make_model("kv"))
    assert explanation.verdict.status is Status.LINEARIZABLE
    for key, found in explanation.found.items():
        ordered = [explanation.pieces[key][i] for i in found.order]
        points = linearization_points(ordered)
        assert points == sorted(points)
        for op, t in zip(ordered, points):
            assert op.invoke <= t and (op.complete is None or t <= op.complete), (op, t)


def _corrupted(seed: int, clients: int) -> tuple[list[Operation], Operation]:
    history = generate_history(random.Random(seed), operations=200, clients=clients, model="kv", keys=6,
                               values=4, append=True, unknown_rate=0.1)
    reads = [op for op in history if op.outcome is Outcome.OK and op.command.op == "get"]
    victim = random.Random(seed).choice(reads)
    bad = Operation(victim.id, victim.process, victim.command, victim.invoke, victim.complete, victim.outcome,
                    "never-written")
    history[history.index(victim)] = bad
    return history, bad


def test_the_page_names_the_operation_that_cannot_be_placed_and_what_it_could_have_returned() -> None:
    history, bad = _corrupted(2, 10)
    model = make_model("kv")
    explanation = explain(history, model)
    assert explanation.verdict.counterexample is not None
    failed = explanation.verdict.counterexample.failed
    page = render_check_page(explanation, model, "h.jsonl")
    assert "NOT LINEARIZABLE" in page and f"#{failed.id} " in page
    assert "it could have seen" in page and "never-written" in page


def test_smr_check_html_writes_the_page_and_keeps_its_exit_status(tmp_path: Path) -> None:
    history, _ = _corrupted(3, 50)
    source = tmp_path / "h.jsonl"
    with source.open("w") as f:
        dump_history(history, f)
    out = tmp_path / "check.html"
    assert main(["check", str(source), "--model", "kv", "--html", str(out)]) == 1
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "NOT LINEARIZABLE" in text
    assert out.stat().st_size < 3_000_000


def test_a_long_history_is_explored_only_through_its_minimal_operations() -> None:
    """4,000 operations by 4 processes on one register: the states of the stuck read come from its few
    concurrent writes, found without enumerating every order of the whole history."""
    rng = random.Random(5)
    history: list[Operation] = []
    clock = [0.0] * 4
    for n in range(4000):
        p = n % 4
        start = clock[p] + rng.uniform(0.0, 0.5)
        clock[p] = start + rng.uniform(0.1, 1.0)
        history.append(_op(n, f"p{p}", "write", (n,), start, clock[p]))
    last = max(clock)
    history.append(_op(4000, "reader", "read", (), last - 0.3, last + 1.0, -1))
    model = make_model("register")
    explanation = explain(history, model)
    found = explanation.found["x"]
    assert history[found.blocked].id == 4000
    states, complete = states_it_could_see(model, explanation.pieces["x"], found.blocked, found.order, found.state)
    assert complete and 1 <= len(states) <= 4
    assert all(int(state) >= 3990 for state in states)


def test_the_page_says_why_a_stuck_operation_that_could_have_returned_its_result_is_stuck() -> None:
    history = [
        _op(1, "a", "write", (1,), 0.0, 2.0),
        _op(2, "b", "write", (2,), 0.0, 2.0),
        _op(3, "c", "read", (), 3.0, 4.0, 1),
        _op(4, "d", "read", (), 3.0, 4.0, 2),  # both reads after both writes: one of them must be wrong
    ]
    model = make_model("register")
    page = render_check_page(explain(history, model), model, "h.jsonl")
    assert "leaves another operation no place" in page


def test_non_finite_times_are_refused_when_a_history_is_read(tmp_path: Path) -> None:
    source = tmp_path / "h.jsonl"
    source.write_text('{"id": 1, "process": "a", "op": "write", "key": "x", "args": [1], '
                      '"invoke": NaN, "complete": 1.0, "outcome": "ok", "result": null}\n')
    assert main(["check", str(source), "--model", "register", "--html", str(tmp_path / "p.html")]) == 2
    assert not (tmp_path / "p.html").exists()
