"""Multi-Paxos from a follower's side: when a proposer backs off, whom a replica takes messages from,
which Nacks a leader heeds, what its ``held`` counts, and how a chunked snapshot is pulled.

Each test drives real :class:`multipaxos.MultiPaxosCore` replicas through the in-memory
:class:`smr.testing.Network`, injects hand-made messages with ``Receive(src, msg)`` and pins what the
core does with them: the messages it sends back, the refusals the runtime logs, the writes of an
install, and the tick at which it campaigns.  Deterministic: a failing test replays as is.

Reference: Lamport, "Paxos Made Simple" (2001), sections 2.3 and 3; Lamport, Malkhi & Zhou,
"Reconfiguring a State Machine" (SIGACT News 41(1), 2010), section 4.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from smr.commands import put
from smr.membership import membership_command
from smr.replica import TICK, Receive, ReplicaConfig, Role, Send, Write
from smr.state_machines import KVStore
from smr.testing import Network

from multipaxos import SNAPSHOT_KEY, MultiPaxosCore, MultiPaxosInvariants, check_invariants
from multipaxos.messages import (Behind, Catchup, CatchupRequest, Heartbeat, HeartbeatAck, Nack, Prepare, Promise,
                                 SnapshotChunk, SnapshotRequest)
from synod.ballot import Ballot

#: A fixed election timeout of 10 ticks and a back-off of 0..30 ticks on top after a campaign given up.
BACKOFF = {"election_ticks_min": 10, "election_ticks_max": 10, "backoff_ticks_max": 30}


def _net(size: int = 3, elect: str | None = "n1", **options: object) -> Network:
    """A multi-Paxos network with ``elect`` elected (none if None)."""
    net: Network = Network(MultiPaxosCore, size, options, 0, KVStore, invariants=MultiPaxosInvariants())
    if elect:
        net.elect(elect)
    return net


def _verdict(net: Network, node: str, src: str, msg: Any) -> str | None:
    """The RemoteProtocolError text ``node`` gives for ``msg`` from ``src`` (what the runtime logs), or
    None if it took the message."""
    before = len(net.remote_errors)
    net.step(node, Receive(src, msg))
    return net.remote_errors[before] if len(net.remote_errors) > before else None


def _ticks_until_prepare(net: Network, node: str, limit: int = 100) -> int:
    """Tick ``node`` alone until it sends a Prepare (it campaigns); how many ticks that took."""
    for ticks in range(1, limit + 1):
        ready = net.step(node, TICK)
        if any(isinstance(s.message, Prepare) for s in ready.messages):
            return ticks
    raise AssertionError(f"{node} sent no Prepare in {limit} ticks")


# ------------------------------------------------------------ back-off after a campaign given up
def test_a_proposer_that_gives_up_its_ballot_backs_off_before_it_campaigns_again() -> None:
    """A candidate told it is behind (Behind) or preempted (a Nack of its ballot naming a higher promise)
    becomes a follower whose next campaign waits the election timeout plus a random back-off, so
    duelling proposers settle; a follower whose leader falls silent campaigns at exactly the timeout.

    Reference: Paxos Made Simple, section 3 (progress needs one distinguished proposer; a randomised
    delay elects one); Howard & Mortier, "Paxos vs Raft" (2020)
    """
    net = _net(elect=None, **BACKOFF)
    net.isolate("n2")
    n2 = net.cores["n2"]
    assert _ticks_until_prepare(net, "n2") == 10  # no leader heard since start: the plain timeout
    ballot = n2.ballot
    assert ballot is not None
    net.step("n2", Receive("n1", Behind(ballot, 5)))
    assert n2.role == Role.FOLLOWER and n2.ballot is None
    behind_wait = _ticks_until_prepare(net, "n2")
    ballot = n2.ballot
    assert ballot is not None and n2.role == Role.CANDIDATE
    net.step("n2", Receive("n1", Nack(ballot, Ballot(ballot.round + 1, "n3"))))
    assert n2.role == Role.FOLLOWER
    nack_wait = _ticks_until_prepare(net, "n2")
    # strictly later than the timeout (the seeded back-offs drawn here are 17 and 7 ticks), within its bound
    assert all(10 < wait <= 10 + BACKOFF["backoff_ticks_max"] for wait in (behind_wait, nack_wait))
    # a leader preempted the same way backs off too
    net = _net(**BACKOFF)
    ballot = net.cores["n1"].ballot
    net.isolate("n1")
    net.step("n1", Receive("n2", Nack(ballot, Ballot(ballot.round + 1, "n3"))))
    assert net.status("n1").role == Role.FOLLOWER
    assert 10 < _ticks_until_prepare(net, "n1") <= 40
    # a follower that loses its leader does not back off
    net = _net(**BACKOFF)
    net.isolate("n3")
    assert net.cores["n3"].leader_ballot == ballot
    assert _ticks_until_prepare(net, "n3") == 10


class _DrawLog(random.Random):
    """A node's seeded generator that logs the range of every ``randint`` it is asked for."""

    def __init__(self, state: Any) -> None:
        super().__init__()
        self.setstate(state)
        self.ranges: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.ranges.append((a, b))
        return super().randint(a, b)


def test_yielding_to_a_higher_leader_draws_no_back_off_from_the_seeded_generator() -> None:
    """The node's seeded generator (handed over in ReplicaConfig) is drawn from for a back-off only when
    a campaign is given up; a candidate or a leader that hears a leader of a higher ballot follows it
    without one, so its later timeouts are the ones its seed gives a plain follower, and it campaigns
    exactly the election timeout after that leader falls silent.

    Reference: Paxos Made Simple, section 2.3 (a higher ballot supersedes); etcd raft (timers from a
    per-node seeded generator)
    """
    logs: dict[str, _DrawLog] = {}

    def factory(config: ReplicaConfig) -> MultiPaxosCore:
        logs[config.node] = _DrawLog(config.rng.getstate())
        return MultiPaxosCore(attrs.evolve(config, rng=logs[config.node]))

    backoff = (0, BACKOFF["backoff_ticks_max"])
    net: Network = Network(factory, 3, BACKOFF, 0, KVStore, invariants=check_invariants)
    net.isolate("n2")
    n2, log = net.cores["n2"], logs["n2"]
    net.campaign("n2")
    assert log.ranges[-1] == backoff  # a candidate's timer has its back-off
    ballot = n2.ballot
    assert ballot is not None
    before = len(log.ranges)
    net.step("n2", Receive("n1", Heartbeat(Ballot(ballot.round + 1, "n1"), 0)))
    assert n2.status().role == Role.FOLLOWER and n2.status().leader == "n1"
    assert len(log.ranges) > before and backoff not in log.ranges[before:]
    assert _ticks_until_prepare(net, "n2") == 10
    # a leader yielding to a higher ballot's heartbeat: the same
    net = Network(factory, 3, BACKOFF, 0, KVStore, invariants=check_invariants)
    net.elect("n1")
    n1, log = net.cores["n1"], logs["n1"]
    ballot = n1.ballot
    assert ballot is not None
    net.isolate("n1")
    before = len(log.ranges)
    net.step("n1", Receive("n2", Heartbeat(Ballot(ballot.round + 1, "n2"), 0)))
    assert n1.status().role == Role.FOLLOWER and n1.status().leader == "n2"
    assert len(log.ranges) > before and backoff not in log.ranges[before:]
    assert _ticks_until_prepare(net, "n1") == 10
    # by contrast, giving a campaign up draws exactly one back-off
    net.campaign("n1")
    ballot = n1.ballot
    assert ballot is not None
    before = len(log.ranges)
    net.step("n1", Receive("n2", Behind(ballot, 3)))
    assert log.ranges[before:].count(backoff) == 1


# ------------------------------------------------------------ senders outside our configurations
def test_a_sender_no_configuration_names_is_taken_only_as_a_proposer_ahead_of_us() -> None:
    """A node no known configuration names may lead one we have not applied yet, so its Prepare is taken
    only from a slot beyond applied + 1 and its Heartbeat only with a commit point beyond what we
    applied (every configuration up to there is one we know, and would name it); its Catchup or
    SnapshotChunk only once we follow its ballot.  Everything else is refused as from an unknown node.

    Reference: Lamport, Malkhi & Zhou, section 4 (the configuration of slot i is known alpha slots ahead)
    """
    unknown = "multipaxos n2: message from unknown node {!r}"
    net = _net(elect=None)
    n2 = net.cores["n2"]
    assert n2.applied == 0
    assert _verdict(net, "n2", "n9", Prepare(Ballot(1, "n9"), 1)) == unknown.format("n9")
    assert _verdict(net, "n2", "n9", Heartbeat(Ballot(1, "n9"), 0)) == unknown.format("n9")
    assert _verdict(net, "n2", "n9", Catchup(Ballot(1, "n9"))) == unknown.format("n9")  # we follow nobody
    assert not net.in_flight
    assert _verdict(net, "n2", "n9", Prepare(Ballot(1, "n9"), 2)) is None
    assert net.take() == [("n2", "n9", Promise(Ballot(1, "n9"), 2))]
    net = _net(elect=None)
    n2 = net.cores["n2"]
    assert _verdict(net, "n2", "n9", Heartbeat(Ballot(1, "n9"), 1)) is None
    assert n2.leader_ballot == Ballot(1, "n9")
    # now following n9's ballot: its answers are taken, no other unknown node's
    assert _verdict(net, "n2", "n9", Catchup(Ballot(1, "n9"))) is None
    assert _verdict(net, "n2", "n9", SnapshotChunk(Ballot(1, "n9"), 5, 0, "x", False)) is None
    assert _verdict(net, "n2", "n8", Catchup(Ballot(1, "n8"))) == unknown.format("n8")
    assert _verdict(net, "n2", "n8", SnapshotChunk(Ballot(1, "n8"), 5, 0, "x", False)) == unknown.format("n8")
    assert _verdict(net, "n2", "n8", Catchup(Ballot(1, "n9"))) == unknown.format("n8")
    assert _verdict(net, "n2", "n9", Catchup(Ballot(2, "n9"))) == unknown.format("n9")  # not the ballot we follow
    assert n2.leader_ballot == Ballot(1, "n9")


# ------------------------------------------------------------ Nacks and acks at the leader
def _heartbeats_held(net: Network, node: str, ticks: int) -> list[int]:
    """Tick ``node`` alone ``ticks`` times; the ``held`` of every Heartbeat it sends meanwhile."""
    sent = [s.message for _ in range(ticks) for s in net.step(node, TICK).messages]
    return [m.held for m in sent if isinstance(m, Heartbeat)]


def test_a_leader_ignores_a_nack_from_a_removed_node_it_no_longer_talks_to() -> None:
    """A removed node, let go once it retired, votes in none of the leader's slots: its Nack (answering a
    heartbeat sent before) raises the round the leader knows but does not preempt it, while the same
    Nack from a voter does.

    Reference: Lamport, Malkhi & Zhou, section 4; Paxos Made Simple, section 3 (preemption)
    """
    net = _net(alpha=2)
    leader = net.cores["n1"]
    net.request("n1", membership_command("remove", "n3"), "admin", 1)
    net.settle()
    for i in range(1, 20):
        if "n3" not in leader.peers:
            break
        net.request("n1", put(f"w{i}", "v"), "c1", i)
        net.settle()
        net.tick_all(3)
    assert "n3" not in leader.peers and net.cores["n3"].retired
    ballot = leader.ballot
    assert ballot is not None
    higher = Ballot(ballot.round + 1, "n3")
    assert _verdict(net, "n1", "n3", Nack(ballot, higher)) is None
    assert net.status("n1").role == Role.LEADER and leader.max_round == higher.round
    assert _verdict(net, "n1", "n2", Nack(ballot, higher)) is None
    assert net.status("n1").role == Role.FOLLOWER


def test_held_counts_only_what_peers_acked_as_applied() -> None:
    """``held`` (what a quorum of the newest configuration has applied, which tells a removed node it may
    retire) counts a peer's first ack at the slot it reports, 0 included: with n3 reporting 0 and n2
    silent, nothing is held though the leader applied slot 1; n2's ack of slot 1 makes it held, and the
    next heartbeat carries it.

    Reference: Lamport, Malkhi & Zhou, section 4 (a removed server may stop once its state is held)
    """
    net = _net(read_mode="read_index", heartbeat_ticks=2, election_ticks_min=10, election_ticks_max=10)
    n1 = net.cores["n1"]
    net.isolate("n3")
    net.drop_if = lambda src, dst, msg: isinstance(msg, HeartbeatAck)
    net.request("n1", put("a", "1"), "c1", 1)
    net.settle()
    net.tick("n1", 2)  # read_index: a heartbeat round asking for acks
    net.settle()
    ballot = n1.ballot
    assert ballot is not None and n1.applied == 1 and n1.hb_round == 1
    assert net.cores["n3"].applied == 0
    net.step("n1", Receive("n3", HeartbeatAck(ballot, 1, 0)))
    assert n1.held == 0
    held = _heartbeats_held(net, "n1", 2)
    assert held and set(held) == {0}
    net.step("n1", Receive("n2", HeartbeatAck(ballot, 1, 1)))
    assert n1.held == 1
    held = _heartbeats_held(net, "n1", 2)
    assert held and set(held) == {1}


# ------------------------------------------------------------ a chunked snapshot at the follower
def test_a_follower_pulls_chunks_only_from_the_leader_it_follows_and_only_past_what_it_applied() -> None:
    """A lagging follower takes SnapshotChunks only of the ballot it follows (a stale ballot's chunk, even
    a whole snapshot, is dropped unanswered), pulls each next chunk with a SnapshotRequest, installs the
    snapshot once the last is in, and then asks for the slots after it at the very next heartbeat; a
    replayed chunk of the snapshot it already installed is dropped, unanswered.

    Reference: Paxos Made Simple, section 3 (a learner catches up from the distinguished learner)
    """
    net = _net(snapshot_every=4, catchup_batch=2, snapshot_chunk_bytes=256)
    n1, n3 = net.cores["n1"], net.cores["n3"]
    ballot = n1.ballot
    assert ballot is not None and n3.leader_ballot == ballot
    net.isolate("n3")
    for i in range(1, 11):
        net.request("n1", put(f"k{i}", "v" * 40), "c1", i)
        net.stabilize()
    data = n1.snapshot_data
    assert n1.snapshot_slot == 8 and data is not None and len(data) == 759 and n3.applied == 0

    def chunk(offset: int, end: int, ballot: Ballot = ballot) -> tuple[tuple[Write, ...], list[Send]]:
        ready = net.step("n3", Receive("n1", SnapshotChunk(ballot, 8, offset, data[offset:end], end >= len(data))))
        return ready.persist, list(ready.messages)

    stale = Ballot(0, "n1")
    assert chunk(0, 256, stale) == ((), [])
    assert chunk(0, len(data), stale) == ((), [])
    assert n3.applied == 0 and n3.snapshot_data is None
    assert chunk(0, 256) == ((), [Send("n1", SnapshotRequest(ballot, 8, 256))])
    assert chunk(256, 512) == ((), [Send("n1", SnapshotRequest(ballot, 8, 512))])
    persist, sent = chunk(512, len(data))
    assert persist[0] == Write(SNAPSHOT_KEY, {"last_slot": 8, "data": data}) and sent == []
    assert n3.applied == n3.snapshot_slot == 8 and n3.snapshot_data == data
    assert chunk(0, 256) == ((), [])  # the snapshot it installed: nothing more to pull
    ready = net.step("n3", Receive("n1", Heartbeat(ballot, 10)))
    assert list(ready.messages) == [Send("n1", CatchupRequest(ballot, 9))]
