"""What one message may carry: the size of a request, byte-capped batches, snapshot chunks, the largest epoch.

A replication message must fit in one frame of the runtime that carries it,
so the cores cap every batch by bytes as well as by count
(:func:`take_within`), always sending at least one entry (a request that
cannot fit in a frame is refused at the node, before it reaches a log), and
send a snapshot in chunks of at most ``snapshot_chunk_bytes``
(:func:`chunk_of`) that a follower reassembles (:class:`ChunkBuffer`).  The
sizes are upper estimates computed from the values themselves -- the cores
never encode -- so a batch is never larger on the wire than its estimate says.

Terms and ballot rounds are 64-bit on the wire; a peer that names one above
:data:`MAX_EPOCH` is refused, so a node never adopts an epoch whose successor
cannot be encoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import attrs

from .errors import LocalProtocolError
from .sessions import int_at_least

if TYPE_CHECKING:
    from .replica import ClientRequest

T = TypeVar("T")

#: The largest term or ballot round a node accepts from a peer (leaves room to count far beyond it).
MAX_EPOCH = 2 ** 62
#: Log indexes and slots a node accepts from a peer stay below this.
MAX_INDEX = 2 ** 62
#: How far ahead of its own a node lets a peer move its term or round at once.  Elections move
#: epochs one at a time, so a real cluster never comes near; a forged epoch far ahead would otherwise
#: leave the cluster a few steps from MAX_EPOCH, where no election can be held any more.
MAX_EPOCH_JUMP = 2 ** 32
#: Bytes a request costs on the wire besides its strings and values (ids, seq, stamps, field tags).
REQUEST_OVERHEAD = 64
#: Bytes a value costs besides its own content (a type tag and a length).
VALUE_OVERHEAD = 9


def _ratio(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if type(value) not in (int, float) or not 0 <= value <= 1000:
        raise LocalProtocolError(f"option {attribute.name} must be a number in 0..1000, got {value!r}")


@attrs.frozen
class MessageBounds:
    """How large a core lets its replication messages grow (every log backend reads these options).

    Args:
        max_batch_bytes: the most request bytes in one replication message
            (AppendEntries, Accept, a catch-up); one larger request still goes
            alone.  A runtime sets it below its frame limit.
        snapshot_chunk_bytes: the most snapshot text in one message.
        max_snapshot_bytes: the largest snapshot a follower reassembles from a peer.
        snapshot_log_ratio: take a snapshot (when ``snapshot_every`` entries
            say so) only once the requests applied since the last one hold at
            least this many times its size, so the time spent on snapshots
            stays proportional to what is written, however large the state
            (LogCabin's snapshot ratio).  0: count entries only.
    """

    max_batch_bytes: int = attrs.field(default=1 << 20, validator=int_at_least(256, "option"))
    snapshot_chunk_bytes: int = attrs.field(default=1 << 20, validator=int_at_least(256, "option"))
    max_snapshot_bytes: int = attrs.field(default=1 << 30, validator=int_at_least(256, "option"))
    snapshot_log_ratio: float = attrs.field(default=0.0, validator=_ratio)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "MessageBounds":
        """Pick this class's settings out of a backend's options mapping."""
        return cls(**{a.name: options[a.name] for a in attrs.fields(cls) if a.name in options})


#: The option names :class:`MessageBounds` reads.
BOUND_OPTIONS = frozenset(a.name for a in attrs.fields(MessageBounds))


def value_bytes(value: Any) -> int:
    """An upper estimate of ``value``'s encoded size (a canonical value: see :mod:`smr.values`)."""
    kind = type(value)
    if kind is str:
        return VALUE_OVERHEAD + (len(value) if value.isascii() else 4 * len(value))
    if kind is bytes:
        return VALUE_OVERHEAD + len(value)
    if kind is list:
        return VALUE_OVERHEAD + sum(value_bytes(v) for v in value)
    if kind is dict:
        return VALUE_OVERHEAD + sum(value_bytes(k) + value_bytes(v) for k, v in value.items())
    return VALUE_OVERHEAD  # None, bool, int, float


def request_bytes(request: ClientRequest) -> int:
    """An upper estimate of ``request``'s encoded size: its id, op, key and arguments plus a fixed overhead."""
    command = request.command
    size = REQUEST_OVERHEAD + len(request.client_id) + len(command.op) + len(command.key)
    for arg in command.args:
        size += value_bytes(arg)
    return size


def take_within(items: Sequence[T], budget: int, key: Callable[[T], ClientRequest] | None = None) -> int:
    """How many of ``items`` (from the first) fit in ``budget`` bytes -- always at least one.

    ``key`` picks the request out of an item (a log entry, a slot's value).
    """
    total = 0
    for count, item in enumerate(items):
        total += request_bytes(key(item) if key is not None else item)  # type: ignore[arg-type]
        if total > budget and count:
            return count
    return len(items)


def chunk_of(data: str, offset: int, size: int) -> tuple[str, bool]:
    """The chunk of ``data`` that starts at ``offset`` (at most ``size`` characters), and whether it is the last."""
    part = data[offset:offset + size]
    return part, offset + len(part) >= len(data)


class ChunkBuffer:
    """A follower's snapshot in transit: the chunks of one (index, epoch) received so far, in order.

    :meth:`add` takes a chunk only where the previous one ended, so a lost,
    repeated or reordered chunk is not taken and the sender resumes from
    :attr:`received`; a transfer beyond ``limit`` characters is abandoned.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.key: tuple[int, int] | None = None
        self.parts: list[str] = []
        self.received = 0

    def add(self, key: tuple[int, int], offset: int, part: str) -> bool:
        """Take ``part`` of snapshot ``key`` if it starts at ``offset == received``; False if not taken."""
        if offset == 0:  # a transfer (re)starts
            self.key, self.parts, self.received = key, [], 0
        if key != self.key or offset != self.received:
            return False
        if self.received + len(part) > self.limit:
            self.clear()
            return False
        self.parts.append(part)
        self.received += len(part)
        return True

    def received_of(self, key: tuple[int, int]) -> int:
        """How much of snapshot ``key`` this buffer holds (0 for another snapshot)."""
        return self.received if key == self.key else 0

    def take(self) -> str:
        """The whole snapshot text received so far; the buffer is empty afterwards."""
        data = "".join(self.parts)
        self.clear()
        return data

    def clear(self) -> None:
        """Forget the transfer in progress."""
        self.key, self.parts, self.received = None, [], 0
