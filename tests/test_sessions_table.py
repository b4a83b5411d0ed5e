"""The session table, rule by rule: the unit tests ``smr mutation sessions`` showed were missing.

Each test pins one behaviour of :mod:`smr.sessions` that the end-to-end
tests exercise but never look at closely enough to notice a change: the
exact snapshot bytes, every field a snapshot restores and every malformed
field it refuses, the boundaries of expiry and of the bounded tables, the
registered session id, and the words of each refusal.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import attrs
import pytest

from smr import commands as c
from smr.commands import REGISTER_SESSION, Command
from smr.errors import LocalProtocolError
from smr.membership import GET_MEMBERSHIP, Membership, membership_command
from smr.replica import ClientRequest
from smr.sessions import (MAX_LEFT, Applier, ExecutionWatch, RetryRunsAgain, SessionLimits, command_digest,
                          int_at_least, run_command, same_command)
from smr.state_machines import Counter
from smr.values import CorruptValue


def _applier(**limits: Any) -> Applier:
    return Applier(Counter, SessionLimits(**limits), Membership.of(["n1", "n2", "n3"]))


def _request(client: str, seq: int, command: Command = c.add(1), time: int = 0, acked: int = 0) -> ClientRequest:
    return ClientRequest(client, seq, command, acked=acked, time=time)


def test_a_command_is_the_same_only_with_the_same_value_types() -> None:
    assert same_command(c.put("k", 1), c.put("k", 1))
    assert not same_command(c.put("k", True), c.put("k", 1))  # equal in Python, another command
    assert not same_command(c.put("k", 1), c.put("k", 2))


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "1", None])
def test_a_session_option_must_be_an_int_of_at_least_its_floor(value: Any) -> None:
    @attrs.frozen
    class Limits:
        n: int = attrs.field(validator=int_at_least(1, "test option"))

    with pytest.raises(LocalProtocolError) as caught:
        Limits(value)
    assert str(caught.value) == f"test option n must be an int >= 1, got {value!r}"
    assert Limits(1).n == 1 and Limits(2).n == 2


def test_a_registered_session_id_is_the_entrys_position_and_a_digest_of_the_nonce() -> None:
    applier = _applier()
    applier.apply(_request("c", 1))
    status, first = applier.apply(_request("nonce-a", 0, REGISTER_SESSION))
    status2, second = applier.apply(_request("nonce-b", 0, REGISTER_SESSION))
    assert (status, status2) == ("ok", "ok")
    assert first == f"s2.{hashlib.blake2b(b'nonce-a', digest_size=6).hexdigest()}"
    assert second == f"s3.{hashlib.blake2b(b'nonce-b', digest_size=6).hexdigest()}"
    assert applier.sessions[first][0] == 0  # opened, nothing run yet


def test_a_stale_request_is_refused_naming_where_the_session_is() -> None:
    applier = _applier()
    for seq in (1, 2, 3):
        applier.apply(_request("c", seq))
    status, result = applier.apply(_request("c", 2))
    assert status == "error"
    assert result["error"] == "StaleRequest"
    assert result["message"] == "session c has moved past seq 2 (it is at 3); this request was not run now"


def test_sessions_idle_for_exactly_the_timeout_stay_and_one_ms_more_go() -> None:
    applier = _applier(session_timeout_ms=100)
    applier.apply(_request("old", 1, time=10))
    applier.apply(_request("new", 1, time=60))
    applier.apply(_request("tick", 1, time=110))  # "old" idle for exactly 100 ms: kept
    assert set(applier.sessions) == {"old", "new", "tick"} and applier.dropped == 0
    applier.apply(_request("tock", 1, time=111))
    assert set(applier.sessions) == {"new", "tick", "tock"} and applier.dropped == 1
    assert list(applier.recently_dropped) == ["old"]


def test_dropped_sessions_are_counted_one_by_one_and_their_ids_kept_up_to_the_bound() -> None:
    forgotten: list[str] = []
    applier = _applier(max_sessions=2)
    applier.watch = ExecutionWatch(forgotten.append)
    applier.watch.forget = forgotten.append  # type: ignore[method-assign]
    for i in range(1, 5):
        applier.apply(_request(f"c{i}", 1))
    assert applier.dropped == 2 and list(applier.sessions) == ["c3", "c4"]
    assert list(applier.recently_dropped) == ["c1", "c2"] and forgotten == []  # exactly the bound: all kept
    applier.apply(_request("c5", 1))
    assert applier.dropped == 3 and list(applier.recently_dropped) == ["c2", "c3"] and forgotten == ["c1"]


def test_the_watch_forgets_a_client_it_never_saw_without_complaint() -> None:
    reports: list[str] = []
    watch = ExecutionWatch(reports.append)
    watch.forget("never-seen")
    watch.running("c", 1, c.add(1))
    watch.forget("c")
    watch.running("c", 1, c.add(1))  # forgotten: a run again is not reported
    assert reports == [] and watch.highest == {"c": 1}


def test_the_membership_query_without_a_membership_is_refused_by_name() -> None:
    applier = Applier(Counter)
    status, result = applier.query(GET_MEMBERSHIP)
    assert status == "error"
    assert (result["error"], result["message"]) == ("MembershipError", "this runtime has no membership")
    assert _applier().query(GET_MEMBERSHIP)[1] == Membership.of(["n1", "n2", "n3"]).as_value()


def _populated() -> Applier:
    applier = _applier(max_sessions=2)
    for i in range(1, 4):
        applier.apply(_request(f"c{i}", 1, c.add(i), time=5 * i))
    applier.apply(_request("admin", 1, membership_command("remove", "n3"), time=20))
    return applier


def test_a_snapshot_is_canonical_compact_sorted_json() -> None:
    blob = _populated().snapshot()
    obj = json.loads(blob)
    assert blob == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    assert sorted(obj) == ["applied", "dropped", "left", "machine", "membership", "recently_dropped", "sessions",
                           "time_ms"]
    assert obj["left"] == ["n3"] and obj["membership"] == Membership.of(["n1", "n2"]).as_value()


def test_a_snapshot_restores_every_field_into_a_replica_that_had_another_state() -> None:
    source = _populated()
    target = Applier(Counter, SessionLimits(max_sessions=2), Membership.of(["x1", "x2", "x3"]))
    target.apply(_request("stranger", 7))
    target.restore(source.snapshot())
    assert target.sessions.keys() == source.sessions.keys()
    assert (target.applied, target.time_ms, target.dropped) == (source.applied, source.time_ms, source.dropped)
    assert target.recently_dropped == source.recently_dropped
    assert target.membership == source.membership and target.left == source.left == {"n3": None}
    assert target.machine.snapshot() == source.machine.snapshot()
    assert target.snapshot() == source.snapshot()
    # the restored session knows its last command by digest: a retry of it is answered, another is refused
    assert target.apply(_request("c3", 1, c.add(3))) == source.apply(_request("c3", 1, c.add(3)))
    assert target.apply(_request("c3", 1, c.add(4)))[1]["error"] == "SequenceReused"


def test_a_snapshot_keeps_only_the_last_max_left_removed_nodes() -> None:
    obj = json.loads(_populated().snapshot())
    obj["left"] = [f"n{i}" for i in range(MAX_LEFT + 5)]
    applier = _applier()
    applier.restore(json.dumps(obj).encode())
    assert list(applier.left) == [f"n{i}" for i in range(5, MAX_LEFT + 5)]


def _corrupt(change: Any) -> str:
    obj = json.loads(_populated().snapshot())
    change(obj)
    applier = _applier()
    before = applier.snapshot()
    with pytest.raises(CorruptValue) as caught:
        applier.restore(json.dumps(obj).encode() if isinstance(obj, dict) else obj)
    assert applier.snapshot() == before  # nothing of it restored
    return str(caught.value)


@pytest.mark.parametrize(("change", "message"), [
    (lambda o: o.update(applied=True), "session snapshot is malformed: TypeError: expected an int, got bool"),
    (lambda o: o.update(time_ms=1.5), "session snapshot is malformed: TypeError: expected an int, got float"),
    (lambda o: o["sessions"][0].__setitem__(0, 7), "TypeError: expected a str, got int"),
    (lambda o: o.update(recently_dropped=[None]), "TypeError: expected a str, got NoneType"),
    (lambda o: o.update(left="n3"), "session snapshot is malformed: TypeError: left must be a list"),
    (lambda o: o.update(left=[""]), "ValueError: membership left: a node id is a non-empty str"),
    (lambda o: o.update(left=[7]), "TypeError: expected a str, got int"),
    (lambda o: o.update(machine="bm90IGJhc2U2NA==!"), "session snapshot is malformed: Error: "),
    (lambda o: o.update(membership={"voters": 3}), "session snapshot is malformed: ValueError: "),
    (lambda o: o["sessions"].append([]), "session snapshot is malformed: IndexError: "),  # a hostile peer's
    (lambda o: o["sessions"].append(["c9"]), "session snapshot is malformed: IndexError: "),  # short rows
])
def test_a_malformed_snapshot_field_is_refused_and_named(change: Any, message: str) -> None:
    assert message in _corrupt(change)


def test_nan_in_a_snapshot_is_refused() -> None:
    blob = _populated().snapshot().replace(b'"time_ms":20', b'"time_ms":NaN')
    with pytest.raises(CorruptValue, match=r"malformed: ValueError: NaN in a snapshot"):
        _applier().restore(blob)


def test_a_machine_that_refuses_its_snapshot_is_named() -> None:
    obj = json.loads(_populated().snapshot())
    obj["machine"] = base64.b64encode(b"not json").decode()
    with pytest.raises(CorruptValue, match=r"^counter snapshot does not restore: CorruptValue: counter snapshot is not JSON"):
        _applier().restore(json.dumps(obj).encode())


def test_a_snapshot_without_membership_keeps_the_replicas_own() -> None:
    applier = Applier(Counter)
    applier.apply(_request("c", 1))
    target = _applier()
    target.restore(applier.snapshot())
    assert target.membership == Membership.of(["n1", "n2", "n3"]) and target.left == {}


def test_the_retry_runs_again_mutant_runs_exactly_the_latest_request_twice() -> None:
    broken = RetryRunsAgain(Counter)
    assert broken.apply(_request("c", 1, c.add(5))) == ("ok", 5)
    assert broken.apply(_request("c", 1, c.add(5))) == ("ok", 10)  # the retry ran again
    assert broken.apply(_request("c", 2, c.add(1))) == ("ok", 11)
    assert broken.apply(_request("c", 1, c.add(5)))[1]["error"] == "StaleRequest"  # older ones still refused


def test_a_commands_digest_never_changes_between_versions() -> None:
    # digests are kept in snapshots and compared after a restart or an upgrade: these values are fixed
    assert command_digest(c.put("k", "v")) == 54529930126657662
    assert command_digest(c.add(1)) == 47898745408780558
    assert command_digest(c.put("k", "v")) < 2 ** 56


class _Returns:
    """A stand-in state machine whose every command returns ``result`` (or raises it)."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def apply(self, command: Command) -> Any:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


class _Text(str):
    """A str subclass: not a value every runtime carries as it is."""


@pytest.mark.parametrize(("result", "outcome"), [
    (None, ("ok", None)), (True, ("ok", True)), ("ascii", ("ok", "ascii")), ("é", ("ok", "é")),
    ((1, "a"), ("ok", [1, "a"])), (_Text("sub"), ("ok", "sub")), ({"b": (2,)}, ("ok", {"b": [2]})),
])
def test_a_commands_result_is_carried_in_canonical_form(result: Any, outcome: Any) -> None:
    status, value = run_command(_Returns(result), c.get("k"))  # type: ignore[arg-type]
    assert (status, value) == outcome and type(value) is type(outcome[1])


def test_a_result_that_is_not_a_value_is_an_error_naming_the_command() -> None:
    status, value = run_command(_Returns(object()), c.get("k"))  # type: ignore[arg-type]
    assert status == "error" and value["error"] == "BadResult"
    assert value["message"].startswith("result of get: ")


def test_a_session_option_that_must_be_a_bool_says_so() -> None:
    with pytest.raises(LocalProtocolError, match=r"^session option registered_sessions must be true or false, "
                                                  r"got 1$"):
        SessionLimits(registered_sessions=1)  # type: ignore[arg-type]


def test_membership_changes_without_a_membership_are_refused_and_the_query_goes_through_the_log() -> None:
    applier = Applier(Counter)
    status, result = applier.apply(_request("admin", 1, membership_command("remove", "n3")))
    assert status == "error"
    assert (result["error"], result["message"]) == ("MembershipError",
                                                    "this runtime has no membership to change")
    with_membership = _applier()
    assert with_membership.apply(_request("admin", 1, GET_MEMBERSHIP)) == \
        ("ok", Membership.of(["n1", "n2", "n3"]).as_value())


def test_removed_nodes_are_remembered_most_recent_last_up_to_max_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("smr.sessions.MAX_LEFT", 2)
    applier = Applier(Counter, membership=Membership.of([f"n{i}" for i in range(1, 8)]))
    for seq, node in enumerate(("n7", "n6", "n5"), start=1):
        assert applier.apply(_request("admin", seq, membership_command("remove", node)))[0] == "ok"
        assert list(applier.left)[-1] == node
    assert list(applier.left) == ["n6", "n5"]  # exactly MAX_LEFT kept


def test_every_entry_applied_counts_once_and_log_time_never_goes_back() -> None:
    applier = _applier(session_timeout_ms=100)
    applier.apply(_request("a", 1, time=50))
    applier.apply(_request("b", 1, time=40))  # stamped earlier (another leader's clock): time stays
    assert (applier.applied, applier.time_ms) == (2, 50)
    assert applier.sessions["b"][3] == 50


def test_a_request_bound_to_be_refused_is_answered_without_the_log() -> None:
    applier = _applier()
    answered, status, result = applier.lookup(_request("c", 1, Command("no-such-op")))
    assert (answered, status) == (True, "error") and result["error"] == "UnknownCommand"  # type: ignore[index]
    assert applier.lookup(_request("c", 1)) == (False, "ok", None)


@pytest.mark.parametrize("request_", [
    ClientRequest("nonce", 0, Command(REGISTER_SESSION.op, "key")),
    ClientRequest("nonce", 0, Command(REGISTER_SESSION.op, "", ("arg",))),
    ClientRequest("", 0, REGISTER_SESSION),
])
def test_a_malformed_session_opening_is_refused(request_: ClientRequest) -> None:
    refused = _applier().refusal(request_)
    assert refused is not None and refused.kind == "BadArguments"
    assert refused.message == f"{REGISTER_SESSION.op} takes no key or arguments and needs a client id"
    assert _applier().refusal(ClientRequest("nonce", 0, REGISTER_SESSION)) is None


def test_the_watch_reports_the_latest_request_run_again() -> None:
    reports: list[str] = []
    watch = ExecutionWatch(reports.append)
    watch.running("c", 1, c.add(1))
    watch.running("c", 2, c.add(1))
    assert reports == []
    watch.running("c", 2, c.add(1))
    assert reports == ["exactly-once: client c's request 2 (add) runs again -- its session already ran request 2"]


def test_a_session_limit_out_of_range_is_named_as_a_session_option() -> None:
    with pytest.raises(LocalProtocolError, match=r"^session option max_sessions must be an int >= 1, got 0$"):
        SessionLimits(max_sessions=0)


def test_a_client_answered_once_but_without_a_session_is_refused_not_run() -> None:
    """acked 1: its first request was answered, so its session existed and was dropped -- a retry of
    request 2 may have run already, so it is refused, never run (again)."""
    applier = _applier()
    status, result = applier.apply(_request("c", 2, acked=1))
    assert status == "error" and result["error"] == "SessionExpired"  # type: ignore[index]
    assert applier.machine.snapshot() == Applier(Counter).machine.snapshot()  # nothing ran
    assert applier.apply(_request("d", 1, acked=0)) == ("ok", 1)  # a new client does run


def test_sessions_expire_only_when_log_time_moves_forward() -> None:
    """Expiry is driven by the log alone: an entry stamped with the log time already reached expires
    nothing, even in a replica restored from a snapshot under a shorter timeout; the next later stamp does."""
    source = _applier(session_timeout_ms=1000)
    source.apply(_request("old", 1, time=10))
    source.apply(_request("new", 1, time=500))
    target = _applier(session_timeout_ms=100)
    target.restore(source.snapshot())
    assert target.apply(_request("new", 2, time=500)) == ("ok", 3)
    assert list(target.sessions) == ["old", "new"] and target.dropped == 0
    assert target.apply(_request("old", 2, time=500, acked=1)) == ("ok", 4)  # still its session
    target.apply(_request("new", 3, time=501))
    assert target.dropped == 0  # "old" was used at 500: within 100 ms of 501
    target.apply(_request("new", 4, time=601))
    assert list(target.sessions) == ["new"] and target.dropped == 1
