"""Multi-Paxos reconfiguration from the followers' side: who a replica follows, and what a restart keeps.

Regressions found by the membership swarms (``smr fuzz --backend multipaxos --membership``):

* a replica that missed a node's addition (it was down) must still promise to
  that node and follow it as leader, or a configuration that needs its vote
  never gets a quorum (seed 3);
* ``membership`` is the configuration in effect as a restart would find it:
  it switches alpha slots after a change is applied, and only once a snapshot
  of that point is durable, because a runtime stops a removed node as soon as
  no member's ``membership`` names it -- and a replica that restarted behind
  that point would need the stopped node's vote for slots it lost (seeds 2,
  3, 24: the candidate's window still held the old configuration).

Reference: Lamport, Malkhi & Zhou, "Reconfiguring a State Machine", section 4
(the old configuration keeps serving until the new one holds its state).
"""

from __future__ import annotations

from typing import Any

from smr.commands import put
from smr.membership import membership_command
from smr.replica import Receive, ReplyStatus, Role
from smr.testing import Network

from multipaxos import Heartbeat, MultiPaxosCore, check_invariants
from synod.ballot import Ballot

_SEQ = [5000]


def network(alpha: int = 4, hold: bool = False) -> Network:
    """A 3-node multi-Paxos network with n1 elected (with ``hold``, batches wait for :meth:`Network.sync`)."""
    net: Network = Network(MultiPaxosCore, 3, {"alpha": alpha}, invariants=check_invariants, hold_syncs=hold)
    net.elect("n1")
    return net


def ask(net: Network, node: str, command: Any, client: str = "admin") -> Any:
    """Send ``command`` to ``node``, settle, and return the last reply's status."""
    _SEQ[0] += 1
    net.request(node, command, client=client, seq=_SEQ[0])
    net.settle()
    replies = net.replies_to(client, _SEQ[0])
    return replies[-1].status if replies else None


def run(net: Network, ticks: int) -> None:
    """Let every live node tick, delivering (and syncing) promptly."""
    for _ in range(ticks):
        net.tick_all(1)
        net.settle()


def leader_of(net: Network) -> str:
    """The one live leader."""
    leaders = [n for n, c in net.cores.items() if c.role == Role.LEADER]
    assert len(leaders) == 1, leaders
    return leaders[0]


def test_a_replica_that_missed_an_addition_promises_to_and_follows_the_new_node() -> None:
    """n3 is down while n4 is added and n1, n2 leave; restarted knowing only n1..n3, it must
    promise to n4 (the only other voter) and learn from it, or {n3, n4} never has a quorum."""
    net = network()
    net.crash("n3")
    net.join("n4")
    assert ask(net, "n1", membership_command("add", "n4", "")) == ReplyStatus.OK
    run(net, 12)  # n4 is promoted once caught up (n1, n2 and n4 are a quorum of the four)
    assert net.cores["n1"].applier.membership.voters == ("n1", "n2", "n3", "n4")
    # n3 is restarted before it could learn anything: its configuration is still n1, n2, n3
    net.restart("n3")
    net.isolate("n3")
    assert ask(net, "n1", membership_command("set", ["n3", "n4"], [])) == ReplyStatus.OK
    run(net, 30)  # n1 leads until its last slots are chosen (n2 and n4 accept them), then steps down
    for gone in ("n1", "n2"):
        net.crash(gone)
    assert "n4" not in net.cores["n3"].known
    net.recover()
    run(net, 80)
    n3, n4 = net.cores["n3"], net.cores["n4"]
    assert leader_of(net) in ("n3", "n4")
    assert n3.applied == n4.applied and n3.applier.membership.voters == ("n3", "n4")
    assert ask(net, leader_of(net), put("k", "v"), client="c1") == ReplyStatus.OK


def test_a_node_outside_our_configurations_is_refused_unless_it_shows_it_is_ahead() -> None:
    """An unknown sender is taken only with a commit point beyond ours and no live leader heard:
    a proposer is a voter of the configurations of its slots, and we know those up to applied + alpha."""
    net = network()
    ask(net, "n1", put("k", "v"), client="c1")
    n2 = net.cores["n2"]
    leader = n2.leader_ballot
    errors = len(net.remote_errors)
    net.step("n2", Receive("n9", Heartbeat(Ballot(9, "n9"), n2.applied)))  # not ahead of us
    net.step("n2", Receive("n9", Heartbeat(Ballot(9, "n9"), n2.applied + 5)))  # ahead, but n1 leads
    assert len(net.remote_errors) == errors + 2 and n2.leader_ballot == leader
    net.isolate("n2")  # it hears no leader for a while (and campaigns in vain)
    net.tick("n2", n2.opts.election_ticks_min)
    net.stabilize()
    net.recover()
    net.step("n2", Receive("n9", Heartbeat(Ballot(n2.max_round + 1, "n9"), n2.applied + 5)))
    assert len(net.remote_errors) == errors + 2 and n2.leader_ballot.node == "n9"


def test_membership_switches_alpha_slots_after_a_change_once_a_snapshot_of_that_point_is_durable() -> None:
    """After removing n3 the leader's ``membership`` still names n3 for alpha slots (they need its
    configuration's quorum), and then until the snapshot of the switch point is synced."""
    net = network(hold=True)
    n1 = net.cores["n1"]
    _SEQ[0] += 1
    net.request("n1", membership_command("remove", "n3"), client="admin", seq=_SEQ[0])
    for _ in range(40):  # the followers sync, the leader's own batches wait
        net.tick("n1")
        net.stabilize()
        for follower in ("n2", "n3"):
            net.sync(follower)
        net.stabilize()
        if n1.history[-1][1].voters == ("n1", "n2") and n1.applied >= n1.history[-1][0] + 3:
            break
    change = n1.history[-1][0]
    assert n1.applier.membership.voters == ("n1", "n2") and n1.applied >= change + 3
    assert n1.effect.voters == ("n1", "n2") and n1.snapshot_slot >= change + 3  # the window has passed ...
    assert n1.membership.voters == ("n1", "n2", "n3")  # ... but a restart would not find the snapshot yet
    net.sync("n1")
    assert n1.membership.voters == ("n1", "n2") and net.durable["n1"]["mp/snapshot"]["last_slot"] >= change + 3


def test_a_restart_after_removals_resumes_from_the_new_configuration() -> None:
    """n1 and n3 are removed and stopped once n2's ``membership`` no longer names them (as the
    simulator's admin does); n2 restarts: its snapshot of the switch lets it lead alone."""
    net = network()
    for node in ("n1", "n3"):
        assert ask(net, leader_of(net), membership_command("remove", node)) == ReplyStatus.OK
        run(net, 40)
        assert node not in net.cores["n2"].membership.members
        net.crash(node)
        run(net, 40)
    net.restart("n2")
    n2 = net.cores["n2"]
    assert n2.membership.voters == ("n2",) and n2.applied > 0
    run(net, 40)
    assert n2.role == Role.LEADER
    assert ask(net, "n2", put("k", "alone"), client="c1") == ReplyStatus.OK
