"""The simulated disk's faults: damage found at a node's next start, and a disk that refuses writes.

The TCP runtime checks what it reads back (smr.net): a CRC on every stored
record, the count of synced batches kept beside the database, and the data
directory's incarnation that peers remember.  So a flipped bit, a write-ahead
log cut by synced transactions, or an emptied directory is *found* when the
node starts, and the node stays out instead of voting and accepting with
state it has lost; ``smr serve --rejoin-empty`` then brings it back empty
through a membership change.  The simulator models exactly that outcome:

* ``wipe``: the node crashes and its disk comes back empty;
* ``flip``: the node crashes and one durable record is corrupted;
* ``lose_tail``: the node crashes and its last synced batches are undone;
* ``disk_full``: every write the node tries fails until a given time (it sits
  out: a crash and a restart from its disk once space returns).

With ``DiskConfig.checks`` off the damaged state is loaded as it is -- the
broken variant that shows the checks are what keep acknowledged writes.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import MutableMapping, Sequence
from typing import Any

import attrs

from ..driver import apply_writes
from ..replica import Write

#: How many synced batches a node keeps undo records for (a ``lose_tail`` undoes at most these).
JOURNAL_BATCHES = 64
#: A key absent before a write (its undo deletes it again).
_ABSENT = object()

Undo = list[tuple[str, Any]]


@attrs.define
class DiskState:
    """One node's disk beyond its durable map: faults in force, damage not yet found, recent batches."""

    #: Undo records of the last synced batches, newest last (None: no ``lose_tail`` can happen in the run).
    journal: deque[Undo] | None = None
    #: What a check at the node's next start finds (None: the disk is sound).
    damage: str | None = None
    #: Every write the node tries fails until then (ms).
    full_until: float = 0.0

    def sync(self, durable: MutableMapping[str, Any], writes: Sequence[Write]) -> None:
        """Make ``writes`` durable, in order, keeping what a ``lose_tail`` needs to undo them."""
        if self.journal is not None:
            self.journal.append([(write.key, durable.get(write.key, _ABSENT)) for write in writes])
        apply_writes(durable, writes)

    def wipe(self, durable: MutableMapping[str, Any]) -> str:
        """Empty the disk; what the start-up check will say."""
        keys = len(durable)
        durable.clear()
        if self.journal is not None:
            self.journal.clear()
        return self._damaged(f"wiped ({keys} durable keys gone; a new incarnation its peers do not know)")

    def flip(self, durable: MutableMapping[str, Any], rng: random.Random) -> str:
        """Corrupt one durable record at random; what the start-up check will say."""
        if not durable:
            return "flip: nothing durable to corrupt"
        key = rng.choice(sorted(durable))
        durable[key], how = _corrupt(durable[key], rng)
        if durable[key] is _ABSENT:
            del durable[key]
        return self._damaged(f"record {key!r} fails its checksum ({how})")

    def lose_tail(self, durable: MutableMapping[str, Any], batches: int) -> str:
        """Undo the last ``batches`` synced batches; what the start-up check will say."""
        journal = self.journal
        if not journal:
            return "lose_tail: no synced batch recorded to lose"
        lost = 0
        while journal and lost < batches:
            for key, old in reversed(journal.pop()):
                if old is _ABSENT:
                    durable.pop(key, None)
                else:
                    durable[key] = old
            lost += 1
        return self._damaged(f"holds {lost} fewer synced batches than were acknowledged (a cut write-ahead log)")

    def _damaged(self, what: str) -> str:
        self.damage = what if self.damage is None else f"{self.damage}; {what}"
        return what


def _corrupt(value: Any, rng: random.Random) -> tuple[Any, str]:
    """``value`` with one bit flipped where that is plain; any other record reads back as missing."""
    bit = rng.randrange(8)
    if isinstance(value, bool):
        return (not value), "a flag inverted"
    if isinstance(value, int):
        return value ^ (1 << bit), f"bit {bit} of a number flipped"
    if isinstance(value, str) and value:
        i = rng.randrange(len(value))
        return value[:i] + chr(ord(value[i]) ^ (1 << bit)) + value[i + 1:], f"bit {bit} of character {i} flipped"
    return _ABSENT, "it no longer decodes: read as missing"
