"""Embedded nodes (``smr.net.open_node``): a replica inside the caller's trio program.

Three nodes run in this one test process (each its own storage, its own port,
authenticated peer connections between them, as three processes would).  A
call made on the leader enters its core with no frame; a call made on a
follower takes one hop to the leader; both are applied once; a node closed
and reopened recovers its state from disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio
from app_fixtures import Ledger

from smr.errors import ConfigError
from smr.machine import CommandError
from smr.net import Node, open_node, open_tcp_client, write_cluster_file

LOG_BACKENDS = ("raft", "multipaxos")


@asynccontextmanager
async def three_nodes(directory: Path, backend: str, *, fsync: bool = True) -> AsyncIterator[list[Node]]:
    """A 3-node cluster of embedded nodes in this process, with a leader elected."""
    cluster_file = directory / "cluster.yaml"
    if not cluster_file.exists():
        write_cluster_file(cluster_file, nodes=3, backend=backend, state_machine=Ledger, tick_ms=5, fsync=fsync)
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(open_node(cluster_file, f"n{i}", app=Ledger))
                 for i in (1, 2, 3)]
        await nodes[0].wait_for_leader()
        yield nodes


def _leader_of(nodes: list[Node]) -> tuple[Node, Node]:
    leaders = [n for n in nodes if n.is_leader]
    assert len(leaders) == 1, [n.status() for n in nodes]
    return leaders[0], next(n for n in nodes if not n.is_leader)


@pytest.mark.parametrize("backend", LOG_BACKENDS)
async def test_a_call_on_the_leader_takes_no_hop_and_one_on_a_follower_takes_one(backend: str,
                                                                                 tmp_path: Path) -> None:
    async with three_nodes(tmp_path, backend) as nodes:
        with trio.fail_after(20):
            while True:  # a leader everyone agrees on
                leader, follower = _leader_of(nodes)
                if all(n.leader == leader.id for n in nodes):
                    break
                await trio.sleep(0.02)
            on_leader = leader.client(Ledger)
            assert await on_leader.credit("a", 5) == 5
            before = leader.status().counters
            for amount in (1, 2, 3):
                await on_leader.credit("a", amount)
            after = leader.status().counters
            assert after["local_requests"] - before.get("local_requests", 0) == 3
            assert after.get("client_requests", 0) == before.get("client_requests", 0)  # no frame came in

            on_follower = follower.client(Ledger)
            assert await on_follower.credit("a", 10) == 21
            # one hop each: opening the new client's session through the log, then the call
            assert leader.status().counters["client_requests"] == before.get("client_requests", 0) + 2
            with pytest.raises(CommandError) as short:
                await on_follower.debit("b", 1)
            assert short.value.kind == "ValueError"
            assert await on_leader.debit("a", 1) == 20
            # Every replica applied the same commands once (a query through the log reads them back).
            assert await on_follower.credit("a", 0) == 20


@pytest.mark.parametrize("backend", LOG_BACKENDS)
async def test_embedded_nodes_recover_from_disk_and_serve_remote_clients(backend: str, tmp_path: Path) -> None:
    async with three_nodes(tmp_path, backend) as nodes:
        with trio.fail_after(20):
            ledger = nodes[1].client(Ledger)
            for i in range(20):
                await ledger.credit("x", i)
            async with open_tcp_client(tmp_path / "cluster.yaml") as remote:  # a separate client, over TCP
                assert await remote.client(Ledger).credit("x", 0) == sum(range(20))
    async with three_nodes(tmp_path, backend) as nodes:  # all three closed, then reopened
        with trio.fail_after(20):
            assert await nodes[2].client(Ledger).credit("x", 1) == sum(range(20)) + 1


async def test_open_node_names_what_is_wrong(tmp_path: Path) -> None:
    cluster_file = tmp_path / "cluster.yaml"
    write_cluster_file(cluster_file, nodes=3, state_machine=Ledger)
    with pytest.raises(ConfigError, match="'n9' is not in the cluster"):
        async with open_node(cluster_file, "n9"):
            pass  # pragma: no cover
    async with open_node(cluster_file, "n1", app=Ledger) as node:
        assert node.id == "n1" and (tmp_path / "data" / "n1").is_dir()  # the default data directory
