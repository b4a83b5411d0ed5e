"""Both log backends answer every reused or stale (client, seq) explicitly, and never with another
command's outcome: the core-level half of "0 false acknowledgements" (the TCP half is in
tests/net/test_tcp_sessions.py)."""

from __future__ import annotations

import pytest

from smr import commands as c
from smr.machine import CommandError, SessionExpired
from smr.registry import get_backend
from smr.replica import ClientRequest, Reply, ReplyStatus
from smr.sessions import command_digest
from smr.state_machines import Counter
from smr.testing import Network

LOG_BACKENDS = ("raft", "multipaxos")


def _network(backend: str, **options: object) -> Network:
    registered = get_backend(backend)
    net = Network(registered.factory, 3, {**registered.options, **options}, 0, Counter, registered.invariants())
    net.elect("n1")
    return net


def _kind(reply: Reply) -> str:
    assert reply.status == ReplyStatus.ERROR, reply
    return CommandError.from_result(reply.result).kind


def _total(net: Network) -> int:
    totals = {getattr(core, "applier").machine.apply(c.read_counter()) for core in net.cores.values()}
    assert len(totals) == 1, totals
    return totals.pop()


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_a_stale_request_gets_an_explicit_error_not_silence(backend: str) -> None:
    net = _network(backend)
    for seq in (1, 2, 3):
        net.request("n1", c.add(1), "c1", seq)
        net.settle()
    replies = net.request("n1", c.add(1), "c1", 2)  # a client whose seq went backwards
    assert [_kind(r) for r in replies] == ["StaleRequest"]
    assert replies[0].digest == command_digest(c.add(1))
    net.tick_all(5)
    assert _total(net) == 3


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_a_seq_reused_for_another_command_is_refused_with_that_commands_digest(backend: str) -> None:
    net = _network(backend)
    net.request("n1", c.add(5), "c1", 1)
    net.settle()
    assert net.replies_to("c1", 1)[-1].result == 5
    replies = net.request("n1", c.add(7), "c1", 1)
    assert [_kind(r) for r in replies] == ["SequenceReused"]
    assert replies[0].digest == command_digest(c.add(7)) != command_digest(c.add(5))
    again = net.request("n1", c.add(5), "c1", 1)  # the real retry still gets its first answer
    assert [(r.status, r.result, r.digest) for r in again] == [(ReplyStatus.OK, 5, command_digest(c.add(5)))]
    net.tick_all(5)
    assert _total(net) == 5


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_two_commands_in_flight_under_one_seq_never_get_each_others_answer(backend: str) -> None:
    """The second arrives while the first is still being replicated: it waits, and once the first
    is applied it is refused SequenceReused under its own digest; the first's answer names the
    first command; a later retry of the second is refused the same way; only the first ran."""
    net = _network(backend)
    net.request("n1", c.add(5), "c1", 1)  # appended, not yet replicated
    assert net.request("n1", c.add(7), "c1", 1) == []
    net.settle()
    net.tick_all(5)
    answers = {r.digest: r for r in net.replies_to("c1", 1)}
    assert set(answers) == {command_digest(c.add(5)), command_digest(c.add(7))}
    assert (answers[command_digest(c.add(5))].status, answers[command_digest(c.add(5))].result) == ("ok", 5)
    assert _kind(answers[command_digest(c.add(7))]) == "SequenceReused"
    assert [_kind(r) for r in net.request("n1", c.add(7), "c1", 1)] == ["SequenceReused"]
    assert _total(net) == 5


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_a_waiting_second_command_is_answered_even_when_its_client_had_no_session_yet(backend: str) -> None:
    """As above, but another client's entry is applied first, while this client has no session yet:
    the waiting second command is kept (its seq is still being ordered) and answered SequenceReused
    once the first is applied, not dropped unanswered."""
    for later in (False, True):  # (and when the client's next command is in flight behind the first)
        net = _network(backend)
        net.request("n1", c.add(1), "c0", 1)  # ordered first: applied while c1 has no session
        net.request("n1", c.add(5), "c1", 1)
        assert net.request("n1", c.add(7), "c1", 1) == []
        if later:
            net.request("n1", c.add(9), "c1", 2)
        net.settle()
        net.tick_all(5)
        answers = {r.digest: r for r in net.replies_to("c1", 1)}
        assert set(answers) == {command_digest(c.add(5)), command_digest(c.add(7))}, later
        assert _kind(answers[command_digest(c.add(7))]) == "SequenceReused"
        assert _total(net) == (15 if later else 6)


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_with_registered_sessions_only_ids_the_log_opened_are_served(backend: str) -> None:
    net = _network(backend, registered_sessions=True)
    net.request("n1", c.REGISTER_SESSION, "nonce", 1)
    net.settle()
    opened = net.replies_to("nonce", 1)[-1]
    assert opened.status == ReplyStatus.OK and isinstance(opened.result, str)
    net.request("n1", c.add(2), opened.result, 1)
    net.request("n1", c.add(3), "picked-by-the-client", 1)
    net.settle()
    net.tick_all(5)
    assert net.replies_to(opened.result, 1)[-1].result == 2
    refused = net.replies_to("picked-by-the-client", 1)[-1]
    assert isinstance(CommandError.from_result(refused.result), SessionExpired)
    assert _total(net) == 2


def test_the_exactly_once_watch_allows_only_the_documented_gap_of_a_bounded_table() -> None:
    """max_sessions 1, client-named sessions: c1's request runs, c2 and c3 push its session and then its id
    out of the table; c1's retry (never answered, acked 0) is the one case a bounded table cannot tell from
    a new client (smr.sessions), so it runs again without a report -- while a retry whose session is still
    remembered never runs again, and the watch would say so if it did."""
    from raft import RaftCore, RaftInvariants
    from smr.commands import put
    from smr.testing import Network

    net: Network[RaftCore] = Network(RaftCore, 3, {"max_sessions": 1}, invariants=RaftInvariants())
    net.elect("n1")
    for client in ("c1", "c2", "c3"):
        net.request("n1", put("k", client), client=client, seq=1)
        net.settle()
    net.request("n1", put("k", "c1"), client="c1", seq=1)
    net.settle()  # no AssertionError: the watch forgot c1 with the table
    assert net.replies_to("c1", 1)[-1].status == "ok"
    net.request("n1", put("k", "c1"), client="c1", seq=1)
    net.settle()
    assert net.replies_to("c1", 1)[-1].status == "ok"  # answered from its (new) session, not run again
