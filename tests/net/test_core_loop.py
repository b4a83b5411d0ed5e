"""The TCP runtime's core loop (smr.net._loop) in pieces: batch order, ticks dropped after a long wait,
the frame-size bound on outgoing messages, and how sends are counted.

The ordering tests (test_server_ordering.py) drive whole servers; these pin the small parts they do not
observe, found by ``smr mutation server``: each test builds a bare :class:`CoreLoop` with only the
attributes the method under test reads.
"""

from __future__ import annotations

import types
from collections import Counter
from typing import Any

import trio

from smr import wire
from smr.commands import put
from smr.net._frames import TAG_BYTES
from smr.net._loop import CoreLoop, _drop_ticks, _rank
from smr.replica import TICK, ClientRequest, Receive, Send
from synod.ballot import Ballot

from multipaxos.messages import Heartbeat


def _request(seq: int) -> ClientRequest:
    return ClientRequest("c1", seq, put("k", str(seq)))


def _message(round_: int) -> Heartbeat:
    return Heartbeat(Ballot(1, "n1"), 0, round_)


def test_a_batch_takes_peer_messages_first_then_ticks_then_client_requests_each_in_arrival_order() -> None:
    """Acknowledgements are stepped before new entries are, so their replies need not wait for the
    new entries' sync; the sort is stable, so each source's own order is kept."""
    first, second = Receive("n2", _message(1)), Receive("n3", _message(2))
    events: list[Any] = [_request(1), TICK, first, _request(2), second, TICK]
    assert [_rank(e) for e in events] == [2, 1, 0, 2, 0, 1]
    assert sorted(events, key=_rank) == [first, second, TICK, TICK, _request(1), _request(2)]


def test_only_the_first_extra_ticks_are_dropped_and_everything_else_is_kept_in_order() -> None:
    """Ticks that queued during a long disk wait measure that wait: the extra ones go, the rest stay."""
    a, b = Receive("n2", _message(1)), _request(1)
    events: list[Any] = [TICK, a, TICK, b, TICK]
    assert _drop_ticks(events, 0) == events
    assert _drop_ticks(events, 1) == [a, TICK, b, TICK]
    assert _drop_ticks(events, 2) == [a, b, TICK]
    assert _drop_ticks(events, 3) == [a, b]
    assert _drop_ticks([a, b], 2) == [a, b]


def _loop(max_frame_bytes: int) -> CoreLoop:
    loop = CoreLoop()
    loop.id = "n1"
    loop.config = types.SimpleNamespace(max_frame_bytes=max_frame_bytes)  # type: ignore[assignment]
    loop.counters = Counter()
    loop._peer_out = {}
    return loop


def test_a_message_is_encoded_if_it_fits_a_frame_with_its_tag_and_dropped_and_counted_if_not() -> None:
    """The frame limit counts the body and its authentication tag: a body of exactly the limit less the
    tag goes out, one byte more is dropped (counted as messages_too_large) and never sent."""
    message = _message(7)
    size = len(wire.encode(message))
    assert _loop(size + TAG_BYTES)._encode(message) == wire.encode(message)
    tight = _loop(size + TAG_BYTES - 1)
    assert tight._encode(message) is None and tight.counters == Counter({"messages_too_large": 1})


def test_a_broadcast_is_encoded_once_and_each_send_counted_as_sent_unroutable_or_dropped() -> None:
    """One message object sent to several peers is encoded once; a peer with no address is counted
    unroutable, a peer whose queue is full dropped, and the others sent."""
    loop = _loop(1 << 20)
    full_send, _full_recv = trio.open_memory_channel[bytes](0)
    open_send, open_recv = trio.open_memory_channel[bytes](10)
    loop._peer_out = {"n2": open_send, "n3": full_send}
    loop._open_peer = lambda peer: None  # type: ignore[method-assign]  # (no address for n4)
    encoded: list[Any] = []
    real = loop._encode
    loop._encode = lambda m: encoded.append(m) or real(m)  # type: ignore[method-assign]
    message, other = _message(1), _message(2)
    loop._send_messages((Send("n2", message), Send("n3", message), Send("n4", message), Send("n2", other)))
    assert encoded == [message, other]
    assert loop.counters == Counter({"messages_sent": 2, "messages_dropped": 1, "messages_unroutable": 1})
    assert [open_recv.receive_nowait(), open_recv.receive_nowait()] == [wire.encode(message), wire.encode(other)]
