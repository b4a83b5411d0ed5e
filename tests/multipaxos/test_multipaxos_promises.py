"""Multi-Paxos phase 1b from the acceptor's side: when it promises, refuses or answers Behind, and what
its promise carries -- whole, or in :class:`PromisePart` messages cut at the byte bound.

Each test drives real :class:`multipaxos.MultiPaxosCore` replicas through the in-memory
:class:`smr.testing.Network`, gives an acceptor hand-made ``Accept`` messages (so every value's
byte cost is exact), injects a ``Prepare`` with ``Receive(src, msg)`` and pins the messages the
acceptor sends back.  Deterministic: a failing test replays as is.
"""

from __future__ import annotations

from typing import Any

from smr.bounds import request_bytes
from smr.commands import put
from smr.membership import membership_command
from smr.replica import ClientRequest, Receive, ReplyStatus, Role
from smr.state_machines import KVStore
from smr.testing import Network

from multipaxos import Accept, MultiPaxosCore, MultiPaxosInvariants, Prepare, Promise, check_invariants
from multipaxos.messages import Behind, Heartbeat, PromisePart, Snapshot
from synod.ballot import Ballot

BOUND = 256  # max_batch_bytes: the smallest byte bound the options allow
OLD = Ballot(5, "n3")  # the ballot the acceptor accepted its values in (a leader n3 that is gone)
NEW = Ballot(9, "n1")  # the ballot of the candidate n1 that asks it to promise


def _sent(net: Network, kind: type, src: str | None = None, dst: str | None = None) -> list[Any]:
    """Take the in-flight ``kind`` messages (from ``src``, to ``dst``) and return them, in order."""
    return [m for _, _, m in net.take(kind=kind, src=src, dst=dst)]


def _only(net: Network, kind: type, src: str, dst: str) -> Any:
    """Take everything in flight; it must be exactly one ``kind`` message from ``src`` to ``dst``: return it."""
    sent = net.take()
    assert [(s, d, type(m).__name__) for s, d, m in sent] == [(src, dst, kind.__name__)]
    return sent[0][2]


def _sized(seq: int, cost: int) -> ClientRequest:
    """A put of client c1 whose request_bytes is exactly ``cost``."""
    request = ClientRequest("c1", seq, put("k", ""))
    request = ClientRequest("c1", seq, put("k", "v" * (cost - request_bytes(request))))
    assert request_bytes(request) == cost
    return request


def _acceptor(costs: list[int], commit: int = 0, **options: object) -> Network:
    """3 nodes; n2 accepted slots 1.. (values of the given byte costs) in OLD, and knows those up to
    ``commit`` chosen; nothing is in flight."""
    net = Network(MultiPaxosCore, 3, {"max_batch_bytes": BOUND, **options}, 0, KVStore, invariants=check_invariants)
    values = tuple(_sized(slot, cost) for slot, cost in enumerate(costs, start=1))
    net.step("n2", Receive("n3", Accept(OLD, 1, values, commit)))
    net.take()
    assert net.cores["n2"].applied == commit
    return net


def _slots(values: tuple[Any, ...]) -> list[int]:
    return [v.slot for v in values]


# ------------------------------------------------------------ what a promise carries, and in how many parts
def test_the_byte_bound_is_inclusive_for_a_whole_promise_and_for_each_part() -> None:
    """A promise of exactly max_batch_bytes goes whole; one larger goes in parts, each filled with the
    accepted values in slot order up to exactly max_batch_bytes before the next part starts.

    Reference: Paxos Made Simple, section 2.2 (phase 1b reports every accepted value)
    """
    net = _acceptor([128, 128])
    net.step("n2", Receive("n1", Prepare(NEW, 1)))
    promise = _only(net, Promise, "n2", "n1")
    assert promise.ballot == NEW and _slots(promise.accepted) == [1, 2] and promise.snapshot is None
    assert all(v.ballot == OLD for v in promise.accepted)

    net = _acceptor([128, 128, 100, 156, 80])
    net.step("n2", Receive("n1", Prepare(NEW, 1)))
    parts = _sent(net, PromisePart, src="n2", dst="n1")
    assert not net.in_flight
    assert [(p.ballot, p.from_slot, p.part, p.parts) for p in parts] == [(NEW, 1, i, 3) for i in range(3)]
    assert [_slots(p.accepted) for p in parts] == [[1, 2], [3, 4], [5]]
    assert all(p.chosen == () and p.snapshot is None for p in parts)


def test_part_0_carries_the_chosen_values_that_fit_the_bytes_its_accepted_values_leave() -> None:
    """Chosen values only help the candidate learn, so part 0 carries those (in slot order) that fit,
    with its accepted values, within max_batch_bytes -- one that fills the bound exactly goes, the next
    one does not -- and no other part carries any.

    Reference: Paxos Made Simple, section 3 (a leader learns chosen values in phase 1)
    """
    # slots 1 (88 bytes) and 2 (80) are chosen; 3 (100) only accepted: part 0 holds 1 and 2 (168
    # bytes), which leaves 88 bytes, exactly slot 1's chosen value, and then none for slot 2's
    net = _acceptor([88, 80, 100], commit=2)
    net.step("n2", Receive("n1", Prepare(NEW, 1)))
    parts = _sent(net, PromisePart, src="n2", dst="n1")
    assert not _sent(net, Promise) and not net.in_flight
    assert [(p.part, p.parts, _slots(p.accepted)) for p in parts] == [(0, 2, [1, 2]), (1, 2, [3])]
    assert _slots(parts[0].chosen) == [1] and parts[0].chosen[0].value == _sized(1, 88)
    assert parts[0].chosen[0].ballot is None and parts[1].chosen == ()


def _snapshot_acceptor(**options: object) -> Network:
    """3 nodes, a snapshot every 2 slots; n2 applied (and snapshotted) slots 1-2 and accepted 3-4 of
    100 bytes each in OLD."""
    net = Network(MultiPaxosCore, 3, {"snapshot_every": 2, **options}, 0, KVStore, invariants=check_invariants)
    net.step("n2", Receive("n3", Accept(OLD, 1, (_sized(1, 80), _sized(2, 160)), 2)))
    net.step("n2", Receive("n3", Accept(OLD, 3, (_sized(3, 100), _sized(4, 100)), 2)))
    net.take()
    core = net.cores["n2"]
    assert core.applied == 2 and core.snapshot_slot == 2 and core.snapshot_data is not None
    return net


def test_a_snapshot_counts_against_the_byte_bound_and_goes_in_part_0_alone() -> None:
    """A promise to a candidate that lacks the acceptor's snapshot carries it; its bytes count against
    max_batch_bytes, so with it the accepted values go one to a part, and only part 0 carries it.

    Reference: Paxos Made Simple, section 2.2 (phase 1b); section 3 (a leader learns chosen values)
    """
    net = _snapshot_acceptor(max_batch_bytes=BOUND)
    data = net.cores["n2"].snapshot_data
    assert data is not None and len(data) + 200 > BOUND
    net.step("n2", Receive("n1", Prepare(NEW, 1)))
    parts = _sent(net, PromisePart, src="n2", dst="n1")
    assert not _sent(net, Promise) and not net.in_flight
    assert [(p.part, p.parts, _slots(p.accepted)) for p in parts] == [(0, 2, [3]), (1, 2, [4])]
    assert parts[0].snapshot == Snapshot(2, data) and parts[1].snapshot is None
    assert parts[0].chosen == () and parts[1].chosen == ()


# ------------------------------------------------------------ Behind: a snapshot too large for a promise
def test_a_candidate_lacking_the_snapshot_slot_gets_the_snapshot_or_behind_when_it_exceeds_a_chunk() -> None:
    """A Prepare from the snapshot's own slot lacks that slot: the promise carries the snapshot when it
    fits snapshot_chunk_bytes (exactly is enough); when it does not, the acceptor promises nothing and
    answers Behind with its applied slot.  A Prepare past the snapshot gets a plain promise.

    Reference: Howard & Mortier, "Paxos vs Raft" (one far behind lets another lead and catch it up)
    """
    size = len(_snapshot_acceptor().cores["n2"].snapshot_data or "")
    assert size > BOUND  # a chunk bound at or just below it is a valid option

    net = _snapshot_acceptor(snapshot_chunk_bytes=size)
    data = net.cores["n2"].snapshot_data
    assert data is not None and len(data) == size
    net.step("n2", Receive("n1", Prepare(NEW, 2)))
    promise = _only(net, Promise, "n2", "n1")
    assert promise.snapshot == Snapshot(2, data) and _slots(promise.accepted) == [3, 4]
    assert net.cores["n2"].acceptor.promised == NEW

    net = _snapshot_acceptor(snapshot_chunk_bytes=size - 1)
    before = net.cores["n2"].acceptor.promised
    net.step("n2", Receive("n1", Prepare(NEW, 2)))
    assert net.take() == [("n2", "n1", Behind(NEW, 2))]
    assert net.cores["n2"].acceptor.promised == before != NEW
    later = Ballot(10, "n1")
    net.step("n2", Receive("n1", Prepare(later, 3)))
    promise = _only(net, Promise, "n2", "n1")
    assert promise.ballot == later and promise.snapshot is None and _slots(promise.accepted) == [3, 4]
    assert net.cores["n2"].acceptor.promised == later


# ------------------------------------------------------------ who follows whom after a promise
def test_a_candidate_or_leader_promising_a_higher_ballot_becomes_a_follower() -> None:
    """Promising a higher ballot ends our own campaign or leadership: we follow nobody until the new
    proposer shows itself, and a promise that later arrives for our old ballot elects us no more.

    Reference: Paxos Made Simple, section 2.2 (an acceptor promises to ignore lower ballots)
    """
    net = Network(MultiPaxosCore, 3, {}, 0, KVStore, invariants=check_invariants)
    net.campaign("n1")
    mine = net.cores["n1"].ballot
    assert mine is not None and net.status("n1").role == Role.CANDIDATE
    net.take()
    higher = Ballot(mine.round + 1, "n2")
    net.step("n1", Receive("n2", Prepare(higher, 1)))
    promise = _only(net, Promise, "n1", "n2")
    assert promise.ballot == higher
    assert net.status("n1").role == Role.FOLLOWER and net.status("n1").leader is None
    net.step("n1", Receive("n3", Promise(mine, 1)))
    assert net.status("n1").role == Role.FOLLOWER

    net = Network(MultiPaxosCore, 3, {}, 0, KVStore, invariants=check_invariants)
    net.elect("n1")
    mine = net.cores["n1"].ballot
    assert mine is not None and net.status("n1").role == Role.LEADER
    higher = Ballot(mine.round + 1, "n3")
    net.step("n1", Receive("n3", Prepare(higher, net.cores["n1"].applied + 1)))
    assert [m.ballot for m in _sent(net, Promise, src="n1", dst="n3")] == [higher]
    assert net.status("n1").role == Role.FOLLOWER and net.status("n1").leader is None


def test_a_follower_keeps_its_leader_on_a_late_copy_of_that_leader_s_prepare() -> None:
    """A Prepare in the very ballot a follower already follows (a delayed or duplicated copy of the
    leader's own phase 1a) is promised again, and the follower still follows that leader; only a
    Prepare in a higher ballot means a new candidate is taking over.

    Reference: Paxos Made Simple, section 2.2 (an acceptor may answer a Prepare it promised again)
    """
    net = Network(MultiPaxosCore, 3, {}, 0, KVStore, invariants=check_invariants)
    net.elect("n1")
    leader = net.cores["n1"].ballot
    assert leader is not None and net.status("n2").leader == "n1"
    net.step("n2", Receive("n1", Prepare(leader, 1)))
    assert [m.ballot for m in _sent(net, Promise, src="n2", dst="n1")] == [leader]
    assert net.status("n2").leader == "n1" and net.status("n2").role == Role.FOLLOWER
    net.step("n2", Receive("n3", Prepare(Ballot(leader.round + 1, "n3"), 1)))
    assert len(_sent(net, Promise, src="n2", dst="n3")) == 1
    assert net.status("n2").leader is None


_SEQ = [1000]


def _ask(net: Network, node: str, command: Any, client: str) -> ReplyStatus:
    """Send ``command`` to ``node``, settle, and return the reply's status."""
    _SEQ[0] += 1
    net.request(node, command, client=client, seq=_SEQ[0])
    net.settle()
    return net.replies_to(client, _SEQ[0])[-1].status


def _run(net: Network, ticks: int) -> None:
    for _ in range(ticks):
        net.tick_all(1)
        net.settle()


def test_a_leader_answers_a_removed_voter_s_prepare_with_a_plain_heartbeat_of_held() -> None:
    """A live leader promises nothing to a node outside its configurations (disruption) but tells it,
    in a heartbeat asking for no acknowledgement (round 0), its ballot, commit point and ``held``, and
    starts a heartbeat round among its own peers to bring ``held`` up to date.

    Reference: Lamport, Malkhi & Zhou, "Reconfiguring a State Machine" (a removed member retires once the
    new configuration holds its slots)
    """
    net: Network = Network(MultiPaxosCore, 3, {"alpha": 4}, invariants=MultiPaxosInvariants())
    net.elect("n1")
    assert _ask(net, "n1", membership_command("remove", "n3"), "admin") == ReplyStatus.OK
    for i in range(10):  # two windows of slots: n3 is in no configuration in use
        assert _ask(net, "n1", put("k", str(i)), "c1") == ReplyStatus.OK
    _run(net, 3)
    net.elect("n2")  # a leader that never counted n3 as a peer
    _run(net, 3)
    n2 = net.cores["n2"]
    assert n2.role == "leader" and "n3" not in n2.peers and n2.ballot is not None
    promised = n2.acceptor.promised
    helds: list[int] = []
    for _ in range(2):  # the second answer carries the held the first one's round brought
        net.step("n2", Receive("n3", Prepare(Ballot(50, "n3"), n2.applied + 1)))
        assert _sent(net, Heartbeat, src="n2", dst="n3") == [Heartbeat(n2.ballot, n2.applied, 0, n2.held)]
        helds.append(n2.held)
        rounds = [m.round for s, d, m in net.in_flight if s == "n2" and d == "n1" and isinstance(m, Heartbeat)]
        assert len(rounds) == 1 and rounds[0] > 0  # a round among its peers, whose acks bring held
        assert not _sent(net, Promise) and n2.acceptor.promised == promised and n2.role == "leader"
        net.settle()
    assert helds == [0, n2.applied]
