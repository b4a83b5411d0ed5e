"""Multi-Paxos catch-up: what a lagging replica asks for, what the leader sends, and what an install writes.

Every test drives real :class:`multipaxos.MultiPaxosCore` replicas through the
in-memory :class:`smr.testing.Network` (invariants after every step, applied
entries compared across nodes).  A replica behind the leader's snapshot pulls
it with ``SnapshotRequest`` in ``snapshot_chunk_bytes`` pieces when it does not
fit one message (``SnapshotChunk``), installs it, then asks for the slots after
it with a ``CatchupRequest``.  The tests pin the exact offsets and sizes, the
writes of an install and their order (snapshot first, then the acceptor's
forgotten slots), and the configurations a snapshot inside the alpha window
carries.
"""

from __future__ import annotations

from typing import Any

from smr.bounds import request_bytes
from smr.commands import get, put
from smr.membership import membership_command
from smr.replica import TICK, ClientRequest, Ready, Receive, ReplyStatus, Role, Synced, Write
from smr.state_machines import KVStore
from smr.testing import Network

from multipaxos import (ACCEPTOR_PREFIX, SNAPSHOT_KEY, Accept, Catchup, MultiPaxosCore, MultiPaxosInvariants,
                        check_invariants)
from multipaxos._core import KNOWN_KEY, SNAPSHOT_EPOCH, WINDOW_TAG
from multipaxos.messages import CatchupRequest, Promise, SlotValue, Snapshot, SnapshotChunk, SnapshotRequest
from synod.ballot import Ballot

#: Snapshots every 4 slots, a log tail of 2 slots past each, and 256-character snapshot chunks.
CHUNKED = {"snapshot_every": 4, "catchup_batch": 2, "snapshot_chunk_bytes": 256}
CATCHUP_KINDS = (SnapshotChunk, SnapshotRequest, CatchupRequest, Catchup)


def _net(size: int = 3, **options: object) -> Network:
    return Network(MultiPaxosCore, size, options, 0, KVStore, invariants=check_invariants)


def _commit(net: Network, leader: str, values: range) -> None:
    """Have ``leader`` order one 40-character put per value (distinct keys: the state grows) until quiet."""
    for i in range(values.start, values.stop):
        net.request(leader, put(f"k{i}", "v" * 40), "c1", i)
        net.stabilize()


def _trace(into: list[tuple[str, str, Any]]) -> Any:
    """A ``Network.drop_if`` that drops nothing and records every catch-up message as (src, dst, msg)."""

    def record(src: str, dst: str, msg: Any) -> bool:
        if isinstance(msg, CATCHUP_KINDS):
            into.append((src, dst, msg))
        return False

    return record


def _slots_in(durable: dict[str, Any]) -> set[int]:
    """The acceptor slots a durable map holds."""
    prefix = f"{ACCEPTOR_PREFIX}slot/"
    return {int(k[len(prefix):]) for k in durable if k.startswith(prefix)}


def _deliver_until(net: Network, kind: type, dst: str) -> tuple[str, Any]:
    """Deliver in order until the next in-flight message is a ``kind`` to ``dst``; take it out and return it."""
    for _ in range(10_000):
        src, to, msg = net.in_flight[0]
        if isinstance(msg, kind) and to == dst:
            net.in_flight.pop(0)
            return src, msg
        net.deliver(0)
    raise AssertionError(f"no {kind.__name__} to {dst}")


def _candidate(net: Network, node: str) -> MultiPaxosCore:
    """Tick ``node`` (nothing is delivered to it, so it hears no leader) until it campaigns; return its core."""
    core = net.cores[node]
    for _ in range(100):
        net.step(node, TICK)
        if core.status().role == Role.CANDIDATE:
            return core
    raise AssertionError(f"{node} did not campaign")


# ------------------------------------------------------------ a snapshot in chunks
def test_a_lagging_replica_pulls_a_large_snapshot_chunk_by_chunk_then_the_slots_after_it() -> None:
    """A snapshot larger than one chunk goes in ``snapshot_chunk_bytes`` pieces at offsets 0, 256, 512,
    each pulled by a SnapshotRequest naming what the replica holds; the last says ``done``, the replica
    installs the whole text (durably: a restart restores it) and asks for the slots after it.

    Reference: Paxos Made Simple, section 3; Raft thesis 5.3 (snapshots sent in chunks)
    """
    net = _net(**CHUNKED)
    net.elect("n1")
    net.isolate("n3")
    _commit(net, "n1", range(1, 11))
    n1 = net.cores["n1"]
    ballot = n1.ballot
    data = n1.snapshot_data
    assert n1.snapshot_slot == 8 and data is not None and len(data) == 759
    trace: list[tuple[str, str, Any]] = []
    net.recover()
    net.drop_if = _trace(trace)
    net.tick_all(2 * n1.opts.heartbeat_ticks)
    assert trace[:7] == [
        ("n3", "n1", CatchupRequest(ballot, 1)),
        ("n1", "n3", SnapshotChunk(ballot, 8, 0, data[:256], False)),
        ("n3", "n1", SnapshotRequest(ballot, 8, 256)),
        ("n1", "n3", SnapshotChunk(ballot, 8, 256, data[256:512], False)),
        ("n3", "n1", SnapshotRequest(ballot, 8, 512)),
        ("n1", "n3", SnapshotChunk(ballot, 8, 512, data[512:], True)),
        ("n3", "n1", CatchupRequest(ballot, 9)),
    ]
    (catchup,) = [m for _, _, m in trace[7:] if isinstance(m, Catchup)]
    assert catchup.snapshot is None and [sv.slot for sv in catchup.chosen] == [9, 10]
    n3 = net.cores["n3"]
    assert n3.applied == 10 and n3.snapshot_slot == 8 and n3.snapshot_data == data
    assert n3.applier.snapshot() == n1.applier.snapshot()
    assert net.durable["n3"][SNAPSHOT_KEY] == {"last_slot": 8, "data": data}
    net.restart("n3")
    restarted = net.cores["n3"]
    assert restarted.applied == restarted.snapshot_slot == 8 and restarted.snapshot_data == data


def test_the_leader_answers_a_snapshot_request_from_where_the_replica_stands() -> None:
    """A SnapshotRequest for the leader's snapshot gets the chunk at ``received`` (the last one ``done``);
    one for another snapshot starts over at offset 0; one for an older ballot, or sent to a node that
    does not lead that ballot, gets nothing.

    Reference: Paxos Made Simple, section 3 (a learner asks a distinguished learner)
    """
    net = _net(**CHUNKED)
    net.elect("n1")
    _commit(net, "n1", range(1, 11))
    n1 = net.cores["n1"]
    ballot, data = n1.ballot, n1.snapshot_data
    assert n1.snapshot_slot == 8 and data is not None and len(data) == 759

    def answer(node: str, msg: SnapshotRequest) -> list[tuple[str, Any]]:
        ready: Ready = net.step(node, Receive("n3", msg))
        return [(s.dst, s.message) for s in ready.messages]

    assert answer("n1", SnapshotRequest(ballot, 8, 256)) == [
        ("n3", SnapshotChunk(ballot, 8, 256, data[256:512], False))]
    assert answer("n1", SnapshotRequest(ballot, 8, 700)) == [("n3", SnapshotChunk(ballot, 8, 700, data[700:], True))]
    assert answer("n1", SnapshotRequest(ballot, 4, 300)) == [("n3", SnapshotChunk(ballot, 8, 0, data[:256], False))]
    assert answer("n1", SnapshotRequest(Ballot(0, "n1"), 8, 256)) == []
    assert answer("n2", SnapshotRequest(ballot, 8, 256)) == []  # n2 follows: it leads no ballot


def test_a_catchup_request_below_a_large_snapshot_starts_a_chunked_transfer() -> None:
    """A CatchupRequest for slots compacted into a snapshot too large for one message is answered with
    its first chunk, not a Catchup; one for slots in the log tail with those slots.

    Reference: Paxos Made Simple, section 3
    """
    net = _net(**CHUNKED)
    net.elect("n1")
    _commit(net, "n1", range(1, 11))
    n1 = net.cores["n1"]
    ballot, data = n1.ballot, n1.snapshot_data
    assert data is not None and sorted(n1.log) == [7, 8, 9, 10]
    ready = net.step("n1", Receive("n3", CatchupRequest(ballot, 3)))
    assert [(s.dst, s.message) for s in ready.messages] == [("n3", SnapshotChunk(ballot, 8, 0, data[:256], False))]
    ready = net.step("n1", Receive("n3", CatchupRequest(ballot, 7)))
    (send,) = ready.messages
    assert send.dst == "n3" and isinstance(send.message, Catchup) and send.message.snapshot is None
    assert [sv.slot for sv in send.message.chosen] == [7, 8]


# ------------------------------------------------------------ what an install writes
def test_an_install_writes_the_snapshot_before_forgetting_the_slots_it_covers() -> None:
    """A replica that accepted slots 5..10 but missed 1..4 installs the leader's snapshot of slot 8: one
    batch writes the snapshot first, then deletes its acceptances of 5..8 (a crash between them keeps the
    values), keeps 9 and 10, and asks for a Synced that says the snapshot is durable.

    Reference: Paxos Made Simple, section 3 (a server need not remember chosen commands for ever)
    """
    net = _net(**CHUNKED)
    net.elect("n1")
    # n3 hears only the Accepts of slot 5 on (its catch-up requests are lost while it is cut off)
    net.drop_if = lambda src, dst, msg: "n3" in (src, dst) and not (isinstance(msg, Accept) and msg.first_slot >= 5)
    _commit(net, "n1", range(1, 11))
    n3 = net.cores["n3"]
    assert n3.applied == 0 and sorted(n3.acceptor.accepted) == [5, 6, 7, 8, 9, 10]
    assert _slots_in(net.durable["n3"]) == {5, 6, 7, 8, 9, 10}
    net.recover()
    net.tick_all(n3.opts.heartbeat_ticks, stabilize=False)
    for _ in range(2):  # chunks at 0 and 256
        src, chunk = _deliver_until(net, SnapshotChunk, "n3")
        assert not chunk.done
        net.step("n3", Receive(src, chunk))
    src, chunk = _deliver_until(net, SnapshotChunk, "n3")
    assert chunk.done and chunk.offset == 512
    ready = net.step("n3", Receive(src, chunk))
    data = net.cores["n1"].snapshot_data
    deleted = [w.key for w in ready.persist[1:]]
    assert ready.persist[0] == Write(SNAPSHOT_KEY, {"last_slot": 8, "data": data})
    assert sorted(deleted) == [f"{ACCEPTOR_PREFIX}slot/{s:012d}" for s in (5, 6, 7, 8)]
    assert all(w.value is None for w in ready.persist[1:])
    assert ready.after_sync == Synced(SNAPSHOT_EPOCH, 8)
    assert n3.applied == n3.snapshot_slot == 8 and sorted(n3.acceptor.accepted) == [9, 10]
    assert _slots_in(net.durable["n3"]) == {9, 10}
    net.tick_all(2 * n3.opts.heartbeat_ticks)
    assert n3.applied == 10 and n3.applier.snapshot() == net.cores["n1"].applier.snapshot()


def test_a_snapshot_that_does_not_restore_is_a_remote_error_and_changes_nothing() -> None:
    """Garbage in a Catchup's snapshot is the peer's fault: the message is refused as impossible, naming
    the failed restore, and the replica keeps its state and writes nothing.  Reassembled chunks that do
    not restore are refused the same way once the last one is in."""
    net = _net(**CHUNKED)
    net.elect("n1")
    _commit(net, "n1", range(1, 3))
    n2 = net.cores["n2"]
    ballot = net.cores["n1"].ballot
    state, applied = n2.applier.snapshot(), n2.applied
    durable = dict(net.durable["n2"])
    net.step("n2", Receive("n1", Catchup(ballot, (), Snapshot(5, "not a snapshot"))))
    net.step("n2", Receive("n1", SnapshotChunk(ballot, 5, 0, "not a snapshot", True)))
    assert [e.split(": JSONDecodeError")[0] for e in net.remote_errors] == [
        "multipaxos n2: impossible Catchup from n1: a snapshot that does not restore: session snapshot is malformed",
        "multipaxos n2: a snapshot from a peer does not restore: session snapshot is malformed"]
    assert n2.applied == applied and n2.snapshot_slot == 0 and n2.applier.snapshot() == state
    assert net.durable["n2"] == durable


def test_chosen_values_beside_a_stale_snapshot_that_does_not_restore_are_not_applied() -> None:
    """A message carrying a snapshot is judged whole: a Catchup whose snapshot is older than what the
    replica applied (so it would be skipped) but does not restore is refused, and the chosen values it
    carries beyond the replica's applied prefix are not applied (an insider's forgery, issue 22: the
    multi-Paxos insider run of seed 7 lost three acknowledged writes to such a message).  A Promise
    carrying one is refused the same way, before a candidate counts it."""
    net = _net(**CHUNKED)
    net.elect("n1")
    _commit(net, "n1", range(1, 3))
    n2 = net.cores["n2"]
    ballot = net.cores["n1"].ballot
    state, applied = n2.applier.snapshot(), n2.applied
    forged = ClientRequest("c9", 1, put("forged", "x"))
    net.step("n2", Receive("n1", Catchup(ballot, (SlotValue(applied + 1, forged),), Snapshot(1, "[]"))))
    assert len(net.remote_errors) == 1
    assert net.remote_errors[0].startswith(
        "multipaxos n2: impossible Catchup from n1: a snapshot that does not restore")
    assert n2.applied == applied and n2.applier.snapshot() == state and applied + 1 not in n2.chosen
    n3 = _candidate(net, "n3")
    assert n3.ballot is not None
    net.step("n3", Receive("n1", Promise(n3.ballot, 1, (), (), Snapshot(1, "[]"))))
    assert len(net.remote_errors) == 2
    assert net.remote_errors[1].startswith("multipaxos n3: impossible Promise from n1: a snapshot that does not restore")
    net.step("n3", Receive("n1", Promise(Ballot(n3.ballot.round + 1, "n3"), 1, (), (), Snapshot(1, "[]"))))
    assert len(net.remote_errors) == 2  # a promise for no ballot of ours is ignored unread, whatever it carries


def test_a_chosen_value_that_carries_a_ballot_is_refused_and_not_applied() -> None:
    """A chosen value travels without a ballot (only an accepted value names the ballot it was accepted
    in), so a Catchup or a Promise whose chosen values carry one -- here out of range, or naming a node
    nobody knows -- is impossible: it is refused before the values reach ``chosen``.  (The multi-Paxos
    insider run of seed 1 lost an acknowledged write to a Promise whose chosen values carried an
    out-of-range ballot: the new leader took a foreign value as chosen in a slot whose real value it had
    not applied yet.)"""
    net = _net(**CHUNKED)
    net.elect("n1")
    _commit(net, "n1", range(1, 3))
    n2 = net.cores["n2"]
    ballot = net.cores["n1"].ballot
    assert ballot is not None
    state, applied = n2.applier.snapshot(), n2.applied
    forged = ClientRequest("c9", 1, put("forged", "x"))
    for carried in (Ballot(2 ** 63, "n1"), Ballot(-1, "n1"), Ballot(1, "nobody"), ballot):
        net.step("n2", Receive("n1", Catchup(ballot, (SlotValue(applied + 1, forged, carried),))))
    assert [e.split(": ", 1)[1] for e in net.remote_errors] == [
        "impossible Catchup from n1: a chosen value carries a ballot"] * 4
    assert n2.applied == applied and n2.applier.snapshot() == state and applied + 1 not in n2.chosen
    n3 = _candidate(net, "n3")
    assert n3.ballot is not None
    net.step("n3", Receive("n1", Promise(n3.ballot, 1, (), (SlotValue(applied + 1, forged, Ballot(2 ** 63, "n1")),))))
    assert net.remote_errors[-1] == "multipaxos n3: impossible Promise from n1: a chosen value carries a ballot"
    assert applied + 1 not in n3.promise_chosen and n3.status().role == Role.CANDIDATE


def test_a_snapshot_inside_the_alpha_window_restores_the_configurations_after_it() -> None:
    """A snapshot taken less than alpha slots after a configuration change carries the configurations of
    the slots after it: a replica installing it keeps the old configuration in effect for those slots
    (its ``membership`` stays the leader's even once the snapshot is durable) and learns the new nodes.

    Reference: Lamport, Malkhi and Zhou, "Reconfiguring a State Machine" (2010), section 4 (alpha window)
    """
    net = Network(MultiPaxosCore, 3, {"alpha": 4, "snapshot_every": 1}, 0, KVStore,
                  invariants=MultiPaxosInvariants())
    net.elect("n1")
    net.isolate("n2")
    net.request("n1", put("a", "1"), "c1", 1)
    net.settle()
    # the change is chosen in slot 2; the slots after it are not (their Accepts are lost)
    net.drop_if = lambda src, dst, msg: isinstance(msg, Accept) and msg.first_slot + len(msg.values) > 3
    net.request("n1", membership_command("add_learner", "n4", ""), "admin", 1)
    net.settle()
    n1, n2 = net.cores["n1"], net.cores["n2"]
    data = n1.snapshot_data
    assert n1.applied == n1.snapshot_slot == 2 and data is not None
    # the window: the configuration of slot 0 on, then the one applied at slot 2 (canonical JSON)
    assert data.startswith(WINDOW_TAG + '[[0,{"addresses":{},"joining":[],"learners":[],"outgoing":[],'
                           '"voters":["n1","n2","n3"]}],[2,{"addresses":{},"joining":[],"learners":["n4"],'
                           '"outgoing":[],"voters":["n1","n2","n3"]}]],"applied":2,')
    assert n1.membership.learners == () and n1.applier.membership is not None
    assert n1.applier.membership.learners == ("n4",)
    ready = net.step("n2", Receive("n1", Catchup(n1.ballot, (), Snapshot(2, data))))
    assert ready.persist == (Write(SNAPSHOT_KEY, {"last_slot": 2, "data": data}),
                             Write(KNOWN_KEY, ["n1", "n2", "n3", "n4"]))
    assert ready.after_sync == Synced(SNAPSHOT_EPOCH, 2)
    assert n2.applied == 2 and n2.membership == n1.membership and n2.membership.learners == ()
    assert n2.peers == ("n1", "n3", "n4")
    assert n2.history == n1.history  # the configuration of slot 0 on, and the one applied at slot 2


# ------------------------------------------------------------ reads after recovery
def test_a_read_index_leader_serves_a_read_once_its_recovered_slots_are_applied() -> None:
    """A leader whose phase 1 recovered nothing has applied everything it recovered: a read_index read
    is answered after one quorum round of heartbeats, without any write first.

    Reference: Ongaro's thesis 6.4 (ReadIndex), in its multi-Paxos form
    """
    net = _net(read_mode="read_index")
    net.elect("n1")
    n1 = net.cores["n1"]
    assert n1.applied == n1.recovered_last == 0
    net.request("n1", get("k"), "r1", 1)
    net.stabilize()
    assert [r.status for r in net.replies_to("r1", 1)] == [ReplyStatus.OK]
    assert n1.applied == 0  # the read took no slot


def test_a_lagging_replica_applies_catchup_values_in_slot_order() -> None:
    """A follower that missed chosen slots asks from its first unapplied slot and applies what the
    leader's log holds, in order, ending with the leader's state.

    Reference: Paxos Made Simple, section 3
    """
    committed = 3
    net = _net(catchup_batch=2)
    net.elect("n1")
    trace: list[tuple[str, str, Any]] = []
    net.drop_if = lambda src, dst, msg: dst == "n3" and isinstance(msg, Accept)
    _commit(net, "n1", range(1, committed + 1))
    n3 = net.cores["n3"]
    stale = Catchup(Ballot(0, "n1"), (SlotValue(1, net.cores["n1"].log[1]),))
    net.step("n3", Receive("n1", stale))  # an answer for a ballot n3 does not follow: ignored
    assert n3.applied == 0
    net.drop_if = _trace(trace)
    net.tick_all(2 * net.cores["n1"].opts.heartbeat_ticks)
    ballot = net.cores["n1"].ballot
    requests = [(s, d, m) for s, d, m in trace if isinstance(m, CatchupRequest)]
    assert requests[0] == ("n3", "n1", CatchupRequest(ballot, 1))
    (first,) = [m for s, d, m in trace if isinstance(m, Catchup)][:1]
    assert [sv.slot for sv in first.chosen] == [1, 2] and first.snapshot is None
    assert n3.applied == committed
    assert [v.command for _, v in sorted(n3.log.items())] == [put(f"k{i}", "v" * 40) for i in range(1, committed + 1)]
    assert all(isinstance(v, ClientRequest) for v in n3.log.values())


# ------------------------------------------------------------ applying and trimming the history
def test_a_follower_forgets_a_removed_node_exactly_two_windows_after_the_change() -> None:
    """Applying slot by slot, a follower keeps the configuration before a change (chosen in slot 2,
    alpha 2) and talks to the node it removed while a slot from applied+1-2*alpha on may use it, and drops
    both at once when it applies slot 2 + 2*alpha - 1 = 5.

    Reference: Lamport, Malkhi and Zhou, "Reconfiguring a State Machine" (2010), section 4 (alpha window)
    """
    net = Network(MultiPaxosCore, 3, {"alpha": 2, "max_batch": 1, "max_inflight": 1}, 0, KVStore,
                  invariants=MultiPaxosInvariants())
    net.elect("n1")
    net.request("n1", put("a", "1"), "c1", 1)
    net.settle()
    n2 = net.cores["n2"]
    seen: list[tuple[int, bool, int]] = []

    def deliver_all() -> None:
        while net.in_flight:
            net.deliver(0)
            state = (n2.applied, "n3" in n2.peers, len(n2.history))
            if not seen or seen[-1] != state:
                seen.append(state)

    net.request("n1", membership_command("remove", "n3"), "admin", 1)
    deliver_all()
    for i in range(2, 10):
        net.request("n1", put("a", str(i)), "c1", i)
        deliver_all()
    assert seen == [(1, True, 1), (2, True, 2), (3, True, 2), (4, True, 2), (5, False, 1), (6, False, 1),
                    (7, False, 1), (8, False, 1), (9, False, 1), (10, False, 1)]
    assert n2.history[0][1].voters == ("n1", "n2")


def test_a_snapshot_window_starts_with_the_configuration_of_the_slot_after_it() -> None:
    """With changes applied at slots 2 and 3 and alpha 4, a snapshot of slot 5 carries the configuration
    applied at slot 5 + 1 - alpha = 2 as its first row (for every slot up to the next change) and the one
    applied at slot 3 after it: no row repeats the first.

    Reference: Lamport, Malkhi and Zhou, "Reconfiguring a State Machine" (2010), section 4 (alpha window)
    """
    net = Network(MultiPaxosCore, 3, {"alpha": 4, "snapshot_every": 1}, 0, KVStore,
                  invariants=MultiPaxosInvariants())
    net.elect("n1")
    net.request("n1", put("a", "1"), "c1", 1)
    net.settle()
    net.drop_if = lambda src, dst, msg: isinstance(msg, Accept) and msg.first_slot + len(msg.values) > 6
    net.request("n1", membership_command("add_learner", "n4", ""), "admin", 1)
    net.request("n1", membership_command("add_learner", "n5", ""), "admin", 2)
    net.settle()
    n1 = net.cores["n1"]
    assert n1.applied == n1.snapshot_slot == 5 and [s for s, _ in n1.history] == [0, 2, 3]
    assert n1.snapshot_data is not None and n1.snapshot_data.startswith(
        WINDOW_TAG + '[[0,{"addresses":{},"joining":[],"learners":["n4"],"outgoing":[],"voters":["n1","n2","n3"]}],'
        '[3,{"addresses":{},"joining":[],"learners":["n4","n5"],"outgoing":[],"voters":["n1","n2","n3"]}]],'
        '"applied":5,')
    assert net.durable["n1"][SNAPSHOT_KEY] == {"last_slot": 5, "data": n1.snapshot_data}


# ------------------------------------------------------------ the log tail kept past a snapshot
def test_the_log_tail_past_a_snapshot_holds_one_pipeline_of_bytes() -> None:
    """Past a snapshot a replica keeps the newest applied slots whose requests fit max_inflight *
    max_batch_bytes (here 256 bytes: exactly two 128-byte puts), so the leader answers a CatchupRequest
    from the tail with values alone, and one below it with the snapshot.

    Reference: Paxos Made Simple, section 3 (a server need not remember chosen commands for ever)
    """
    net = _net(max_batch_bytes=256, max_inflight=1, catchup_batch=10, snapshot_every=4)
    net.elect("n1")
    for i in range(1, 5):
        net.request("n1", put("k", "v" * 49), "c1", i)  # request_bytes 128 each
        net.stabilize()
    n1 = net.cores["n1"]
    assert n1.snapshot_slot == 4 and [request_bytes(v) for v in n1.log.values()] == [128, 128]
    assert sorted(n1.log) == [3, 4]
    assert _slots_in(net.durable["n1"]) == set() and n1.acceptor.accepted == {}  # the snapshot covers them
    ready = net.step("n1", Receive("n3", CatchupRequest(n1.ballot, 3)))
    (send,) = ready.messages
    assert send.message.snapshot is None and [sv.slot for sv in send.message.chosen] == [3, 4]
    ready = net.step("n1", Receive("n3", CatchupRequest(n1.ballot, 2)))
    (send,) = ready.messages
    assert send.message.snapshot == Snapshot(4, n1.snapshot_data) and send.message.chosen == ()
    for i in range(5, 8):
        net.request("n1", put("k", "v" * 49), "c1", i)
        net.stabilize()
    assert sorted(n1.log) == [3, 4, 5, 6, 7]
    # from the tail: as many values as fit max_batch_bytes (two); below it: the snapshot and, the
    # snapshot alone being over budget, the first slot after it only
    ready = net.step("n1", Receive("n3", CatchupRequest(n1.ballot, 4)))
    (send,) = ready.messages
    assert send.message.snapshot is None and [sv.slot for sv in send.message.chosen] == [4, 5]
    ready = net.step("n1", Receive("n3", CatchupRequest(n1.ballot, 1)))
    (send,) = ready.messages
    assert send.message.snapshot == Snapshot(4, n1.snapshot_data)
    assert [(sv.slot, sv.value) for sv in send.message.chosen] == [(5, n1.log[5])]


def _snapshot_of_two_puts(**options: object) -> tuple[Network, MultiPaxosCore]:
    """n1 leads and has snapshotted slot 2, two 300-character puts (beyond the log tail's budget)."""
    net = _net(max_batch_bytes=256, max_inflight=1, snapshot_every=2, **options)
    net.elect("n1")
    for i in range(1, 3):
        net.request("n1", put(f"k{i}", "v" * 300), "c1", i)
        net.stabilize()
    n1 = net.cores["n1"]
    assert n1.snapshot_slot == 2 and n1.log == {} and n1.snapshot_data is not None
    return net, n1


def test_a_catchup_request_at_the_snapshot_slot_gets_the_snapshot_whole_if_it_fits_one_message() -> None:
    """A CatchupRequest from the snapshot's own slot, which no log tail holds, gets the snapshot: whole in
    a Catchup when it is exactly ``snapshot_chunk_bytes`` long, from a first chunk when it is longer.

    Reference: Paxos Made Simple, section 3
    """
    net, n1 = _snapshot_of_two_puts(snapshot_chunk_bytes=256)
    data = n1.snapshot_data
    assert data is not None and len(data) > 600
    ready = net.step("n1", Receive("n3", CatchupRequest(n1.ballot, 2)))
    assert [(s.dst, s.message) for s in ready.messages] == [("n3", SnapshotChunk(n1.ballot, 2, 0, data[:256], False))]
    net, n1 = _snapshot_of_two_puts(snapshot_chunk_bytes=len(data))
    assert n1.snapshot_data == data
    ready = net.step("n1", Receive("n3", CatchupRequest(n1.ballot, 2)))
    assert [(s.dst, s.message) for s in ready.messages] == [("n3", Catchup(n1.ballot, (), Snapshot(2, data)))]
