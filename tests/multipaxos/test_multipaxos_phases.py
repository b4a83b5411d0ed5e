"""Multi-Paxos phase 1 and phase 2 message by message: what a new leader re-proposes, when a promise
in parts counts, and what the proposal window lets out.

Each test drives real :class:`multipaxos.MultiPaxosCore` replicas through the in-memory
:class:`smr.testing.Network` and injects hand-made messages with ``Receive(src, msg)``, then pins the
exact messages the core sends (slots, values, ballots).  Deterministic: a failing test replays as is.
"""

from __future__ import annotations

from typing import Any

import pytest

from smr.commands import put
from smr.membership import Membership
from smr.replica import ClientRequest, Receive, ReplyStatus, Role
from smr.sessions import NOOP_ENTRY
from smr.state_machines import KVStore
from smr.testing import Network, unstamped

from multipaxos import MAX_ALPHA, Accept, Accepted, MultiPaxosCore, Nack, Prepare, Promise, check_invariants
from multipaxos._core import MAX_INDEX, WINDOW_TAG, _window_of, _with_window
from multipaxos.messages import Behind, Heartbeat, PromisePart, SlotValue, Snapshot
from synod.ballot import Ballot


def _net(size: int = 3, seed: int = 0, **options: object) -> Network:
    return Network(MultiPaxosCore, size, options, seed, KVStore, invariants=check_invariants)


def _req(seq: int, key: str = "k") -> ClientRequest:
    return ClientRequest("c1", seq, put(key, f"v{seq}"))


def _sent(net: Network, kind: type, src: str | None = None, dst: str | None = None) -> list[Any]:
    """Take the in-flight ``kind`` messages (from ``src``, to ``dst``) and return them, in order."""
    return [m for _, _, m in net.take(kind=kind, src=src, dst=dst)]


def _accepts(net: Network, dst: str) -> list[tuple[Ballot, int, list[ClientRequest], int]]:
    """The Accept batches in flight to ``dst`` as (ballot, first slot, unstamped values, commit)."""
    return [(a.ballot, a.first_slot, [unstamped(v) for v in a.values], a.commit)
            for a in _sent(net, Accept, dst=dst)]


# ------------------------------------------------------------ a candidate that saw round 5
OLD = Ballot(5, "n3")  # the ballot the values below were accepted in, under a leader n3 that is gone
NEW = Ballot(6, "n1")  # n1's ballot once it campaigns after hearing round 5


def _candidate(**options: object) -> Network:
    """3 nodes; n1 promised n3's round 5 (so it campaigns in round 6) and now campaigns: a candidate
    with its Prepares taken out of flight."""
    net = Network(MultiPaxosCore, 3, options, 0, KVStore, invariants=check_invariants)
    net.step("n1", Receive("n3", Prepare(OLD, 1)))
    net.take()
    net.campaign("n1")
    assert net.cores["n1"].ballot == NEW
    net.take()
    return net


def _part(part: int, parts: int, accepted: list[tuple[int, ClientRequest]], chosen: tuple[SlotValue, ...] = (),
          snapshot: Snapshot | None = None, ballot: Ballot = NEW, from_slot: int = 1) -> PromisePart:
    return PromisePart(ballot, from_slot, part, parts, tuple(SlotValue(s, v, OLD) for s, v in accepted),
                       chosen, snapshot)


def test_a_promise_in_parts_counts_once_every_part_is_here_and_re_proposes_them_all() -> None:
    """A promise in parts (any order) counts only when its last part arrives; the new leader then
    re-proposes every slot any part reported, in slot order, in its own ballot, and learns the
    chosen values part 0 carries (only part 0 carries them).

    Reference: Paxos Made Simple, section 3 (the new leader's phase 1 covers every later slot)
    """
    net = _candidate()
    # a part of the same promise for an earlier ballot of ours, and one of a peer's own ballot: not counted
    net.step("n1", Receive("n2", _part(0, 2, [(2, _req(2))], ballot=Ballot(6, "n2"))))
    net.step("n1", Receive("n2", _part(1, 2, [(4, _req(4))])))
    assert net.status("n1").role == Role.CANDIDATE and not net.in_flight
    net.step("n1", Receive("n2", _part(0, 2, [(2, _req(2)), (3, _req(3))],
                                       chosen=(SlotValue(1, _req(1)),))))
    assert net.status("n1").role == Role.LEADER
    assert net.cores["n1"].chosen == {} and net.cores["n1"].applied == 1
    assert unstamped(net.cores["n1"].log[1]) == _req(1)  # learned from part 0's chosen values
    for dst in ("n2", "n3"):
        assert _accepts(net, dst) == [(NEW, 2, [_req(2), _req(3), _req(4)], 1)]


def test_part_0_alone_carries_the_chosen_values_and_the_snapshot() -> None:
    """A promise in parts gives the candidate part 0's chosen values and snapshot (later parts carry
    only accepted values): the leader installs the snapshot, learns the chosen slot after it, and
    re-proposes the rest from there.

    Reference: Paxos Made Simple, section 3 (a leader learns chosen values in phase 1)
    """
    source = _net(3, snapshot_every=2)
    source.elect("n1")
    for seq in (1, 2):
        source.request("n1", put("k", f"v{seq}"), "c1", seq)
        source.settle()
    data = source.cores["n1"].snapshot_data
    assert data is not None and source.cores["n1"].snapshot_slot == 2
    net = _candidate()
    snapshot = Snapshot(2, data)
    net.step("n1", Receive("n2", _part(0, 2, [(4, _req(4))], chosen=(SlotValue(3, _req(3)),), snapshot=snapshot)))
    assert net.status("n1").role == Role.CANDIDATE
    net.step("n1", Receive("n2", _part(1, 2, [(5, _req(5))], chosen=(SlotValue(6, _req(6)),),
                                       snapshot=Snapshot(5, data))))
    core = net.cores["n1"]
    assert net.status("n1").role == Role.LEADER
    assert core.snapshot_slot == 2 and core.applied == 3 and unstamped(core.log[3]) == _req(3)
    assert 6 not in core.chosen and 6 not in core.log
    assert _accepts(net, "n2") == [(NEW, 4, [_req(4), _req(5)], 3)]


def test_parts_from_different_acceptors_or_of_different_counts_never_make_one_promise() -> None:
    """A promise counts only once every part of it came from one acceptor, all saying the same
    number of parts: halves from two acceptors, or parts that disagree on their count, elect nobody.

    Reference: Paxos Made Simple, section 2.2 (a majority must each promise, whole)
    """
    net = _candidate()
    net.step("n1", Receive("n2", _part(0, 2, [(1, _req(1))])))
    net.step("n1", Receive("n3", _part(1, 2, [(2, _req(2))])))
    assert net.status("n1").role == Role.CANDIDATE and not net.in_flight
    net.step("n1", Receive("n2", _part(1, 3, [(2, _req(2))])))
    net.step("n1", Receive("n2", _part(2, 3, [(3, _req(3))])))
    assert net.status("n1").role == Role.CANDIDATE and not net.in_flight
    assert not net.remote_errors
    # the third acceptor's whole promise (in two parts) elects n1 with its values alone
    net.step("n1", Receive("n3", _part(0, 2, [(1, _req(7))])))
    assert net.status("n1").role == Role.LEADER
    assert _accepts(net, "n2") == [(NEW, 1, [_req(7), _req(2)], 0)]


def test_a_promise_too_large_for_one_message_goes_in_parts_with_the_chosen_values_in_part_0() -> None:
    """An acceptor whose promise exceeds max_batch_bytes sends it in parts: every accepted value, in
    slot order, split by the byte budget, and part 0 alone also carries the chosen values that fit.

    Reference: Paxos Made Simple, section 2.2 (phase 1b reports every accepted value)
    """
    net = _net(3, max_batch_bytes=256)
    net.elect("n3")
    net.isolate("n1")
    for seq in range(1, 9):
        net.request("n3", put(f"k{seq}", "v" * 60), "c1", seq)
    net.settle()
    net.recover()
    net.step("n2", Receive("n1", Prepare(Ballot(9, "n1"), 1)))
    parts = _sent(net, PromisePart, src="n2")
    assert len(parts) > 1
    assert [(p.part, p.parts, p.ballot, p.from_slot) for p in parts] == [
        (i, len(parts), Ballot(9, "n1"), 1) for i in range(len(parts))]
    assert [v.slot for p in parts for v in p.accepted] == list(range(1, 9))
    assert all(v.ballot == net.cores["n3"].ballot for p in parts for v in p.accepted)
    assert all(p.chosen == () and p.snapshot is None for p in parts[1:])


# ------------------------------------------------------------ the snapshot's configuration window
def _membership(*voters: str) -> Membership:
    return Membership(voters=voters)


def test_a_snapshot_window_is_compact_sorted_json_and_reads_back() -> None:
    """A snapshot carrying the configurations of the alpha slots after it writes them as compact,
    key-sorted JSON after WINDOW_TAG (byte-identical on every replica), and reads them back.

    Reference: Lamport, Malkhi and Zhou, "Reconfiguring a State Machine", section 4 (alpha window)
    """
    window = [(0, _membership("n1", "n2", "n3")), (7, _membership("n1", "n2", "n4"))]
    text = _with_window('{"b":1}', window)
    rows = ('[[0,{"addresses":{},"joining":[],"learners":[],"outgoing":[],"voters":["n1","n2","n3"]}],'
            '[7,{"addresses":{},"joining":[],"learners":[],"outgoing":[],"voters":["n1","n2","n4"]}]]')
    assert text == f'{WINDOW_TAG}{rows},"b":1}}'
    assert _window_of(text) == window
    assert _window_of('{"b":1}') is None
    full = _with_window("{}", [(s, _membership("n1")) for s in range(MAX_ALPHA + 1)])  # alpha changes at most
    assert len(_window_of(full) or []) == MAX_ALPHA + 1
    assert _window_of(_with_window("{}", [(MAX_INDEX - 1, _membership("n1"))])) == [
        (MAX_INDEX - 1, _membership("n1"))]


@pytest.mark.parametrize(("rows", "words"), [
    ("[]", "a snapshot's window is a non-empty list of at most 1024 rows"),
    ('{"a":1}', "a snapshot's window is a non-empty list of at most 1024 rows"),
    ("[" + ",".join(['[0,{"voters":["n1"]}]'] * (MAX_ALPHA + 2)) + "]",
     "a snapshot's window is a non-empty list of at most 1024 rows"),
    ('[[0,{"voters":["n1"]}],5]', r"a window row is \[slot, membership\]"),
    ('[[0,{"voters":["n1"]}],[1]]', r"a window row is \[slot, membership\]"),
    ('[["0",{"voters":["n1"]}]]', r"a window row is \[slot, membership\]"),
    ('[[-1,{"voters":["n1"]}]]', r"a window row is \[slot, membership\]"),
    (f'[[{MAX_INDEX},{{"voters":["n1"]}}]]', r"a window row is \[slot, membership\]"),
])
def test_a_malformed_snapshot_window_is_refused_saying_what_is_wrong(rows: str, words: str) -> None:
    """A snapshot whose window is not a non-empty list (at most MAX_ALPHA + 1 rows) of [slot, membership] rows,
    slots in 0..MAX_INDEX-1, is refused with a ValueError that says so.

    Reference: Lamport, Malkhi and Zhou, "Reconfiguring a State Machine", section 4 (alpha window)
    """
    with pytest.raises(ValueError, match=r"^a snapshot's configuration window is malformed: " + words + "$"):
        _window_of(f"{WINDOW_TAG}{rows},}}")


# ------------------------------------------------------------ retries while queued
def test_a_retry_with_another_command_under_a_queued_key_is_refused_not_merged() -> None:
    """A (client, seq) still queued at the leader (the pipeline is full) keeps its command: a request
    reusing that key with another command is not ordered, and once the first is applied it is
    refused as SequenceReused while the first command's client gets OK.

    Reference: Paxos Made Simple, section 3 (the leader orders each client command once)
    """
    net = _net(3, max_inflight=1)
    net.elect("n1")
    net.request("n1", put("k", "zero"), "c1", 1)
    net.settle()
    net.request("n1", put("a", "1"), "c0", 1)      # in flight: the pipeline is full
    net.request("n1", put("k", "first"), "c1", 2)  # queued
    net.request("n1", put("k", "other"), "c1", 2)  # the same key, another command
    net.settle()
    net.tick_all(6)
    values = [unstamped(v) for v in net.cores["n1"].log.values()]
    assert ClientRequest("c1", 2, put("k", "other")) not in values
    assert ClientRequest("c1", 2, put("k", "first")) in values
    replies = net.replies_to("c1", 2)
    assert [r.status for r in replies] == [ReplyStatus.OK, ReplyStatus.ERROR]
    assert "SequenceReused" in str(replies[1].result)


# ------------------------------------------------------------ phase 1, message by message
def test_a_campaign_sends_prepare_from_the_first_unapplied_slot_in_a_round_above_any_seen() -> None:
    """A replica that hears no leader takes the ballot (highest round seen + 1, its id), becomes a
    candidate and sends every peer Prepare(ballot, applied + 1); one promise short of a majority
    it stays a candidate.

    Reference: Paxos Made Simple, section 3 (phase 1 for every slot from the first unchosen on)
    """
    net = _net(5)
    net.elect("n1")
    for seq in (1, 2):
        net.request("n1", put("k", f"v{seq}"), "c1", seq)
        net.settle()
    net.tick_all(6)
    assert net.cores["n2"].applied == 2
    net.crash("n1")
    net.step("n2", Receive("n3", Prepare(Ballot(4, "n3"), 3)))
    net.take()
    net.campaign("n2")
    prepares = net.take(kind=Prepare, src="n2")
    assert sorted((dst, m) for _, dst, m in prepares) == [
        (dst, Prepare(Ballot(5, "n2"), 3)) for dst in ("n1", "n3", "n4", "n5")]
    assert net.status("n2").role == Role.CANDIDATE and net.status("n2").epoch == 5
    assert net.status("n2").leader is None
    net.step("n2", Receive("n4", Promise(Ballot(5, "n2"), 3)))
    assert net.status("n2").role == Role.CANDIDATE
    net.step("n2", Receive("n5", Promise(Ballot(5, "n2"), 3)))
    assert net.status("n2").role == Role.LEADER and net.status("n2").leader == "n2"


def test_an_acceptor_promises_with_its_accepted_values_and_the_chosen_ones_it_holds() -> None:
    """Phase 1b: an acceptor promising a higher ballot reports, for every slot from the Prepare's
    from_slot on, its accepted value with the ballot it was accepted in and the values it knows
    chosen; a Prepare below its promise gets a Nack naming the promise.

    Reference: Paxos Made Simple, section 2.2 (phase 1b), section 3
    """
    net = _net(3)
    net.elect("n1")
    for seq in (1, 2, 3):
        net.request("n1", put("k", f"v{seq}"), "c1", seq)
        net.settle()
    net.tick_all(6)
    old = net.cores["n1"].ballot
    assert old is not None and net.cores["n2"].applied == 3
    net.take()
    net.step("n2", Receive("n3", Prepare(Ballot(7, "n3"), 2)))
    (promise,) = _sent(net, Promise, src="n2")
    assert promise.ballot == Ballot(7, "n3") and promise.from_slot == 2 and promise.snapshot is None
    assert [(v.slot, unstamped(v.value), v.ballot) for v in promise.accepted] == [
        (s, _req(s), old) for s in (2, 3)]
    assert [(v.slot, unstamped(v.value), v.ballot) for v in promise.chosen] == [(s, _req(s), None) for s in (2, 3)]
    assert net.status("n2").leader is None  # a new candidate is taking over
    net.step("n2", Receive("n1", Prepare(Ballot(6, "n1"), 1)))
    assert _sent(net, Nack, src="n2") == [Nack(Ballot(6, "n1"), Ballot(7, "n3"))]
    assert not _sent(net, Promise, src="n2")


def test_a_new_leader_re_proposes_each_slot_s_highest_ballot_value_and_fills_gaps_with_no_ops() -> None:
    """Recovery: for every slot up to the last any promiser reported, the new leader proposes, in its
    own ballot and in one Accept to every peer, the value accepted in the highest ballot reported
    there, and a no-op where no promiser reported a value.

    Reference: Paxos Made Simple, section 3 (gaps are filled with no-op commands)
    """
    net = _net(5)
    net.step("n1", Receive("n3", Prepare(OLD, 1)))
    net.take()
    net.campaign("n1")
    net.take()
    low, high = Ballot(3, "n2"), Ballot(4, "n4")
    net.step("n1", Receive("n2", Promise(NEW, 1, (SlotValue(1, _req(1), low), SlotValue(2, _req(2), low),
                                                   SlotValue(5, _req(5), low)))))
    assert net.status("n1").role == Role.CANDIDATE
    net.step("n1", Receive("n4", Promise(NEW, 1, (SlotValue(2, _req(20), high), SlotValue(3, _req(3), high)))))
    assert net.status("n1").role == Role.LEADER
    expected = [(NEW, 1, [_req(1), _req(20), _req(3), NOOP_ENTRY, _req(5)], 0)]
    for dst in ("n2", "n3", "n4", "n5"):
        assert _accepts(net, dst) == expected
    assert not _sent(net, Heartbeat)
    assert net.cores["n1"].next_slot == 6


def test_a_new_leader_with_nothing_to_recover_announces_itself_with_a_heartbeat() -> None:
    """A leader whose promisers report no value proposes nothing and sends every peer a heartbeat of
    its ballot, so they follow it at once.

    Reference: Paxos Made Simple, section 3 (a leader with nothing to propose)
    """
    net = _candidate()
    net.step("n1", Receive("n2", Promise(NEW, 1)))
    assert net.status("n1").role == Role.LEADER
    assert not _sent(net, Accept)
    assert sorted((dst, m) for _, dst, m in net.take(kind=Heartbeat)) == [
        (dst, Heartbeat(NEW, 0, 0, 0)) for dst in ("n2", "n3")]


def test_a_candidate_told_it_is_behind_gives_up_its_campaign() -> None:
    """An acceptor that cannot promise because its snapshot holds slots the candidate lacks answers
    Behind; a candidate behind that acceptor goes back to follower, one not behind keeps campaigning.

    Reference: Howard & Mortier, "Paxos vs Raft" (any replica may win, but one far behind lets another lead)
    """
    net = _candidate()
    net.step("n1", Receive("n2", Behind(Ballot(6, "n2"), 9)))
    net.step("n1", Receive("n2", Behind(NEW, 0)))
    assert net.status("n1").role == Role.CANDIDATE
    net.step("n1", Receive("n2", Behind(NEW, 9)))
    assert net.status("n1").role == Role.FOLLOWER and net.status("n1").leader is None
    net.step("n1", Receive("n3", Promise(NEW, 1)))
    net.step("n1", Receive("n2", Promise(NEW, 1)))
    assert net.status("n1").role == Role.FOLLOWER


# ------------------------------------------------------------ phase 2 and the window
def test_the_window_lets_out_max_inflight_batches_of_max_batch_commands() -> None:
    """Pipelining and batching: the leader has at most max_inflight Accept batches outstanding, each
    of at most max_batch consecutive slots; an Accepted that completes the oldest batch lets the
    next batch out, starting at the next free slot.

    Reference: Paxos Made Simple, section 3 (the leader may propose many commands at once)
    """
    net = _net(3, max_inflight=2, max_batch=2)
    net.elect("n1")
    net.take()
    for seq in range(1, 8):
        net.request("n1", put("k", f"v{seq}"), "c1", seq)
    assert [(a.first_slot, len(a.values)) for a in _sent(net, Accept, dst="n2")] == [(1, 1), (2, 1)]
    net.take()
    ballot = net.cores["n1"].ballot
    assert ballot is not None
    net.step("n1", Receive("n2", Accepted(ballot, 1, 1)))
    assert _accepts(net, "n3") == [(ballot, 3, [_req(3), _req(4)], 1)]
    net.take()
    net.step("n1", Receive("n3", Accepted(ballot, 2, 1)))
    assert _accepts(net, "n2") == [(ballot, 5, [_req(5), _req(6)], 2)]
    net.take()
    net.step("n1", Receive("n2", Accepted(ballot, 5, 2)))
    assert not net.in_flight  # slots 3-4 still hold one of the two places
    net.step("n1", Receive("n2", Accepted(ballot, 3, 2)))
    assert _accepts(net, "n3") == [(ballot, 7, [_req(7)], 6)]
    assert net.cores["n1"].applied == 6


def test_an_unanswered_accept_is_sent_again_only_to_peers_that_have_not_accepted() -> None:
    """Accepts still short of a majority after a heartbeat interval go out again, slot by slot only
    to the peers that did not accept them yet; a majority's acceptance stops that.

    Reference: Paxos Made Simple, section 3 (messages may be lost; the leader retries)
    """
    net = _net(5)
    net.elect("n1")
    net.take()
    ballot = net.cores["n1"].ballot
    assert ballot is not None
    for seq in (1, 2):
        net.request("n1", put("k", f"v{seq}"), "c1", seq)
    net.take()
    net.step("n1", Receive("n2", Accepted(ballot, 1, 1)))
    net.step("n1", Receive("n3", Accepted(ballot, 2, 1)))
    net.tick("n1", net.cores["n1"].opts.heartbeat_ticks)
    resent = sorted((dst, m.ballot, m.first_slot, [unstamped(v) for v in m.values], m.commit)
                    for _, dst, m in net.take(kind=Accept))
    assert resent == [("n2", ballot, 2, [_req(2)], 0), ("n3", ballot, 1, [_req(1)], 0),
                      ("n4", ballot, 1, [_req(1), _req(2)], 0), ("n5", ballot, 1, [_req(1), _req(2)], 0)]
    assert net.cores["n1"].applied == 0
    net.step("n1", Receive("n4", Accepted(ballot, 1, 2)))
    assert net.cores["n1"].applied == 2 and not net.cores["n1"].proposals
    net.take()
    net.tick("n1", net.cores["n1"].opts.heartbeat_ticks)
    assert not _sent(net, Accept)


def test_a_nack_for_our_ballot_naming_a_higher_promise_sends_the_leader_back_to_follower() -> None:
    """Preemption: a Nack of our ballot naming a higher promise makes the leader a follower (and raises
    the round it campaigns above next); a Nack of another ballot or naming a lower one does not.

    Reference: Paxos Made Simple, section 3 (a proposer abandons a ballot a higher one preempted)
    """
    net = _net(3)
    net.elect("n1")
    ballot = net.cores["n1"].ballot
    assert ballot is not None
    net.step("n1", Receive("n2", Nack(Ballot(ballot.round + 5, "n1"), Ballot(ballot.round + 6, "n3"))))
    net.step("n1", Receive("n2", Nack(ballot, Ballot(ballot.round - 1, "n3") if ballot.round > 1 else ballot)))
    assert net.status("n1").role == Role.LEADER
    net.step("n1", Receive("n2", Nack(ballot, Ballot(ballot.round + 2, "n3"))))
    assert net.status("n1").role == Role.FOLLOWER
    net.take()
    net.campaign("n1")
    assert net.cores["n1"].ballot == Ballot(ballot.round + 7, "n1")


def test_a_late_promise_s_accepted_value_is_re_proposed_and_holds_no_later_slot_back() -> None:
    """A promise arriving after the candidate already won (on the other promises) still counts: the
    leader re-proposes the value it reports accepted above its proposals, in its own ballot, and as
    that value is no configuration change, the slots after it go out at once (pipelined).

    Reference: Paxos Made Simple, section 3; Lamport, Malkhi and Zhou, section 4 (alpha window)
    """
    net = _candidate(alpha=2, max_batch=1, max_inflight=4)
    net.step("n1", Receive("n3", Promise(NEW, 1)))
    assert net.status("n1").role == Role.LEADER
    net.take()
    net.step("n1", Receive("n2", Promise(NEW, 1, (SlotValue(1, _req(1), OLD),))))
    assert _accepts(net, "n3") == [(NEW, 1, [_req(1)], 0)]
    net.take()
    for seq in (2, 3, 4):
        net.request("n1", put("k", f"v{seq}"), "c1", seq)
    assert [(a.first_slot, [unstamped(v) for v in a.values]) for a in _sent(net, Accept, dst="n2")] == [
        (seq, [_req(seq)]) for seq in (2, 3, 4)]
