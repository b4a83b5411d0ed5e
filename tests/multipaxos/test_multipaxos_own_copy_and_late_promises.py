"""Multi-Paxos: the leader's own copy counted once durable, late promises, phase 1 over the alpha window,
and which configuration governs (and chooses) a slot.

* A leader writes its own acceptance in parallel with its Accepts and counts it toward a quorum only for
  the slots a ``Synced`` of its ballot covers; a snapshot's configuration is put in effect (``membership``)
  only once that snapshot is durable.
* A promise arriving after the leader was elected (a late one, or from a voter of a configuration that
  entered its window) is recovered from -- or, if it shows slots chosen that the leader cannot re-propose,
  makes the leader step down with a back-off.
* Phase 1 must cover every configuration of the window: the leader asks a new configuration's voters for
  a promise (again once each heartbeat interval), and proposes at slot i only once i's configuration is
  certain; a slot counts as chosen only once slot i - alpha is applied.

Each test drives real :class:`multipaxos.MultiPaxosCore` replicas through :class:`smr.testing.Network`
(which checks the multi-Paxos invariants after every step) or steps one core with hand-made messages,
and pins what it sends, writes, applies and whom it talks to.  Deterministic: a failure replays as is.

Reference: Lamport, "Paxos Made Simple" (2001), sections 2.3 and 3; Lamport, Malkhi & Zhou,
"Reconfiguring a State Machine" (SIGACT News 41(1), 2010), section 4; Ongaro's thesis, section 10.2.1.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from smr.commands import put
from smr.driver import apply_writes
from smr.hostile import view_of
from smr.membership import Membership, membership_command
from smr.replica import EMPTY, TICK, ClientRequest, Ready, Receive, ReplicaConfig, Role, Start, Synced
from smr.sessions import NOOP_ENTRY
from smr.state_machines import KVStore
from smr.testing import Network, unstamped

from multipaxos import Accept, Heartbeat, MultiPaxosCore, MultiPaxosInvariants, Prepare, Promise
from multipaxos.messages import SlotValue, Snapshot
from multipaxos.mutants import build
from synod.ballot import Ballot

#: A fixed election timeout of 10 ticks and a back-off of 0..30 ticks on top after a campaign given up.
BACKOFF = {"election_ticks_min": 10, "election_ticks_max": 10, "backoff_ticks_max": 30}
B1 = Ballot(1, "n1")


def _net(size: int = 3, hold_syncs: bool = False, **options: Any) -> Network:
    """A multi-Paxos network of ``size`` nodes (batches wait for ``net.sync`` if ``hold_syncs``)."""
    return Network(build, size, options, 0, KVStore, invariants=MultiPaxosInvariants(), hold_syncs=hold_syncs)


def _restarted(node: str, durable: dict[str, Any], **options: object) -> MultiPaxosCore:
    """A replica of {n1, n2, n3} started from the durable map ``durable``, stepped by hand."""
    others = tuple(n for n in ("n1", "n2", "n3") if n != node)
    core = MultiPaxosCore(ReplicaConfig(node, others, random.Random(0), KVStore, dict(options)))
    core.step(Start(dict(durable)))
    return core


def _core(node: str = "n2", **options: object) -> MultiPaxosCore:
    """One started replica of {n1, n2, n3} with an empty disk, stepped by hand."""
    return _restarted(node, {}, **options)


def _req(seq: int, key: str = "k") -> ClientRequest:
    return ClientRequest("c1", seq, put(key, f"v{seq}"))


def _change(seq: int, kind: str, *args: Any) -> ClientRequest:
    return ClientRequest("admin", seq, membership_command(kind, *args))


def _accepts_to(net: Network, dst: str) -> list[tuple[int, tuple[ClientRequest, ...]]]:
    """The Accepts in flight to ``dst`` as (first slot, unstamped values), in order (left in flight)."""
    return [(m.first_slot, unstamped(m.values)) for _, d, m in net.in_flight if d == dst and isinstance(m, Accept)]


def _ticks_until_prepare(net: Network, node: str, limit: int = 100) -> tuple[int, set[str]]:
    """Tick ``node`` alone until it campaigns: how many ticks that took, and whom its Prepare went to."""
    for ticks in range(1, limit + 1):
        ready = net.step(node, TICK)
        to = {s.dst for s in ready.messages if isinstance(s.message, Prepare)}
        if to:
            return ticks, to
    raise AssertionError(f"{node} sent no Prepare in {limit} ticks")


# ------------------------------------------------------------ the leader's own copy: counted once synced
def test_a_synced_counts_the_leaders_own_acceptance_only_up_to_its_slot() -> None:
    """With n3 down, slot 2 needs the leader's own acceptance: a Synced of slot 1 counts it for slot 1 only,
    so n2's Accepted of slot 2 chooses nothing until the leader's write of slot 2 is synced too.

    Reference: Paxos Made Simple, section 2.3 (an acceptance counts once it is in stable storage);
    Ongaro's thesis, section 10.2.1 (the leader's write in parallel)
    """
    net = _net(hold_syncs=True)
    net.elect("n1")
    net.crash("n3")
    leader = net.cores["n1"]
    first = net.step("n1", _req(1, "x"))
    second = net.step("n1", _req(2, "y"))
    assert (first.after_sync, second.after_sync) == (Synced(1, 1), Synced(1, 2))
    net.stabilize()                              # both Accepts reach n2; its batches wait
    net.sync("n1", 1)                            # only the leader's write of slot 1 is durable
    assert leader.proposals[1].acceptors == {"n1"} and leader.proposals[2].acceptors == set()
    net.sync("n2")
    net.stabilize()                              # n2's Accepted of slots 1 and 2
    assert leader.applied == 1 and leader.proposals[2].acceptors == {"n2"}
    net.sync("n1")                               # Synced(1, 2): now slot 2 has a majority
    assert leader.applied == 2 and [r.seq for r in net.replies] == [1, 2]


def test_membership_follows_a_snapshot_only_once_that_snapshot_is_durable() -> None:
    """Two snapshots, each putting a new configuration in effect, wait for their sync: the Synced of the
    first puts only the first in effect -- what a restart from the writes durable by then finds -- and
    the second follows with its own Synced.

    Reference: Lamport, Malkhi & Zhou, section 4 (the configuration of slot i is the one after slot
    i - alpha); the module docstring's rule for ``membership``
    """
    n2 = _core(alpha=2)
    add, remove = _change(1, "add_learner", "n4", ""), _change(2, "remove", "n4")
    accepted = n2.step(Receive("n1", Accept(B1, 1, (add, NOOP_ENTRY, remove, NOOP_ENTRY), 0)))
    first = n2.step(Receive("n1", Heartbeat(B1, 2)))    # applies 1..2: slot 3 is governed by {+n4}
    second = n2.step(Receive("n1", Heartbeat(B1, 4)))   # applies 3..4: slot 5 is governed by {-n4}
    assert n2.applied == 4
    assert first.after_sync is not None and second.after_sync is not None
    initial = Membership.of(("n1", "n2", "n3"))
    with_n4 = attrs.evolve(initial, learners=("n4",))
    assert n2.membership == initial                       # neither snapshot is durable yet
    durable: dict[str, Any] = {}
    for batch in (accepted, first):
        apply_writes(durable, batch.persist)
    n2.step(first.after_sync)
    assert n2.membership == with_n4 == _restarted("n2", durable, alpha=2).membership
    apply_writes(durable, second.persist)
    n2.step(second.after_sync)
    assert n2.membership == initial == _restarted("n2", durable, alpha=2).membership


def test_a_synced_the_leader_already_counted_changes_nothing() -> None:
    """A Synced of the leader's ballot for a slot it has counted already (a repeat) is ignored: no message
    goes out, not even a Prepare that falls due to a new configuration's silent voters.

    Reference: smr.replica.Synced (durable up to index: a repeat tells nothing new)
    """
    net, leader, _ = _window_entered_without_promises()
    assert leader.ballot is not None
    round_ = leader.ballot.round
    for _ in range(3):                          # ticks 5..7: a Prepare to n4 and n5 (sent at 4) falls due
        net.step("n1", TICK)
        net.settle()
    assert leader.ticks == 7
    assert net.step("n1", Synced(round_, leader.own_durable)) is EMPTY
    assert net.step("n1", Synced(round_, leader.own_durable - 1)) is EMPTY
    assert leader.own_durable == 2 and leader.role == Role.LEADER


# ------------------------------------------------------------ late promises
def _snapshot_text() -> tuple[int, str]:
    """A real snapshot (its slot and text) of a replica that applied one write, taken after every slot."""
    other = _net(snapshot_every=1)
    other.elect("n1")
    other.request("n1", put("z", "1"), client="c9")
    other.settle()
    leader = other.cores["n1"]
    assert leader.snapshot_data is not None
    return leader.snapshot_slot, leader.snapshot_data


def _leader_with_n3s_promise_held(**options: Any) -> tuple[Network, MultiPaxosCore, Promise]:
    """n1 elected by n1 and n2; n3's promise of n1's ballot is taken out of flight (it is late)."""
    net = _net(**options)
    net.campaign("n1")
    net.deliver()
    net.deliver()                                # the Prepares: n2 and n3 promise
    held = [m for _, _, m in net.take(Promise, src="n3")]
    net.settle()
    leader = net.cores["n1"]
    assert leader.role == Role.LEADER and leader.prepared == {"n1", "n2"} and len(held) == 1
    return net, leader, held[0]


def test_a_late_promise_whose_snapshot_shows_a_slot_the_leader_never_proposed_deposes_it() -> None:
    """n3's late promise carries a snapshot of slot 1, the idle leader's next slot, and no chosen value:
    the leader cannot re-propose what it does not know, so it steps down -- and backs off, so that a
    replica that is up to date campaigns first.

    Reference: Paxos Made Simple, section 3 (a proposer learns what is chosen); the module
    docstring (a leader steps down for one up to date, seed 3621's kin)
    """
    slot, data = _snapshot_text()
    assert slot == 1
    net, leader, late = _leader_with_n3s_promise_held(**BACKOFF)
    assert leader.next_slot == 1 and leader.applied == 0
    net.take()
    net.step("n1", Receive("n3", attrs.evolve(late, snapshot=Snapshot(slot, data))))
    assert leader.role == Role.FOLLOWER and leader.ballot is None and leader.status().leader is None
    assert not net.in_flight and "n3" not in leader.prepared
    ticks, _ = _ticks_until_prepare(net, "n1")
    assert 10 < ticks <= 10 + BACKOFF["backoff_ticks_max"]   # (the seeded back-off drawn here is 10 ticks)


def test_a_late_promise_with_the_chosen_values_its_snapshot_holds_is_recovered_from() -> None:
    """A late promise whose snapshot comes with the chosen values of every slot it holds beyond the
    leader's proposals (a log tail) does not depose the leader: it re-proposes those very values."""
    net, leader, late = _leader_with_n3s_promise_held()
    _, data = _snapshot_text()
    one, two = ClientRequest("c7", 1, put("a", "1")), ClientRequest("c7", 2, put("b", "2"))
    chosen = (SlotValue(1, one), SlotValue(2, two))
    net.take()
    net.step("n1", Receive("n3", attrs.evolve(late, chosen=chosen, snapshot=Snapshot(2, data))))
    assert leader.role == Role.LEADER and "n3" in leader.prepared
    accepts = [m for _, d, m in net.take(Accept) if d == "n2"]
    assert [(a.ballot, a.first_slot, a.values) for a in accepts] == [(leader.ballot, 1, (one, two))]
    assert leader.applied == 2 and [leader.log[1], leader.log[2]] == [one, two]


def test_a_leader_that_applied_past_its_next_slot_is_not_deposed_by_a_snapshot_of_slots_it_applied() -> None:
    """alpha 2: slot 1 makes {n1, n4, n5, n6, n7} the configuration of slot 3 on, and the new voters' first
    promises are lost.  n4's late promise reports slots 3 and 4 chosen (a put, and a change adding learner
    n8: the new configuration chose them while n1 could not propose there): n1 holds them back, short of a
    quorum of promises, but applies them once slot 2 is chosen -- past its next slot, 3.  n5's late
    promise then carries a snapshot of slot 4: every slot it holds is applied, so n1 stays leader,
    re-proposes slots 3 and 4 with those values, fills slot 5, and proposes a new command at once in
    slot 6, whose configuration (the one after slot 4) is applied; and the re-proposed change, applied
    already, does not hold back the slots after it.

    Reference: Lamport, Malkhi & Zhou, section 4; the module docstring (seed 3621's kin)
    """
    net = _net(alpha=2)
    net.elect("n1")
    new = ["n1", "n4", "n5", "n6", "n7"]
    for node in new[1:]:
        net.join(node)
    leader = net.cores["n1"]
    assert leader.ballot is not None
    slot_2_lost = [True]
    net.drop_if = lambda s, d, m: (isinstance(m, Prepare) and d in new) or \
        (slot_2_lost[0] and isinstance(m, Accept) and m.first_slot == 2)
    net.request("n1", membership_command("set", new, []), client="admin", seq=1)
    net.settle()
    assert leader.applied == 1 and leader.next_slot == 3 and list(leader.proposals) == [2]
    x, y = ClientRequest("c8", 1, put("a", "x")), _change(2, "add_learner", "n8", "")
    net.step("n1", Receive("n4", Promise(leader.ballot, 2, (), (SlotValue(3, x), SlotValue(4, y)))))
    assert leader.role == Role.LEADER and leader.next_slot == 3 and set(leader.deferred) == {3, 4}
    assert not [m for _, _, m in net.in_flight if isinstance(m, Accept)]  # {n1, n4}: no quorum of promises
    slot_2_lost[0] = False
    for _ in range(3):                           # slot 2's Accept goes out again and is chosen
        net.step("n1", TICK)
    net.settle()
    assert leader.applied == 4 and leader.next_slot == 3
    assert [unstamped(leader.log[s]) for s in (3, 4)] == [x, y] and "n8" in leader.peers
    _, data = _snapshot_text()
    net.take()
    net.step("n1", Receive("n5", Promise(leader.ballot, 2, (), (), Snapshot(4, data))))
    assert leader.role == Role.LEADER and {"n4", "n5"} <= leader.prepared
    assert _accepts_to(net, "n2") == [(3, (x, y)), (5, (NOOP_ENTRY,))] and leader.next_slot == 6
    net.step("n1", _req(1))
    assert _accepts_to(net, "n2")[2:] == [(6, (_req(1),))]
    net.settle()
    net.tick_all(3)                              # a heartbeat tells the followers the commit point
    assert {n: c.applied for n, c in net.cores.items()} == dict.fromkeys(net.ids, 6)
    # the change re-proposed at slot 4 was applied before: it holds back no later slot (the leader
    # proposes slots 7-10 at once, not only the alpha slots past its applied prefix)
    net.take()
    for seq in range(2, 6):
        net.step("n1", _req(seq))
    assert [first for first, _ in _accepts_to(net, "n2")] == [7, 8, 9, 10]
    assert not [s for s in leader.chosen if s <= leader.applied]  # nothing applied is kept as chosen again


# ------------------------------------------------------------ phase 1 over the window
def _window_entered_without_promises() -> tuple[Network, MultiPaxosCore, list[tuple[int, str, int, int]]]:
    """alpha 2: n1 made {n1, n4, n5} the configuration of slot 3 on; n4 and n5 never get a Prepare.

    At tick 4 a client request finds slot 3 unprepared: the leader asks n4 and n5.  Returns the
    network, the leader and a log of every Prepare it sends as (its tick, to, from_slot, its applied).
    """
    net = _net(alpha=2)
    net.elect("n1")
    net.join("n4")
    net.join("n5")
    net.drop_if = lambda s, d, m: isinstance(m, Prepare) and d in ("n4", "n5")
    net.request("n1", membership_command("set", ["n1", "n4", "n5"], []), client="admin", seq=1)
    net.settle()
    leader = net.cores["n1"]
    assert leader.applied == 2 and leader.next_slot == 3 and leader.ticks == 0  # slot 2: the window's no-op
    log: list[tuple[int, str, int, int]] = []
    step = net.step

    def logged(node: str, event: Any) -> Ready:
        ready = step(node, event)
        if node == "n1":
            log.extend((leader.ticks, s.dst, s.message.from_slot, leader.applied)
                       for s in (*ready.messages, *ready.eager) if isinstance(s.message, Prepare))
        return ready

    net.step = logged  # type: ignore[method-assign]
    for _ in range(4):
        net.step("n1", TICK)
        net.settle()
    assert not log
    net.step("n1", _req(1))
    net.settle()
    assert leader.next_slot == 3 and log == [(4, "n4", 3, 2), (4, "n5", 3, 2)]
    return net, leader, log


def test_the_leader_asks_a_new_configurations_silent_voters_again_once_per_heartbeat_interval() -> None:
    """Until a quorum of slot 3's configuration promised, the leader proposes nothing there and sends its
    silent voters ``Prepare(ballot, applied + 1)``: once, then again at the first heartbeat once a whole
    interval (3 ticks) passed since the last -- never twice within one interval.

    Reference: Lamport, Malkhi & Zhou, section 4 (phase 1 for the new configuration's slots)
    """
    net, leader, log = _window_entered_without_promises()
    for _ in range(11):
        net.step("n1", TICK)
        net.settle()
    assert leader.ticks == 15 and leader.next_slot == 3
    assert [t for t, dst, _, _ in log if dst == "n4"] == [4, 9, 12, 15]
    assert [t for t, dst, _, _ in log if dst == "n5"] == [4, 9, 12, 15]
    assert all(from_slot == applied + 1 == 3 for _, _, from_slot, applied in log)


def test_a_slot_whose_configuration_waits_on_an_unapplied_change_is_not_proposed() -> None:
    """alpha 2: while the change in slot 1 is not chosen, slot 2 may be proposed (its configuration is
    the first) but slot 3's is not certain: the leader keeps the third request queued, and proposes it
    only once slot 1 is applied.

    Reference: Lamport, Malkhi & Zhou, section 4 (slot i's configuration is the one after slot i - alpha)
    """
    net = _net(alpha=2)
    net.elect("n1")
    net.join("n4")
    leader = net.cores["n1"]
    net.step("n1", _change(1, "add_learner", "n4", ""))
    held = net.take(Accept)                      # nobody hears of slot 1 yet
    net.step("n1", _req(2))
    net.step("n1", _req(3))
    slots = sorted({m.first_slot + i for _, _, m in net.in_flight if isinstance(m, Accept)
                    for i in range(len(m.values))})
    assert slots == [2] and leader.next_slot == 3 and len(leader.queue) == 1
    net.inject(held)
    net.settle()
    assert leader.applied == 3 and unstamped(leader.log[3]) == _req(3)


def test_a_slot_is_counted_chosen_only_once_the_slot_alpha_before_it_is_applied() -> None:
    """alpha 2: slot 1's Accepts are lost; slots 2 and 3 reach a majority ({n1, n2}).  Slot 2 is chosen,
    but slot 3 is not counted chosen while slot 1 is unapplied (its configuration is not certain yet): the
    leader keeps re-sending slot 3 to n3 with slot 1, and applies 1..3 together once slot 1 is chosen.

    Reference: Lamport, Malkhi & Zhou, section 4; the module docstring's first reconfiguration rule
    """
    net = _net(alpha=2)
    net.elect("n1")
    leader = net.cores["n1"]
    net.cut("n1", "n3")
    net.drop_if = lambda s, d, m: isinstance(m, Accept) and m.first_slot == 1
    for seq in (1, 2, 3):
        net.step("n1", _req(seq))
    net.settle()
    assert leader.applied == 0 and 2 in leader.chosen
    assert 3 not in leader.chosen and leader.proposals[3].acceptors == {"n1", "n2"}
    net.recover()
    for _ in range(3):                           # a heartbeat interval: unchosen slots are sent again
        net.step("n1", TICK)
    resent = net.take(Accept)
    assert sorted((d, m.first_slot) for _, d, m in resent) == [("n2", 1), ("n3", 1), ("n3", 3)]
    net.inject(resent)
    net.settle()
    assert leader.applied == 3 and [unstamped(leader.log[s]) for s in (1, 2, 3)] == [_req(1), _req(2), _req(3)]


# ------------------------------------------------------------ an acceptor's highest slot
def test_an_acceptor_tracks_the_highest_slot_it_accepted_as_a_restart_finds_it() -> None:
    """After accepting slots 3..5, a follower's highest accepted slot is 5 -- what a restart from its
    durable writes restores, and what a peer generator sees as its last slot."""
    n2 = _core()
    ready = n2.step(Receive("n1", Accept(B1, 3, (_req(1), _req(2), _req(3)), 0)))
    assert n2.max_accepted == 5 and view_of(n2, ("n1", "n2", "n3")).last == 5
    durable: dict[str, Any] = {}
    apply_writes(durable, ready.persist)
    assert _restarted("n2", durable).max_accepted == 5
    n2.step(Receive("n1", Accept(B1, 1, (_req(4),), 0)))
    assert n2.max_accepted == 5


# ------------------------------------------------------------ whom a replica talks to
def _replaced_voter_campaigns_after_restart_at(extra_writes: int) -> set[str]:
    """alpha 2: n4 is added as a learner (slot 1), then {n1, n2} set (slot 3, removing n3 and n4); n3, which
    snapshots every slot and hears no ``held``, applies ``extra_writes`` more slots, restarts from its
    snapshot and campaigns to hand its slots over: whom its Prepare goes to."""
    net = _net(alpha=2, snapshot_every=1)
    net.elect("n1")
    net.join("n4")
    net.request("n1", membership_command("add_learner", "n4", ""), client="admin", seq=1)
    net.settle()
    net.drop_if = lambda s, d, m: d == "n3" and isinstance(m, Heartbeat) and m.held > 0
    net.request("n1", membership_command("set", ["n1", "n2"], []), client="admin", seq=2)
    net.settle()
    assert [s for s, _ in net.cores["n3"].history][-1] == 3
    for i in range(extra_writes):
        net.request("n1", put("k", str(i)), client="c1", seq=i + 1)
        net.settle()
    net.restart("n3")
    n3 = net.cores["n3"]
    assert n3.applied == n3.snapshot_slot == 3 + extra_writes and n3.status().leader is None
    _, to = _ticks_until_prepare(net, "n3")
    assert n3.role == Role.CANDIDATE and set(n3.peers) == to
    return to


def test_a_restarted_replaced_voter_talks_to_the_configurations_of_its_window_and_one_window_behind() -> None:
    """A replaced voter (n3, its hand-off not known done) restarts from a snapshot and campaigns to hand its
    slots over: its Prepare goes to every node of the configurations of slots applied+1-alpha on.
    Restarted at slot 5 (= 3 + 2*alpha - 2) that still takes in the configuration before slot 3's change
    (with learner n4); at slot 6 it no longer does.

    Reference: Lamport, Malkhi & Zhou, section 4; the module docstring ("in (and one window behind)")
    """
    assert _replaced_voter_campaigns_after_restart_at(2) == {"n1", "n2", "n4"}
    assert _replaced_voter_campaigns_after_restart_at(3) == {"n1", "n2"}
