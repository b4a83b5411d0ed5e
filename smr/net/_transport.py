"""Framed, authenticated connections over trio streams: the I/O around :mod:`smr.net._frames`,
and the decoding of verified frame bodies into messages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import trio

from smr import wire
from smr.errors import LocalProtocolError, RemoteProtocolError

from ._frames import (FrameDecoder, FrameError, Hello, Session, acceptor_hello, check_acceptor_hello,
                      check_connector_hello, connector_hello)

RECEIVE_CHUNK = 65536
#: Most frames a writer task sends in one write.
SEND_BATCH = 256
#: The largest hello accepted: before authentication nobody gets to announce megabytes.
HELLO_MAX_BYTES = 1024


def decode_message(body: bytes) -> Any:
    """Decode an authenticated frame body into a message, or raise FrameError("malformed")."""
    try:
        return wire.decode(body)
    except RemoteProtocolError as exc:
        raise FrameError("malformed", str(exc)) from None
    except RecursionError:  # JSON nested deeper than Python's stack: garbage, not a crash
        raise FrameError("malformed", "nested too deeply") from None


class FramedConnection:
    """One authenticated connection: ``send`` sealed bodies, ``receive`` verified ones."""

    def __init__(self, stream: trio.abc.Stream, decoder: FrameDecoder) -> None:
        self.stream = stream
        self._decoder = decoder
        self.session: Session | None = None

    async def receive_frame(self) -> tuple[bytes, bytes] | None:
        """Return the next raw (tag, body), None at a clean end of stream; FrameError otherwise."""
        while True:
            got = self._decoder.next_frame()
            if got is not None:
                return got
            data = await self.stream.receive_some(RECEIVE_CHUNK)
            if not data:
                self._decoder.end_of_stream()
                return None
            self._decoder.feed(data)

    async def receive(self) -> bytes | None:
        """Return the next verified body, None at a clean end of stream; FrameError otherwise."""
        if self.session is None:
            raise LocalProtocolError("receive() before the hello exchange")
        got = await self.receive_frame()
        return None if got is None else self.session.open(*got)

    async def send(self, bodies: Sequence[bytes]) -> None:
        """Seal and send ``bodies`` as consecutive frames in one write."""
        if self.session is None:
            raise LocalProtocolError("send() before the hello exchange")
        await self.stream.send_all(b"".join(self.session.seal(b) for b in bodies))

    async def aclose(self) -> None:
        """Close the connection."""
        await self.stream.aclose()


#: Room a batch frame keeps for its own envelope beside its members' encodings.
BATCH_OVERHEAD_BYTES = 64


def pack(items: Sequence[Any], sizes: Sequence[int], budget: int,
         batch: Callable[[tuple[Any, ...]], Any]) -> list[Any]:
    """The messages that carry ``items`` (of encoded ``sizes``) in frames of at most ``budget`` bytes.

    Consecutive items that fit together become one ``batch(run)``; a run of
    one stays itself, and so does an item bigger than the budget (its own
    frame checks its size).
    """
    messages: list[Any] = []
    run: list[Any] = []
    used = BATCH_OVERHEAD_BYTES

    def close_run() -> None:
        if run:
            messages.append(run[0] if len(run) == 1 else batch(tuple(run)))
            run.clear()

    for item, size in zip(items, sizes):
        if run and used + size + 8 > budget:
            close_run()
            used = BATCH_OVERHEAD_BYTES
        run.append(item)
        used += size + 8  # a member's own header in the batch
    close_run()
    return messages


async def next_batch(queue: trio.MemoryReceiveChannel[Any], limit: int = SEND_BATCH) -> list[Any]:
    """Wait for the next body in ``queue`` and return it with every one already queued (at most ``limit``).

    Raises EndOfChannel once the queue is closed and empty.
    """
    bodies = [await queue.receive()]
    while len(bodies) < limit:
        try:
            bodies.append(queue.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return bodies


async def connect(host: str, port: int, secret: bytes, role: str, my_id: str,
                  max_frame_bytes: int) -> tuple[FramedConnection, Hello]:
    """Open a connection to ``host:port`` and run the hello exchange as the connecting side.

    Raises OSError if the connection fails and FrameError if the answer does not verify.
    """
    stream = await trio.open_tcp_stream(host, port)
    decoder = FrameDecoder(min(HELLO_MAX_BYTES, max_frame_bytes))
    conn = FramedConnection(stream, decoder)
    try:
        data, mine = connector_hello(secret, role, my_id)
        await stream.send_all(data)
        got = await conn.receive_frame()
        if got is None:
            raise FrameError("truncated", "connection closed during the hello exchange")
        theirs = check_acceptor_hello(secret, mine, *got)
        decoder.max_frame_bytes = max_frame_bytes
        conn.session = Session(secret, mine, theirs, is_connector=True)
        return conn, theirs
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


async def accept(stream: trio.abc.Stream, secret: bytes, my_id: str,
                 max_frame_bytes: int) -> tuple[FramedConnection, Hello]:
    """Run the hello exchange as the accepting side of ``stream``; FrameError if it fails."""
    decoder = FrameDecoder(min(HELLO_MAX_BYTES, max_frame_bytes))
    conn = FramedConnection(stream, decoder)
    got = await conn.receive_frame()
    if got is None:
        raise FrameError("truncated", "connection closed before the hello")
    theirs = check_connector_hello(secret, *got)
    decoder.max_frame_bytes = max_frame_bytes
    data, mine = acceptor_hello(secret, my_id, theirs)
    await stream.send_all(data)
    conn.session = Session(secret, theirs, mine, is_connector=False)
    return conn, theirs
