"""The node's core loop: step the core with a batch of inputs, group-commit, then release what it output.

This is where persist-before-send holds for the real cluster (see the
numbered rounds in :mod:`smr.net._server`): :meth:`CoreLoop._serve_core`
takes every queued input (peer messages first, client requests last) and
steps the core with each; :meth:`CoreLoop._commit_and_release` releases the
leading batches that persist nothing, writes the persist sets of the rest in
one transaction synced once, and only then releases their messages and
replies, in batch order -- except a leader's replication of new entries
(``Ready.eager``), which leaves at once and is counted for the leader only
when its ``after_sync`` is stepped.  A failed write raises :class:`DiskFault`
and releases nothing of its batches.

:class:`CoreLoop` is a mixin of :class:`smr.net._server.NodeServer`: the
attributes declared below are the server's, set in its constructor; the two
methods it must provide (routing to a peer, following a new configuration)
are declared here and defined there.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from typing import Any, Callable

import trio

from smr import wire
from smr.driver import Driver
from smr.errors import LocalProtocolError
from smr.replica import TICK, ClientRequest, Ready, ReplicaCore, Receive, Reply, ReplyStatus, Role, Send

from ._config import ClusterConfig
from ._frames import TAG_BYTES
from ._messages import ReplyBatch
from ._storage import Storage

log = logging.getLogger("smr.net")

#: Most inputs stepped before one group commit.
MAX_BATCH_EVENTS = 256
#: Frames readers queue without waiting before one of them yields to the scheduler.
YIELD_EVERY = 64
#: What a write can raise when the disk (full, failing, read-only) rather than our code is at fault.
DISK_ERRORS = (sqlite3.OperationalError, OSError)
#: A core step longer than this is counted (``slow_steps``) and logged (at most once per SLOW_STEP_LOG_EVERY_S).
SLOW_STEP_S = 0.1
SLOW_STEP_LOG_EVERY_S = 10.0
#: If the ticker falls this many ticks behind (a stalled process), it skips ahead instead of bursting.
MAX_TICK_LAG = 5


class DiskFault(Exception):
    """The node's storage refused a write (ENOSPC, EIO, ...): it sits out until writes succeed again."""


def _rank(event: Any) -> int:
    """Where ``event`` goes in a batch: peer messages first, ticks next, client requests last."""
    return 0 if isinstance(event, Receive) else 2 if isinstance(event, ClientRequest) else 1


def _drop_ticks(events: list[Any], extra: int) -> list[Any]:
    """``events`` without its first ``extra`` ticks."""
    kept = []
    for event in events:
        if extra and event is TICK:
            extra -= 1
            continue
        kept.append(event)
    return kept


class CoreLoop:
    """Steps the core, commits what it must persist, and releases its messages and replies after."""

    id: str
    config: ClusterConfig
    counters: Counter[str]
    storage: Storage | None
    driver: Driver[ReplicaCore] | None
    local_replies: Callable[[str, Reply], bool] | None
    _events: trio.MemoryReceiveChannel[Any]
    _events_send: trio.MemorySendChannel[Any]
    _queued_unyielded: int
    _peer_out: dict[str, trio.MemorySendChannel[bytes]]
    _clients: dict[str, list[trio.MemorySendChannel[Reply | bytes]]]
    _disk: trio.Lock
    _campaigned: int
    _slow_logged_at: float

    def _open_peer(self, peer: str) -> trio.MemorySendChannel[bytes] | None:
        """A sender to ``peer``, started if need be; None if no address is known for it (the server's)."""
        raise NotImplementedError

    def _follow_membership(self) -> None:
        """Dial the members of a configuration that just took effect (the server's)."""
        raise NotImplementedError

    async def _ticker(self) -> None:
        period = self.config.tick_ms / 1000.0
        deadline = trio.current_time()
        while True:
            deadline += period
            now = trio.current_time()
            if deadline < now - MAX_TICK_LAG * period:
                deadline = now
            await trio.sleep_until(deadline)
            late = trio.current_time() - deadline
            if late > SLOW_STEP_S:  # the process was held (a long step, a thread holding the GIL, the OS)
                self._stalled(late)
            try:
                self._events_send.send_nowait(TICK)
            except trio.WouldBlock:
                self.counters["ticks_dropped"] += 1

    async def _enqueue(self, event: Any) -> None:
        """Queue ``event`` for the core; wait (back-pressure on the sender) only while the queue is full."""
        try:  # no scheduler round trip per frame; a reader yields at its next socket read
            self._events_send.send_nowait(event)
        except trio.WouldBlock:
            await self._events_send.send(event)
            return
        self._queued_unyielded += 1
        if self._queued_unyielded >= YIELD_EVERY:  # one read can hold hundreds of small frames
            self._queued_unyielded = 0
            await trio.lowlevel.checkpoint()

    def _step(self, event: Any) -> Ready | None:
        driver = self.driver
        assert driver is not None, "the core loop runs only once the core is built"
        started = time.perf_counter()
        ready = driver.step(event)
        took = time.perf_counter() - started
        if took > SLOW_STEP_S:
            self._slow_step(event, took)
        if driver.became_leader is not None:
            log.info("%s: became leader at epoch %d", self.id, driver.became_leader)
        status = driver.last_status
        if status is not None and status.role == Role.CANDIDATE and status.epoch != self._campaigned:
            self._campaigned = status.epoch
            log.info("%s: campaigning at epoch %d (no leader heard for an election timeout)", self.id, status.epoch)
        if driver.rejected:
            return None
        if ready.eager:  # the leader's replication leaves now, while its own write syncs
            self._send_messages(ready.eager)
        return ready

    def _stalled(self, late: float) -> None:
        """Count a tick that came ``late`` seconds late: nothing on this node ran meanwhile."""
        self.counters["stalls"] += 1
        now = time.monotonic()
        if now >= self._slow_logged_at + SLOW_STEP_LOG_EVERY_S:
            self._slow_logged_at = now
            log.warning("%s: the node was held for %.0f ms (no tick, no message handled); peers may start an "
                        "election (%d stalls so far)", self.id, late * 1000, self.counters["stalls"])

    def _slow_step(self, event: Any, took: float) -> None:
        """Count a core step that held the node for ``took`` seconds (nothing else runs meanwhile)."""
        self.counters["slow_steps"] += 1
        what = type(event.message).__name__ if isinstance(event, Receive) else type(event).__name__
        now = time.monotonic()
        if now >= self._slow_logged_at + SLOW_STEP_LOG_EVERY_S:
            self._slow_logged_at = now
            log.warning("%s: one step (%s) held the node for %.0f ms; peers may start an election "
                        "(%d slow steps so far)", self.id, what, took * 1000, self.counters["slow_steps"])

    async def _serve_core(self) -> None:
        while True:
            events = [await self._events.receive()]
            while len(events) < MAX_BATCH_EVENTS:  # take everything queued: one sync covers it all
                try:
                    events.append(self._events.receive_nowait())
                except trio.WouldBlock:
                    break
            # Peer messages first, client requests last: acknowledgements (and the replies they
            # release) then need not wait for the sync of new entries.  The sort is stable and each
            # source belongs to one class, so every peer's and client's own order is kept.
            events.sort(key=_rank)
            ticks = sum(1 for e in events if e is TICK)
            if ticks > MAX_TICK_LAG:
                # Ticks that queued while the core waited for its disk measure this node's wait,
                # not silence from its peers (their messages queued too, and go first): counting
                # them all would start an election right after any long write.
                events = _drop_ticks(events, ticks - MAX_TICK_LAG)
                self.counters["ticks_dropped"] += ticks - MAX_TICK_LAG
            readies = [r for r in map(self._step, events) if r]
            await self._commit_and_release(readies)
            self._follow_membership()

    async def _commit_and_release(self, readies: list[Ready]) -> None:
        """Release each batch once its own writes and every earlier batch's are synced, in order.

        A batch that asked for ``after_sync`` gets it stepped once its writes
        are durable; what that step outputs goes through the same round.
        """
        while readies:
            first = next((i for i, r in enumerate(readies) if r.persist or r.after_sync is not None),
                         len(readies))
            for ready in readies[:first]:  # nothing before these awaits a sync
                self._release(ready)
            rest = readies[first:]
            writes = [w for r in rest for w in r.persist]
            if writes:
                storage = self.storage
                if storage is None:
                    raise LocalProtocolError(f"{self.id}: a batch to persist before the storage is open")
                try:
                    async with self._disk:  # one writer at a time on the one SQLite connection
                        if self.config.fsync:  # in a thread: the network keeps reading during the sync
                            await trio.to_thread.run_sync(storage.commit, writes)
                        else:
                            storage.commit(writes)  # no sync: nothing worth a thread
                except DISK_ERRORS as exc:
                    raise DiskFault(exc) from exc
                self.counters["group_commits"] += 1
            for ready in rest:  # durable now
                self._release(ready)
            readies = [r for r in map(self._after_sync, rest) if r]

    def _after_sync(self, ready: Ready) -> Ready | None:
        """Tell the core that ``ready``'s writes are durable, if it asked; its answer, if any."""
        if ready.after_sync is None:
            return None
        return self._step(ready.after_sync)

    def _release(self, ready: Ready) -> None:
        if ready.messages:
            self._send_messages(ready.messages)
        for reply in ready.replies:
            self._send_reply(reply)

    def _send_messages(self, sends: tuple[Send, ...]) -> None:
        sent: Any = None
        body: bytes | None = None
        for send in sends:
            out = self._peer_out.get(send.dst)
            if out is None:
                out = self._open_peer(send.dst)
                if out is None:
                    self.counters["messages_unroutable"] += 1
                    continue
            if send.message is not sent:  # a broadcast repeats one message object: encode it once
                sent, body = send.message, self._encode(send.message)
            if body is None:
                continue
            try:
                out.send_nowait(body)
                self.counters["messages_sent"] += 1
            except trio.WouldBlock:
                self.counters["messages_dropped"] += 1

    def _encode(self, message: Any) -> bytes | None:
        """The frame body of ``message``, or None (counted, logged) if no peer would accept its size."""
        body = wire.encode(message)
        if len(body) + TAG_BYTES > self.config.max_frame_bytes:
            self.counters["messages_too_large"] += 1
            log.error("%s: dropped a %d-byte %s: max_frame_bytes is %d; raise it in the cluster file",
                      self.id, len(body), type(message).__name__, self.config.max_frame_bytes)
            return None
        return body

    def _send_reply(self, reply: Reply) -> None:
        outs = self._clients.get(reply.client_id)
        local = self.local_replies
        delivered = local is not None and local(self.id, reply)
        if delivered:
            self.counters["local_replies"] += 1
        elif not outs:
            self.counters["replies_unroutable"] += 1
        for out in outs or ():
            try:  # encoded by the connection's writer, with whatever else it has for that client
                out.send_nowait(reply)
                self.counters["replies"] += 1
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.counters["replies_dropped"] += 1

    def _reply_frames(self, replies: list[Reply]) -> list[bytes]:
        """Frame bodies carrying ``replies``: one :class:`ReplyBatch` if they fit one frame, else split."""
        message = replies[0] if len(replies) == 1 else ReplyBatch(tuple(replies))
        body = wire.encode(message)
        if len(body) + TAG_BYTES <= self.config.max_frame_bytes:
            return [body]
        if len(replies) > 1:
            half = len(replies) // 2
            return self._reply_frames(replies[:half]) + self._reply_frames(replies[half:])
        # The answer cannot travel: say so, rather than leave the caller waiting.
        reply = replies[0]
        self.counters["messages_too_large"] += 1
        limit = self.config.max_frame_bytes
        log.error("%s: a %d-byte answer to %s exceeds max_frame_bytes (%d); the caller gets an error",
                  self.id, len(body), reply.client_id, limit)
        return [wire.encode(Reply(reply.client_id, reply.seq, ReplyStatus.ERROR, {
            "error": "BadResult", "message": f"the answer is larger than max_frame_bytes ({limit})"},
            digest=reply.digest))]
