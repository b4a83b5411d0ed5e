"""Raft membership changes (thesis ch. 4): learners, single-server and joint changes, leader removal.

Each test drives a scripted in-memory network (smr.testing.Network) and
checks Raft's invariants after every step.
"""

from __future__ import annotations

from typing import Any

import pytest

from raft import RaftCore, RaftInvariants
from raft.mutants import build
from raft.messages import AppendEntries
from smr.commands import get, put
from smr.membership import Membership, membership_command
from smr.replica import ReplyStatus, Role
from smr.testing import Network

OPTIONS = {"pre_vote": True, "check_quorum": True}


def network(size: int = 3, **options: Any) -> Network[RaftCore]:
    """A Raft network with n1 elected."""
    net: Network[RaftCore] = Network(RaftCore, size, {**OPTIONS, **options}, invariants=RaftInvariants())
    net.elect("n1")
    return net


_SEQ = [100]


def ask(net: Network[RaftCore], node: str, kind: str, *args: Any) -> Any:
    """Ask ``node`` for a membership change, settle, and return the reply's (status, result)."""
    _SEQ[0] += 1
    seq = _SEQ[0]
    net.request(node, membership_command(kind, *args), client="admin", seq=seq)
    net.settle()
    replies = net.replies_to("admin", seq)
    assert replies, f"no answer to {kind} {args}"
    return replies[-1].status, replies[-1].result


def write(net: Network[RaftCore], node: str, key: str, value: str, seq: int) -> None:
    """Put ``key`` = ``value`` through ``node`` and check it was answered OK."""
    net.request(node, put(key, value), client="c1", seq=seq)
    net.settle()
    assert net.replies_to("c1", seq)[-1].status == ReplyStatus.OK


def settle_ticks(net: Network[RaftCore], ticks: int = 5) -> None:
    """Let heartbeats run for a few ticks (learners are promoted on acks)."""
    net.tick_all(ticks)
    net.settle()


def test_a_new_node_joins_as_learner_and_is_promoted_once_caught_up() -> None:
    net = network()
    for seq in range(1, 6):
        write(net, "n1", f"k{seq}", "v", seq)
    net.join("n4")
    n4 = net.cores["n4"]
    assert not n4.membership.votes_in("n4") and not n4.retired
    status, result = ask(net, "n1", "add", "n4", "")
    assert status == ReplyStatus.OK and "n4" in result["learners"]
    settle_ticks(net)
    for core in net.cores.values():
        assert core.membership.voters == ("n1", "n2", "n3", "n4"), core.node
        assert core.applier.machine.snapshot() == net.cores["n1"].applier.machine.snapshot()
    write(net, "n1", "after", "x", 10)
    settle_ticks(net, 4)  # followers learn the commit index from the next heartbeat
    assert net.cores["n4"].applier.machine.data["after"] == "x"


def test_a_change_waits_for_the_previous_one_and_for_the_leaders_term() -> None:
    net = network(pre_vote=False, check_quorum=False)
    net.join("n4")
    net.request("n1", membership_command("add", "n4", ""), client="admin", seq=1)
    # not settled: the first change is appended but not committed
    replies = net.request("n1", membership_command("remove", "n3"), client="admin", seq=2)
    assert replies and replies[0].result["error"] == "ChangeInProgress"
    net.settle()
    assert net.replies_to("admin", 1)[-1].status == ReplyStatus.OK
    # a new leader refuses a change until its own no-op is committed
    net.crash("n1")
    net.campaign("n2")
    for _ in range(200):
        if net.status("n2").role == Role.LEADER:
            break
        if net.in_flight:
            net.deliver(0)
        else:
            net.settle()
    assert net.status("n2").role == Role.LEADER
    core = net.cores["n2"]
    if core.log.term_at(core.commit_index) != core.term:
        replies = net.request("n2", membership_command("remove", "n3"), client="admin", seq=3)
        assert replies and replies[0].result["error"] == "ChangeInProgress"
        assert "own term" in replies[0].result["message"]


def test_removing_a_follower_and_writing_on() -> None:
    net = network()
    status, result = ask(net, "n1", "remove", "n3")
    assert status == ReplyStatus.OK and result["voters"] == ["n1", "n2"]
    net.crash("n3")
    write(net, "n1", "k", "v", 1)  # n1 and n2 are a quorum of the new configuration
    settle_ticks(net, 4)
    assert net.cores["n2"].applier.machine.data["k"] == "v"


def test_the_leader_removes_itself_and_steps_down_once_committed() -> None:
    net = network(leadership_transfer=True)
    status, _ = ask(net, "n1", "remove", "n1")
    assert status == ReplyStatus.OK
    settle_ticks(net, 40)
    assert net.status("n1").role == Role.FOLLOWER
    leader = net.leader()
    assert leader in ("n2", "n3")
    assert net.cores["n1"].retired
    write(net, leader, "k", "v", 1)
    settle_ticks(net, 100)  # n1 never campaigns again
    assert net.leader() == leader and net.status("n1").role == Role.FOLLOWER


def test_replace_goes_through_a_joint_configuration() -> None:
    net = network()
    net.join("n4")
    seen: list[Membership] = []
    original = net.cores["n1"]._set_membership

    def spy(m: Membership) -> None:
        seen.append(m)
        original(m)
    net.cores["n1"]._set_membership = spy  # type: ignore[method-assign]
    status, _ = ask(net, "n1", "replace", "n3", "n4", "")
    assert status == ReplyStatus.OK
    settle_ticks(net, 10)
    assert any(m.joint and m.outgoing == ("n1", "n2", "n3") and m.voters == ("n1", "n2", "n4") for m in seen)
    for node in ("n1", "n2", "n4"):
        assert net.cores[node].membership == Membership(("n1", "n2", "n4")), node
    assert net.cores["n3"].retired  # it heard that its removal was committed


def test_set_changes_any_number_of_voters_jointly() -> None:
    net = network()
    net.join("n4")
    net.join("n5")
    status, result = ask(net, "n1", "set", ["n1", "n2", "n3", "n4", "n5"], [])
    assert status == ReplyStatus.ERROR and "catching up" in result["message"]  # thesis 4.2.1: learners first
    for node in ("n4", "n5"):
        assert ask(net, "n1", "add_learner", node, "")[0] == ReplyStatus.OK
    settle_ticks(net)
    status, result = ask(net, "n1", "set", ["n1", "n2", "n3", "n4", "n5"], [])
    assert status == ReplyStatus.OK and result["outgoing"] == ["n1", "n2", "n3"]
    settle_ticks(net)
    for core in net.cores.values():
        assert core.membership.voters == ("n1", "n2", "n3", "n4", "n5") and not core.membership.joint
    status, result = ask(net, "n1", "set", ["n1", "n4", "n5"], ["n2"])
    assert status == ReplyStatus.OK
    settle_ticks(net)
    assert net.cores["n1"].membership.voters == ("n1", "n4", "n5")
    assert net.cores["n1"].membership.learners == ("n2",)


def test_a_change_that_does_not_fit_is_refused_before_the_log() -> None:
    net = network()
    last = net.cores["n1"].log.last_index
    for kind, args, error in [("add", ("n2", ""), "MembershipError"), ("remove", ("n9",), "MembershipError"),
                              ("promote", ("n2",), "MembershipError"), ("oops", (), "BadArguments"),
                              ("add", (3, ""), "BadArguments")]:
        status, result = ask(net, "n1", kind, *args)
        assert status == ReplyStatus.ERROR and result["error"] == error, (kind, result)
    assert net.cores["n1"].log.last_index == last


def test_a_joiner_catches_up_from_a_snapshot_and_restarts_with_its_configuration() -> None:
    net = network(snapshot_every=4)
    for seq in range(1, 12):
        write(net, "n1", f"k{seq}", "v", seq)
    net.join("n4")
    ask(net, "n1", "add", "n4", "")
    settle_ticks(net)
    assert net.cores["n4"].membership.voters == ("n1", "n2", "n3", "n4")
    assert net.cores["n4"].applier.machine.data["k11"] == "v"
    for node in ("n4", "n2"):
        net.restart(node)
        assert net.cores[node].membership.voters == ("n1", "n2", "n3", "n4"), node


def test_an_overwritten_change_rolls_the_configuration_back() -> None:
    net = network(5, pre_vote=False, check_quorum=False)
    net.join("n6")
    net.request("n1", membership_command("add", "n6", ""), client="admin", seq=1)
    to_n2 = net.take(AppendEntries, src="n1", dst="n2")
    net.take(src="n1")  # only n2 hears of the change
    net.crash("n1")
    net.inject(to_n2)
    net.stabilize()
    assert "n6" in net.cores["n2"].membership.learners
    net.campaign("n3")  # n4 and n5 vote for it (their logs are as long as n3's)
    net.settle()
    assert net.leader() == "n3"
    settle_ticks(net, 3)
    assert "n6" not in net.cores["n2"].membership.members  # the uncommitted change was overwritten
    assert net.cores["n2"].membership == Membership.of(["n1", "n2", "n3", "n4", "n5"])


@pytest.mark.parametrize("kind", ["add", "replace"])
def test_retired_is_false_for_a_joiner_until_it_leaves(kind: str) -> None:
    net = network()
    net.join("n4")
    assert not net.cores["n4"].retired
    args = ("n4", "") if kind == "add" else ("n3", "n4", "")
    ask(net, "n1", kind, *args)
    settle_ticks(net, 10)
    assert not net.cores["n4"].retired
    if kind == "replace":
        assert net.cores["n3"].retired
    ask(net, "n1", "remove", "n4")
    settle_ticks(net, 5)
    assert net.cores["n4"].retired or "n4" not in net.cores["n1"].membership.members
    net.request("n1", get("k"), client="c9", seq=1)


# ---------------------------------------------------------------- the two membership mutants
PLAIN = {"pre_vote": False, "check_quorum": False}


def _elect_in(net: Network[Any], node: str) -> None:
    """Let ``node`` campaign (up to three times, each in a higher term) until it leads."""
    for _ in range(3):
        core = net.cores[node]
        for _ in range(core.opts.election_ticks_max + 1):
            net.tick(node)
            if core.role != Role.FOLLOWER and net.in_flight:
                break
        net.settle()
        if net.status(node).role == Role.LEADER:
            return
    raise AssertionError(f"{node} is {net.status(node).role}")


def _two_concurrent_changes(mutant: bool) -> None:
    """C0 = {n1,n2,n3}.  n1, cut off with the new nodes n4 and n5, adds n4 then n5 as voters.  With the
    second change allowed before the first commits, {n1,n4,n5} is a majority of {n1..n5} while {n2,n3} is one
    of {n1,n2,n3}: both sides commit different entries at the same index."""
    net: Network[Any] = Network(build, 3, {**PLAIN, "mutant_concurrent_changes": mutant},
                                invariants=RaftInvariants())
    net.elect("n1")
    net.join("n4")
    net.join("n5")
    for seq, node in enumerate(("n4", "n5"), start=10):  # learners first: they catch up
        net.request("n1", membership_command("add_learner", node, ""), client="admin", seq=seq)
        net.settle()
    net.tick_all(4)
    net.partition(["n1", "n4", "n5"], ["n2", "n3"])
    net.request("n1", membership_command("set", ["n1", "n2", "n3", "n4"], ["n5"]), client="admin", seq=1)
    second = net.request("n1", membership_command("promote", "n5"), client="admin", seq=2)
    assert bool(second) != mutant  # refused at once (ChangeInProgress) unless the rule is broken
    net.settle()
    net.request("n1", put("x", "left"), client="c1", seq=1)
    net.settle()
    _elect_in(net, "n2")
    net.request("n2", put("x", "right"), client="c2", seq=1)
    net.settle()


def test_a_second_change_waits_for_the_first() -> None:
    _two_concurrent_changes(mutant=False)


def test_mutant_concurrent_changes_commits_two_values_at_one_index() -> None:
    with pytest.raises(AssertionError, match="leader completeness|committed"):
        _two_concurrent_changes(mutant=True)


def _change_before_own_term_commit(mutant: bool) -> None:
    """Ongaro's 2015 scenario.  C0 = {n1..n4}; n1 adds n5 (only n5 hears), crashes; n2 wins term 2 and at
    once removes n1, committing with n2 and n3 of {n2,n3,n4}; n1 returns and wins term 3 with n4 and n5, a
    majority of {n1..n5}, and commits its own entry at the index where n2 committed its no-op."""
    net: Network[Any] = Network(build, 4, {**PLAIN, "mutant_change_before_term_commit": mutant},
                                invariants=RaftInvariants())
    net.elect("n1")
    net.join("n5")
    net.request("n1", membership_command("add_learner", "n5", ""), client="admin", seq=10)
    net.settle()
    net.tick_all(4)  # n5 catches up
    net.partition(["n1", "n5"], ["n2", "n3", "n4"])
    net.request("n1", membership_command("promote", "n5"), client="admin", seq=1)
    net.settle()
    net.crash("n1")
    net.recover()
    net.partition(["n1", "n5"], ["n2", "n3", "n4"])
    net.campaign("n2")
    while net.status("n2").role != Role.LEADER:  # n2 wins with n3 and n4; its no-op is not out yet
        net.deliver(0)
    net.cut("n2", "n4")  # n4 never hears n2's entries
    refused = net.request("n2", membership_command("remove", "n1"), client="admin", seq=2)
    assert bool(refused) != mutant  # ChangeInProgress until an entry of term 2 is committed
    net.settle()
    net.recover()
    net.partition(["n1", "n4", "n5"], ["n2", "n3"])
    net.restart("n1")
    _elect_in(net, "n1")
    net.request("n1", put("x", "n1"), client="c1", seq=1)
    net.settle()


def test_a_new_leader_changes_membership_only_after_committing_in_its_term() -> None:
    _change_before_own_term_commit(mutant=False)  # n2's change is refused; n1 wins, but commits nothing of n2's


def test_mutant_change_before_term_commit_commits_two_values_at_one_index() -> None:
    with pytest.raises(AssertionError, match="leader completeness|committed"):
        _change_before_own_term_commit(mutant=True)


def test_a_node_removed_and_added_again_is_replicated_to_again() -> None:
    net = network()
    assert ask(net, "n1", "remove", "n3")[0] == ReplyStatus.OK
    assert ask(net, "n1", "add", "n3", "")[0] == ReplyStatus.OK  # before the leader let it go
    settle_ticks(net, 40)
    assert "n3" in net.cores["n1"].progress
    assert net.cores["n1"].membership.voters == ("n1", "n2", "n3")
    write(net, "n1", "k", "v", 1)
    settle_ticks(net, 4)
    assert net.cores["n3"].applier.machine.data["k"] == "v"


def test_a_transfer_to_a_node_that_stops_voting_is_called_off() -> None:
    net = network(leadership_transfer=True)
    net.join("n4")
    assert ask(net, "n1", "add_learner", "n4", "")[0] == ReplyStatus.OK
    settle_ticks(net)
    net.request("n1", membership_command("replace", "n3", "n4", ""), client="admin", seq=900)
    net.cores["n1"].transfer_leadership("n3")  # n3 votes until the joint configuration is left
    settle_ticks(net, 40)
    assert net.cores["n1"].transferee is None
    assert net.leader() in ("n1", "n2", "n4")


def test_a_leader_that_lost_its_term_before_its_own_removal_committed_finishes_it() -> None:
    """Swarm seed 175 (`smr fuzz --backend raft --membership`) wedged here: the leader appended its own
    removal, the other voter timed out to higher terms behind a partition, and after the heal neither could
    lead -- the other lacks the change and needs the old leader's vote, which its longer log refuses, and
    the old leader, absent from its newest configuration, never campaigned.  It must campaign among the
    new configuration's voters, commit the change and step down."""
    net: Network[RaftCore] = Network(RaftCore, 2, {}, invariants=RaftInvariants())
    net.elect("n1")
    write(net, "n1", "k", "v", 1)
    net.partition(["n1"], ["n2"])
    net.request("n1", membership_command("remove", "n1"), client="admin", seq=1)
    net.settle()
    assert net.cores["n1"].conf_index > net.cores["n1"].commit_index  # appended, not committed
    for _ in range(3 * net.cores["n2"].opts.election_ticks_max):
        net.tick("n2")  # n2 campaigns, term after term, and hears nobody
    net.settle()
    assert net.cores["n2"].term > net.cores["n1"].term
    net.recover()
    settle_ticks(net, 10 * net.cores["n1"].opts.election_ticks_max)
    assert net.leader() == "n2", {n: net.status(n) for n in net.cores}
    assert net.cores["n2"].applier.membership.voters == ("n2",)
    assert net.cores["n1"].retired
    write(net, "n2", "k", "w", 2)
