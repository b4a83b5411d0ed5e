"""The TCP client follows redirects, retries with the same sequence number, and survives dead nodes.

The "nodes" here are scripted fakes speaking the real framing on 127.0.0.1,
so each test controls exactly which answer the client gets.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
import trio

from smr import commands as c
from smr.commands import REGISTER_SESSION
from smr import wire
from smr.errors import LocalProtocolError
from smr.net import ClusterConfig, CommandRefused, NodeAddress, StatusQuery, StatusReport, open_tcp_client
from smr.net._launcher import free_ports
from smr.net._messages import ReplyBatch, RequestBatch
from smr.net._frames import Credentials
from smr.net._transport import FramedConnection, accept
from smr.replica import ClientRequest, Reply, ReplyStatus
from smr.sessions import command_digest

SECRET = "a-test-secret-of-some-length"
Script = Callable[[str, ClientRequest], Reply | None]


class FakeNode:
    """Accepts client connections and answers each request as ``script`` says (None: stay silent).

    A session registration meets the script like any request (a redirect,
    a refusal or silence as it says), but where the script would answer, the
    fake answers as a leader does: a fresh session id.  Registrations are
    kept apart from ``seen``.  Every answer is stamped with the digest of the
    command it answers, as a real node's is.
    """

    def __init__(self, node: str, script: Script) -> None:
        self.node = node
        self.script = script
        self.seen: list[ClientRequest] = []
        self.registrations: list[ClientRequest] = []
        self.frames = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one client connection until it closes."""
        conn, _ = await accept(stream, Credentials.from_secret(SECRET.encode()), self.node, 1 << 20)
        async with stream:
            try:
                await self._serve(conn)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away

    async def _serve(self, conn: FramedConnection) -> None:
        while (body := await conn.receive()) is not None:
            msg = wire.decode(body)
            if isinstance(msg, StatusQuery):
                role = "leader" if self.node == "n2" else "follower"
                await conn.send([wire.encode(StatusReport(self.node, "fake", role, 3, "n2", 7, 1.0))])
                continue
            requests = msg.requests if isinstance(msg, RequestBatch) else (msg,)
            self.frames += 1
            replies = []
            for request in requests:
                reply = self.script(self.node, request)
                if request.command == REGISTER_SESSION:
                    self.registrations.append(request)
                    if reply is not None and reply.status in (ReplyStatus.OK, ReplyStatus.ERROR):
                        reply = Reply(request.client_id, request.seq, ReplyStatus.OK,
                                      f"s{len(self.registrations)}")
                else:
                    self.seen.append(request)
                if reply is not None:
                    replies.append(attrs.evolve(reply, digest=reply.digest or command_digest(request.command)))
            if len(replies) > 1:
                await conn.send([wire.encode(ReplyBatch(tuple(replies)))])
            elif replies:
                await conn.send([wire.encode(replies[0])])


async def _cluster(nursery: trio.Nursery,
                   scripts: dict[str, Script | None]) -> tuple[ClusterConfig, dict[str, FakeNode]]:
    ports = free_ports(len(scripts))
    fakes = {}
    for (node, script), port in zip(scripts.items(), ports):
        if script is not None:  # None: nobody listens on that port
            fakes[node] = FakeNode(node, script)
            await nursery.start(trio.serve_tcp, fakes[node].handle, port)
    config = ClusterConfig(nodes=tuple(NodeAddress(n, "127.0.0.1", p) for n, p in zip(scripts, ports)),
                           secret=SECRET)
    return config, fakes


def _ok(result: object) -> Script:
    return lambda node, req: Reply(req.client_id, req.seq, ReplyStatus.OK, result)  # type: ignore[arg-type]


async def test_concurrent_sessions_share_frames_and_get_their_own_answers() -> None:
    def echo_seq(node: str, req: ClientRequest) -> Reply:
        return Reply(req.client_id, req.seq, ReplyStatus.OK, req.client_id)

    async with trio.open_nursery() as nursery:
        config, fakes = await _cluster(nursery, {"n1": echo_seq})
        async with open_tcp_client(config) as client:
            sessions = [client.client() for _ in range(64)]
            answers: dict[str, object] = {}

            async def call(session: object) -> None:
                answers[session.client_id] = await session.submit(c.put("k", "v"))  # type: ignore[attr-defined]

            async with trio.open_nursery() as calls:
                for session in sessions:
                    calls.start_soon(call, session)
        assert answers == {s.client_id: s.client_id for s in sessions}  # each its own answer, from batches
        assert len(fakes["n1"].seen) == 64 and fakes["n1"].frames < 64
        nursery.cancel_scope.cancel()


async def test_a_redirect_is_followed_to_the_leader() -> None:
    redirect: Script = lambda node, req: Reply(req.client_id, req.seq, ReplyStatus.REDIRECT, leader="n2")
    async with trio.open_nursery() as nursery:
        config, fakes = await _cluster(nursery, {"n1": redirect, "n2": _ok("v"), "n3": redirect})
        async with open_tcp_client(config) as cluster:
            session = cluster.client()
            session._turn = 0  # start at n1, a follower
            assert await session.submit(c.get("x")) == "v"  # its session opened at n2, after a redirect
            assert cluster.leader_hint == "n2"
            assert [r.seq for r in fakes["n1"].registrations] == [1] and not fakes["n1"].seen
            cluster.leader_hint, session._turn = None, 0  # forget the leader: start at n1 again
            assert await session.submit(c.get("x")) == "v"
            assert cluster.leader_hint == "n2"
            assert await session.submit(c.get("x")) == "v"  # straight to the leader now
        assert [r.seq for r in fakes["n1"].seen] == [2]
        assert [r.seq for r in fakes["n2"].seen] == [1, 2, 3]
        nursery.cancel_scope.cancel()


async def test_a_retry_after_silence_carries_the_same_sequence_number() -> None:
    answered: set[tuple[str, int]] = set()

    def silent_once(node: str, req: ClientRequest) -> Reply | None:
        if (req.client_id, req.seq) not in answered:  # the first attempt is "lost"
            answered.add((req.client_id, req.seq))
            return None
        return Reply(req.client_id, req.seq, ReplyStatus.OK, "done")

    async with trio.open_nursery() as nursery:
        config, fakes = await _cluster(nursery, {"n1": silent_once})
        async with open_tcp_client(config) as cluster:
            assert await cluster.submit(c.put("x", "1"), timeout=0.2) == "done"
        seen = fakes["n1"].seen
        assert len(seen) == 2 and seen[0] == seen[1]  # same client id, same seq, same command
        registrations = fakes["n1"].registrations  # the registration was retried the same way
        assert len(registrations) == 2 and registrations[0] == registrations[1]
        nursery.cancel_scope.cancel()


async def test_dead_nodes_are_skipped_and_silence_everywhere_is_a_timeout() -> None:
    async with trio.open_nursery() as nursery:
        config, fakes = await _cluster(nursery, {"n1": None, "n2": _ok(7), "n3": None})
        async with open_tcp_client(config) as cluster:
            for _ in range(3):  # whichever node a session starts at, it ends at n2
                assert await cluster.client().submit(c.add(1)) == 7
            assert await cluster.find_leader() == "n2"
            statuses = await cluster.statuses(timeout=0.5)
            assert statuses["n1"] is None and statuses["n2"] is not None and statuses["n2"].commit_index == 7
        config, _ = await _cluster(nursery, {"n1": lambda node, req: None})
        async with open_tcp_client(config) as cluster:
            with trio.fail_after(5):
                with pytest.raises(TimeoutError, match="after 3 attempts"):
                    await cluster.submit(c.get("x"), timeout=0.1, attempts=3)
        nursery.cancel_scope.cancel()


async def test_a_command_too_big_for_a_frame_is_refused_before_sending() -> None:
    async with trio.open_nursery() as nursery:
        config, fakes = await _cluster(nursery, {"n1": _ok(None)})
        async with open_tcp_client(attrs.evolve(config, max_frame_bytes=2048)) as cluster:
            with pytest.raises(LocalProtocolError, match="exceeds the cluster's max_frame_bytes"):
                await cluster.submit(c.put("x", "v" * 4096))
            assert await cluster.submit(c.put("x", "v" * 100)) is None
        assert len(fakes["n1"].seen) == 1
        nursery.cancel_scope.cancel()


async def test_a_refusal_is_final_and_errors_in_the_body_come_out_unwrapped() -> None:
    refuse: Script = lambda node, req: Reply(req.client_id, req.seq, ReplyStatus.OK if req.command ==
                                             REGISTER_SESSION else ReplyStatus.FAIL)
    async with trio.open_nursery() as nursery:
        config, fakes = await _cluster(nursery, {"n1": refuse})
        with pytest.raises(CommandRefused, match="refused by n1"):
            async with open_tcp_client(config) as cluster:
                await cluster.submit(c.put("x", "1"))
        assert len(fakes["n1"].seen) == 1  # no retry after a definite "no"
        nursery.cancel_scope.cancel()


async def test_redirects_going_round_in_circles_back_off_and_end() -> None:
    to_other: Script = lambda node, req: Reply(req.client_id, req.seq, ReplyStatus.REDIRECT,
                                               leader="n2" if node == "n1" else "n1")
    async with trio.open_nursery() as nursery:
        config, fakes = await _cluster(nursery, {"n1": to_other, "n2": to_other})
        async with open_tcp_client(config) as cluster:
            start = trio.current_time()
            with pytest.raises(TimeoutError, match="after 8 attempts"):
                await cluster.submit(c.get("x"), attempts=8)
            elapsed = trio.current_time() - start
        # every attempt went to opening the session, which the circle never lets happen
        assert not fakes["n1"].seen and not fakes["n2"].seen
        assert len(fakes["n1"].registrations) + len(fakes["n2"].registrations) == 8
        assert elapsed > 0.1  # it paused between laps instead of spinning
        nursery.cancel_scope.cancel()
