"""Frames are bounded, authenticated and bound to their connection; bad ones are refused and counted,
and the node keeps serving."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from raft.messages import HardState
from smr import commands as c
from smr import wire
from smr.machine import CommandError
from smr.net import FrameError, open_local_tcp_cluster, open_tcp_client
from smr.net._frames import (AUTH_FAILED, HEADER, Credentials, FrameDecoder, Session, acceptor_hello,
                             check_acceptor_hello, check_connector_hello, connector_hello, frame, refusal,
                             request_limit)
from smr.net._messages import ReplyBatch, RequestBatch
from smr.net._transport import HELLO_MAX_BYTES
from smr.replica import ClientRequest, Reply, ReplyStatus
from smr.sessions import command_digest

SECRET = b"s" * 32
KEYS = Credentials.from_secret(SECRET)
PEER_KEY = KEYS.peer
assert PEER_KEY is not None


def _pair() -> tuple[Session, Session]:
    data, hello_c = connector_hello(KEYS.client, "client", "c1")
    dec = FrameDecoder(1 << 16)
    dec.feed(data)
    got = dec.next_frame()
    assert got is not None
    seen = check_connector_hello(KEYS, *got)
    assert seen == hello_c
    answer, hello_a = acceptor_hello(KEYS.client, "n1", seen)
    dec.feed(answer)
    got = dec.next_frame()
    assert got is not None
    assert check_acceptor_hello(KEYS.client, hello_c, *got) == hello_a
    return (Session(KEYS.client, hello_c, hello_a, is_connector=True),
            Session(KEYS.client, hello_c, hello_a, is_connector=False))


def _open(session: Session, data: bytes) -> bytes:
    dec = FrameDecoder(1 << 16)
    dec.feed(data)
    got = dec.next_frame()
    assert got is not None
    return session.open(*got)


def test_frames_split_anywhere_reassemble() -> None:
    client, server = _pair()
    stream = client.seal(b"one") + client.seal(b"two" * 100) + client.seal(b"")
    dec = FrameDecoder(1 << 16)
    bodies = []
    for i in range(len(stream)):  # one byte at a time
        dec.feed(stream[i:i + 1])
        while (got := dec.next_frame()) is not None:
            bodies.append(server.open(*got))
    assert bodies == [b"one", b"two" * 100, b""]
    dec.end_of_stream()  # stopped on a frame boundary: fine


def test_oversized_truncated_and_tagless_frames_are_refused() -> None:
    dec = FrameDecoder(1024)
    dec.feed(HEADER.pack(1025))
    with pytest.raises(FrameError) as info:
        dec.next_frame()
    assert info.value.reason == "oversized"
    dec = FrameDecoder(1024)
    dec.feed(frame(b"t" * 32, b"body")[:-1])
    assert dec.next_frame() is None
    with pytest.raises(FrameError) as info:
        dec.end_of_stream()
    assert info.value.reason == "truncated"
    dec = FrameDecoder(1024)
    dec.feed(HEADER.pack(5) + b"12345")
    with pytest.raises(FrameError) as info:
        dec.next_frame()
    assert info.value.reason == "malformed"


def test_tampered_replayed_reordered_and_reflected_frames_do_not_verify() -> None:
    client, server = _pair()
    first, second = client.seal(b"a"), client.seal(b"b")
    tampered = bytearray(first)
    tampered[-1] ^= 1
    for bad in (bytes(tampered), second):  # a flipped bit; the second frame before the first
        with pytest.raises(FrameError) as info:
            _open(server, bad)
        assert info.value.reason == "unauthenticated"
    assert _open(server, first) == b"a"
    with pytest.raises(FrameError):
        _open(server, first)  # replayed
    with pytest.raises(FrameError):
        _open(client, client.seal(b"reflected"))  # our own frame sent back to us
    _, other_server = _pair()
    with pytest.raises(FrameError):
        _open(other_server, client.seal(b"spliced"))  # a frame of another connection


def test_hellos_need_the_secret() -> None:
    data, hello = connector_hello(b"wrong" * 8, "peer", "n2")
    dec = FrameDecoder(4096)
    dec.feed(data)
    got = dec.next_frame()
    assert got is not None
    with pytest.raises(FrameError) as info:
        check_connector_hello(KEYS, *got)
    assert info.value.reason == "unauthenticated"
    answer, _ = acceptor_hello(PEER_KEY, "n1", hello)
    dec.feed(answer)
    got = dec.next_frame()
    assert got is not None
    _, someone_else = connector_hello(PEER_KEY, "peer", "n3")
    with pytest.raises(FrameError):
        check_acceptor_hello(PEER_KEY, someone_else, *got)  # an answer to a different hello


# --------------------------------------------------------------- a live node
async def _raw(port: int, data: bytes, *, wait_close: bool = True) -> bytes:
    """Send raw bytes to the node; return what it sent back before closing the connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    async with stream:
        await stream.send_all(data)
        if wait_close:
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    received += chunk
    return received


async def _handshake(port: int, secret: bytes) -> tuple[trio.SocketStream, Session]:
    """A client connection made by hand; ``secret`` is the client key."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    data, mine = connector_hello(secret, "client", "raw")
    await stream.send_all(data)
    dec = FrameDecoder(1 << 20)
    with trio.fail_after(5):
        while (got := dec.next_frame()) is None:
            dec.feed(await stream.receive_some(65536))
    theirs = check_acceptor_hello(secret, mine, *got)
    return stream, Session(secret, mine, theirs, is_connector=True)


async def _closed_by_node(stream: trio.SocketStream) -> bool:
    with trio.fail_after(5):
        while await stream.receive_some(65536):
            pass
    await stream.aclose()
    return True


async def test_a_node_refuses_and_counts_bad_frames_and_keeps_serving(tmp_path: Path) -> None:
    """Oversized, truncated, malformed, unauthenticated and misdirected frames: each counted, each
    connection closed, and the node (a real process) still answers afterwards."""
    with trio.fail_after(60):
        async with open_local_tcp_cluster(tmp_path, nodes=1, backend="raft") as cluster:
            port = cluster.config.nodes[0].port
            secret = cluster.config.client_credentials().client
            # 1. a hello made with the wrong secret; 2. a "hello" announced bigger than any hello:
            # each answered with the same fixed refusal (and nothing else) before the node closes
            assert await _raw(port, connector_hello(b"not the secret" * 3, "client", "x")[0]) == refusal(AUTH_FAILED)
            assert await _raw(port, HEADER.pack(HELLO_MAX_BYTES + 1) + b"x" * 64) == refusal(AUTH_FAILED)
            # 3. a good session, then a frame announced beyond max_frame_bytes
            stream, session = await _handshake(port, secret)
            await stream.send_all(HEADER.pack(cluster.config.max_frame_bytes + 1) + b"x" * 64)
            assert await _closed_by_node(stream)
            # 4. the connection stops in the middle of a hello
            await _raw(port, connector_hello(secret, "client", "x")[0][:20], wait_close=False)
            # 5. a good session, then a body that is not a message, or nests too deep to parse
            for garbage in (b"{not json", b"[" * 100_000 + b"]" * 100_000):
                stream, session = await _handshake(port, secret)
                await stream.send_all(session.seal(garbage))
                assert await _closed_by_node(stream)
            # 6. a good session, then a frame with a forged tag
            stream, session = await _handshake(port, secret)
            await stream.send_all(frame(b"\0" * 32, wire.encode(ClientRequest("raw", 1, c.put("x", "evil")))))
            assert await _closed_by_node(stream)
            # 7. a good session, then a truncated frame
            stream, session = await _handshake(port, secret)
            await stream.send_all(session.seal(wire.encode(ClientRequest("raw", 1, c.put("x", "half"))))[:-3])
            await stream.aclose()
            # 8. a replica-to-replica message on a client connection
            stream, session = await _handshake(port, secret)
            await stream.send_all(session.seal(wire.encode(HardState(1, None))))
            assert await _closed_by_node(stream)

            async with open_tcp_client(cluster.cluster_file) as client:
                # a command the state machine cannot apply is an error outcome, never a poisoned log
                with pytest.raises(CommandError, match="UnknownCommand: kv has no command or query 'bogus'"):
                    await client.submit(c.Command("bogus", "x"))
                with pytest.raises(CommandError, match=r"BadArguments: kv.put\(key, value\) got 1"):
                    await client.submit(c.Command("put", "x"))
                assert await client.submit(c.put("x", "good")) is None
                assert await client.submit(c.get("x")) == "good"  # no forged write got in
                with trio.fail_after(10):
                    while True:  # the node counts asynchronously; wait for the last refusals to land
                        report = await client.status("n1", timeout=5.0)
                        assert report is not None
                        if report.refused["truncated"] >= 2:
                            break
                        await trio.sleep(0.05)
            assert report.refused == {"oversized": 2, "truncated": 2, "unauthenticated": 2,
                                      "malformed": 2, "unexpected": 1}
            assert report.role == "leader" and report.uptime_s > 0
            assert report.counters.get("commands_refused", 0) == 0  # bad commands are error outcomes now
            assert cluster.alive("n1")


async def test_a_peer_reset_mid_handshake_is_only_unreachable() -> None:
    """Regression (crash loop): a connection reset while dialling a peer killed the node.

    A listener that accepts and at once resets every connection stands in for a peer
    dying during the handshake; what connect() raises must be one of the errors the
    node's reconnect loop treats as "unreachable".
    """
    import socket as _socket
    import struct

    from smr.net._server import UNREACHABLE
    from smr.net._transport import connect

    async def reset_at_once(stream: trio.SocketStream) -> None:
        stream.socket.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, reset_at_once, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        with pytest.raises(UNREACHABLE):
            await connect("127.0.0.1", port, b"secret", "peer", "n9", 1 << 20)
        nursery.cancel_scope.cancel()


async def test_a_request_batch_is_judged_request_by_request(tmp_path: Path) -> None:
    """A batch frame hiding a request too big to replicate: that one is refused, the others applied,
    and the answers come back together; a batch on a peer connection, or with a member that is not a
    request, is refused like any wrong frame."""
    with trio.fail_after(60):
        async with open_local_tcp_cluster(tmp_path, nodes=1, backend="raft") as cluster:
            config = cluster.config
            port = config.nodes[0].port
            secret = config.client_credentials().client
            await cluster.wait_for_leader()
            stream, session = await _handshake(port, secret)
            dec = FrameDecoder(config.max_frame_bytes)
            # A real cluster serves only sessions its log opened: open one, as a client library does.
            await stream.send_all(session.seal(wire.encode(ClientRequest("raw-a", 1, c.REGISTER_SESSION))))
            while (got := dec.next_frame()) is None:
                dec.feed(await stream.receive_some(65536))
            opened = wire.decode(session.open(*got))
            assert isinstance(opened, Reply) and opened.status == ReplyStatus.OK
            assert opened.digest == command_digest(c.REGISTER_SESSION)
            sid = opened.result
            assert isinstance(sid, str)
            huge = ClientRequest("raw-b", 1, c.put("big", "x" * (request_limit(config.max_frame_bytes) + 10)))
            small = ClientRequest(sid, 1, c.put("small", "ok"))
            batch = wire.encode(RequestBatch((small, huge)))
            assert len(batch) + 32 <= config.max_frame_bytes  # it fits a frame; one member does not fit the log
            await stream.send_all(session.seal(batch))
            answers: dict[str, Reply] = {}
            while len(answers) < 2:
                while (got := dec.next_frame()) is None:
                    dec.feed(await stream.receive_some(65536))
                msg = wire.decode(session.open(*got))
                for reply in msg.replies if isinstance(msg, ReplyBatch) else (msg,):
                    answers[reply.client_id] = reply
            await stream.aclose()
            assert answers[sid].status == ReplyStatus.OK
            assert answers["raw-b"].status == ReplyStatus.FAIL and "leaves no room" in str(answers["raw-b"].result)
            for bad in (wire.encode(ReplyBatch((Reply("x", 1, ReplyStatus.OK),))),  # a client sends no replies
                        wire.encode(RequestBatch((ClientRequest("raw-a", 1, c.put("small", "ok")),))).replace(
                            b"raw-a", b"\xc1\xc1\xc1\xc1\xc1")):
                stream, session = await _handshake(port, secret)
                await stream.send_all(session.seal(bad))
                assert await _closed_by_node(stream)
            async with open_tcp_client(cluster.cluster_file) as client:
                assert await client.submit(c.get("small")) == "ok" and await client.submit(c.get("big")) is None
                report = await client.status("n1", timeout=5.0)
            assert report is not None
            assert (report.refused["unexpected"], report.refused["malformed"]) == (1, 1)
            assert report.counters["request_batches"] == 1
