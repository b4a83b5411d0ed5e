"""The Raft core's check of a peer's message before it touches any state (``RaftCore._impossible``).

A message no correct peer could send -- a term out of 0..MAX_EPOCH or more
than MAX_EPOCH_JUMP ahead, an index at or past MAX_INDEX, a negative round,
a log that contradicts itself -- is dropped: the core raises
RemoteProtocolError, which the driver counts and the runtime logs with its
reason.  Each range is pinned at its exact edge: a message at the limit is
taken, one just past it is dropped with the reason the code gives.

Each test drives the in-memory Raft network (raft.testing.Network), where n1
leads term 1 and n2, n3 follow with the no-op at index 1 committed.
"""

from __future__ import annotations

import re
from typing import Any

from smr.bounds import MAX_EPOCH, MAX_EPOCH_JUMP, MAX_INDEX
from smr.commands import Command, put
from smr.membership import membership_command
from smr.replica import ClientRequest, Receive

from raft import (AppendEntries, AppendEntriesReply, Entry, HardState, InstallSnapshot, InstallSnapshotReply,
                  RequestVote, RequestVoteReply, SnapshotRecord)
from raft.messages import HARD_KEY
from raft.testing import Network

TERM_REASON = f"is outside 0..{MAX_EPOCH} or more than {MAX_EPOCH_JUMP} ahead of ours"
RANGE = "an index, term or round is out of range"
VOTE_RANGE = "its last log entry is out of range"
SNAPSHOT_RANGE = "its index, term, offset or round is out of range"
SNAPSHOT_REPLY_RANGE = "its index, size or round is out of range"


def _net() -> Network:
    """Three nodes, n1 elected in term 1 and its no-op committed everywhere."""
    net = Network(3, seed=11)
    net.elect("n1")
    net.in_flight.clear()
    return net


def _deliver(net: Network, node: str, src: str, message: Any) -> tuple[str, list[Any]]:
    """Hand ``message`` from ``src`` to ``node``: return the drop the runtime recorded ('' if taken) and what
    ``node`` sent in answer."""
    before = len(net.remote_errors)
    ready = net.step(node, Receive(src, message))
    errors = net.remote_errors[before:]
    assert net.drivers[node].rejected == bool(errors)
    assert len(errors) <= 1
    sent = [s.message for s in (*ready.eager, *ready.messages)]
    return (errors[0] if errors else ""), sent


def _drop_text(node: str, src: str, message: Any, reason: str) -> str:
    """The exact text a dropped message is reported with."""
    return f"raft {node}: impossible {type(message).__name__} from {src}: {reason}"


def _assert_dropped(net: Network, node: str, src: str, message: Any, reason: str) -> None:
    """``node`` drops ``message`` with ``reason``, sends nothing and keeps its term."""
    term = net.cores[node].term
    error, sent = _deliver(net, node, src, message)
    assert error == _drop_text(node, src, message, reason), message
    assert sent == [] and net.cores[node].term == term


def _assert_taken(net: Network, node: str, src: str, message: Any) -> list[Any]:
    """``node`` takes ``message`` (no drop recorded); return what it sent in answer."""
    error, sent = _deliver(net, node, src, message)
    assert error == "", (message, error)
    return sent


# ------------------------------------------------------------------ terms (every message type)
def test_a_term_exactly_max_epoch_jump_ahead_is_taken_one_more_is_dropped() -> None:
    """A peer may move a node's term at most MAX_EPOCH_JUMP ahead at once; 0 is the lowest term.

    Reference: Raft paper section 5.1 (a higher term is adopted), bounded by smr.bounds.MAX_EPOCH_JUMP
    """
    net = _net()
    ahead = 1 + MAX_EPOCH_JUMP
    for term in (ahead + 1, -1):
        message = RequestVoteReply(term, False)
        _assert_dropped(net, "n2", "n3", message, f"term {term} {TERM_REASON}")
    # term 0 is in range: a stale candidate of term 0 is answered with our term (section 5.1)
    assert _assert_taken(net, "n2", "n3", RequestVote(0, 0, 0)) == [RequestVoteReply(1, False)]
    assert _assert_taken(net, "n2", "n3", RequestVoteReply(ahead, False)) == []
    assert net.cores["n2"].term == ahead and net.cores["n2"].role == "follower"


def test_a_term_of_exactly_max_epoch_is_taken_one_more_is_dropped() -> None:
    """Near the top, MAX_EPOCH itself is the highest term a node adopts, however close its own term is.

    Reference: Raft paper section 5.1, bounded by smr.bounds.MAX_EPOCH (the successor must stay encodable)
    """
    net = _net()
    net.durable["n2"][HARD_KEY] = HardState(MAX_EPOCH - 2, None)
    net.restart("n2")
    assert net.cores["n2"].term == MAX_EPOCH - 2
    _assert_dropped(net, "n2", "n3", RequestVoteReply(MAX_EPOCH + 1, False),
                    f"term {MAX_EPOCH + 1} {TERM_REASON}")
    _assert_taken(net, "n2", "n3", RequestVoteReply(MAX_EPOCH, False))
    assert net.cores["n2"].term == MAX_EPOCH


# ------------------------------------------------------------------ RequestVote
def test_a_vote_request_names_a_last_entry_below_max_index_and_not_past_its_term() -> None:
    """RequestVote: last_log_index in 0..MAX_INDEX-1 and last_log_term in 0..term, each checked on its own.

    Reference: Raft paper section 5.4.1 (the candidate's last log entry decides the vote)
    """
    net = _net()
    for message in (RequestVote(2, MAX_INDEX, 1), RequestVote(2, -1, 1),      # index out, term fine
                    RequestVote(2, 5, 3), RequestVote(2, 5, -1)):             # index fine, term out
        _assert_dropped(net, "n2", "n3", message, VOTE_RANGE)
    # at both limits at once: the highest index, and a last entry of the candidate's own term (the check
    # allows it, though a correct candidate's last entry is always of an earlier term)
    sent = _assert_taken(net, "n2", "n3", RequestVote(2, MAX_INDEX - 1, 2))
    assert sent == [RequestVoteReply(2, True)] and net.cores["n2"].term == 2


# ------------------------------------------------------------------ AppendEntries
def test_append_entries_indexes_stay_below_max_index_counting_the_entries_it_carries() -> None:
    """AppendEntries: prev_index + len(entries) < MAX_INDEX, commit < MAX_INDEX, prev_term <= term,
    round >= 0; each condition alone drops the message.

    Reference: Raft paper section 5.3 (AppendEntries arguments)
    """
    net = _net()
    one = (Entry(1, ClientRequest("c1", 1, put("k", "v"))),)
    for message in (AppendEntries(1, MAX_INDEX - 1, 1, one, 1),     # the entry would land at MAX_INDEX
                    AppendEntries(1, MAX_INDEX, 1, (), 1),          # a heartbeat past the last index
                    AppendEntries(1, -1, 1, one, 1),
                    AppendEntries(1, 1, 2, one, 1),                 # prev_term above the leader's term
                    AppendEntries(1, 1, -1, one, 1),
                    AppendEntries(1, 1, 1, one, MAX_INDEX),         # commit at MAX_INDEX
                    AppendEntries(1, 1, 1, one, -1),
                    AppendEntries(1, 1, 1, one, 1, round=-1)):
        _assert_dropped(net, "n2", "n1", message, RANGE)
    assert net.cores["n2"].log.last_index == 1
    # at the limits: the entry lands at MAX_INDEX - 1; a heartbeat may name MAX_INDEX - 1 itself
    for message in (AppendEntries(1, MAX_INDEX - 2, 1, one, MAX_INDEX - 1),
                    AppendEntries(1, MAX_INDEX - 1, 1, (), MAX_INDEX - 1)):
        sent = _assert_taken(net, "n2", "n1", message)
        assert sent == [AppendEntriesReply(1, False, message.prev_index, 0, 2)]  # our log is too short
    # and with everything in range the entry is appended and committed up to what was sent
    assert _assert_taken(net, "n2", "n1", AppendEntries(1, 1, 1, one, MAX_INDEX - 1)) == [
        AppendEntriesReply(1, True, 2)]
    assert net.cores["n2"].log.last_index == 2 and net.cores["n2"].commit_index == 2


def test_append_entries_carry_no_entry_a_leader_would_never_write() -> None:
    """A membership change entry with a client session, or a command the state machine refuses, drops the
    whole AppendEntries with the reason, before any entry is appended.

    Reference: thesis section 4.1 (the leader writes change entries); Raft paper section 5.3
    """
    net = _net()
    ok = Entry(1, ClientRequest("c1", 1, put("k", "v")))
    change = Entry(1, ClientRequest("admin", 1, membership_command("add_learner", "n4")))
    _assert_dropped(net, "n2", "n1", AppendEntries(1, 1, 1, (ok, change), 1),
                    "a membership change entry carries a client session (a leader writes them with none)")
    refused = Entry(1, ClientRequest("c1", 2, Command("frobnicate", "k")))
    term = net.cores["n2"].term
    error, sent = _deliver(net, "n2", "n1", AppendEntries(1, 1, 1, (ok, refused), 1))
    assert re.fullmatch(r"raft n2: impossible AppendEntries from n1: a command that is refused: "
                        r".*kv has no command or query 'frobnicate'.*", error), error
    assert sent == [] and net.cores["n2"].term == term and net.cores["n2"].log.last_index == 1


# ------------------------------------------------------------------ AppendEntriesReply
def test_append_entries_reply_numbers_are_range_checked_each_on_its_own() -> None:
    """AppendEntriesReply: index and conflict_index below MAX_INDEX, conflict_term in 0..term, round >= 0.

    Reference: Raft paper section 5.3; thesis section 5.3 (the conflict hint of a rejection)
    """
    net = _net()
    for message in (AppendEntriesReply(1, False, MAX_INDEX, 1, 1),      # only the index is out
                    AppendEntriesReply(1, False, -1, 1, 1),
                    AppendEntriesReply(1, False, 1, 2, 1),              # conflict_term above the term
                    AppendEntriesReply(1, False, 1, -1, 1),
                    AppendEntriesReply(1, False, 1, 1, MAX_INDEX),      # only the conflict index is out
                    AppendEntriesReply(1, False, 1, 1, -1),
                    AppendEntriesReply(1, True, 1, 0, 0, round=-1)):
        _assert_dropped(net, "n2", "n3", message, RANGE)


def test_only_the_leader_of_the_term_judges_a_reply_by_what_it_sent() -> None:
    """A follower takes (and ignores) an in-range reply far beyond its log; the leader of that term drops
    a reply beyond what it sent, and takes one up to its last index.

    Reference: Raft paper section 5.3 (only a leader sends AppendEntries, so only it knows what was sent)
    """
    net = _net()
    # a follower of term 1: every number at its limits, including a conflict term equal to the term (the
    # check allows it, though a correct follower's conflicting entry is always of an earlier term)
    for edge in (AppendEntriesReply(1, False, MAX_INDEX - 1, 1, MAX_INDEX - 1), AppendEntriesReply(1, False, 0)):
        assert _assert_taken(net, "n2", "n3", edge) == []
    assert net.cores["n2"].role == "follower" and net.cores["n2"].term == 1
    leader = net.cores["n1"]
    last = leader.log.last_index
    beyond = AppendEntriesReply(1, True, last + 1)
    _assert_dropped(net, "n1", "n2", beyond,
                    f"it answers index {last + 1} or round 0, beyond what this leader sent")
    _assert_taken(net, "n1", "n2", AppendEntriesReply(1, True, last))
    assert leader.progress["n2"].match == last


# ------------------------------------------------------------------ InstallSnapshot
def test_install_snapshot_index_is_at_least_one_and_below_max_index() -> None:
    """InstallSnapshot: snapshot index in 1..MAX_INDEX-1, its term in 1..term, offset and round >= 0.

    Reference: Raft paper section 7 (InstallSnapshot arguments); thesis section 5.3 (chunks)
    """
    net = _net()
    for message in (InstallSnapshot(1, SnapshotRecord(MAX_INDEX, 1, "")),       # only the index is out
                    InstallSnapshot(1, SnapshotRecord(0, 1, "")),
                    InstallSnapshot(1, SnapshotRecord(1, 0, "")),
                    InstallSnapshot(1, SnapshotRecord(1, 2, "")),               # above the leader's term
                    InstallSnapshot(1, SnapshotRecord(1, 1, ""), offset=-1),
                    InstallSnapshot(1, SnapshotRecord(1, 1, ""), round=-1)):
        _assert_dropped(net, "n2", "n1", message, SNAPSHOT_RANGE)
    # index 1 (already committed here) is taken and answered with our commit index
    sent = _assert_taken(net, "n2", "n1", InstallSnapshot(1, SnapshotRecord(1, 1, "")))
    assert sent == [AppendEntriesReply(1, True, 1)]
    # the first chunk of a snapshot ending at MAX_INDEX - 1 is taken and acknowledged
    sent = _assert_taken(net, "n2", "n1", InstallSnapshot(1, SnapshotRecord(MAX_INDEX - 1, 1, "ab"),
                                                          round=3, offset=0, done=False))
    assert sent == [InstallSnapshotReply(1, MAX_INDEX - 1, 2, 3)]


# ------------------------------------------------------------------ InstallSnapshotReply
def test_install_snapshot_reply_index_size_and_round_are_range_checked_each_on_its_own() -> None:
    """InstallSnapshotReply: index in 0..MAX_INDEX-1, received >= 0, round >= 0; zeros are taken.

    Reference: thesis section 5.3 (chunked snapshots)
    """
    net = _net()
    for message in (InstallSnapshotReply(1, MAX_INDEX, 0),                      # only the index is out
                    InstallSnapshotReply(1, -1, 0),
                    InstallSnapshotReply(1, 0, -1),                             # only the size is out
                    InstallSnapshotReply(1, 0, 0, round=-1)):                   # only the round is out
        _assert_dropped(net, "n2", "n3", message, SNAPSHOT_REPLY_RANGE)
    for message in (InstallSnapshotReply(1, 0, 0), InstallSnapshotReply(1, MAX_INDEX - 1, 5, round=7)):
        assert _assert_taken(net, "n2", "n3", message) == []  # a follower ignores it
    # the leader, which has sent no snapshot, drops a reply of its own term to one
    _assert_dropped(net, "n1", "n2", InstallSnapshotReply(1, 1, 0),
                    "it answers a snapshot or round this leader never sent")
    assert net.cores["n1"].role == "leader"


def test_the_leader_takes_a_snapshot_reply_up_to_what_it_holds_and_drops_one_beyond() -> None:
    """The leader of the term drops an InstallSnapshotReply claiming more of its current snapshot than
    there is, or a round it has not started; up to its snapshot's size, or of an older snapshot, it is taken.

    Reference: thesis section 5.3 (chunked snapshots); thesis section 6.4 (rounds confirm leadership)
    """
    net = Network(3, {"snapshot_every": 2}, seed=11)
    net.elect("n1")
    for seq in (1, 2, 3):
        net.request("n1", put("k", str(seq)), client="c1", seq=seq)
        net.settle()
    net.tick("n1", 3)  # a heartbeat round
    net.settle()
    leader = net.cores["n1"]
    ours, now = leader.snapshot, leader.round
    assert ours is not None and ours.index == 4 and now >= 1
    size, never = len(ours.data), "it answers a snapshot or round this leader never sent"
    for message in (InstallSnapshotReply(1, ours.index, size + 1, round=now),
                    InstallSnapshotReply(1, ours.index, 0, round=now + 1)):
        _assert_dropped(net, "n1", "n2", message, never)
    for message in (InstallSnapshotReply(1, ours.index, size, round=now),         # all of it, this round
                    InstallSnapshotReply(1, ours.index - 1, size + 1, round=now)):  # an older snapshot
        _assert_taken(net, "n1", "n2", message)
    assert leader.role == "leader" and leader.term == 1
