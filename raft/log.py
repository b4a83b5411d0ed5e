"""The Raft log: a compacted prefix (snapshot index and term) followed by in-memory entries.

Every change returns the durable :class:`smr.replica.Write` records that make
it persistent, in an order that keeps the durable log consistent whatever
prefix of them survives a crash: truncations delete from the highest index
down, appends write from the lowest index up, and a reset deletes the old
entries before its snapshot is written.  ``generation`` counts the changes
that remove or rewrite entries (truncations and resets), so checkers can
re-verify a log only when it was rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable

from smr.replica import Write

from .messages import Entry, log_key


class RaftLog:
    """Entries ``snapshot_index + 1 .. last_index`` in memory; everything up to ``snapshot_index`` compacted."""

    def __init__(self, snapshot_index: int = 0, snapshot_term: int = 0) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.entries: list[Entry] = []
        self.generation = 0

    # ------------------------------------------------------------ queries
    @property
    def last_index(self) -> int:
        """The index of the last entry (the snapshot index if there is none)."""
        return self.snapshot_index + len(self.entries)

    @property
    def last_term(self) -> int:
        """The term of the last entry (the snapshot term if there is none)."""
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term_at(self, index: int) -> int | None:
        """The term of entry ``index``; None if compacted away or beyond the end (0 for index 0)."""
        if index == self.snapshot_index:
            return self.snapshot_term
        offset = index - self.snapshot_index - 1
        if 0 <= offset < len(self.entries):
            return self.entries[offset].term
        return None

    def entry(self, index: int) -> Entry:
        """The entry at ``index`` (which must be present)."""
        offset = index - self.snapshot_index - 1
        if offset < 0 or index > self.last_index:
            raise IndexError(f"log entry {index} is not present "
                             f"(present: {self.snapshot_index + 1}..{self.last_index})")
        return self.entries[offset]

    def slice(self, lo: int, hi: int) -> tuple[Entry, ...]:
        """Entries ``lo..hi`` inclusive (all present)."""
        base = self.snapshot_index + 1
        return tuple(self.entries[lo - base:hi - base + 1])

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """True if a log ending at (last_index, last_term) is at least as up-to-date as this one (5.4.1)."""
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def first_index_of_term(self, index: int) -> int:
        """The first index of the run of entries that has the same term as entry ``index``."""
        term = self.term_at(index)
        while index - 1 > self.snapshot_index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term(self, term: int) -> int | None:
        """The last index holding an entry of ``term``, if any is present."""
        for offset in range(len(self.entries) - 1, -1, -1):
            t = self.entries[offset].term
            if t == term:
                return self.snapshot_index + offset + 1
            if t < term:
                break
        return None

    # ------------------------------------------------------------ changes
    def append(self, entries: Iterable[Entry]) -> list[Write]:
        """Append ``entries`` at the end; return their writes."""
        writes = []
        for entry in entries:
            self.entries.append(entry)
            writes.append(Write(log_key(self.last_index), entry))
        return writes

    def truncate_from(self, index: int) -> list[Write]:
        """Drop entries ``index..last``; return their deletes, highest index first."""
        if index <= self.snapshot_index:
            raise ValueError(f"cannot truncate compacted entry {index} (snapshot at {self.snapshot_index})")
        if index > self.last_index:
            return []
        writes = [Write(log_key(i), None) for i in range(self.last_index, index - 1, -1)]
        del self.entries[index - self.snapshot_index - 1:]
        self.generation += 1
        return writes

    def compact(self, index: int) -> list[Write]:
        """Forget entries up to ``index`` (covered by a snapshot already written); return their deletes."""
        if index <= self.snapshot_index:
            return []
        term = self.term_at(index)
        if term is None:
            raise ValueError(f"cannot compact up to {index}: not in the log")
        writes = [Write(log_key(i), None) for i in range(self.snapshot_index + 1, index + 1)]
        del self.entries[:index - self.snapshot_index]
        self.snapshot_index, self.snapshot_term = index, term
        return writes

    def reset(self, snapshot_index: int, snapshot_term: int) -> list[Write]:
        """Discard the whole log for a snapshot ending at (index, term); return the deletes."""
        writes = [Write(log_key(i), None) for i in range(self.last_index, self.snapshot_index, -1)]
        self.entries = []
        self.snapshot_index, self.snapshot_term = snapshot_index, snapshot_term
        self.generation += 1
        return writes
