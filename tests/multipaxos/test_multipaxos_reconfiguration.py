"""Multi-Paxos reconfiguration with an alpha window (Lamport, Malkhi and Zhou, "Reconfiguring a State Machine").

Every test drives real multi-Paxos replicas through the in-memory
:class:`smr.testing.Network`, which runs :class:`multipaxos.MultiPaxosInvariants`
after every step and compares every applied entry across nodes (state
machine safety); a node joins with :meth:`Network.join` (it knows only the
first voters).  Membership changes are client commands
(:func:`smr.membership.membership_command`) chosen in slots; the
configuration of slot i is the one applied after slot i - alpha.
"""

from __future__ import annotations

from typing import Any

import pytest

from smr.commands import put
from smr.membership import Membership, membership_command
from smr.replica import ClientRequest, Receive, ReplyStatus, Role
from smr.testing import Network, unstamped

from multipaxos import Accept, Heartbeat, MultiPaxosCore, MultiPaxosInvariants, Prepare
from multipaxos._core import WINDOW_TAG
from multipaxos.mutants import build
from synod.ballot import Ballot

FIRST = Membership.of(("n1", "n2", "n3"))
_SEQ = [1000]


def network(alpha: int = 4, size: int = 3, factory: Any = MultiPaxosCore, **options: Any) -> Network:
    """A multi-Paxos network with n1 elected."""
    net: Network = Network(factory, size, {"alpha": alpha, **options}, invariants=MultiPaxosInvariants())
    net.elect("n1")
    return net


def ask(net: Network, node: str, kind: str, *args: Any) -> Any:
    """Ask ``node`` for a membership change, settle, and return the reply's (status, result)."""
    _SEQ[0] += 1
    net.request(node, membership_command(kind, *args), client="admin", seq=_SEQ[0])
    net.settle()
    replies = net.replies_to("admin", _SEQ[0])
    assert replies, f"no answer to {kind} {args}"
    return replies[-1].status, replies[-1].result


def write(net: Network, node: str, key: str, value: str) -> None:
    """Put ``key`` = ``value`` through ``node``; it must be answered OK."""
    _SEQ[0] += 1
    net.request(node, put(key, value), client="c1", seq=_SEQ[0])
    net.settle()
    assert net.replies_to("c1", _SEQ[0])[-1].status == ReplyStatus.OK


def run(net: Network, ticks: int = 12) -> None:
    """Let every live node tick, delivering promptly."""
    for _ in range(ticks):
        net.tick_all(1)
        net.settle()


def same_state(net: Network) -> None:
    """Every live replica applied the same prefix to the same state."""
    applied = {c.applied for c in net.cores.values()}
    assert len(applied) == 1, {n: c.applied for n, c in net.cores.items()}
    states = {c.applier.machine.snapshot() for c in net.cores.values()}
    assert len(states) == 1


# ------------------------------------------------------------------ adding
def test_a_new_node_joins_as_learner_catches_up_and_is_promoted() -> None:
    """An added node is a learner first; the leader promotes it once its acks show it caught up."""
    net = network()
    for i in range(5):
        write(net, "n1", f"k{i}", "v")
    net.join("n4")
    n4 = net.cores["n4"]
    assert n4.role == Role.FOLLOWER and not n4.retired and "n4" not in n4.membership.members
    status, result = ask(net, "n1", "add", "n4", "")
    assert status == ReplyStatus.OK and result["learners"] == ["n4"]
    run(net)
    for core in net.cores.values():
        assert core.membership.voters == ("n1", "n2", "n3", "n4"), core.node
    same_state(net)
    write(net, "n1", "after", "x")
    run(net, 3)
    assert net.cores["n4"].applier.machine.data["after"] == "x"
    assert not any(c.retired for c in net.cores.values())


def test_a_learner_added_as_such_receives_the_log_and_never_votes_or_campaigns() -> None:
    net = network()
    net.join("n4")
    assert ask(net, "n1", "add_learner", "n4", "")[0] == ReplyStatus.OK
    write(net, "n1", "k", "v")
    run(net)
    assert net.cores["n4"].applier.machine.data == {"k": "v"}
    assert net.cores["n1"].membership.learners == ("n4",) and "n4" not in net.cores["n1"].membership.voters
    net.crash("n1")
    for _ in range(60):
        net.tick("n4")
    assert net.cores["n4"].role == Role.FOLLOWER  # a learner never campaigns


def test_a_joining_node_does_not_campaign_before_it_is_added() -> None:
    net = network()
    net.join("n4")
    for _ in range(100):
        net.tick("n4")
    assert net.cores["n4"].role == Role.FOLLOWER and not net.in_flight


def test_a_joining_node_catches_up_from_a_snapshot() -> None:
    """The leader compacted its log: the new node installs its snapshot, then follows the log."""
    net = network(snapshot_every=4)
    for i in range(12):
        write(net, "n1", f"k{i}", str(i))
    assert net.cores["n1"].snapshot_slot >= 8
    net.join("n4")
    assert ask(net, "n1", "add", "n4", "")[0] == ReplyStatus.OK
    run(net)
    n4 = net.cores["n4"]
    assert n4.snapshot_slot > 0 and n4.membership.voters == ("n1", "n2", "n3", "n4")
    same_state(net)


# ------------------------------------------------------------------ the alpha window
def test_a_change_takes_effect_alpha_slots_after_its_own() -> None:
    """Slots c+1 .. c+alpha-1 after a change chosen at slot c still need a quorum of the old
    configuration: with both old followers cut off, the leader and the new voter cannot choose them.

    Reference: Lamport, Malkhi & Zhou, "Reconfiguring a State Machine", section 4 (alpha)
    """
    net = network(alpha=4)
    net.join("n4")
    leader = net.cores["n1"]
    # once the change is applied at n1, nothing more from n1 reaches the old followers
    net.drop_if = lambda s, d, m: s == "n1" and d in ("n2", "n3") and len(leader.history) > 1
    _SEQ[0] += 1
    net.request("n1", membership_command("set", ["n1", "n4"], []), "admin", _SEQ[0])
    net.settle()
    change = leader.history[-1][0]
    assert leader.applied == change
    assert leader._quorum_config(change + 3) == FIRST
    assert leader._quorum_config(change + 4).voters == ("n1", "n4")
    write_seq = _SEQ[0] + 1
    _SEQ[0] = write_seq
    net.request("n1", put("k", "v"), "c1", write_seq)
    run(net, 6)
    accepted = net.cores["n4"].acceptor.accepted
    assert {change + 1, change + 2, change + 3} <= set(accepted)  # n1 and n4 accepted the window ...
    assert leader.applied == change  # ... but they are no quorum of those slots' configuration
    net.recover()
    run(net, 12)
    assert leader.applied >= change + 4 and net.replies_to("c1", write_seq)[-1].status == ReplyStatus.OK
    assert leader.membership.voters == ("n1", "n4")
    # the new configuration alone chooses now
    net.isolate("n2")
    net.isolate("n3")
    write(net, "n1", "k", "w")


def test_alpha_one_is_stop_and_go() -> None:
    """With alpha = 1 the slot right after a change already uses the new configuration."""
    net = network(alpha=1)
    net.join("n4")
    assert ask(net, "n1", "set", ["n1", "n4"], [])[0] == ReplyStatus.OK
    leader = net.cores["n1"]
    change = leader.history[-1][0]
    assert leader._quorum_config(change + 1).voters == ("n1", "n4")
    net.isolate("n2")
    net.isolate("n3")
    write(net, "n1", "k", "v")


def test_a_candidate_needs_a_quorum_of_every_configuration_in_its_window() -> None:
    net = network(alpha=8)
    net.join("n4")
    # the old followers accept the change, never the window's no-ops; heartbeats tell them it is chosen
    net.drop_if = lambda s, d, m: s == "n1" and d in ("n2", "n3") and isinstance(m, Accept) and m.first_slot > 1
    assert ask(net, "n1", "set", ["n1", "n4"], [])[0] == ReplyStatus.OK
    run(net, 4)
    net.crash("n1")
    net.recover()
    n2 = net.cores["n2"]
    assert n2.applied == 1
    window = n2._window()
    assert FIRST in window and Membership.of(("n1", "n4")) in window
    # n2 is no voter of the newest configuration, but the new voters do not hold the slots it votes in yet:
    # it campaigns too (to catch them up), and like n4 it needs n2 or n3 (old) and n1 (new), which is down
    for _ in range(80):
        net.tick("n2")
        net.settle()
    assert n2.role == Role.CANDIDATE and n2._handoff_slot() == 1 + 8 - 1
    net.campaign("n4")
    net.settle()
    assert net.cores["n4"].role == Role.CANDIDATE  # n1 is down: no quorum of {n1, n4}
    net.start("n1")
    n4 = net.cores["n4"]
    for _ in range(100):  # its back-off runs out, it campaigns again, and n1 promises now
        net.tick("n4")
        net.settle()
        if n4.role == Role.LEADER:
            break
    assert n4.role == Role.LEADER


def test_the_leader_sends_prepare_to_the_voters_of_a_new_configuration_before_proposing_there() -> None:
    net = network(alpha=2)
    net.join("n4")
    net.join("n5")
    prepares: list[tuple[str, Prepare]] = []
    net.drop_if = lambda s, d, m: isinstance(m, Prepare) and bool(prepares.append((d, m)))
    assert ask(net, "n1", "set", ["n1", "n4", "n5"], [])[0] == ReplyStatus.OK
    run(net, 6)  # the window (one slot) is filled with a no-op
    ballot = net.cores["n1"].ballot
    assert not [d for d, m in prepares if m.ballot == ballot]
    write(net, "n1", "k", "v")  # the first slot of the new configuration
    assert {d for d, m in prepares if m.ballot == ballot} == {"n4", "n5"}
    assert net.cores["n1"].prepared >= {"n1", "n4", "n5"}
    run(net, 8)
    assert net.cores["n5"].applier.machine.data == {"k": "v"}


# ------------------------------------------------------------------ removing
def test_a_removed_follower_retires_once_the_new_configuration_holds_its_slots() -> None:
    net = network()
    write(net, "n1", "k", "v")
    assert ask(net, "n1", "remove", "n3")[0] == ReplyStatus.OK
    n3 = net.cores["n3"]
    run(net, 12)
    assert n3.retired and not net.cores["n1"].retired and not net.cores["n2"].retired
    assert net.cores["n1"].membership.voters == ("n1", "n2")
    for _ in range(100):
        net.tick("n3")
    assert n3.role == Role.FOLLOWER  # no voter: never campaigns
    net.crash("n3")
    write(net, "n1", "k", "w")


def test_the_leader_can_remove_itself_and_steps_down_once_its_slots_are_held() -> None:
    net = network()
    write(net, "n1", "k", "v")
    assert ask(net, "n1", "remove", "n1")[0] == ReplyStatus.OK
    run(net, 12)
    n1 = net.cores["n1"]
    assert n1.role == Role.FOLLOWER and n1.retired
    run(net, 40)
    leader = net.leader()
    assert leader in ("n2", "n3")
    net.crash("n1")
    write(net, leader, "k", "w")
    assert net.cores[leader].membership.voters == ("n2", "n3")


def test_replace_swaps_a_voter_for_a_caught_up_newcomer() -> None:
    net = network()
    for i in range(3):
        write(net, "n1", f"k{i}", "v")
    net.join("n4")
    status, result = ask(net, "n1", "replace", "n3", "n4", "")
    assert status == ReplyStatus.OK and result["joining"] == [["n4", "n3"]]
    run(net, 20)
    assert net.cores["n1"].membership.voters == ("n1", "n2", "n4")
    assert net.cores["n3"].retired
    net.crash("n3")
    write(net, "n1", "k", "w")
    run(net, 3)
    assert net.cores["n4"].applier.machine.data["k"] == "w"


# ------------------------------------------------------------------ faults during a change
@pytest.mark.parametrize("when", ["before-chosen", "inside-window"])
def test_a_leader_crash_during_a_change(when: str) -> None:
    """The next leader recovers the change (or not) from its promises and finishes the window."""
    net = network(alpha=4)
    write(net, "n1", "k", "v")
    net.join("n4")
    _SEQ[0] += 1
    net.request("n1", membership_command("add", "n4", ""), "admin", _SEQ[0])
    if when == "before-chosen":
        net.take(Accept, src="n1", dst="n3")  # only n2 hears of it
        net.settle()
    else:
        net.settle()
        assert net.cores["n1"].history[-1][1].learners == ("n4",)
    net.crash("n1")
    run(net, 40)
    leader = net.leader()
    assert leader in ("n2", "n3")
    net.start("n1")
    run(net, 30)
    memberships = {c.membership for c in net.cores.values()}
    assert len(memberships) == 1, memberships
    write(net, net.leader() or "n2", "k", "w")
    run(net, 3)
    same_state(net)


def test_a_snapshot_inside_the_window_carries_the_configurations_after_it() -> None:
    net = network(alpha=8, snapshot_every=1)
    net.join("n4")
    assert ask(net, "n1", "add_learner", "n4", "")[0] == ReplyStatus.OK
    n2 = net.cores["n2"]
    run(net, 1)
    assert n2.snapshot_data is not None and n2.snapshot_data.startswith(WINDOW_TAG)
    history = list(n2.history)
    net.restart("n2")
    assert net.cores["n2"].history[1:] == history[1:]
    assert net.cores["n2"].history[0][1] == history[0][1]


# ------------------------------------------------------------------ disruption
def test_acceptors_ignore_prepare_from_a_node_outside_their_configurations_while_a_leader_lives() -> None:
    net = network()
    assert ask(net, "n1", "remove", "n3")[0] == ReplyStatus.OK
    for i in range(10):  # two windows of slots: n3 is out of every configuration n2 still uses
        write(net, "n1", "k", str(i))
    run(net, 3)
    n2 = net.cores["n2"]
    assert "n3" not in n2.peers
    promised = n2.acceptor.promised
    net.step("n2", Receive("n3", Prepare(Ballot(50, "n3"), 1)))
    assert n2.acceptor.promised == promised and n2.leader_ballot == net.cores["n1"].ballot


def test_messages_from_unknown_nodes_are_refused_except_by_a_joining_node() -> None:
    net = network()
    net.step("n2", Receive("n9", Heartbeat(Ballot(9, "n9"), 0)))
    assert net.remote_errors and "unknown node" in net.remote_errors[-1]
    net.join("n4")
    before = len(net.remote_errors)
    net.step("n4", Receive("n1", Heartbeat(net.cores["n1"].ballot, net.cores["n1"].applied)))
    assert len(net.remote_errors) == before and net.cores["n4"].leader_ballot == net.cores["n1"].ballot


# ------------------------------------------------------------------ the mutant
ON_OFF = [pytest.param(True, id="mutant"), pytest.param(False, id="correct")]


@pytest.mark.parametrize("mutant", ON_OFF)
def test_mutant_early_configuration_chooses_two_values_in_one_slot(mutant: bool) -> None:
    """A leader that counts slot c+1 with the configuration applied after slot c (alpha = 4) takes X
    as chosen on the acceptances of n1 and the new voter n4 alone; n1 crashes; n2, which never
    learned the change, wins with n3 (slot c+1 is in the old configuration for every correct
    replica), and W is chosen at that slot by n3 and n4: two replicas apply different values.

    Reference: Lamport, Malkhi & Zhou, "Reconfiguring a State Machine", section 4 (slot i uses
    the configuration of slot i - alpha)
    """
    net: Network = Network(build, 3, {"alpha": 4, "mutant_early_configuration": mutant},
                           invariants=MultiPaxosInvariants())

    def scenario() -> None:
        net.elect("n1")
        net.join("n4")
        net.step("n1", ClientRequest("admin", 1, membership_command("set", ["n1", "n3", "n4"], [])))
        net.step("n1", ClientRequest("c1", 1, put("x", "X")))
        # n2 and n3 accept slot 1 only: slot 1 is chosen, only n1 knows (no later message reaches them)
        net.drop_if = lambda s, d, m: s == "n1" and d in ("n2", "n3") and not (
            isinstance(m, Accept) and m.first_slot == 1)
        run(net, 4)  # n4 accepts slot 2 (resent once n4 is a peer), and the window's no-ops
        assert net.cores["n2"].applied == 0
        net.crash("n1")
        net.recover()
        net.elect("n2")  # its window: slots 1..4 in the first configuration; n3 promises
        net.step("n2", ClientRequest("c2", 1, put("x", "W")))
        run(net, 8)
        assert unstamped(net.cores["n2"].log[1].command) == membership_command("set", ["n1", "n3", "n4"], [])

    if mutant:
        with pytest.raises(AssertionError, match="state machine safety|one value per slot|chosen values stick"):
            scenario()
    else:
        scenario()
        net.start("n1")
        run(net, 20)
        slot2 = {unstamped(c.log[2]) for c in net.cores.values() if 2 in c.log}
        assert len(slot2) == 1


def _removed_voter_restarted_without_held(restart_old_leader: bool) -> tuple[Network, list[str]]:
    """n3 is removed and snapshots the change, but hears no ``held`` before it crashes; after 40 writes and a
    new leader (n2) it restarts: it does not know whether the new voters hold the slots it voted in."""
    net = network()
    write(net, "n1", "k", "v")
    assert ask(net, "n1", "remove", "n3")[0] == ReplyStatus.OK
    net.drop_if = lambda s, d, m: d == "n3" and isinstance(m, Heartbeat) and m.held > 0
    run(net, 12)
    assert net.cores["n3"]._handoff_slot() > 0
    net.crash("n3")
    net.drop_if = None
    for i in range(40):
        write(net, "n1", f"x{i}", "v")
    run(net, 100)
    net.elect("n2")
    run(net, 200)
    if restart_old_leader:
        net.restart("n1")
        run(net, 50)
    net.restart("n3")
    assert net.cores["n3"]._handoff_slot() > 0 and not net.cores["n3"].retired
    prepares: list[str] = []
    net.drop_if = lambda s, d, m: s == "n3" and isinstance(m, Prepare) and bool(prepares.append(d))
    return net, prepares


@pytest.mark.parametrize("restart_old_leader", [True, False])
def test_a_replaced_voter_restarted_without_news_of_its_hand_off_learns_it_from_the_leader_and_retires(
        restart_old_leader: bool) -> None:
    """It campaigns to hand its slots over; the leader, refusing the Prepare of a node outside its
    configurations, tells it ``held``: a quorum of the newest configuration holds them, so it retires --
    without Nacking the leader, and without campaigning on (a review found it campaigned for ever, and
    raised its ballot above the leader's).  The old leader n1, which told n3 when to retire, no longer
    counts it as a peer once it steps down, so it does not promise n3 and depose n2 either."""
    net, prepares = _removed_voter_restarted_without_held(restart_old_leader)
    for _ in range(2000):
        net.tick_all(1)
        net.settle()
        assert net.leader() == "n2"
    n3 = net.cores["n3"]
    assert n3.retired and n3.role == Role.FOLLOWER and n3._handoff_slot() == 0
    assert 1 <= len(prepares) <= 2  # one campaign (to each voter of {n1, n2})


def test_a_leader_stops_heartbeating_a_removed_node_once_it_let_it_go() -> None:
    """Letting a removed node go refreshed the peers with it still among them, so it was counted as
    leaving anew and heartbeated for ever."""
    net = network()
    assert ask(net, "n1", "remove", "n3")[0] == ReplyStatus.OK
    net.crash("n3")
    for i in range(12):  # past the window, so n3 is in no configuration in use
        write(net, "n1", f"x{i}", "v")
    run(net, 64 * 5)  # MAX_LEAVING_ROUNDS heartbeat rounds and more
    leader = net.cores["n1"]
    assert "n3" not in leader.leaving and "n3" not in leader.peers


def test_a_replaced_voter_whose_snapshot_predates_its_last_slots_retires_once_they_are_held() -> None:
    """With a snapshot after every slot, n3 restarts at the slot that removed it, short of the last slots it
    voted in; the leader's ``held`` says the new voters hold them, so it retires without applying them."""
    net = network(snapshot_every=1)
    write(net, "n1", "k", "v")
    assert ask(net, "n1", "remove", "n3")[0] == ReplyStatus.OK
    net.crash("n3")
    for i in range(40):
        write(net, "n1", f"x{i}", "v")
    run(net, 400)
    net.restart("n3")
    n3 = net.cores["n3"]
    last = n3._handoff_slot()
    assert last > n3.applied
    run(net, 1000)
    assert n3.retired and n3.applied < last and net.leader() == "n1"


def test_a_slot_a_late_promise_reports_chosen_keeps_its_value_after_it_is_applied() -> None:
    """Review of swarm seed 3621's fix: a slot one late promise reported chosen, then applied (and so gone
    from ``chosen``), must not take a lower-ballot value another late promise reports accepted there."""
    from multipaxos.messages import Promise, SlotValue

    net = network()
    write(net, "n1", "k", "x")
    core = net.cores["n1"]
    assert core.ballot is not None
    slot = core.next_slot
    chosen = ClientRequest("cA", 1, put("k", "chosen"))
    loser = ClientRequest("cB", 1, put("k", "loser"))
    core.prepared -= {"n2", "n3"}  # as if a configuration had entered the window and not promised yet
    core._may_propose = lambda s: False  # type: ignore[method-assign]
    core._on_late_promise("n2", Promise(core.ballot, slot, (SlotValue(slot, chosen, Ballot(1, "n3")),),
                                        (SlotValue(slot, chosen),)))
    core._apply()  # an earlier slot's Accepted applies the chosen slot before we propose it again
    assert core.applied >= slot and slot not in core.chosen
    core._on_late_promise("n3", Promise(core.ballot, slot, (SlotValue(slot, loser, Ballot(0, "n2")),), ()))
    del core._may_propose  # type: ignore[attr-defined]
    core._pump()
    assert core.deferred.get(slot, chosen) == chosen
    assert slot not in core.proposals or core.proposals[slot].value == chosen
    run(net, 4)
    same_state(net)


@pytest.mark.parametrize("mode", ["read_index", "lease"])
def test_a_read_waits_until_a_configuration_that_entered_the_window_has_promised(mode: str) -> None:
    """Review of swarm seed 3621's fix: a leader whose window holds a configuration none of whose new voters
    promised its ballot could miss slots a lower ballot chose there; it serves no read until they promise."""
    from smr.commands import get

    net = network(alpha=2, read_mode=mode)
    write(net, "n1", "k", "v")
    net.join("n4")
    net.join("n5")
    net.drop_if = lambda s, d, m: isinstance(m, Prepare) and d in ("n4", "n5")
    assert ask(net, "n1", "set", ["n1", "n4", "n5"], [])[0] == ReplyStatus.OK
    run(net, 6)  # the window fills with no-ops: only the new configuration is left in it
    core = net.cores["n1"]
    assert core._window() == [Membership.of(("n1", "n4", "n5"))] and not {"n4", "n5"} & core.prepared
    net.request("n1", get("k"), client="r", seq=1)
    run(net, 6)
    assert not [r for r in net.replies_to("r", 1) if r.status == ReplyStatus.OK]
    net.drop_if = None
    run(net, 8)
    replies = net.replies_to("r", 1)
    assert replies and replies[-1].status == ReplyStatus.OK and replies[-1].result == "v"


def test_a_leader_told_it_is_behind_by_a_voter_it_asked_for_a_promise_steps_down() -> None:
    """Review of swarm seed 3621's fix: a voter of a configuration entering the leader's window that is ahead
    by more than a promise can carry answers ``Behind``; the leader, which cannot propose there, lets it lead."""
    from multipaxos.messages import Behind

    net = network()
    write(net, "n1", "k", "v")
    core = net.cores["n1"]
    assert core.role == Role.LEADER and core.ballot is not None
    core.step(Receive("n2", Behind(core.ballot, core.applied)))  # not ahead: nothing to do
    assert core.role == Role.LEADER
    core.step(Receive("n2", Behind(core.ballot, core.applied + 50)))
    assert core.role != Role.LEADER
