"""The leader's acceptance in parallel with replication: eager Accepts, its own acceptance counted once synced.

A leader sends its Accept messages before its own acceptance of their slots
is durable (``Ready.eager``) and asks for a ``Synced`` of its ballot's round
and the highest slot it accepted (``Ready.after_sync``); it adds itself to a
slot's quorum only once a Synced of the ballot it leads covers the slot.  Its
promise of its own ballot was synced in phase 1, before its Prepare left, so
before any eager Accept can.  The network holds every node's batches until
the test syncs them (``hold_syncs``).

Reference: Paxos Made Simple, section 2.3 (an acceptor's acceptance counts only
once it is in stable storage); Ongaro's thesis, section 10.2.1 (the same
optimisation in Raft).
"""

from __future__ import annotations

import random
from typing import Any

from random_schedule import run_random_schedule

from smr.commands import put
from smr.replica import EMPTY, ClientRequest, Receive, ReplicaConfig, ReplyStatus, Role, Send, Start, Synced
from smr.state_machines import KVStore
from smr.testing import Network

from multipaxos import ACCEPTOR_PREFIX, Accept, MultiPaxosCore, Nack, check_invariants
from multipaxos.mutants import build
from synod.ballot import Ballot

PROMISE_KEY = ACCEPTOR_PREFIX + "promised"


def _net(size: int = 3, factory: Any = build, **options: object) -> Network:
    return Network(factory, size, options, 0, invariants=check_invariants, hold_syncs=True)


def _leader(size: int = 3, **options: object) -> Network:
    """n1 leads ballot 1.n1; every batch waits for ``net.sync``."""
    net = _net(size, **options)
    net.elect("n1")
    return net


def _accepts(sends: tuple[Send, ...]) -> dict[str, Accept]:
    return {s.dst: s.message for s in sends if isinstance(s.message, Accept)}


def test_the_accept_leaves_eagerly_and_asks_for_its_synced() -> None:
    """A client command's Accepts are eager and the batch asks for a Synced of the ballot's round and
    the command's slot; the leader's own acceptance is in the same batch's writes, not yet counted."""
    net = _leader()
    ready = net.step("n1", ClientRequest("c1", 1, put("x", "1")))
    eager = _accepts(ready.eager)
    assert set(eager) == {"n2", "n3"} and len(ready.eager) == 2 and not _accepts(ready.messages)
    assert all(m.ballot == Ballot(1, "n1") and m.first_slot == 1 for m in eager.values())
    assert ready.after_sync == Synced(1, 1)
    assert f"{ACCEPTOR_PREFIX}slot/{1:012d}" in {w.key for w in ready.persist}
    assert "n1" not in net.cores["n1"].proposals[1].acceptors


def test_the_leader_does_not_count_its_unsynced_acceptance_when_the_quorum_needs_it() -> None:
    """With n3 down, n2's Accepted alone is no majority: the slot is chosen only once the leader's own
    acceptance is synced, and only then is the client answered."""
    net = _leader()
    net.crash("n3")
    net.request("n1", put("x", "1"))
    net.stabilize()
    net.sync("n2")
    net.stabilize()                          # n2's Accepted reaches n1
    leader = net.cores["n1"]
    assert leader.proposals[1].acceptors == {"n2"} and leader.applied == 0
    assert not net.replies_to("c1", 1)
    net.sync("n1")                           # Synced(1, 1): now n1's acceptance counts
    assert 1 not in leader.proposals and leader.applied == 1
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]


def test_two_acceptors_choose_without_the_leaders_own_acceptance() -> None:
    """n2 and n3 are a majority of three: the slot is chosen before the leader's own write is synced,
    but the client's answer waits behind that write."""
    net = _leader()
    net.request("n1", put("x", "1"))
    net.stabilize()
    net.sync("n2")
    net.sync("n3")
    net.stabilize()
    leader = net.cores["n1"]
    assert leader.applied == 1 and not net.replies_to("c1", 1)
    net.sync("n1")
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]


def test_a_synced_of_a_lost_leadership_is_ignored() -> None:
    """A leader pre-empted before its acceptance is synced does not count it when the Synced comes,
    and a Synced of another round does nothing to a leader."""
    net = _leader()
    net.request("n1", put("x", "1"))
    net.step("n1", ClientRequest("c1", 2, put("y", "2")))
    net.step("n1", Receive("n2", Nack(Ballot(1, "n1"), Ballot(7, "n2"))))
    leader = net.cores["n1"]
    assert leader.role == Role.FOLLOWER
    net.sync("n1")
    assert leader.applied == 0 and leader.own_durable == 0
    core = MultiPaxosCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
    core.step(Start({}))
    core.role, core.ballot = Role.LEADER, Ballot(3, "n1")
    assert core.step(Synced(2, 50)) is EMPTY and core.own_durable == 0


def test_a_single_node_chooses_on_its_synced() -> None:
    """A cluster of one chooses each command exactly when the Synced of its own acceptance arrives."""
    net = _net(1)
    net.campaign("n1")
    leader = net.cores["n1"]
    assert leader.role == Role.LEADER
    net.sync("n1")
    assert net.request("n1", put("x", "1")) == [] and leader.applied == 0
    net.sync("n1")
    assert leader.applied == 1
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]


def test_switched_off_the_accepts_wait_for_the_sync_like_every_message() -> None:
    """With ``write_in_parallel: false`` nothing is eager; the leader still counts itself on Synced."""
    net = _leader(write_in_parallel=False)
    ready = net.step("n1", ClientRequest("c1", 1, put("x", "1")))
    assert ready.eager == () and set(_accepts(ready.messages)) == {"n2", "n3"}
    assert ready.after_sync == Synced(1, 1) and not net.in_flight
    net.settle()
    assert net.cores["n1"].applied == 1


def test_recovered_slots_are_counted_only_once_synced_too() -> None:
    """A new leader re-proposes what phase 1 reported in its own ballot: those Accepts are eager, and
    its own acceptance of them counts only once its Synced comes."""
    net = _leader()
    net.crash("n3")
    net.request("n1", put("x", "1"))
    net.stabilize()
    net.sync("n2")                           # n2 accepted slot 1 in ballot 1.n1; n1 never synced it
    net.crash("n1")
    net.start("n3")
    net.campaign("n2")
    for node in ("n2", "n3"):                # Prepare, Promise: n2 leads and re-proposes slot 1
        net.sync(node)
        net.stabilize()
    leader = net.cores["n2"]
    assert leader.role == Role.LEADER and leader.proposals[1].acceptors == set()
    net.sync("n3")
    net.stabilize()
    assert leader.proposals[1].acceptors == {"n3"} and leader.applied == 0  # n2's own is not synced yet
    net.sync("n2")
    assert leader.applied == 1


def _checked_factory(net_box: list[Network], checked_batches: list[int]) -> Any:
    """Cores whose every eager batch is checked against the node's durable state at that moment."""

    def factory(config: ReplicaConfig) -> Any:
        core = build(config)
        step = core.step

        def checked(event: Any) -> Any:
            ready = step(event)
            if ready.eager:
                checked_batches[0] += 1
                durable = net_box[0].durable[config.node]
                assert core.role == Role.LEADER and core.ballot is not None
                assert not any(w.key == PROMISE_KEY for w in ready.persist)
                assert durable.get(PROMISE_KEY) == core.ballot.to_json(), "the promise is durable first"
                for send in ready.eager:
                    assert isinstance(send.message, Accept) and send.message.ballot == core.ballot
            return ready

        core.step = checked  # type: ignore[method-assign]
        return core

    return factory


def test_eager_accepts_leave_only_once_the_leaders_promise_is_durable() -> None:
    """Over random schedules of requests, deliveries, syncs, ticks, crashes and restarts, every eager
    Accept carries the ballot of a leader whose promise of that ballot is already on its disk."""
    checked = [0]
    for seed in range(4):
        rng = random.Random(seed)
        box: list[Network] = []
        net = Network(build, 3, {}, seed, invariants=check_invariants, hold_syncs=True)
        net.factory = _checked_factory(box, checked)
        box.append(net)
        for node in net.ids:
            net.restart(node)
        run_random_schedule(net, rng)
    assert checked[0] > 100
