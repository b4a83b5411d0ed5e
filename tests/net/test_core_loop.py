"""The TCP runtime's core loop (smr.net._loop) in pieces: batch order, ticks dropped after a long wait,
the frame-size bound on outgoing messages, and how sends are counted.

The ordering tests (test_server_ordering.py) drive whole servers; these pin the small parts they do not
observe, found by ``smr mutation server``: each test builds a bare :class:`CoreLoop` with only the
attributes the method under test reads.
"""

from __future__ import annotations

import logging
import sqlite3
import types
from collections import Counter
from typing import Any

import pytest
import trio
import trio.testing

from smr import wire
from smr.commands import put
from smr.net._frames import TAG_BYTES
from smr.net import _loop as _loop_module
from smr.errors import LocalProtocolError
from smr.net._loop import (MAX_BATCH_EVENTS, MAX_TICK_LAG, SLOW_STEP_LOG_EVERY_S, SLOW_STEP_S, YIELD_EVERY, CoreLoop,
                            DiskFault, _drop_ticks, _rank)
from smr.net._messages import ReplyBatch
from smr.replica import TICK, ClientRequest, Ready, ReplicaStatus, Receive, Reply, ReplyStatus, Role, Send, Write
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


def _bare(**config: Any) -> CoreLoop:
    """A bare loop of node n1 with only the settings ``config`` names: no counts, no peers, nothing logged yet."""
    loop = CoreLoop()
    loop.id = "n1"
    loop.config = types.SimpleNamespace(**config)  # type: ignore[assignment]
    loop.counters = Counter()
    loop._peer_out = {}
    loop._slow_logged_at = -SLOW_STEP_LOG_EVERY_S
    return loop


def test_a_message_is_encoded_if_it_fits_a_frame_with_its_tag_and_dropped_and_counted_if_not(caplog: Any) -> None:
    """The frame limit counts the body and its authentication tag: a body of exactly the limit less the
    tag goes out, one byte more is dropped (counted as messages_too_large, logged saying what to raise)
    and never sent."""
    message = _message(7)
    size = len(wire.encode(message))
    assert _bare(max_frame_bytes=size + TAG_BYTES)._encode(message) == wire.encode(message)
    tight = _bare(max_frame_bytes=size + TAG_BYTES - 1)
    with caplog.at_level(logging.ERROR, logger="smr.net"):
        assert tight._encode(message) is None and tight._encode(message) is None
    assert tight.counters == Counter({"messages_too_large": 2})
    assert [r.getMessage() for r in caplog.records if r.name == "smr.net"] == [
        f"n1: dropped a {size}-byte Heartbeat: max_frame_bytes is {size + TAG_BYTES - 1}; raise it in the "
        f"cluster file"] * 2


def test_a_send_opens_a_peer_not_yet_connected_and_one_dropped_message_stops_nothing_after_it() -> None:
    """A peer with no sender yet gets one opened for it (and the message goes); a message too large for
    a frame, or to an unroutable peer, is skipped and the sends after it still go."""
    loop = _bare(max_frame_bytes=len(wire.encode(_message(1))) + TAG_BYTES)
    opened_send, opened_recv = trio.open_memory_channel[bytes](10)
    loop._open_peer = lambda peer: opened_send if peer == "n5" else None  # type: ignore[method-assign]
    huge = Heartbeat(Ballot(1, "n1" * 50), 0, 1)
    loop._send_messages((Send("n5", huge), Send("n4", _message(1)), Send("n5", _message(1)), Send("n5", _message(2))))
    assert loop.counters == Counter({"messages_too_large": 1, "messages_unroutable": 1, "messages_sent": 2})
    assert [opened_recv.receive_nowait(), opened_recv.receive_nowait()] == [wire.encode(_message(1)),
                                                                           wire.encode(_message(2))]


def test_a_broadcast_is_encoded_once_and_each_send_counted_as_sent_unroutable_or_dropped() -> None:
    """One message object sent to several peers is encoded once; a peer with no address is counted
    unroutable, a peer whose queue is full dropped, and the others sent."""
    loop = _bare(max_frame_bytes=1 << 20)
    full_send, _full_recv = trio.open_memory_channel[bytes](0)
    open_send, open_recv = trio.open_memory_channel[bytes](10)
    loop._peer_out = {"n2": open_send, "n3": full_send}
    loop._open_peer = lambda peer: None  # type: ignore[method-assign]  # (no address for n4)
    encoded: list[Any] = []
    real = loop._encode
    loop._encode = lambda m: encoded.append(m) or real(m)  # type: ignore[method-assign]
    message, other = _message(1), _message(2)
    loop._send_messages((Send("n2", message), Send("n3", message), Send("n4", message), Send("n2", other),
                         Send("n3", other), Send("n4", other)))
    assert encoded == [message, other]
    assert loop.counters == Counter({"messages_sent": 2, "messages_dropped": 2, "messages_unroutable": 2})
    assert [open_recv.receive_nowait(), open_recv.receive_nowait()] == [wire.encode(message), wire.encode(other)]


# ------------------------------------------------------------ stalls and slow steps: counted always, logged rarely
class _Clock:
    """A stand-in for ``time.monotonic`` and ``time.perf_counter``: returns the times it is given, in order."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def _timed_loop(monkeypatch: Any, *times: float) -> CoreLoop:
    """A bare loop whose clock reads ``times`` in turn, that has logged nothing yet."""
    loop = _bare()
    clock = _Clock(*times)
    monkeypatch.setattr(_loop_module, "time", types.SimpleNamespace(monotonic=clock, perf_counter=clock))
    return loop


def _warnings(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "smr.net" and r.levelno == logging.WARNING]


def test_every_stall_is_counted_but_logged_at_most_once_per_interval(monkeypatch: Any, caplog: Any) -> None:
    """A late tick means the whole node was held: each is counted; the log names the lateness and the
    count so far, once, then again only once SLOW_STEP_LOG_EVERY_S has passed (exactly that is enough)."""
    loop = _timed_loop(monkeypatch, 100.0, 100.0 + SLOW_STEP_LOG_EVERY_S - 0.5, 100.0 + SLOW_STEP_LOG_EVERY_S,
                       100.5 + SLOW_STEP_LOG_EVERY_S)
    with caplog.at_level(logging.WARNING, logger="smr.net"):
        for late in (0.25, 0.3, 1.5, 0.2):
            loop._stalled(late)
    assert loop.counters == Counter({"stalls": 4})
    assert _warnings(caplog) == [
        "n1: the node was held for 250 ms (no tick, no message handled); peers may start an election "
        "(1 stalls so far)",
        "n1: the node was held for 1500 ms (no tick, no message handled); peers may start an election "
        "(3 stalls so far)"]


def test_slow_steps_name_the_input_and_share_the_log_interval_with_stalls(monkeypatch: Any, caplog: Any) -> None:
    """A slow step names what was stepped (a peer message by its class); it and a stall share one log
    interval, so a burst of either logs one line."""
    loop = _timed_loop(monkeypatch, 50.0, 51.0, 52.0, 50.0 + SLOW_STEP_LOG_EVERY_S)
    with caplog.at_level(logging.WARNING, logger="smr.net"):
        loop._slow_step(Receive("n2", _message(1)), 0.125)
        loop._stalled(0.5)
        loop._slow_step(TICK, 0.2)
        loop._slow_step(_request(1), 2.0)
    assert loop.counters == Counter({"slow_steps": 3, "stalls": 1})
    assert _warnings(caplog) == [
        "n1: one step (Heartbeat) held the node for 125 ms; peers may start an election (1 slow steps so far)",
        "n1: one step (ClientRequest) held the node for 2000 ms; peers may start an election "
        "(3 slow steps so far)"]


class _Driver:
    """A stand-in driver: returns ``ready`` from each step, with the status and flags it is given."""

    def __init__(self, ready: Ready, status: ReplicaStatus | None = None, became_leader: int | None = None,
                 rejected: bool = False) -> None:
        self.ready, self.last_status, self.became_leader, self.rejected = ready, status, became_leader, rejected

    def step(self, event: Any) -> Ready:
        return self.ready


def test_a_step_is_slow_only_beyond_the_threshold(monkeypatch: Any, caplog: Any) -> None:
    """Exactly SLOW_STEP_S is not slow; a hair more is counted and logged naming what was stepped; a
    short step late in the process's life is not slow (the step's own time counts, not the clock's)."""
    loop = _timed_loop(monkeypatch, 0.0, SLOW_STEP_S, 0.0, SLOW_STEP_S + 0.001, 30.0, 1000.0, 1000.01)
    loop.driver = _Driver(Ready())  # type: ignore[assignment]
    loop._step(TICK)
    assert loop.counters["slow_steps"] == 0
    with caplog.at_level(logging.WARNING, logger="smr.net"):
        loop._step(Receive("n2", _message(1)))
    assert loop.counters["slow_steps"] == 1
    assert _warnings(caplog) == ["n1: one step (Heartbeat) held the node for 101 ms; peers may start an "
                                 "election (1 slow steps so far)"]
    loop._step(TICK)
    assert loop.counters["slow_steps"] == 1


def test_the_loop_steps_only_once_the_core_is_built() -> None:
    """An event before the driver exists is our own bug, said plainly (an assertion, not a peer's fault)."""
    loop = CoreLoop()
    loop.driver = None
    with pytest.raises(AssertionError, match="^the core loop runs only once the core is built$"):
        loop._step(TICK)


def test_a_step_logs_a_campaign_once_per_epoch_and_leadership_and_sends_eager_messages_at_once(
        monkeypatch: Any, caplog: Any) -> None:
    """What one step tells: a campaign is logged once per epoch (not again while it goes on), a new
    leadership each time; a leader's eager replication is sent by the step itself (the batch's write
    comes later, in _commit_and_release); an input the core rejected yields nothing to commit."""
    loop = _timed_loop(monkeypatch, *[float(i) * 0.001 for i in range(10)])
    loop._campaigned = 0
    sent: list[tuple[Send, ...]] = []
    loop._send_messages = sent.append  # type: ignore[method-assign]
    eager = (Send("n2", _message(1)),)
    campaigning = ReplicaStatus("n1", Role.CANDIDATE, 4, None, 0)
    with caplog.at_level(logging.INFO, logger="smr.net"):
        loop.driver = _Driver(Ready(), campaigning)  # type: ignore[assignment]
        assert loop._step(TICK) == Ready()
        assert loop._step(TICK) == Ready()
        loop.driver = _Driver(Ready(eager=eager), ReplicaStatus("n1", Role.LEADER, 4, "n1", 0),  # type: ignore[assignment]
                              became_leader=4)
        assert loop._step(TICK) == Ready(eager=eager)
        loop.driver = _Driver(Ready(eager=eager), rejected=True)  # type: ignore[assignment]
        assert loop._step(Receive("n2", _message(2))) is None
    assert [r.getMessage() for r in caplog.records if r.name == "smr.net"] == [
        "n1: campaigning at epoch 4 (no leader heard for an election timeout)",
        "n1: became leader at epoch 4"]
    assert sent == [eager] and loop._campaigned == 4


# ------------------------------------------------------------ the ticker (on trio's mock clock)
def _ticking(monkeypatch: Any, capacity: int, run_for: float, held: dict[int, float] | None = None,
             tick_ms: float = 10.0) -> tuple[list[float], CoreLoop]:
    """Run a bare loop's ticker (``tick_ms`` ticks) for ``run_for`` virtual seconds, its queue holding
    ``capacity`` events; ``held`` maps a wake-up number to how long the process is held after it.
    Returns when each queued tick was sent, and the loop (its counters)."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    loop = _bare(tick_ms=tick_ms)
    sent_at: list[float] = []
    real_sleep_until = trio.sleep_until
    wakes = 0

    async def sleep_until(deadline: float) -> None:
        nonlocal wakes
        await real_sleep_until(deadline)
        wakes += 1
        clock.jump((held or {}).get(wakes, 0.0))  # the process held right after waking

    class Queue:
        def send_nowait(self, event: Any) -> None:
            if len(sent_at) >= capacity:
                raise trio.WouldBlock
            sent_at.append(round(trio.current_time(), 6))

    async def main() -> None:
        loop._events_send = Queue()  # type: ignore[assignment]
        with trio.move_on_after(run_for):
            await loop._ticker()

    monkeypatch.setattr(trio, "sleep_until", sleep_until)
    trio.run(main, clock=clock)
    return sent_at, loop


def test_the_ticker_ticks_once_per_period_and_counts_the_ticks_a_full_queue_refuses(monkeypatch: Any) -> None:
    """One tick per 10 ms, on the period; a tick the full queue refuses is counted, not waited for."""
    sent_at, loop = _ticking(monkeypatch, capacity=3, run_for=0.105)
    assert sent_at == [0.01, 0.02, 0.03]
    assert loop.counters == Counter({"ticks_dropped": 7})


def test_a_held_process_counts_a_stall_and_the_ticker_skips_ahead_instead_of_bursting(monkeypatch: Any) -> None:
    """Held 250 ms after its third wake-up, the ticker sends that tick late (a stall, counted), then
    restarts its period from there: no burst of the 25 ticks it missed.  Held only 40 ms (under MAX_TICK_LAG
    periods, and under SLOW_STEP_S), it catches up on the missed ticks at once and counts no stall."""
    sent_at, loop = _ticking(monkeypatch, capacity=100, run_for=0.305, held={3: 0.25})
    # the third tick goes when the hold ends, then one at once (the period restarts from now), then on it
    assert sent_at == [0.01, 0.02, 0.28, 0.28, 0.29, 0.3]
    assert loop.counters == Counter({"stalls": 1})
    sent_at, loop = _ticking(monkeypatch, capacity=100, run_for=0.105, held={3: 0.04})
    assert sent_at == [0.01, 0.02, 0.07, 0.07, 0.07, 0.07, 0.07, 0.08, 0.09, 0.1]
    assert loop.counters == Counter()


def test_a_stall_and_a_skip_ahead_start_just_beyond_their_bounds(monkeypatch: Any) -> None:
    """Late by exactly SLOW_STEP_S is no stall.  With 62.5 ms ticks (exact in binary), held six periods
    after its second wake-up, the ticker's next deadline is exactly MAX_TICK_LAG periods behind: not
    skipped, so the six missed ticks go at once (each more than SLOW_STEP_S late a stall); held seven,
    it skips ahead (one tick at once, one stall)."""
    _, loop = _ticking(monkeypatch, capacity=100, run_for=0.105, held={3: SLOW_STEP_S})
    assert loop.counters == Counter()
    sent_at, loop = _ticking(monkeypatch, capacity=100, run_for=0.6, held={2: 0.375}, tick_ms=62.5)
    assert sent_at == [0.0625] + [0.5] * 7 + [0.5625] and loop.counters == Counter({"stalls": 5})
    sent_at, loop = _ticking(monkeypatch, capacity=100, run_for=0.6, held={2: 0.4375}, tick_ms=62.5)
    assert sent_at == [0.0625, 0.5625, 0.5625] and loop.counters == Counter({"stalls": 1})


# ------------------------------------------------------------ replies: routed, counted, framed
def _reply(seq: int, size: int = 10) -> Reply:
    return Reply("c1", seq, ReplyStatus.OK, "v" * size, digest=7)


def test_a_reply_goes_to_every_connection_of_its_client_each_outcome_counted() -> None:
    """A reply is delivered in process when the node has a local client that takes it; otherwise to each
    connection of its client (one that is full or closed counts as dropped), or counted unroutable."""
    loop = _bare(max_frame_bytes=1 << 20)
    loop.local_replies = None
    open_a, recv_a = trio.open_memory_channel[Any](10)
    open_b, recv_b = trio.open_memory_channel[Any](10)
    full, _full_recv = trio.open_memory_channel[Any](0)
    closed, _ = trio.open_memory_channel[Any](10)
    closed.close()
    loop._clients = {"c1": [open_a, full, open_b, closed]}
    for seq in (1, 2):
        loop._send_reply(_reply(seq))
        loop._send_reply(Reply("nobody", seq, ReplyStatus.OK))
    assert loop.counters == Counter({"replies": 4, "replies_dropped": 4, "replies_unroutable": 2})
    assert [recv_a.receive_nowait(), recv_a.receive_nowait()] == [_reply(1), _reply(2)]
    assert recv_b.receive_nowait() == _reply(1)
    taken: list[tuple[str, Reply]] = []
    loop.local_replies = lambda node, reply: reply.client_id == "local" and not taken.append((node, reply))
    loop.counters.clear()
    loop._send_reply(Reply("local", 1, ReplyStatus.OK))
    loop._send_reply(Reply("local", 2, ReplyStatus.OK))
    loop._send_reply(_reply(3))  # not a local client's: to its connections as before
    assert loop.counters == Counter({"local_replies": 2, "replies": 2, "replies_dropped": 2})
    assert [r.seq for _, r in taken] == [1, 2] and {node for node, _ in taken} == {"n1"}


def test_replies_travel_in_one_batch_frame_when_they_fit_and_are_halved_until_they_do() -> None:
    """One reply goes as itself, several as one ReplyBatch while body and tag fit max_frame_bytes
    (exactly the limit fits); a batch too large is cut in halves, each framed the same way."""
    one, pair, four = [_reply(1)], [_reply(1), _reply(2)], [_reply(i) for i in range(1, 5)]
    assert _bare(max_frame_bytes=1 << 20)._reply_frames(one) == [wire.encode(_reply(1))]
    pair_size = len(wire.encode(ReplyBatch(tuple(pair))))
    assert _bare(max_frame_bytes=pair_size + TAG_BYTES)._reply_frames(pair) == [wire.encode(ReplyBatch(tuple(pair)))]
    split = _bare(max_frame_bytes=pair_size + TAG_BYTES - 1)._reply_frames(pair)
    assert split == [wire.encode(_reply(1)), wire.encode(_reply(2))]
    halves = _bare(max_frame_bytes=pair_size + TAG_BYTES)._reply_frames(four)
    assert halves == [wire.encode(ReplyBatch((_reply(1), _reply(2)))), wire.encode(ReplyBatch((_reply(3), _reply(4))))]


def test_a_reply_too_large_for_any_frame_becomes_an_error_for_its_caller(caplog: Any) -> None:
    """A single answer that cannot fit a frame is replaced by a BadResult error naming the limit (same
    client, seq and digest, so the caller takes it), counted as messages_too_large and logged."""
    big = _reply(5, size=400)
    size = len(wire.encode(big))
    loop = _bare(max_frame_bytes=300)
    with caplog.at_level(logging.ERROR, logger="smr.net"):
        first = loop._reply_frames([big])
        second = loop._reply_frames([_reply(1), big])  # a batch is halved down to the one that cannot go
    error = Reply("c1", 5, ReplyStatus.ERROR, {"error": "BadResult",
                                              "message": "the answer is larger than max_frame_bytes (300)"}, digest=7)
    assert first == [wire.encode(error)] and second == [wire.encode(_reply(1)), wire.encode(error)]
    assert loop.counters == Counter({"messages_too_large": 2})
    assert [r.getMessage() for r in caplog.records if r.name == "smr.net"] == [
        f"n1: a {size}-byte answer to c1 exceeds max_frame_bytes (300); the caller gets an error"] * 2


def test_enqueue_waits_only_on_a_full_queue_and_yields_once_per_yield_every_frames(monkeypatch: Any) -> None:
    """A reader queues frames without a scheduler round trip, yielding once every YIELD_EVERY of them;
    on a full queue it waits until there is room, and the event it queues is its own."""
    loop = CoreLoop()
    loop._queued_unyielded = 0
    yields = 0

    async def checkpoint() -> None:
        nonlocal yields
        yields += 1

    async def main() -> None:
        send, recv = trio.open_memory_channel[Any](2 * YIELD_EVERY + 1)
        loop._events_send = send
        monkeypatch.setattr(_loop_module.trio.lowlevel, "checkpoint", checkpoint)
        for i in range(2 * YIELD_EVERY + 1):
            await loop._enqueue(i)
        monkeypatch.undo()
        assert yields == 2 and loop._queued_unyielded == 1
        assert [recv.receive_nowait() for _ in range(2 * YIELD_EVERY + 1)] == list(range(2 * YIELD_EVERY + 1))
        small_send, small_recv = trio.open_memory_channel[Any](1)
        loop._events_send = small_send
        await loop._enqueue("first")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop._enqueue, "second")  # the queue is full: it waits
            await trio.testing.wait_all_tasks_blocked()
            assert small_recv.receive_nowait() == "first"
        assert small_recv.receive_nowait() == "second"

    trio.run(main)


# ------------------------------------------------------------ one batch: how much is taken, what is stepped
class _Stop(Exception):
    """Ends a test's run of the endless core loop."""


def test_a_batch_takes_at_most_max_batch_events_and_keeps_at_most_max_tick_lag_ticks() -> None:
    """The loop steps everything queued, up to MAX_BATCH_EVENTS, as one batch; of the ticks in a batch it
    keeps MAX_TICK_LAG (dropping the first ones, counted across batches); a batch of exactly MAX_TICK_LAG
    ticks keeps them all and counts nothing (no ticks_dropped key appears in the node's status)."""
    loop = _bare()
    loop._follow_membership = lambda: None  # type: ignore[method-assign]
    batches: list[list[Any]] = [[]]
    loop._step = lambda event: batches[-1].append(event) or Ready(messages=(Send("n2", _message(1)),))  # type: ignore[method-assign,func-returns-value]
    peer = Receive("n2", _message(9))
    then = [[TICK] * MAX_TICK_LAG, [TICK] * 8 + [peer, TICK], [TICK] * 7]  # queued after batches 2, 3, 4
    counted: list[dict[str, int]] = []
    send, receive = trio.open_memory_channel[Any](1000)
    loop._events = receive

    async def commit_and_release(readies: list[Ready]) -> None:
        assert len(readies) == len(batches[-1])  # every stepped event's (non-empty) output
        counted.append(dict(loop.counters))
        if not then:
            raise _Stop
        if len(batches) >= 2:
            for event in then.pop(0):
                send.send_nowait(event)
        batches.append([])

    loop._commit_and_release = commit_and_release  # type: ignore[method-assign]
    for seq in range(MAX_BATCH_EVENTS + 1):
        send.send_nowait(_request(seq))
    async def serve() -> None:
        with trio.fail_after(60):  # on the mock clock: a loop left waiting for input fails at once
            await loop._serve_core()

    with pytest.raises(_Stop):
        trio.run(serve, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [len(b) for b in batches] == [MAX_BATCH_EVENTS, 1, MAX_TICK_LAG, 1 + MAX_TICK_LAG, MAX_TICK_LAG]
    assert batches[3] == [peer] + [TICK] * MAX_TICK_LAG
    assert counted == [{}, {}, {}, {"ticks_dropped": 4}, {"ticks_dropped": 4 + 2}]


# ------------------------------------------------------------ commit, then release
class _Storage:
    """A storage double: records each commit in ``order`` (raising ``fail`` instead when set)."""

    def __init__(self, order: list[Any], fail: Exception | None = None) -> None:
        self.order, self.fail = order, fail

    def commit(self, writes: list[Write]) -> None:
        if self.fail is not None:
            raise self.fail
        self.order.append(("commit", [w.key for w in writes]))


def _committing(fail: Exception | None = None, storage: bool = True) -> tuple[CoreLoop, list[Any]]:
    """A bare loop over a storage double; sends and replies are recorded in the returned order list."""
    order: list[Any] = []
    loop = _bare(fsync=False)
    loop.storage = _Storage(order, fail) if storage else None  # type: ignore[assignment]
    loop._disk = trio.Lock()
    loop._send_messages = lambda sends: order.append(("send", [s.message.round for s in sends]))  # type: ignore[method-assign]
    loop._send_reply = lambda reply: order.append(("reply", reply.seq))  # type: ignore[method-assign]
    return loop, order


def _out(round_: int, *keys: str) -> Ready:
    """A batch that sends heartbeat round ``round_`` after persisting ``keys`` (none: it persists nothing)."""
    return Ready(persist=tuple(Write(k, 1) for k in keys), messages=(Send("n2", _message(round_)),))


def test_batches_before_the_first_write_leave_at_once_the_rest_after_one_commit_each_once() -> None:
    """Batches that persist nothing and come before the first that does are released before the commit;
    that one and every batch after it only once the single group commit of all their writes returns.
    Each batch is released exactly once, and each commit is counted."""
    loop, order = _committing()
    trio.run(loop._commit_and_release, [_out(1), _out(2, "a"), _out(3), _out(4, "b", "c")])
    trio.run(loop._commit_and_release, [_out(5), _out(6)])
    trio.run(loop._commit_and_release, [_out(7, "d")])
    assert order == [("send", [1]), ("commit", ["a", "b", "c"]), ("send", [2]), ("send", [3]), ("send", [4]),
                     ("send", [5]), ("send", [6]), ("commit", ["d"]), ("send", [7])]
    assert loop.counters == Counter({"group_commits": 2})


def test_a_failed_commit_or_no_storage_releases_nothing_that_waited_for_it() -> None:
    """A disk error is a DiskFault carrying it (the node sits out); writing before the storage is open
    is our own bug, said plainly; either way nothing that waited for the commit leaves."""
    error = sqlite3.OperationalError("disk I/O error")
    loop, order = _committing(fail=error)
    with pytest.raises(DiskFault, match="^disk I/O error$") as fault:
        trio.run(loop._commit_and_release, [_out(1), _out(2, "a"), _out(3)])
    assert fault.value.__cause__ is error and order == [("send", [1])] and loop.counters == Counter()
    loop, order = _committing(storage=False)
    with pytest.raises(LocalProtocolError, match="^n1: a batch to persist before the storage is open$"):
        trio.run(loop._commit_and_release, [_out(2, "a")])
    assert order == []
