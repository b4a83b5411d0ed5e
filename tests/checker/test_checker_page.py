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
    states, complete = states_it_could_see(model, explanation.pieces["x"], found.blocked)
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
    states, _ = states_it_could_see(model, explanation.pieces["x"], found.blocked)
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
    assert "could have seen only" in page and "never-written" in page


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
