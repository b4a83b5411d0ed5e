"""The in-process live cluster runs the same cores over trio memory channels."""

from __future__ import annotations

import pytest
import trio

from smr import commands as c
from smr.errors import LocalProtocolError
from smr.live import open_local_cluster


async def test_coordinator_cluster_serves_a_kv(autojump_clock: trio.abc.Clock) -> None:
    async with open_local_cluster("kv", backend="coordinator", n=3) as cluster:
        assert await cluster.submit(c.put("x", "1")) is None
        assert await cluster.submit(c.cas("x", "1", "2")) is True
        assert await cluster.submit(c.get("x")) == "2"
        assert cluster.leader() == "n3"


async def test_concurrent_clients_get_exactly_once_increments(autojump_clock: trio.abc.Clock) -> None:
    async with open_local_cluster("counter", backend="coordinator", n=3) as cluster:
        async def bump(times: int) -> None:
            client = cluster.client()
            for _ in range(times):
                await client.submit(c.add(1))

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(bump, 5)
        assert await cluster.submit(c.read_counter()) == 20


async def test_coordinator_crash_stalls_and_restart_recovers(autojump_clock: trio.abc.Clock) -> None:
    async with open_local_cluster("kv", backend="coordinator", n=3) as cluster:
        await cluster.submit(c.put("k", "v"))
        cluster.crash("n3")
        with pytest.raises(TimeoutError):
            await cluster.submit(c.get("k"), timeout=0.1, attempts=3)
        cluster.start_node("n3")
        assert await cluster.submit(c.get("k")) == "v"


async def test_misuse_is_a_local_error(autojump_clock: trio.abc.Clock) -> None:
    with pytest.raises(LocalProtocolError):
        async with open_local_cluster(backend="coordinator", n=0):
            pass  # pragma: no cover
    async with open_local_cluster(backend="coordinator", n=1) as cluster:
        with pytest.raises(LocalProtocolError, match="already running"):
            cluster.start_node("n1")


async def test_crash_and_restart_without_a_checkpoint_in_between(autojump_clock: trio.abc.Clock) -> None:
    """The old incarnation's task never steps the new core (restart right after crash)."""
    async with open_local_cluster("kv", backend="raft", n=3) as cluster:
        await cluster.submit(c.put("k", "v"), timeout=0.5)
        for _ in range(3):
            for node in ("n1", "n2", "n3"):
                cluster.crash(node)
                cluster.start_node(node)
        assert await cluster.submit(c.get("k"), timeout=0.5, attempts=40) == "v"
