"""Built-in state machines are deterministic and snapshot faithfully."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smr import commands as c
from smr.commands import Command
from smr.errors import LocalProtocolError
from smr.machine import CommandError, SessionExpired
from smr.replica import ClientRequest
from smr.sessions import Applier, SessionLimits
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
    assert applier.lookup(ClientRequest("c1", 2, c.add(1))) == (True, "ok", 6)
    done, status, result = applier.lookup(ClientRequest("c1", 1, c.add(5)))
    assert done and status == "error" and CommandError.from_result(result).kind == "StaleRequest"
    assert applier.lookup(ClientRequest("c1", 3, c.add(1)))[0] is False  # new: it goes to the log
    copy = Applier(Counter)
    copy.restore(applier.snapshot())
    assert copy.lookup(ClientRequest("c1", 2, c.add(1))) == (True, "ok", 6)
    assert copy.apply(ClientRequest("c1", 2, c.add(1))) == ("ok", 6)


def test_a_sequence_number_reused_for_another_command_is_refused_and_runs_nothing() -> None:
    """Same (client, seq), different command: an explicit SequenceReused, at apply and at lookup,
    also after a snapshot; the session's own retry still gets its first answer."""
    applier = Applier(Counter)
    assert applier.apply(ClientRequest("c1", 1, c.add(5))) == ("ok", 5)
    for copy in (applier, _restored(applier)):
        status, result = copy.apply(ClientRequest("c1", 1, c.add(7)))
        assert status == "error" and CommandError.from_result(result).kind == "SequenceReused"
        done, status, result = copy.lookup(ClientRequest("c1", 1, c.add(7)))
        assert done and CommandError.from_result(result).kind == "SequenceReused"
        assert copy.apply(ClientRequest("c1", 1, c.add(5))) == ("ok", 5)  # the real retry
        assert copy.machine.apply(c.read_counter()) == 5


def test_sessions_are_opened_through_the_log_with_ids_nobody_was_given_before() -> None:
    """REGISTER_SESSION answers a fresh id, the same on every replica; with registered_sessions an
    id the log never opened is refused SessionExpired, and a request numbered 0 is refused too."""
    a = Applier(Counter, SessionLimits(registered_sessions=True))
    b = Applier(Counter, SessionLimits(registered_sessions=True))
    ids = []
    for i in range(5):
        ra = a.apply(ClientRequest(f"nonce-{i}", 1, c.REGISTER_SESSION))
        assert ra == b.apply(ClientRequest(f"nonce-{i}", 1, c.REGISTER_SESSION))
        assert ra[0] == "ok" and isinstance(ra[1], str)
        ids.append(ra[1])
        a.apply(ClientRequest(ra[1], 1, c.add(1)))
        b.apply(ClientRequest(ra[1], 1, c.add(1)))
    assert len(set(ids)) == 5 and a.snapshot() == b.snapshot()
    status, result = a.apply(ClientRequest("chosen-by-the-client", 1, c.add(100)))
    assert status == "error" and isinstance(CommandError.from_result(result), SessionExpired)
    opened = a.apply(ClientRequest("nonce-x", 1, c.REGISTER_SESSION))[1]
    assert isinstance(opened, str)
    status, result = a.apply(ClientRequest(opened, 0, c.add(100)))
    assert CommandError.from_result(result).kind == "SequenceReused"
    assert a.machine.apply(c.read_counter()) == 5  # nothing refused ran
    open_ = Applier(Counter)  # without registered_sessions, a new id opens a session as before
    assert open_.apply(ClientRequest("chosen", 1, c.add(2))) == ("ok", 2)


def test_a_snapshot_written_before_digests_restores_and_keeps_its_answers() -> None:
    """Sessions from an older snapshot (no digests) still answer their retries."""
    applier = Applier(Counter)
    applier.apply(ClientRequest("c1", 1, c.add(3)))
    blob = json.loads(applier.snapshot())
    blob["sessions"] = [row[:5] for row in blob["sessions"]]
    old = Applier(Counter)
    old.restore(json.dumps(blob).encode())
    assert old.apply(ClientRequest("c1", 1, c.add(3))) == ("ok", 3)
    assert old.machine.apply(c.read_counter()) == 3


def _restored(applier: Applier) -> Applier:
    copy = Applier(type(applier.machine))
    copy.restore(applier.snapshot())
    return copy
