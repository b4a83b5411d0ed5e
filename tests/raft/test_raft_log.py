"""The Raft log and a leader's per-follower progress as plain data: queries, writes, state resets.

:class:`raft.log.RaftLog` returns the durable writes of every change in a
crash-safe order (truncations highest index first, a reset's deletes likewise);
:class:`raft.progress.Progress` resets its bookkeeping on each state change,
as etcd raft's ``tracker/progress_test.go`` checks for its own.
"""

from __future__ import annotations

import pytest

from smr.commands import put
from smr.replica import ClientRequest, Write

from raft.log import RaftLog
from raft.messages import Entry, log_key
from raft.progress import PROBE, REPLICATE, SNAPSHOT, Progress


def _log(snapshot_index: int, snapshot_term: int, terms: list[int]) -> RaftLog:
    """A log compacted up to (snapshot_index, snapshot_term), then entries of ``terms``."""
    log = RaftLog(snapshot_index, snapshot_term)
    log.append(Entry(t, ClientRequest("c1", i + 1, put("k", str(i)))) for i, t in enumerate(terms))
    return log


def _deletes(*indexes: int) -> list[Write]:
    return [Write(log_key(i), None) for i in indexes]


# ------------------------------------------------------------------ reading one entry
def test_an_entry_is_read_only_where_the_log_holds_one_and_the_error_names_what_it_holds() -> None:
    """``entry`` returns the entries after the snapshot; a compacted index or one past the end is an
    IndexError that says which indexes are present (never another entry read by a wrapped offset)."""
    log = _log(5, 2, [2, 3, 3])             # entries 6..8
    assert [log.entry(i).term for i in (6, 7, 8)] == [2, 3, 3]
    for index in (5, 1, 9):
        with pytest.raises(IndexError, match=rf"^log entry {index} is not present \(present: 6\.\.8\)$"):
            log.entry(index)


# ------------------------------------------------------------------ queries (fast back-off, section 5.3)
def test_first_index_of_term_stops_after_the_snapshot() -> None:
    """The run of a term found for a conflict hint starts after the snapshot, even when the snapshot's
    own term is that term (a compacted index is never named).

    Reference: paper section 5.3 (the conflicting term's first index)
    """
    log = _log(5, 2, [2, 2, 3, 3])          # entries 6..9
    assert log.first_index_of_term(7) == 6
    assert log.first_index_of_term(9) == 8
    assert log.first_index_of_term(6) == 6
    assert _log(0, 0, [1, 1, 2]).first_index_of_term(2) == 1


def test_last_index_of_term_finds_the_last_entry_or_none() -> None:
    """The last index of a term is found also at the very end of the log; absent terms give None, and so
    does a log whose entries are all compacted.

    Reference: paper section 5.3 (the leader skips to the end of the conflicting term)
    """
    log = _log(5, 2, [2, 3, 3, 5])          # entries 6..9
    assert log.last_index_of_term(5) == 9
    assert log.last_index_of_term(3) == 8
    assert log.last_index_of_term(2) == 6
    assert log.last_index_of_term(4) is None
    assert log.last_index_of_term(1) is None
    assert RaftLog(5, 2).last_index_of_term(2) is None


# ------------------------------------------------------------------ changes and their writes
def test_truncate_deletes_from_the_end_down_and_refuses_compacted_entries() -> None:
    """A truncation deletes entries highest index first and counts one rewrite; truncating at or below
    the snapshot is refused with a message naming both.

    Reference: paper section 5.3 (delete the conflicting entry and all that follow it)
    """
    log = _log(2, 1, [1, 1, 2, 2])          # entries 3..6
    assert log.truncate_from(7) == [] and log.generation == 0
    assert log.truncate_from(5) == _deletes(6, 5)
    assert (log.last_index, log.generation) == (4, 1)
    assert log.truncate_from(4) == _deletes(4)
    assert (log.last_index, log.generation) == (3, 2)
    with pytest.raises(ValueError, match=r"^cannot truncate compacted entry 2 \(snapshot at 2\)$"):
        log.truncate_from(2)
    assert (log.last_index, log.generation) == (3, 2)


def test_compact_deletes_exactly_the_entries_it_covers() -> None:
    """Compaction deletes the entries after the old snapshot up to the new one, lowest first, and no key
    below them; compacting to an index not in the log is refused with a message naming it.

    Reference: paper section 7
    """
    log = _log(2, 1, [1, 2, 2, 3])          # entries 3..6
    assert log.compact(2) == [] and log.compact(1) == []
    assert log.compact(4) == _deletes(3, 4)
    assert (log.snapshot_index, log.snapshot_term, log.last_index) == (4, 2, 6)
    with pytest.raises(ValueError, match=r"^cannot compact up to 7: not in the log$"):
        log.compact(7)
    assert _log(0, 0, [1, 1]).compact(1) == _deletes(1)


def test_reset_deletes_every_entry_highest_first_and_counts_a_rewrite() -> None:
    """A reset for an installed snapshot deletes every entry it held (highest index first), none of the
    compacted ones, and counts as one rewrite of the log.

    Reference: paper section 7 (discard the entire log)
    """
    log = _log(2, 1, [1, 1, 2, 2])          # entries 3..6
    assert log.truncate_from(6) == _deletes(6)
    assert log.reset(9, 3) == _deletes(5, 4, 3)
    assert (log.snapshot_index, log.snapshot_term, log.last_index, log.entries) == (9, 3, 9, [])
    assert log.generation == 2
    assert log.reset(12, 4) == [] and log.generation == 3


# ------------------------------------------------------------------ progress states
def test_progress_state_changes_reset_their_bookkeeping() -> None:
    """Each state change sets next and clears what the old state tracked: probe never goes back below
    match + 1, replicate pipelines from match + 1, snapshot starts a fresh transfer at offset 0.

    Reference: etcd raft tracker (TestProgressBecomeProbe/Replicate/Snapshot); paper section 5.3
    """
    pr = Progress(next=12, match=9, state=REPLICATE, probe_sent=True, pending_snapshot=0)
    pr.inflight.extend([(10, 1), (11, 1)])
    pr.become_snapshot(20)
    assert (pr.state, pr.pending_snapshot, pr.snapshot_ticks, pr.snapshot_offset, list(pr.inflight)) == \
        (SNAPSHOT, 20, 0, 0, [])
    pr.snapshot_ticks, pr.snapshot_offset = 7, 512
    pr.become_snapshot(20)
    assert (pr.snapshot_ticks, pr.snapshot_offset) == (0, 0)
    pr.become_probe(3)  # below what the follower surely holds
    assert (pr.state, pr.next, pr.probe_sent, pr.pending_snapshot, list(pr.inflight)) == (PROBE, 10, False, 0, [])
    pr.become_probe(15)
    assert pr.next == 15
    pr.probe_sent = True
    pr.match = 14
    pr.become_snapshot(20)
    pr.become_replicate()
    assert (pr.state, pr.next, pr.probe_sent, pr.pending_snapshot, list(pr.inflight)) == \
        (REPLICATE, 15, False, 0, [])
