"""The leader's append in parallel with replication: eager AppendEntries, and its own copy counted once synced.

A leader sends the AppendEntries carrying its new entries before its own
write of them is durable (``Ready.eager``) and asks for a ``Synced`` of its
term and last index (``Ready.after_sync``); it counts itself toward the commit
quorum only up to the highest index a Synced of the term it leads reported.
The network holds every node's batches until the test syncs them
(``hold_syncs``), so the order of disks and messages is the test's to choose.

Reference: Ongaro's thesis, section 10.2.1 (the leader writes its log in
parallel with replication and counts itself once its own write is durable).
"""

from __future__ import annotations

import random
from typing import Any

from random_schedule import run_random_schedule

from smr.commands import put
from smr.replica import (EMPTY, ClientRequest, Receive, ReplicaConfig, ReplyStatus, Role, Send, Start,
                         Synced)
from smr.state_machines import KVStore

from raft import AppendEntries, AppendEntriesReply, RaftCore
from raft.messages import HARD_KEY
from raft.mutants import build
from raft.testing import Network


def _leader(size: int = 3, **options: object) -> Network:
    """n1 leads term 1 with its no-op committed everywhere; every batch waits for ``net.sync``."""
    net = Network(size, options, hold_syncs=True)
    net.elect("n1")
    net.tick_all(net.cores["n1"].opts.heartbeat_ticks, stabilize=False)
    net.settle()  # followers learn the commit index
    return net


def _appends(sends: tuple[Send, ...]) -> dict[str, AppendEntries]:
    return {s.dst: s.message for s in sends if isinstance(s.message, AppendEntries)}


def test_the_append_leaves_eagerly_and_asks_for_its_synced() -> None:
    """A client command's AppendEntries are eager, carry the new entry, and the batch asks for a
    Synced of the leader's term and the entry's index; nothing else in the batch is eager."""
    net = _leader()
    ready = net.step("n1", ClientRequest("c1", 1, put("x", "1")))
    eager = _appends(ready.eager)
    assert set(eager) == {"n2", "n3"} and len(ready.eager) == 2
    assert all(m.entries and m.entries[-1].request.command == put("x", "1") for m in eager.values())
    assert not _appends(ready.messages)
    assert ready.after_sync == Synced(1, 2) and [w.key for w in ready.persist] == ["raft/log/000000000002"]
    assert {(s, d) for s, d, _ in net.in_flight} == {("n1", "n2"), ("n1", "n3")}  # before n1's sync


def test_the_leader_does_not_count_its_unsynced_entry_when_the_quorum_needs_it() -> None:
    """With n3 down, n2's acknowledgement alone is no majority: the entry commits only once the
    leader's own write is synced, and only then is the client answered."""
    net = _leader()
    net.crash("n3")
    net.request("n1", put("x", "1"))
    net.stabilize()                          # the eager append reaches n2 ...
    net.sync("n2")                           # ... n2 makes it durable and acknowledges
    net.stabilize()
    leader = net.cores["n1"]
    assert leader.progress["n2"].match == 2 and leader.own_durable == 1
    assert leader.commit_index == 1 and not net.replies_to("c1", 1)
    net.sync("n1")                           # Synced(1, 2): now n1's own copy counts
    assert leader.own_durable == 2 and leader.commit_index == 2
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]


def test_two_followers_commit_without_the_leaders_own_copy() -> None:
    """Both followers' durable copies are a majority of three: the entry commits before the leader's
    own write is synced (the commit rests on their disks), but the client's answer still waits
    behind that write, as every output of a later batch does."""
    net = _leader()
    net.request("n1", put("x", "1"))
    net.stabilize()
    net.sync("n2")
    net.sync("n3")
    net.stabilize()
    leader = net.cores["n1"]
    assert leader.commit_index == 2 and leader.own_durable == 1
    assert not net.replies_to("c1", 1)
    net.sync("n1")
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]


def test_a_synced_of_a_lost_leadership_is_ignored() -> None:
    """A leader deposed before its write is synced does not count it when the Synced arrives, and a
    Synced of an older term does nothing to a leader of a newer one."""
    net = _leader()
    net.request("n1", put("x", "1"))
    net.step("n1", Receive("n2", AppendEntriesReply(term=5, success=False, index=0)))  # deposed
    leader = net.cores["n1"]
    assert leader.role == Role.FOLLOWER
    net.sync("n1")                           # Synced(1, 2) reaches a follower of term 5
    assert leader.commit_index == 1 and leader.own_durable == 1
    single = RaftCore(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, {}))
    single.step(Start({}))
    single.term, single.role = 3, Role.LEADER
    assert single.step(Synced(2, 50)) is EMPTY and single.own_durable == 0


def test_a_single_node_commits_on_its_synced() -> None:
    """A cluster of one has no acknowledgement to wait for, only its own disk: it commits its no-op
    and every command exactly when the Synced of its write arrives."""
    net = Network(1, hold_syncs=True)
    net.campaign("n1")
    leader = net.cores["n1"]
    assert leader.role == Role.LEADER and leader.commit_index == 0
    net.sync("n1")
    assert leader.commit_index == 1
    assert net.request("n1", put("x", "1")) == [] and leader.commit_index == 1
    net.sync("n1")
    assert leader.commit_index == 2
    assert [r.status for r in net.replies_to("c1", 1)] == [ReplyStatus.OK]


def test_switched_off_the_appends_wait_for_the_sync_like_every_message() -> None:
    """With ``write_in_parallel: false`` nothing is eager; the leader still counts itself on Synced."""
    net = _leader(write_in_parallel=False)
    ready = net.step("n1", ClientRequest("c1", 1, put("x", "1")))
    assert ready.eager == () and set(_appends(ready.messages)) == {"n2", "n3"}
    assert ready.after_sync == Synced(1, 2) and not net.in_flight
    net.settle()
    assert net.cores["n1"].commit_index == 2


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
                hard = durable.get(HARD_KEY)
                assert core.role == Role.LEADER and not any(w.key == HARD_KEY for w in ready.persist)
                assert hard is not None and hard.term == core.term, "the term is durable before eager sends"
                for send in ready.eager:
                    m = send.message
                    assert isinstance(m, AppendEntries) and m.term == core.term and m.entries
                    for k, entry in enumerate(m.entries):
                        key = f"raft/log/{m.prev_index + 1 + k:012d}"
                        assert entry.term == core.term or durable.get(key) == entry, \
                            f"{config.node} sent unsynced entry {key} of term {entry.term} in term {core.term}"
            return ready

        core.step = checked  # type: ignore[method-assign]
        return core

    return factory


def test_eager_appends_carry_only_this_terms_entries_or_durable_ones() -> None:
    """Over random schedules of requests, deliveries, syncs, ticks, crashes and restarts, every eager
    AppendEntries comes from a leader whose term is already on its disk, and any entry of an older
    term in it is on the leader's disk too: only what it proposed itself may still be in flight."""
    checked = [0]
    for seed in range(4):
        rng = random.Random(seed)
        box: list[Network] = []
        net = Network(3, seed=seed, hold_syncs=True)
        net.factory = _checked_factory(box, checked)
        box.append(net)
        for node in net.ids:
            net.restart(node)
        run_random_schedule(net, rng)
    assert checked[0] > 100
