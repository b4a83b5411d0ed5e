"""Built-in state machines are deterministic and snapshot faithfully."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smr import commands as c
from smr.commands import Command
from smr.errors import LocalProtocolError
from smr.machine import CommandError
from smr.replica import ClientRequest
from smr.sessions import Applier
from smr.state_machines import Counter, KVStore, WriteOnceMap, make_state_machine


def test_kv_get_put_cas_delete() -> None:
    kv = KVStore()
    assert kv.apply(c.get("x")) is None
    assert kv.apply(c.cas("x", None, "1")) is True
    assert kv.apply(c.cas("x", None, "2")) is False
    assert kv.apply(c.put("x", "3")) is None
    assert kv.apply(c.cas("x", "3", "4")) is True
    assert kv.apply(c.get("x")) == "4"
    assert kv.apply(c.delete("x")) is True
    assert kv.apply(c.delete("x")) is False


def test_counter_adds_and_reads() -> None:
    counter = Counter()
    assert counter.apply(c.add(2)) == 2
    assert counter.apply(c.add(3)) == 5
    assert counter.apply(c.read_counter()) == 5
    with pytest.raises(TypeError, match="amount must be an int"):
        counter.apply(c.add("x"))  # type: ignore[arg-type]


def test_write_once_first_write_wins_for_ever() -> None:
    """The essay's WriteOnce: tryInitialize is a no-op once initialised."""
    wo = WriteOnceMap()
    assert wo.apply(c.final_value("day")) is None
    assert wo.apply(c.try_init("day", "alice")) == "alice"
    assert wo.apply(c.try_init("day", "bob")) == "alice"
    assert wo.apply(c.final_value("day")) == "alice"


def test_unknown_operations_and_machines_are_local_errors() -> None:
    with pytest.raises(CommandError, match="kv has no command or query 'frobnicate'"):
        KVStore().apply(Command("frobnicate", "x"))
    with pytest.raises(LocalProtocolError, match="unknown state machine"):
        make_state_machine("nope")


kv_commands = st.one_of(
    st.builds(c.get, st.sampled_from("abc")),
    st.builds(c.put, st.sampled_from("abc"), st.text(max_size=3)),
    st.builds(c.cas, st.sampled_from("abc"), st.none() | st.text(max_size=1), st.text(max_size=3)),
    st.builds(c.delete, st.sampled_from("abc")),
)


@given(st.lists(kv_commands, max_size=30), st.lists(kv_commands, max_size=10))
def test_kv_snapshot_restore_continues_identically(prefix: list[Command], suffix: list[Command]) -> None:
    a = KVStore()
    for cmd in prefix:
        a.apply(cmd)
    b = KVStore()
    b.restore(a.snapshot())
    assert b.snapshot() == a.snapshot()
    assert [a.apply(cmd) for cmd in suffix] == [b.apply(cmd) for cmd in suffix]


def test_sessions_apply_a_retried_command_once() -> None:
    applier = Applier(Counter)
    first = applier.apply(ClientRequest("c1", 1, c.add(5)))
    again = applier.apply(ClientRequest("c1", 1, c.add(5)))
    assert first == again == ("ok", 5)
    assert applier.apply(ClientRequest("c1", 2, c.add(1))) == ("ok", 6)
    status, _ = applier.apply(ClientRequest("c1", 1, c.add(5)))  # stale: never re-applied
    assert status == "error"
    assert applier.machine.apply(c.read_counter()) == 6
    assert applier.lookup("c1", 2) == (True, "ok", 6)
    assert applier.is_stale("c1", 1)
    copy = Applier(Counter)
    copy.restore(applier.snapshot())
    assert copy.lookup("c1", 2) == (True, "ok", 6)
    assert copy.apply(ClientRequest("c1", 2, c.add(1))) == ("ok", 6)
