"""InstallSnapshot on both sides: a snapshot sent whole or in chunks, reassembled, installed, acknowledged.

Thesis 5.3 (and section 7 of the paper): a leader whose follower needs
entries it has compacted sends its snapshot; with ``snapshot_chunk_bytes``
below the snapshot's size it goes in chunks (``offset``, ``done``).  The
follower answers each chunk but the last with an InstallSnapshotReply naming
the bytes it holds, and the installed snapshot with an AppendEntriesReply.
These tests drive the chunks one by one, lose, repeat and reorder them, and
pin the follower's writes (the crash-safe order of section 7's reset).
"""

from __future__ import annotations

import random

from smr.commands import put
from smr.replica import ClientRequest, Ready, Receive, ReplicaConfig, Send, Start, Write
from smr.state_machines import KVStore

from raft import AppendEntries, AppendEntriesReply, Entry, HardState, InstallSnapshot, RaftCore, SnapshotRecord
from raft.messages import HARD_KEY, SNAPSHOT_KEY, InstallSnapshotReply, log_key
from raft.progress import REPLICATE, SNAPSHOT
from raft.testing import Network

CHUNK = 256
CHUNKED = {"snapshot_every": 3, "snapshot_chunk_bytes": CHUNK}


def _core(node: str = "n3", peers: tuple[str, ...] = ("n1", "n2")) -> RaftCore:
    core = RaftCore(ReplicaConfig(node, peers, random.Random(0), KVStore, {}))
    core.step(Start({}))
    return core


def _put(seq: int, value: str = "v") -> Entry:
    """A term-1 entry writing k<seq>."""
    return Entry(1, ClientRequest("c1", seq, put(f"k{seq}", value)))


def _until_snapshot_to(net: Network, dst: str) -> InstallSnapshot:
    """Deliver in order until the leader sends ``dst`` an InstallSnapshot; take it out of the network."""
    while net.in_flight:
        src, to, m = net.in_flight[0]
        if isinstance(m, InstallSnapshot) and to == dst:
            net.in_flight.pop(0)
            return m
        net.deliver(0)
    raise AssertionError(f"no InstallSnapshot for {dst}")


def _lagging(options: dict[str, object] | None = None, puts: int = 7, value: str = "v" * 100,
             crash: str | None = None) -> tuple[Network, InstallSnapshot]:
    """n1 leads; n3 missed ``puts`` writes that n1 compacted; return the first InstallSnapshot n1 sends it."""
    net = Network(3, {**CHUNKED, **(options or {})})
    net.elect("n1")
    net.tick_all(net.cores["n1"].opts.heartbeat_ticks)
    net.isolate("n3")
    for seq in range(1, puts + 1):
        net.request("n1", put(f"k{seq}", value), "c1", seq)
        net.stabilize()
    if crash is not None:
        net.crash(crash)
    net.recover()
    net.tick("n1", net.cores["n1"].opts.heartbeat_ticks)
    return net, _until_snapshot_to(net, "n3")


def _sent(ready: Ready, kind: type) -> list:
    return [s.message for s in ready.messages if isinstance(s.message, kind)]


def _chunk(net: Network, offset: int, round: int) -> InstallSnapshot:
    """The InstallSnapshot chunk of n1's snapshot at ``offset``, as n1 cuts it."""
    snap = net.cores["n1"].snapshot
    assert snap is not None
    part = snap.data[offset:offset + CHUNK]
    return InstallSnapshot(net.cores["n1"].term, SnapshotRecord(snap.index, snap.term, part), round, offset,
                           offset + len(part) >= len(snap.data))


# ------------------------------------------------------------------ the whole transfer, chunk by chunk
def test_chunked_snapshot_goes_in_order_and_switches_the_follower_to_replicate() -> None:
    """Each chunk is the snapshot text from its offset; the follower answers it with (term, index, bytes
    held, round) and installs only the reassembled whole; the leader sends each next chunk from the bytes
    held and, once installed, replicates the rest; a late reply then changes nothing.

    Reference: Raft thesis 5.3 (InstallSnapshot in chunks, offset and done); paper section 7
    """
    net, first = _lagging()
    leader, n3 = net.cores["n1"], net.cores["n3"]
    snap = leader.snapshot
    assert snap is not None and len(snap.data) > 3 * CHUNK  # four chunks
    assert leader.progress["n3"].state == SNAPSHOT
    message, replies = first, []
    for offset in range(0, len(snap.data), CHUNK):
        done = offset + CHUNK >= len(snap.data)
        assert message == InstallSnapshot(leader.term, SnapshotRecord(snap.index, snap.term,
                                                                      snap.data[offset:offset + CHUNK]),
                                          leader.round, offset, done)
        ready = net.step("n3", Receive("n1", message))
        net.take(src="n3")
        if not done:
            assert n3.log.snapshot_index == 0 and SNAPSHOT_KEY not in net.durable["n3"]  # not installed yet
            received = offset + CHUNK
            assert ready.messages == (Send("n1", InstallSnapshotReply(n3.term, snap.index, received,
                                                                      message.round)),)
            replies.append(ready.messages[0].message)
            ready = net.step("n1", Receive("n3", replies[-1]))
            (message,) = _sent(ready, InstallSnapshot)
            assert [s.dst for s in ready.messages] == ["n3"]
            net.take(src="n1", kind=InstallSnapshot)
    # the last chunk installs the reassembled snapshot and is answered like an append
    assert ready.messages == (Send("n1", AppendEntriesReply(n3.term, True, snap.index, round=message.round)),)
    assert Write(SNAPSHOT_KEY, snap) in ready.persist and net.durable["n3"][SNAPSHOT_KEY] == snap
    assert (n3.log.snapshot_index, n3.commit_index, n3.last_applied) == (snap.index,) * 3
    net.step("n1", Receive("n3", ready.messages[0].message))
    assert leader.progress["n3"].state == REPLICATE and leader.progress["n3"].match == snap.index
    net.stabilize()
    assert n3.applier.machine.data == leader.applier.machine.data
    assert n3.log.last_index == leader.log.last_index
    # a duplicate of an old chunk reply arrives after the install: nothing is sent again
    ready = net.step("n1", Receive("n3", replies[0]))
    assert ready.messages == () and leader.progress["n3"].state == REPLICATE


def test_follower_takes_chunks_only_in_order_and_reports_what_it_holds() -> None:
    """A chunk is taken only where the last one ended: a gap, a repeat or a last chunk that comes first
    is answered with the bytes already held and installs nothing; a chunk at offset 0 starts over.

    Reference: Raft thesis 5.3 (the follower reports how much it has; the leader resumes from there)
    """
    net, _ = _lagging()
    n3, snap = net.cores["n3"], net.cores["n1"].snapshot
    assert snap is not None
    last = (len(snap.data) - 1) // CHUNK * CHUNK
    term = net.cores["n1"].term

    def send(offset: int, round: int) -> Ready:
        ready = net.step("n3", Receive("n1", _chunk(net, offset, round)))
        net.take(src="n3")
        return ready

    def held(offset: int, round: int) -> int:
        ready = send(offset, round)
        (reply,) = [s.message for s in ready.messages]
        assert isinstance(reply, InstallSnapshotReply)
        assert (reply.term, reply.index, reply.round) == (term, snap.index, round)
        assert ready.persist == () and n3.log.snapshot_index == 0
        return reply.received

    assert held(last, 3) == 0              # the last chunk first: nothing held
    assert held(0, 4) == CHUNK
    assert held(2 * CHUNK, 5) == CHUNK     # a gap: not taken
    assert held(0, 6) == CHUNK             # a repeat of the first: the transfer starts over
    assert held(CHUNK, 7) == 2 * CHUNK
    assert held(CHUNK, 8) == 2 * CHUNK     # a repeat: not taken again
    for offset in range(2 * CHUNK, last, CHUNK):
        assert held(offset, 9) == offset + CHUNK
    ready = send(last, 10)
    assert ready.messages == (Send("n1", AppendEntriesReply(term, True, snap.index, round=10)),)
    assert n3.log.snapshot_index == snap.index and net.durable["n3"][SNAPSHOT_KEY] == snap
    # a chunk of the snapshot now installed is acknowledged with the commit index, and changes nothing
    ready = send(CHUNK, 11)
    assert ready.messages == (Send("n1", AppendEntriesReply(term, True, n3.commit_index, round=11)),)
    assert ready.persist == ()


def test_whole_snapshot_installs_even_above_the_reassembly_limit() -> None:
    """max_snapshot_bytes bounds only what a follower reassembles from chunks: a snapshot that comes whole,
    in one message, is installed whatever its size.

    Reference: Raft thesis 5.3; paper section 7
    """
    net, message = _lagging({"snapshot_chunk_bytes": 1 << 20, "max_snapshot_bytes": CHUNK})
    snap = net.cores["n1"].snapshot
    assert snap is not None and len(snap.data) > CHUNK
    assert (message.offset, message.done, message.snapshot) == (0, True, snap)
    ready = net.step("n3", Receive("n1", message))
    assert ready.messages == (Send("n1", AppendEntriesReply(message.term, True, snap.index,
                                                            round=message.round)),)
    assert net.cores["n3"].log.snapshot_index == snap.index


# ------------------------------------------------------------------ the leader's side
def test_leader_resends_from_the_offset_the_follower_reports() -> None:
    """A reply naming the leader's snapshot makes it send the text from the bytes the follower holds; a
    reply about another snapshot (one the leader no longer holds) restarts the current one at offset 0.

    Reference: Raft thesis 5.3
    """
    net, first = _lagging()
    leader = net.cores["n1"]
    snap = leader.snapshot
    assert snap is not None
    reply = InstallSnapshotReply(leader.term, snap.index, 2 * CHUNK, first.round)
    (again,) = _sent(net.step("n1", Receive("n3", reply)), InstallSnapshot)
    assert again == _chunk(net, 2 * CHUNK, leader.round)
    other = InstallSnapshotReply(leader.term, snap.index - 3, 2 * CHUNK, first.round)
    ready = net.step("n1", Receive("n3", other))
    assert ready.messages == (Send("n3", _chunk(net, 0, leader.round)),)
    assert leader.progress["n3"].state == SNAPSHOT


def test_leader_sends_the_text_after_the_offset_even_when_it_is_the_last_chunk() -> None:
    """The chunk at any offset is the snapshot text from that offset, also when it is the last one (here
    a follower holding one byte of a snapshot that was sent whole).

    Reference: Raft thesis 5.3
    """
    net, whole = _lagging({"snapshot_chunk_bytes": 1 << 20}, puts=4, value="v")
    leader = net.cores["n1"]
    snap = leader.snapshot
    assert snap is not None and whole.snapshot == snap and whole.done
    ready = net.step("n1", Receive("n3", InstallSnapshotReply(leader.term, snap.index, 1, whole.round)))
    assert ready.messages == (Send("n3", InstallSnapshot(leader.term, SnapshotRecord(snap.index, snap.term,
                                                                                       snap.data[1:]),
                                                         leader.round, 1, True)),)


def test_lost_chunk_is_resent_after_an_election_timeout() -> None:
    """A chunk left unanswered for election_ticks_min ticks is presumed lost and sent again from the same
    offset -- not a heartbeat earlier.

    Reference: Raft thesis 5.3 (the leader retries what went unanswered)
    """
    net, first = _lagging({"heartbeat_ticks": 1, "election_ticks_min": 10, "election_ticks_max": 20})
    leader = net.cores["n1"]
    reply = net.step("n3", Receive("n1", first)).messages[0].message
    net.in_flight.clear()
    (second,) = _sent(net.step("n1", Receive("n3", reply)), InstallSnapshot)
    assert second.snapshot.data == leader.snapshot.data[CHUNK:2 * CHUNK]
    net.in_flight.clear()  # the second chunk is lost
    for _ in range(leader.opts.election_ticks_min - 1):
        net.tick("n1")
    assert not net.take(kind=InstallSnapshot)
    net.tick("n1")
    (resent,) = [m for _, _, m in net.take(kind=InstallSnapshot)]
    assert (resent.offset, resent.snapshot) == (CHUNK, second.snapshot)


def test_a_new_snapshot_taken_mid_transfer_is_the_one_awaited() -> None:
    """When the leader compacts again while a follower is behind, it sends the new snapshot and waits for
    that one: an acknowledgement of the old snapshot leaves it waiting, sending nothing more.

    Reference: paper section 7; Raft thesis 5.3
    """
    net, first = _lagging()
    leader = net.cores["n1"]
    old = leader.snapshot
    assert old is not None
    net.isolate("n3")
    for seq in range(8, 12):
        net.request("n1", put(f"k{seq}", "w"), "c1", seq)
        net.stabilize()
    new = leader.snapshot
    assert new is not None and new.index > old.index
    net.recover()
    # n3 reports on the old transfer: the leader sends the new snapshot from the start
    ready = net.step("n1", Receive("n3", InstallSnapshotReply(leader.term, old.index, CHUNK, first.round)))
    (message,) = _sent(ready, InstallSnapshot)
    assert message == _chunk(net, 0, leader.round)
    # the old snapshot, installed at last, is acknowledged: the new one is still awaited
    ready = net.step("n1", Receive("n3", AppendEntriesReply(leader.term, True, old.index, round=first.round)))
    assert ready.messages == ()
    assert (leader.progress["n3"].state, leader.progress["n3"].match) == (SNAPSHOT, old.index)


def test_chunk_replies_keep_the_leader_in_touch_under_check_quorum() -> None:
    """With check_quorum, a follower whose only messages in an election timeout are InstallSnapshotReplies
    counts as active, so a leader whose majority is that follower and itself keeps leading.

    Reference: Raft thesis 6.2 (check quorum)
    """
    net, first = _lagging({"check_quorum": True}, crash="n2")
    leader = net.cores["n1"]
    ticks = leader.opts.election_ticks_min
    for _ in range(ticks):  # one check-quorum window ends here (n3 answered the probe in it)
        net.tick("n1")
        net.in_flight.clear()
    assert leader.is_leader
    reply = net.step("n3", Receive("n1", first)).messages[0].message
    assert isinstance(reply, InstallSnapshotReply)
    net.in_flight.clear()
    net.step("n1", Receive("n3", reply))
    for _ in range(ticks):  # the next window ends: n3 was heard from only by its chunk reply
        net.tick("n1")
        net.in_flight.clear()
    assert leader.is_leader


def test_follower_that_installed_a_snapshot_sends_it_on_as_leader() -> None:
    """A server keeps the snapshot it installed as its own: leading later, it sends that snapshot to a
    follower behind it.

    Reference: paper section 7
    """
    net = Network(5, {"snapshot_every": 3})
    net.elect("n1")
    net.tick_all(net.cores["n1"].opts.heartbeat_ticks)
    net.partition(("n1", "n2", "n3"), ("n4",), ("n5",))
    for seq in range(1, 6):
        net.request("n1", put(f"k{seq}", "v"), "c1", seq)
        net.stabilize()
    snap = net.cores["n1"].snapshot
    assert snap is not None and snap.index == net.cores["n1"].log.last_index
    net.recover()
    net.isolate("n5")
    net.tick("n1", net.cores["n1"].opts.heartbeat_ticks)
    net.stabilize()
    n4 = net.cores["n4"]
    assert n4.log.snapshot_index == snap.index and n4.log.last_index == net.cores["n1"].log.last_index
    net.crash("n1")
    net.elect("n4")
    net.recover()
    net.tick("n4", n4.opts.heartbeat_ticks)
    install = _until_snapshot_to(net, "n5")
    assert install.snapshot == snap and n4.log.snapshot_index == snap.index
    net.step("n5", Receive("n4", install))
    net.stabilize()
    assert net.cores["n5"].applier.machine.data == n4.applier.machine.data


# ------------------------------------------------------------------ the follower's writes
def _snapshot_data() -> str:
    """A real snapshot's text (the no-op, then k1 and k2 written), for snapshots injected by hand."""
    net = Network(3, {"snapshot_every": 3})
    net.elect("n1")
    for seq in range(1, 4):
        net.request("n1", put(f"k{seq}", "s"), "c1", seq)
        net.stabilize()
    snap = net.cores["n1"].snapshot
    assert snap is not None
    return snap.data


def test_install_deletes_entries_beyond_the_snapshot_before_writing_it_and_covered_ones_after() -> None:
    """Installing a snapshot over a conflicting log writes, in order: the term, the deletes of the entries
    after the snapshot (highest first), the snapshot, then the deletes of the entries it covers -- so any
    prefix that survives a crash holds no less than was acknowledged.

    Reference: paper section 7 (discard the entire log); thesis 5.3
    """
    n3 = _core()
    n3.step(Receive("n1", AppendEntries(1, 0, 0, tuple(_put(i) for i in range(1, 7)), 1)))
    data = _snapshot_data()
    snap = SnapshotRecord(4, 2, data)
    ready = n3.step(Receive("n2", InstallSnapshot(2, snap, 5)))
    assert list(ready.persist) == [
        Write(HARD_KEY, HardState(2, None)),
        Write(log_key(6), None), Write(log_key(5), None),
        Write(SNAPSHOT_KEY, snap),
        Write(log_key(4), None), Write(log_key(3), None), Write(log_key(2), None), Write(log_key(1), None),
    ]
    assert ready.messages == (Send("n2", AppendEntriesReply(2, True, 4, round=5)),)
    assert (n3.log.snapshot_index, n3.log.snapshot_term, n3.log.last_index) == (4, 2, 4)
    assert n3.applier.machine.data == {"k1": "s", "k2": "s"}


def test_snapshot_at_the_commit_index_is_acknowledged_and_never_installed() -> None:
    """A snapshot ending at (or below) the commit index is answered with the commit index and installs
    nothing, even one that disagrees with it: a committed state is never replaced.

    Reference: paper Figure 3 (State Machine Safety) and section 7
    """
    n3 = _core()
    n3.step(Receive("n1", AppendEntries(1, 0, 0, tuple(_put(i) for i in range(1, 4)), 3)))
    assert n3.commit_index == 3
    machine = dict(n3.applier.machine.data)
    for index in (3, 2):
        ready = n3.step(Receive("n2", InstallSnapshot(2, SnapshotRecord(index, 2, _snapshot_data()), 6)))
        assert ready.messages == (Send("n2", AppendEntriesReply(2, True, 3, round=6)),)
        assert all(w.key == HARD_KEY for w in ready.persist)
        assert (n3.log.snapshot_index, n3.log.last_index, n3.applier.machine.data) == (0, 3, machine)
