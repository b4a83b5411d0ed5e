"""Hand-written histories, each with the reason it is or is not linearizable.

Times are small integers; an operation ``[a, b]`` may take effect at any
instant between its invocation ``a`` and completion ``b``.
"""

from __future__ import annotations

import json

import pytest

from smr.checker import (
    Budget,
    CounterModel,
    KVModel,
    Model,
    OrderModel,
    RegisterModel,
    Status,
    WriteOnceModel,
    check,
    partition,
)
from smr.commands import Command, Scalar
from smr.errors import LocalProtocolError
from smr.history import Operation, Outcome

OK, FAIL, UNKNOWN = Outcome.OK, Outcome.FAIL, Outcome.UNKNOWN


class H:
    """A tiny history builder: ``h.op("p1", "write", 1, at=(0, 1))``."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def op(self, process: str, op: str, *args: Scalar, at: tuple[float, float | None],
           result: Scalar = None, key: str = "", outcome: Outcome = OK) -> Operation:
        invoke, complete = at
        if outcome is UNKNOWN:
            complete = None
        o = Operation(len(self.ops), process, Command(op, key, args), invoke, complete, outcome, result)
        self.ops.append(o)
        return o


def status(h: H, model: Model) -> Status:
    return check(h.ops, model).status


# --- register -----------------------------------------------------------------------------


def test_sequential_register_history_is_linearizable() -> None:
    """Each operation finishes before the next starts and every read sees the last write."""
    h = H()
    h.op("p1", "read", at=(0, 1), result=None)
    h.op("p1", "write", 1, at=(2, 3))
    h.op("p2", "read", at=(4, 5), result=1)
    h.op("p2", "write", 2, at=(6, 7))
    h.op("p1", "read", at=(8, 9), result=2)
    assert status(h, RegisterModel()) is Status.LINEARIZABLE


def test_concurrent_overlapping_writes_may_take_effect_in_either_order() -> None:
    """write 1 and write 2 overlap, so a later read may see either -- here 1, so 2 went first."""
    h = H()
    h.op("p1", "write", 1, at=(0, 10))
    h.op("p2", "write", 2, at=(1, 11))
    h.op("p3", "read", at=(12, 13), result=1)
    h.op("p3", "read", at=(14, 15), result=1)
    assert status(h, RegisterModel()) is Status.LINEARIZABLE


def test_reads_cannot_flip_back_after_overlapping_writes_complete() -> None:
    """After both writes completed the value is fixed: reading 1, then 2, then 1 needs a third write."""
    h = H()
    h.op("p1", "write", 1, at=(0, 10))
    h.op("p2", "write", 2, at=(1, 11))
    h.op("p3", "read", at=(12, 13), result=1)
    h.op("p3", "read", at=(14, 15), result=2)
    assert status(h, RegisterModel()) is Status.NOT_LINEARIZABLE


def test_stale_read_is_not_linearizable() -> None:
    """write 2 completed before the read began, so reading the older value 1 is stale."""
    h = H()
    h.op("p1", "write", 1, at=(0, 1))
    h.op("p1", "write", 2, at=(2, 3))
    h.op("p2", "read", at=(4, 5), result=1)
    verdict = check(h.ops, RegisterModel())
    assert verdict.status is Status.NOT_LINEARIZABLE
    cex = verdict.counterexample
    assert cex is not None
    assert cex.failed.id == 2
    assert [op.id for op in cex.prefix] == [0, 1]
    assert cex.state == "2"
    assert any(line.lstrip().startswith("!!") and "#2 read -> 1" in line for line in cex.timeline)
    json.dumps(verdict.to_json())


def test_read_concurrent_with_write_may_see_old_or_new_value() -> None:
    """A read overlapping a write may take effect before it (old value) or after it (new value)."""
    for seen in (None, 1):
        h = H()
        h.op("p1", "write", 1, at=(0, 10))
        h.op("p2", "read", at=(2, 3), result=seen)
        assert status(h, RegisterModel()) is Status.LINEARIZABLE


def test_cas_chain_is_linearizable() -> None:
    """cas 0->1 and 1->2 succeed in turn, a cas expecting 0 then fails, and the read sees 2."""
    h = H()
    h.op("p1", "write", 0, at=(0, 1))
    h.op("p1", "cas", 0, 1, at=(2, 3), result=True)
    h.op("p2", "cas", 1, 2, at=(4, 5), result=True)
    h.op("p3", "cas", 0, 9, at=(6, 7), result=False)
    h.op("p1", "read", at=(8, 9), result=2)
    assert status(h, RegisterModel()) is Status.LINEARIZABLE


def test_two_concurrent_cas_from_the_same_value_cannot_both_succeed() -> None:
    """cas 0->1 and cas 0->2 overlap; whichever goes second finds the value changed and must fail."""
    h = H()
    h.op("p1", "write", 0, at=(0, 1))
    h.op("p1", "cas", 0, 1, at=(2, 5), result=True)
    h.op("p2", "cas", 0, 2, at=(3, 6), result=True)
    assert status(h, RegisterModel()) is Status.NOT_LINEARIZABLE


def test_a_failed_cas_must_see_a_different_value() -> None:
    """cas 0->1 returned False, yet the register held 0 all along: impossible."""
    h = H()
    h.op("p1", "write", 0, at=(0, 1))
    h.op("p1", "cas", 0, 1, at=(2, 3), result=False)
    assert status(h, RegisterModel()) is Status.NOT_LINEARIZABLE


def test_bools_and_ints_are_different_values() -> None:
    """A register holding 1 does not hold True: the read returned something never written."""
    h = H()
    h.op("p1", "write", 1, at=(0, 1))
    h.op("p1", "read", at=(2, 3), result=True)
    assert status(h, RegisterModel()) is Status.NOT_LINEARIZABLE


# --- unknown and failed operations -----------------------------------------------------------


def test_unknown_write_must_take_effect_when_its_value_is_read() -> None:
    """Only the timed-out write wrote 2, so the read of 2 proves it took effect (after its invocation)."""
    h = H()
    h.op("p1", "write", 1, at=(0, 1))
    h.op("p2", "write", 2, at=(2, None), outcome=UNKNOWN)
    h.op("p3", "read", at=(3, 4), result=2)
    h.op("p3", "read", at=(5, 6), result=2)
    assert status(h, RegisterModel()) is Status.LINEARIZABLE


def test_unknown_write_cannot_take_effect_before_its_invocation() -> None:
    """The read of 2 completed before the unknown write of 2 was even invoked."""
    h = H()
    h.op("p1", "read", at=(0, 1), result=2)
    h.op("p2", "write", 2, at=(2, None), outcome=UNKNOWN)
    assert status(h, RegisterModel()) is Status.NOT_LINEARIZABLE


def test_unknown_write_whose_value_is_never_seen_may_never_take_effect() -> None:
    """Nobody reads 2, so the timed-out write may simply never have happened."""
    h = H()
    unknown = h.op("p2", "put", 2, key="x", at=(2, None), outcome=UNKNOWN)
    h.op("p3", "get", key="x", at=(3, 4), result=None)
    h.op("p3", "get", key="x", at=(5, 6), result=None)
    h.op("p1", "put", 1, key="x", at=(7, 8))
    h.op("p3", "get", key="x", at=(9, 10), result=1)
    assert status(h, KVModel()) is Status.LINEARIZABLE

    # Had the client been told the put succeeded when it gave up, the history would be wrong:
    # the put would have to take effect before the reads of None, which then could not see None.
    forced = [op if op is not unknown else Operation(op.id, op.process, op.command, op.invoke, 2.5,
                                                     OK, None) for op in h.ops]
    assert check(forced, KVModel()).status is Status.NOT_LINEARIZABLE


def test_unknown_operations_never_block_completion() -> None:
    """A history of only unknown operations (and reads consistent without them) is linearizable."""
    h = H()
    h.op("p1", "write", 5, at=(0, None), outcome=UNKNOWN)
    h.op("p2", "cas", 1, 2, at=(1, None), outcome=UNKNOWN)
    h.op("p3", "read", at=(2, 3), result=None)
    assert status(h, RegisterModel()) is Status.LINEARIZABLE


def test_failed_operations_are_ignored() -> None:
    """write 2 failed, so it never happened: reading 1 afterwards is fine..."""
    h = H()
    h.op("p1", "write", 1, at=(0, 1))
    h.op("p2", "write", 2, at=(2, 3), outcome=FAIL)
    h.op("p3", "read", at=(4, 5), result=1)
    assert status(h, RegisterModel()) is Status.LINEARIZABLE


def test_value_written_only_by_a_failed_operation_cannot_be_read() -> None:
    """...but reading 2 is not: the only write of 2 definitely did not take effect."""
    h = H()
    h.op("p1", "write", 1, at=(0, 1))
    h.op("p2", "write", 2, at=(2, 3), outcome=FAIL)
    h.op("p3", "read", at=(4, 5), result=2)
    assert status(h, RegisterModel()) is Status.NOT_LINEARIZABLE


# --- KV map -------------------------------------------------------------------------------------


def test_lost_write_is_not_linearizable() -> None:
    """put x 1 was acknowledged, yet a later get finds x missing: the write was lost."""
    h = H()
    h.op("p1", "put", 1, key="x", at=(0, 1))
    h.op("p2", "put", 7, key="y", at=(0, 1))
    h.op("p2", "get", key="x", at=(2, 3), result=None)
    verdict = check(h.ops, KVModel())
    assert verdict.status is Status.NOT_LINEARIZABLE
    assert verdict.counterexample is not None and verdict.counterexample.partition == "'x'"


def test_kv_delete_and_cas_on_missing_keys() -> None:
    """delete reports whether the key existed; a missing key holds None for cas."""
    h = H()
    h.op("p1", "delete", key="x", at=(0, 1), result=False)
    h.op("p1", "cas", None, 3, key="x", at=(2, 3), result=True)
    h.op("p1", "delete", key="x", at=(4, 5), result=True)
    h.op("p1", "get", key="x", at=(6, 7), result=None)
    assert status(h, KVModel()) is Status.LINEARIZABLE
    h.op("p1", "delete", key="x", at=(8, 9), result=True)
    assert status(h, KVModel()) is Status.NOT_LINEARIZABLE


def test_partition_splits_by_key_and_drops_failed_operations() -> None:
    """Keys are independent pieces; failed operations never happened so no piece holds them."""
    h = H()
    h.op("p1", "put", 1, key="x", at=(0, 1))
    h.op("p1", "put", 2, key="y", at=(2, 3), outcome=FAIL)
    h.op("p2", "get", key="y", at=(0, 4), result=None)
    h.op("p2", "get", key="x", at=(5, 6), result=1)
    pieces = partition(h.ops, KVModel())
    assert {k: [op.id for op in v] for k, v in pieces.items()} == {"x": [0, 3], "y": [2]}
    assert check(h.ops, KVModel()).partitions == 2


# --- counter ----------------------------------------------------------------------------------


def test_counter_concurrent_adds() -> None:
    """Two overlapping adds return 1 and 3, so add(1) went first; the read sees the total."""
    h = H()
    h.op("p1", "add", 1, at=(0, 5), result=1)
    h.op("p2", "add", 2, at=(1, 6), result=3)
    h.op("p3", "read", at=(7, 8), result=3)
    assert status(h, CounterModel()) is Status.LINEARIZABLE


def test_counter_adds_cannot_both_see_the_empty_counter() -> None:
    """Two adds of 1 cannot both return 1: whichever went second saw the other."""
    h = H()
    h.op("p1", "add", 1, at=(0, 5), result=1)
    h.op("p2", "add", 1, at=(1, 6), result=1)
    assert status(h, CounterModel()) is Status.NOT_LINEARIZABLE


def test_counter_read_cannot_go_backwards() -> None:
    """A read of 0 after an acknowledged add of 1 misses it."""
    h = H()
    h.op("p1", "add", 1, key="hits", at=(0, 1), result=1)
    h.op("p2", "read", key="hits", at=(2, 3), result=0)
    assert status(h, CounterModel()) is Status.NOT_LINEARIZABLE


# --- write-once and orders ---------------------------------------------------------------------


def test_write_once_first_writer_wins() -> None:
    """Concurrent try_init a and b: b lost, so both return a, and so does every final_value after."""
    h = H()
    h.op("p0", "final_value", key="day", at=(0, 1), result=None)
    h.op("p1", "try_init", "a", key="day", at=(2, 6), result="a")
    h.op("p2", "try_init", "b", key="day", at=(3, 7), result="a")
    h.op("p3", "final_value", key="day", at=(8, 9), result="a")
    assert status(h, WriteOnceModel()) is Status.LINEARIZABLE


def test_write_once_cannot_agree_on_two_values() -> None:
    """try_init a returned a and try_init b returned b: two final values, an agreement violation."""
    h = H()
    h.op("p1", "try_init", "a", key="day", at=(0, 6), result="a")
    h.op("p2", "try_init", "b", key="day", at=(1, 7), result="b")
    assert status(h, WriteOnceModel()) is Status.NOT_LINEARIZABLE


def test_write_once_final_value_cannot_be_none_after_an_init() -> None:
    """final_value may return None only before any try_init took effect."""
    h = H()
    h.op("p1", "try_init", "a", key="day", at=(0, 1), result="a")
    h.op("p2", "final_value", key="day", at=(2, 3), result=None)
    assert status(h, WriteOnceModel()) is Status.NOT_LINEARIZABLE


def test_order_is_shipped_or_cancelled_but_never_both() -> None:
    """Shipping and cancelling race; cancel lost, so it reports the order shipped."""
    h = H()
    h.op("shop", "try_init", "shipped", key="order-7", at=(0, 4), result="shipped")
    h.op("user", "try_init", "cancelled", key="order-7", at=(1, 5), result="shipped")
    h.op("user", "final_value", key="order-7", at=(6, 7), result="shipped")
    assert status(h, OrderModel()) is Status.LINEARIZABLE

    both = H()
    both.op("shop", "try_init", "shipped", key="order-7", at=(0, 4), result="shipped")
    both.op("user", "try_init", "cancelled", key="order-7", at=(1, 5), result="cancelled")
    verdict = check(both.ops, OrderModel())
    assert verdict.status is Status.NOT_LINEARIZABLE
    assert verdict.counterexample is not None
    assert verdict.counterexample.state in ("'shipped'", "'cancelled'")


def test_order_pending_reads_none() -> None:
    """final_value returns None while the order is pending, and the state once decided."""
    h = H()
    h.op("user", "final_value", key="o", at=(0, 1), result=None)
    h.op("shop", "try_init", "cancelled", key="o", at=(2, 3), result="cancelled")
    h.op("user", "final_value", key="o", at=(4, 5), result="cancelled")
    assert status(h, OrderModel()) is Status.LINEARIZABLE


def test_order_rejects_any_other_state() -> None:
    """An order can only become shipped or cancelled; anything else is an input error."""
    h = H()
    h.op("shop", "try_init", "returned", key="o", at=(0, 1), result="returned")
    with pytest.raises(LocalProtocolError, match="shipped"):
        check(h.ops, OrderModel())


def test_unknown_op_name_is_an_input_error() -> None:
    """A model refuses commands it does not define, naming them."""
    h = H()
    h.op("p1", "increment", at=(0, 1))
    with pytest.raises(LocalProtocolError, match="increment"):
        check(h.ops, RegisterModel())


# --- budget ---------------------------------------------------------------------------------


def _pathological(writers: int = 12) -> H:
    """Many overlapping writes of distinct values and a read of a value none wrote.

    Refuting it means trying the writes' orders (memoised: subsets times last value), far more
    than a tiny budget allows.
    """
    h = H()
    for w in range(writers):
        h.op(f"w{w}", "write", w, at=(0, 100))
    for r in range(writers):
        h.op(f"r{r}", "read", at=(1, 99), result=(r + 1) % writers)
    h.op("late", "read", at=(101, 102), result=999)
    return h


def test_exhausted_step_budget_gives_unknown_never_a_pass() -> None:
    """With a tiny step budget the search cannot finish, so the verdict is unknown."""
    assert check(_pathological(8).ops, RegisterModel()).status is Status.NOT_LINEARIZABLE
    verdict = check(_pathological().ops, RegisterModel(), Budget(max_steps=50))
    assert verdict.status is Status.UNKNOWN
    assert "50 model steps" in verdict.reason
    assert verdict.steps <= 50
    assert verdict.counterexample is None


def test_exhausted_time_budget_gives_unknown() -> None:
    """A tiny wall-clock budget also yields unknown rather than a verdict."""
    verdict = check(_pathological(16).ops, RegisterModel(), Budget(timeout=1e-9))
    assert verdict.status is Status.UNKNOWN


def test_budget_must_be_positive() -> None:
    """A zero or negative budget is a caller mistake."""
    with pytest.raises(LocalProtocolError):
        Budget(max_steps=0)
