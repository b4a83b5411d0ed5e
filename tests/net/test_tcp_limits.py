"""Limits with sane defaults (issue 22, deliverable 4): connections per node, per role and per peer,
an idle timeout, a deadline on partial frames, and refusal logs at a bounded rate."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from smr import wire
from smr.errors import ConfigError
from smr.net import ClusterConfig, NodeServer, dump_cluster, load_cluster, parse_cluster, write_cluster_file
from smr.net._frames import BUSY, HEADER, FrameDecoder, connector_hello, frame, refusal
from smr.net._messages import StatusQuery, StatusReport
from smr.net._server import RefusalLog
from smr.net._transport import connect

GOOD = """\
secret: "0123456789abcdef-cluster"
nodes:
  - {id: n1, host: 127.0.0.1, port: 7001}
"""


@asynccontextmanager
async def a_node(tmp_path: Path, nodes: int = 1, **limits: Any) -> AsyncIterator[tuple[NodeServer, int]]:
    """Node n1 of a ``nodes``-node cluster with ``limits``, in this process; yields it and its port."""
    write_cluster_file(tmp_path / "cluster.yaml", nodes=nodes, tick_ms=5, fsync=False)
    config = attrs.evolve(load_cluster(tmp_path / "cluster.yaml"), **limits)
    server = NodeServer(config, "n1", tmp_path / "n1")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        yield server, port
        nursery.cancel_scope.cancel()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


async def _closed(stream: trio.abc.Stream, timeout: float = 5.0) -> bytes:
    """Everything the node sends until it closes ``stream`` (which is then closed here too)."""
    received = b""
    async with stream:
        with trio.fail_after(timeout):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


def test_the_defaults_are_sane_and_a_bad_limit_names_its_field() -> None:
    config = parse_cluster(GOOD, "c.yaml")
    assert (config.max_connections, config.max_client_connections, config.max_connections_per_peer) == (1024, 512, 4)
    assert (config.client_idle_timeout_s, config.frame_timeout_s, config.refusal_logs_per_minute) == (300, 30, 10)
    assert "max_connections" not in dump_cluster(config)  # defaults are not written out
    changed = attrs.evolve(config, max_connections=8, frame_timeout_s=2.5)
    assert parse_cluster(dump_cluster(changed), "c.yaml") == changed
    for line, field in (("max_connections: 0", "max_connections"), ("frame_timeout_s: .inf", "frame_timeout_s"),
                        ("client_idle_timeout_s: -1", "client_idle_timeout_s"),
                        ("refusal_logs_per_minute: 0", "refusal_logs_per_minute")):
        with pytest.raises(ConfigError) as info:
            parse_cluster(GOOD + line + "\n", "c.yaml")
        assert (info.value.field, info.value.line) == (field, 4), str(info.value)


def test_a_partial_frame_holds_only_what_arrived_and_a_finished_one_gives_its_room_back() -> None:
    dec = FrameDecoder(8 << 20)
    dec.feed(HEADER.pack(4 << 20) + b"x" * 10)  # 4 MiB announced, 10 bytes sent
    assert dec.next_frame() is None and dec.buffered == 14
    big = frame(b"t" * 32, b"y" * (1 << 20))
    dec = FrameDecoder(8 << 20)
    dec.feed(big)
    assert dec.next_frame() is not None and dec.buffered == 0
    assert sys.getsizeof(dec._buf) < 1024  # not a megabyte kept for an idle connection


async def test_connections_beyond_the_node_and_client_limits_are_refused_and_counted(tmp_path: Path) -> None:
    async with a_node(tmp_path, max_connections=3, max_client_connections=2) as (server, port):
        key = server.config.client_credentials().client
        with trio.fail_after(10):
            c1, _ = await connect("127.0.0.1", port, key, "client", "c1", 1 << 20)
            c2, _ = await connect("127.0.0.1", port, key, "client", "c2", 1 << 20)
            with pytest.raises(ConnectionRefusedError, match="too many connections"):
                await connect("127.0.0.1", port, key, "client", "c3", 1 << 20)  # a third client
            assert server.counters["connections_refused_max_client_connections"] == 1
            await _until(lambda: server._connections_open == 2)
            silent = await trio.open_tcp_stream("127.0.0.1", port)  # says nothing: holds a slot until its hello
            await _until(lambda: server._connections_open == 3)
            beyond = await trio.open_tcp_stream("127.0.0.1", port)
            assert await _closed(beyond) == refusal(BUSY)  # refused at once, before any hello
            assert server.counters["connections_refused_max_connections"] == 1
            await c1.aclose()
            await _until(lambda: server._clients_open == 1)
            c4, _ = await connect("127.0.0.1", port, key, "client", "c4", 1 << 20)  # a freed slot is reused
            for stream in (c2.stream, c4.stream, silent):
                await stream.aclose()
            assert server.counters["connections_refused"] == 2


async def test_idle_clients_and_stalled_frames_are_closed_busy_clients_are_not(tmp_path: Path) -> None:
    async with a_node(tmp_path, client_idle_timeout_s=0.4, frame_timeout_s=0.4) as (server, port):
        key = server.config.client_credentials().client
        with trio.fail_after(10):
            busy, _ = await connect("127.0.0.1", port, key, "client", "busy", 1 << 20)
            idle, _ = await connect("127.0.0.1", port, key, "client", "idle", 1 << 20)
            stalled, _ = await connect("127.0.0.1", port, key, "client", "stalled", 1 << 20)
            # 4 MiB announced, a kilobyte sent, then nothing: held only until the frame deadline
            await stalled.stream.send_all(HEADER.pack(4 << 20) + b"x" * 1024)
            closed = trio.Event()

            async def wait_for_the_idle_one_to_close() -> None:
                assert await idle.receive() is None  # closed by the node
                closed.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_for_the_idle_one_to_close)
                while not closed.is_set():  # meanwhile a query every 50 ms: never idle that long
                    await busy.send([wire.encode(StatusQuery())])
                    assert isinstance(wire.decode(await busy.receive() or b""), StatusReport)
                    await trio.sleep(0.05)
            await idle.aclose()
            assert await _closed(stalled.stream) == b""
            assert server.counters["idle_closed"] == 1
            assert server.refused["truncated"] == 1
            await busy.send([wire.encode(StatusQuery())])  # still served
            assert await busy.receive() is not None
            await busy.aclose()


async def test_a_newer_connection_from_a_peer_replaces_the_oldest_beyond_the_limit(tmp_path: Path) -> None:
    async with a_node(tmp_path, nodes=2, max_connections_per_peer=1) as (server, port):
        peer_key = server.credentials.peer
        assert peer_key is not None
        with trio.fail_after(10):
            first, _ = await connect("127.0.0.1", port, peer_key, "peer", "n2", 1 << 20)
            await _until(lambda: len(server._peer_connections["n2"]) == 1)
            second, _ = await connect("127.0.0.1", port, peer_key, "peer", "n2", 1 << 20)
            assert await first.receive() is None  # the stale one is closed, the redial kept
            await first.aclose()
            assert server.counters["peer_connections_replaced"] == 1
            assert len(server._peer_connections["n2"]) == 1
            await second.aclose()


def test_the_refusal_log_has_a_rate_and_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="smr.net")
    rate = RefusalLog("n1", per_window=2, window_s=60.0)
    logged = [rate.note(t, "unauthenticated", "refused %d", t) for t in range(5)]
    assert logged == [True, True, False, False, False]
    rate.flush(60.0)  # the window ends: one line for the three not logged
    assert rate.note(61.0, "oversized", "refused again")
    rate.flush(120.0)  # nothing unlogged: no summary
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused 0", "refused 1", "n1: 3 more refusals in the last 60 s not logged (unauthenticated 3)",
                     "refused again"]


async def test_an_unauthenticated_stranger_cannot_fill_the_log(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="smr.net")
    async with a_node(tmp_path, refusal_logs_per_minute=3) as (server, port):
        with trio.fail_after(10):
            for _ in range(12):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(connector_hello(b"not the key" * 3, "client", "x")[0])
                await _closed(stream)
            await _until(lambda: server.refused["unauthenticated"] == 12)
        assert server.counters["refusals_not_logged"] == 9
        server._refusal_log.flush(trio.current_time())
    lines = [r.getMessage() for r in caplog.records if r.name == "smr.net"]
    assert sum("refused a frame" in line for line in lines) == 3
    assert sum("9 more refusals in the last 60 s not logged (unauthenticated 9)" in line for line in lines) == 1


def test_limits_are_cluster_file_fields() -> None:
    names = {f.name for f in attrs.fields(ClusterConfig)}
    assert {"max_connections", "max_client_connections", "max_connections_per_peer", "client_idle_timeout_s",
            "frame_timeout_s", "refusal_logs_per_minute", "tls", "client_secret"} <= names
