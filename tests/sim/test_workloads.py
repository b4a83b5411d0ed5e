"""Each workload's own invariants hold on real runs and catch a deliberately violated history."""

from __future__ import annotations

import random

import pytest

from smr.commands import Command, add, final_value, get, put, read_counter, try_init
from smr.errors import LocalProtocolError
from smr.history import Operation, Outcome
from smr.sim import ClientConfig, SimConfig, simulate
from workloads import KeyChooser, make_workload, workload_names


def op(i: int, command: Command, invoke: float, complete: float | None, result: object = None,
       outcome: Outcome = Outcome.OK, process: str = "c1") -> Operation:
    if complete is None:
        outcome = Outcome.UNKNOWN
    return Operation(i, process, command, invoke, complete, outcome, result)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["kv", "counter", "orders", "user_of_the_day"])
def test_invariants_hold_on_a_real_run(name: str) -> None:
    workload = make_workload(name)
    config = SimConfig(nodes=3, duration_ms=600, clients=ClientConfig(count=4, workload=name))
    result = simulate(config, 11)
    assert sum(o.outcome is Outcome.OK for o in result.history) > 100
    assert workload.check(result.history) == []


def test_orders_never_both_shipped_and_cancelled() -> None:
    """A history where one reader sees 'shipped' and another 'cancelled' must be caught."""
    history = [op(0, try_init("order-1", "shipped"), 0, 1, "shipped"),
               op(1, try_init("order-1", "cancelled"), 2, 3, "cancelled", process="c2")]
    problems = make_workload("orders").check(history)
    assert problems == ["order-1 was seen cancelled and shipped"]


def test_user_of_the_day_is_exactly_one_user() -> None:
    history = [op(0, try_init("day-1", "user-1"), 0, 1, "user-1"),
               op(1, final_value("day-1"), 2, 3, "user-2", process="c2"),
               op(2, try_init("day-1", "user-2"), 0, 5, "user-2", process="c3")]
    problems = make_workload("user_of_the_day").check(history)
    assert any("2 users of the day" in p for p in problems)
    never = [op(0, final_value("day-9"), 0, 1, "user-7")]
    assert any("never proposed" in p for p in make_workload("user_of_the_day").check(never))


def test_counter_catches_a_lost_and_a_doubled_increment() -> None:
    workload = make_workload("counter")
    lost = [op(0, add(2), 0, 1, 2), op(1, add(3), 2, 3, 5), op(2, read_counter(), 4, 5, 2)]
    assert any("outside [5, 5]" in p for p in workload.check(lost))
    doubled = [op(0, add(2), 0, 1, 2), op(1, add(2), 2, None), op(2, read_counter(), 4, 5, 6)]
    assert any("outside [2, 4]" in p for p in workload.check(doubled))
    fine = [op(0, add(2), 0, 1, 2), op(1, add(2), 2, None), op(2, read_counter(), 4, 5, 4)]
    assert workload.check(fine) == []


def test_kv_catches_a_read_of_a_value_never_written() -> None:
    history = [op(0, put("k0", "1.1"), 0, 1), op(1, get("k0"), 2, 3, "9.9")]
    assert make_workload("kv").check(history) == ["op 1: read '9.9' from k0, never written"]


@pytest.mark.parametrize("distribution", ["uniform", "zipfian", "hotspot"])
def test_key_distributions_have_their_shape(distribution: str) -> None:
    chooser = KeyChooser(100, distribution)  # type: ignore[arg-type]
    rng = random.Random(1)
    picks = [chooser.pick(rng) for _ in range(5000)]
    assert all(0 <= p < 100 for p in picks)
    top = sum(1 for p in picks if p < 10) / len(picks)
    if distribution == "uniform":
        assert 0.05 < top < 0.15
    elif distribution == "zipfian":
        assert top > 0.4
    else:
        # The first 200 picks mostly hit keys 0..9; picks 4000..4199 mostly hit keys 20..29.
        assert sum(p < 10 for p in picks[:199]) / 199 > 0.8
        assert sum(20 <= p < 30 for p in picks[4000:4199]) / 199 > 0.8


def test_unknown_workloads_and_options_are_local_errors() -> None:
    assert {"kv", "counter", "orders", "user_of_the_day"} <= set(workload_names())
    with pytest.raises(LocalProtocolError, match="unknown workload"):
        make_workload("nope")
    with pytest.raises(LocalProtocolError, match="bad options"):
        make_workload("kv", {"colour": "red"})


def test_open_loop_clients_arrive_at_the_target_rate() -> None:
    config = SimConfig(nodes=3, duration_ms=1000,
                       clients=ClientConfig(mode="open", rate_per_s=400, workload="kv"))
    result = simulate(config, 2)
    assert 300 < len(result.history) < 500
    assert len({o.process for o in result.history}) == len(result.history)
