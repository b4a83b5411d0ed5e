"""Leadership transfer (thesis 3.10) and membership changes (thesis ch. 4) at the edges: the exact
errors a caller or client reads, which messages go where, and the tick at which each timeout fires.

Each test drives the in-memory Raft network (raft.testing.Network), whose invariants run after every step.
"""

from __future__ import annotations

from typing import Any

import pytest

from raft import AppendEntries, AppendEntriesReply, RequestVote, TimeoutNow
from raft.messages import log_key
from raft.testing import Network
from smr.commands import get, put
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.membership import membership_command
from smr.replica import Receive, ReplyStatus, Role, Send

TRANSFER = {"leadership_transfer": True}
#: raft's defaults, spelled out: the tick counts below follow from them.
ELECTION_MIN, HEARTBEAT = 15, 3


def _net(size: int = 3, **options: Any) -> Network:
    """A Raft network of ``size`` nodes with n1 elected (its no-op committed everywhere)."""
    net = Network(size, options)
    net.elect("n1")
    return net


def _ask(net: Network, node: str, kind: str, *args: Any, seq: int) -> list[Any]:
    """Send ``node`` a membership change from client ``admin``; return the replies it gave at once."""
    return net.request(node, membership_command(kind, *args), client="admin", seq=seq)


def _sent_to(net: Network, src: str, dst: str) -> list[Any]:
    """Take the messages in flight from ``src`` to ``dst`` off the network and return them."""
    return [m for _, _, m in net.take(src=src, dst=dst)]


# ------------------------------------------------------------------ leadership transfer (thesis 3.10)
def test_a_transfer_the_caller_may_not_ask_for_is_refused_with_the_reason() -> None:
    """transfer_leadership raises LocalProtocolError naming the option, the bad target or the role.

    Reference: thesis section 3.10
    """
    off = _net()
    with pytest.raises(LocalProtocolError,
                       match=r"^leadership transfer needs the raft option leadership_transfer$"):
        off.cores["n1"].transfer_leadership("n2")
    net = _net(**TRANSFER)
    for target in ("n1", "n9"):
        with pytest.raises(LocalProtocolError, match=rf"^raft n1: cannot transfer leadership to '{target}', "
                                                     r"which is not another voter$"):
            net.cores["n1"].transfer_leadership(target)
    with pytest.raises(LocalProtocolError,
                       match=r"^raft n2: only the leader can transfer leadership \(role: follower\)$"):
        net.cores["n2"].transfer_leadership("n3")
    assert net.cores["n1"].transferee is None and net.status("n1").role == Role.LEADER


def test_a_caught_up_target_is_sent_timeout_now_and_nothing_else() -> None:
    """A target holding the leader's whole log gets TimeoutNow at once, with no append, and wins next term.

    Reference: thesis section 3.10
    """
    net = _net(**TRANSFER)
    ready = net.cores["n1"].transfer_leadership("n2")
    assert list(ready.messages) == [Send("n2", TimeoutNow(1))] and not ready.eager
    net._handle("n1", ready)
    net.settle()
    assert net.status("n2").role == Role.LEADER and net.status("n2").epoch == 2
    assert net.status("n1").role == Role.FOLLOWER


def test_a_lagging_target_is_caught_up_from_what_it_holds_before_timeout_now() -> None:
    """A lagging target is probed from its match index (entries after it), and TimeoutNow follows its ack.

    Reference: thesis section 3.10
    """
    net = _net(**TRANSFER)
    net.request("n1", put("a", "1"), client="c1", seq=1)
    net.settle()  # everyone holds index 2
    net.isolate("n3")
    for seq in (2, 3):
        net.request("n1", put("a", str(seq)), client="c1", seq=seq)
        net.settle()
    net.recover()
    assert net.cores["n1"].progress["n3"].match == 2 and net.cores["n1"].log.last_index == 4
    ready = net.cores["n1"].transfer_leadership("n3")
    out = [s.message for s in (*ready.eager, *ready.messages) if s.dst == "n3"]
    assert [type(m) for m in out] == [AppendEntries]
    assert out[0].prev_index == 2 and [e.request.seq for e in out[0].entries] == [2, 3]
    net._handle("n1", ready)
    net.settle()
    assert net.delivered["TimeoutNow"] == 1
    assert net.status("n3").role == Role.LEADER and net.status("n3").epoch == 2


def test_an_unfinished_transfer_is_called_off_after_exactly_election_ticks_min() -> None:
    """While a transfer runs the leader redirects clients to the target; it gives up on the
    election_ticks_min-th tick and takes requests again.

    Reference: thesis section 3.10 (abort the transfer after an election timeout)
    """
    net = _net(**TRANSFER)
    net.isolate("n3")  # the TimeoutNow never arrives
    net._handle("n1", net.cores["n1"].transfer_leadership("n3"))
    net.tick("n1", ELECTION_MIN - 1)
    (reply,) = net.request("n1", put("k", "v"), client="c1", seq=1)
    assert reply.status == ReplyStatus.REDIRECT and reply.leader == "n3"
    net.tick("n1")
    assert net.request("n1", put("k", "v"), client="c1", seq=2) == []  # appended, answered on commit
    net.settle()
    assert net.replies_to("c1", 2)[-1].status == ReplyStatus.OK and net.status("n1").role == Role.LEADER


def test_a_leader_that_sent_timeout_now_gives_up_its_lease() -> None:
    """Once a TimeoutNow left, the target's voters may ignore their lease, so the leader serves no more lease
    reads in that term, even after the transfer is called off: a read waits for a ReadIndex round.

    Reference: thesis sections 3.10 and 6.4.1
    """
    net = _net(**TRANSFER, read_mode="lease", pre_vote=True, check_quorum=True)
    net.request("n1", put("x", "old"), client="w", seq=1)
    net.settle()
    net.tick_all(4)
    assert [r.result for r in net.request("n1", get("x"), client="r", seq=1)] == ["old"]  # the lease holds
    net._handle("n1", net.cores["n1"].transfer_leadership("n2"))
    assert [m for _, _, m in net.take(TimeoutNow)] == [TimeoutNow(1)]  # lost on the way
    net.tick_all(ELECTION_MIN)  # heartbeats keep being acknowledged; the transfer is called off
    assert net.cores["n1"].transferee is None and net.status("n1").role == Role.LEADER
    assert net.request("n1", get("x"), client="r", seq=2) == []  # not from the lease
    net.settle()
    assert [r.result for r in net.replies_to("r", 2)] == ["old"]


def test_timeout_now_is_obeyed_only_from_the_leader_and_only_by_a_voter() -> None:
    """A follower campaigns on TimeoutNow only if it comes from its leader and it votes itself.

    Reference: thesis section 3.10
    """
    net = _net(**TRANSFER)
    net.join("n4")
    assert _ask(net, "n1", "add_learner", "n4", "", seq=1) == []
    net.settle()
    net.tick_all(HEARTBEAT)
    assert net.status("n4").leader == "n1"
    net.step("n2", Receive("n3", TimeoutNow(1)))  # n3 is not n2's leader
    net.step("n4", Receive("n1", TimeoutNow(1)))  # n4 is a learner
    for node in ("n2", "n4"):
        assert net.status(node).role == Role.FOLLOWER and net.status(node).epoch == 1, node
    assert not any(isinstance(m, RequestVote) for _, _, m in net.in_flight)
    net.step("n2", Receive("n1", TimeoutNow(1)))
    assert net.status("n2").role == Role.CANDIDATE and net.status("n2").epoch == 2
    assert {m.transfer for _, _, m in net.in_flight if isinstance(m, RequestVote)} == {True}


def test_timeout_now_without_transfers_is_a_remote_error_naming_the_sender() -> None:
    """With leadership_transfer off, TimeoutNow is a peer's protocol error, whatever role receives it.

    Reference: thesis section 3.10
    """
    net = _net()
    with pytest.raises(RemoteProtocolError, match=r"^raft n2: TimeoutNow from n1 but transfers are off$"):
        net.cores["n2"].step(Receive("n1", TimeoutNow(1)))  # a follower
    with pytest.raises(RemoteProtocolError, match=r"^raft n1: TimeoutNow from n3 but transfers are off$"):
        net.cores["n1"].step(Receive("n3", TimeoutNow(1)))  # the leader: a late one
    net.campaign("n3")
    assert net.status("n3").role == Role.CANDIDATE
    with pytest.raises(RemoteProtocolError, match=r"^raft n3: TimeoutNow from n1 but transfers are off$"):
        net.cores["n3"].step(Receive("n1", TimeoutNow(net.status("n3").epoch)))


# ------------------------------------------------------------------ membership changes (thesis ch. 4)
def test_a_change_a_leader_may_not_start_yet_is_refused_with_the_reason() -> None:
    """ChangeInProgress names why: no entry of the leader's term committed (the 2015 correction to 4.1),
    the previous change uncommitted (4.1), or new voters that have not caught up (4.2.1).

    Reference: thesis sections 4.1 and 4.2.1
    """
    net = Network(3, {})
    net.campaign("n1")
    while net.status("n1").role != Role.LEADER:
        net.deliver(0)
    (reply,) = _ask(net, "n1", "remove", "n3", seq=1)  # its no-op is not committed yet
    assert reply.status == ReplyStatus.ERROR and reply.result == {
        "error": "ChangeInProgress",
        "message": "this leader has not committed an entry of its own term yet (the 2015 correction to "
                   "thesis 4.1); retry"}
    net.settle()
    net.join("n4")
    net.join("n5")
    (reply,) = _ask(net, "n1", "set", ["n1", "n2", "n3", "n4", "n5"], [], seq=2)
    assert reply.status == ReplyStatus.ERROR and reply.result == {
        "error": "ChangeInProgress",
        "message": "n4, n5 would vote before catching up (add it as a learner first); retry"}
    assert _ask(net, "n1", "add_learner", "n4", "", seq=3) == []  # appended at index 2
    (reply,) = _ask(net, "n1", "add_learner", "n5", "", seq=4)
    assert reply.status == ReplyStatus.ERROR and reply.result == {
        "error": "ChangeInProgress", "message": "the membership change at index 2 is not committed yet; retry"}
    assert net.cores["n1"].log.last_index == 2


def test_a_joint_configuration_blocks_a_change_even_with_the_one_at_a_time_rule_broken() -> None:
    """While a joint configuration is in effect, a new change is refused as ChangeInProgress: with
    mutant_concurrent_changes (the 4.1 rule off) this is the check that still refuses it.

    Reference: thesis section 4.3
    """
    net = Network(3, {"mutant_concurrent_changes": True})
    net.elect("n1")
    net.join("n4")
    assert _ask(net, "n1", "add_learner", "n4", "", seq=1) == []
    net.settle()
    net.tick_all(HEARTBEAT)  # n4 catches up
    assert _ask(net, "n1", "set", ["n1", "n2", "n4"], [], seq=2) == []  # appended: joint from now on
    assert net.cores["n1"].membership.joint
    (reply,) = _ask(net, "n1", "remove", "n2", seq=3)
    assert reply.status == ReplyStatus.ERROR and reply.result == {
        "error": "ChangeInProgress", "message": "the cluster is leaving a joint configuration; retry"}


def test_a_change_is_written_and_replicated_as_an_entry_of_no_session() -> None:
    """A membership change goes into the log with no client session (client '', seq 0), on every replica.

    Reference: thesis section 4.1
    """
    net = _net()
    net.join("n4")
    assert _ask(net, "n1", "add_learner", "n4", "", seq=7) == []
    net.settle()
    assert net.replies_to("admin", 7)[-1].status == ReplyStatus.OK
    for node in ("n1", "n2", "n3"):
        request = net.durable[node][log_key(2)].request
        assert (request.client_id, request.seq) == ("", 0), node
        assert request.command == membership_command("add_learner", "n4", "")


def test_a_removed_leader_hands_over_to_the_lowest_named_caught_up_voter() -> None:
    """A leader whose removal commits steps down and sends TimeoutNow to the first voter holding its whole
    log (not to one that lags), which wins the next term at once.

    Reference: thesis sections 4.2.2 and 3.10
    """
    net = _net(4, **TRANSFER)
    net.cut("n1", "n2")  # n2 never hears of the removal
    assert _ask(net, "n1", "remove", "n1", seq=1) == []
    net.settle()
    assert net.replies_to("admin", 1)[-1].status == ReplyStatus.OK
    assert net.delivered["TimeoutNow"] == 1 and not net.remote_errors
    assert net.status("n1").role == Role.FOLLOWER
    assert net.status("n3").role == Role.LEADER and net.status("n3").epoch == 2


def test_a_removed_follower_holding_the_commit_gets_one_last_heartbeat() -> None:
    """Once a removed follower has acknowledged the commit of its removal, the leader stops replicating to it.

    Reference: thesis section 4.2.2
    """
    net = _net()
    assert _ask(net, "n1", "remove", "n3", seq=1) == []
    net.settle()
    assert net.cores["n3"].retired
    net.tick("n1", 2 * HEARTBEAT)
    assert _sent_to(net, "n1", "n3") == [] and _sent_to(net, "n1", "n2") != []
    assert "n3" not in net.cores["n1"].progress


@pytest.mark.parametrize(("removed_at", "let_go_at"), [(0, ELECTION_MIN), (5, 2 * ELECTION_MIN)])
def test_a_removed_follower_that_never_answers_is_let_go_after_an_election_timeout(
        removed_at: int, let_go_at: int) -> None:
    """A removed follower that never acknowledges is replicated to until the leader's first election-timeout
    check at least election_ticks_min ticks after the removal, then never again.

    Reference: thesis section 4.2.2
    """
    net = _net()
    net.tick("n1", removed_at)
    net.settle()
    net.isolate("n3")
    assert _ask(net, "n1", "remove", "n3", seq=1) == []
    net.settle()
    assert net.replies_to("admin", 1)[-1].status == ReplyStatus.OK
    assert net.cores["n1"].leaving == {"n3": removed_at}
    last = 0
    for tick in range(removed_at + 1, 4 * ELECTION_MIN + 1):
        net.tick("n1")
        if _sent_to(net, "n1", "n3"):
            last = tick
        net.settle()
    assert last == let_go_at
    assert "n3" not in net.cores["n1"].progress and net.status("n1").role == Role.LEADER


@pytest.mark.parametrize(("target", "still_on"), [("n3", False), ("n2", True)])
def test_a_transfer_is_called_off_as_soon_as_its_target_stops_voting(target: str, still_on: bool) -> None:
    """Leaving a joint configuration that drops the target calls the transfer off at once (clients are served
    again, no timeout needed); configuration changes that keep it a voter leave the transfer running.

    Reference: thesis sections 3.10 and 4.3
    """
    net = _net(**TRANSFER)
    net.join("n4")
    assert _ask(net, "n1", "add_learner", "n4", "", seq=1) == []
    net.settle()
    net.tick_all(HEARTBEAT)  # n4 catches up
    net.isolate("n3")
    net.drop_if = lambda src, dst, m: isinstance(m, TimeoutNow)  # the transfer never finishes by itself
    assert _ask(net, "n1", "set", ["n1", "n2", "n4"], [], seq=2) == []  # joint: n3 votes until it is left
    net._handle("n1", net.cores["n1"].transfer_leadership(target))
    net.settle()  # the joint configuration commits and is left; no tick passes
    assert net.cores["n1"].membership.voters == ("n1", "n2", "n4") and not net.cores["n1"].membership.joint
    assert net.status("n1").role == Role.LEADER
    replies = net.request("n1", put("k", "v"), client="c1", seq=1)
    if still_on:
        assert [(r.status, r.leader) for r in replies] == [(ReplyStatus.REDIRECT, target)]
    else:
        assert replies == []  # appended: the transfer is off
        net.settle()
        assert net.replies_to("c1", 1)[-1].status == ReplyStatus.OK


def test_a_new_member_is_probed_at_once_from_the_leaders_last_index() -> None:
    """The append of a change that names a new node sends that node an empty probe at the leader's last
    index in the same step, so it starts catching up without waiting for a heartbeat.

    Reference: thesis section 4.2.1
    """
    net = _net()
    net.join("n4")
    assert _ask(net, "n1", "add_learner", "n4", "", seq=1) == []
    probes = _sent_to(net, "n1", "n4")
    assert [(type(m), m.prev_index, m.prev_term, m.entries) for m in probes] == [(AppendEntries, 2, 1, ())]
    assert net.cores["n1"].log.last_index == 2


def test_a_node_added_back_before_it_was_let_go_is_probed_afresh() -> None:
    """A removed node added again while the leader still replicates to it is treated as a new member (maybe a
    new incarnation): what the leader knew of its log is forgotten and it is probed at the last index.

    Reference: thesis section 4.2.1
    """
    net = _net()
    net.isolate("n3")
    assert _ask(net, "n1", "remove", "n3", seq=1) == []
    net.settle()
    assert net.cores["n1"].leaving == {"n3": 0}  # it never acknowledged its removal
    assert _ask(net, "n1", "add", "n3", "", seq=2) == []
    last = net.cores["n1"].log.last_index
    probes = _sent_to(net, "n1", "n3")
    assert [(type(m), m.prev_index, m.entries) for m in probes] == [(AppendEntries, last, ())]
    assert net.cores["n1"].leaving == {} and net.cores["n1"].progress["n3"].match == 0
    net.recover()
    net.settle()
    net.tick_all(2 * HEARTBEAT)  # it catches up and is promoted
    assert net.cores["n1"].membership.voters == ("n1", "n2", "n3")


def test_a_timeout_now_of_a_later_term_makes_its_sender_the_leader_the_target_obeys() -> None:
    """The central term check takes the sender of a later term's TimeoutNow (a leader's message) as that
    term's leader, so the target campaigns at once; a later term's reply names no leader.

    Reference: thesis section 3.10; Figure 2 (rules for all servers)
    """
    net = _net(**TRANSFER)
    net.step("n2", Receive("n3", TimeoutNow(2)))
    assert net.status("n2").role == Role.CANDIDATE and net.status("n2").epoch == 3
    assert {m.transfer for _, _, m in net.in_flight if isinstance(m, RequestVote)} == {True}
    net.step("n1", Receive("n3", AppendEntriesReply(2, False, 1)))  # n1 learns of term 2 and steps down
    assert net.status("n1").role == Role.FOLLOWER and net.status("n1").leader is None
    (reply,) = net.request("n1", put("k", "v"), client="c1", seq=1)
    assert reply.status == ReplyStatus.REDIRECT and reply.leader is None


def _campaigns(net: Network, node: str) -> bool:
    """Tick ``node`` alone past its longest election timeout; True if it left the follower role or asked
    for a vote."""
    net.tick(node, net.cores[node].opts.election_ticks_max + 1)
    asked = any(src == node and isinstance(m, RequestVote) for src, _, m in net.in_flight)
    return asked or net.status(node).role != Role.FOLLOWER


def test_only_a_voter_campaigns_a_learner_not_even_with_a_change_pending() -> None:
    """A learner never campaigns, also while an uncommitted change sits in its log; a node rejoining from an
    emptied disk does not campaign before it holds its removal (readmitted), though its configuration
    names it.

    Reference: thesis sections 4.2.1 and 4.2.2
    """
    net = _net()
    net.join("n4")
    assert _ask(net, "n1", "add_learner", "n4", "", seq=1) == []
    net.settle()
    net.tick_all(HEARTBEAT)
    net.join("n5")
    net.partition(["n1", "n4"], ["n2", "n3", "n5"])
    assert _ask(net, "n1", "add_learner", "n5", "", seq=2) == []
    net.settle()
    n4 = net.cores["n4"]
    assert n4.conf_index > n4.commit_index and "n5" in n4.membership.learners  # in its log, not committed
    net.isolate("n4")
    assert not _campaigns(net, "n4")
    net.recover()
    net.settle()
    net.wipe("n3", rejoin_after=net.cores["n1"].commit_index, rejoin_epoch=net.status("n1").epoch)
    net.isolate("n3")
    assert net.cores["n3"].membership.votes_in("n3") and not net.cores["n3"].readmitted
    assert not _campaigns(net, "n3")
