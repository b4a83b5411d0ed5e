"""An emptied data directory never rejoins as if it had never promised anything (issue 23, node identity).

Real 3-process clusters: a node whose directory is emptied while it is down is refused by the peers
that remember its old incarnation and stays out, saying so, while the rest keep serving every write
they acknowledged; two emptied nodes next to an intact one wait, then stay out, and nothing crashes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from real_clusters import Writers, roles, wait_for_role, wipe

from smr import commands as c
from smr.net import open_local_tcp_cluster, open_storage, open_tcp_client


@pytest.mark.parametrize("victim_is_leader", [True, False], ids=["leader", "follower"])
async def test_a_wiped_node_stays_out_and_the_others_lose_no_acknowledged_write(
        victim_is_leader: bool, tmp_path: Path) -> None:
    with trio.fail_after(120):
        async with open_local_tcp_cluster(tmp_path, backend="raft", fsync=False) as cluster:
            async with open_tcp_client(cluster.cluster_file) as tcp:
                writers = Writers(tcp)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(writers.run)
                    await trio.sleep(1.0)
                    leader = await tcp.find_leader()
                    assert leader is not None
                    victim = leader if victim_is_leader else next(n for n in cluster.node_ids if n != leader)
                    cluster.kill(victim)
                    wipe(cluster, victim)
                    cluster.start_node(victim)
                    await wait_for_role(tcp, victim, ("stays out",), 30)
                    before = writers.total
                    await trio.sleep(1.5)
                    assert writers.total > before  # the other two serve on
                    writers.stop()
                assert await writers.lost() == {}  # nothing acknowledged was lost
                reports = await tcp.statuses()
                others = [r for n, r in reports.items() if n != victim]
                assert all(r is not None for r in others)
                assert sum(r.counters.get("peers_refused_identity", 0) for r in others if r) > 0
                assert cluster.alive(victim)
        log = cluster.log_file(victim).read_text()
    assert "staying out of the cluster" in log and "--rejoin-empty" in log  # and says how to come back


async def test_two_wiped_nodes_next_to_an_intact_one_wait_then_stay_out_and_nothing_crashes(
        tmp_path: Path) -> None:
    """The probe's case: a copied cluster, n1 and n2 emptied and started, n3 started 3 s later."""
    with trio.fail_after(120):
        async with open_local_tcp_cluster(tmp_path, backend="raft", fsync=False) as cluster:
            async with open_tcp_client(cluster.cluster_file) as tcp:
                for i in range(50):
                    await tcp.submit(c.put(f"k{i}", "v"))
            cluster.stop()
            wipe(cluster, "n1")
            wipe(cluster, "n2")
            cluster.start_node("n1")
            cluster.start_node("n2")
            async with open_tcp_client(cluster.cluster_file) as tcp:
                await trio.sleep(3.0)  # two fresh nodes do not start a new, empty cluster on their own
                seen = await roles(tcp)
                assert seen["n1"] == seen["n2"] == "joining", seen
                cluster.start_node("n3")
                await wait_for_role(tcp, "n1", ("stays out",), 30)
                await wait_for_role(tcp, "n2", ("stays out",), 30)
                await trio.sleep(1.0)
                assert all(cluster.alive(n) for n in cluster.node_ids)  # running, no assertion, no crash loop
                assert await tcp.find_leader(timeout=0.5) is None  # nobody serves an emptied history
            cluster.stop()
        storage, durable = open_storage(cluster.data_dir("n3"), "n3")  # the intact node kept everything
        storage.close()
        assert sum(key.startswith("raft/log/") for key in durable) >= 50


async def test_a_node_whose_database_was_deleted_but_not_its_directory_refuses_to_start(tmp_path: Path) -> None:
    """Deleting replica.sqlite3* (the probe's way of wiping) leaves the count of acknowledged batches:
    the node stops at once with one line saying what is missing, rather than serve without them."""
    with trio.fail_after(60):
        async with open_local_tcp_cluster(tmp_path, backend="raft", fsync=False) as cluster:
            async with open_tcp_client(cluster.cluster_file) as tcp:
                for i in range(20):
                    await tcp.submit(c.put(f"k{i}", "v"))
            cluster.kill("n2")
            wipe(cluster, "n2", database_only=True)
            cluster.start_node("n2")
            with trio.fail_after(20):
                while cluster.alive("n2"):
                    await trio.sleep(0.1)
    log = cluster.log_file("n2").read_text()
    assert "were synced and acknowledged (COMMITS)" in log and "--rejoin-empty" in log and "Traceback" not in log


@pytest.mark.parametrize("nodes", [1, 3])
async def test_a_cluster_whose_every_database_is_gone_starts_no_new_cluster_even_with_rejoin_empty(
        nodes: int, tmp_path: Path) -> None:
    """Every node's database deleted (COMMITS files left) and every node started with --rejoin-empty --
    a one-node cluster, or all three: none starts a new, empty cluster, which would serve without every
    write it acknowledged.  Each stays out and says why, also after a restart (the watermark was reset at
    the first start, but the directory is remembered as emptied), and keeps answering status."""
    with trio.fail_after(120):
        async with open_local_tcp_cluster(tmp_path, nodes=nodes, backend="raft", fsync=False,
                                          rejoin_empty=True) as cluster:
            async with open_tcp_client(cluster.cluster_file) as tcp:
                for i in range(20):
                    await tcp.submit(c.put(f"k{i}", "v"))
            cluster.stop()
            for node in cluster.node_ids:
                wipe(cluster, node, database_only=True)
            for restart in range(2):
                for node in cluster.node_ids:
                    cluster.start_node(node)
                async with open_tcp_client(cluster.cluster_file) as tcp:
                    for node in cluster.node_ids:
                        await wait_for_role(tcp, node, ("stays out",), 30)
                    await trio.sleep(1.0)
                    assert await tcp.find_leader(timeout=0.5) is None  # nobody serves an emptied history
                    assert all(cluster.alive(n) for n in cluster.node_ids)
                cluster.stop()
    for node in cluster.node_ids:
        log = cluster.log_file(node).read_text()
        assert ("a new cluster would lose everything it acknowledged" in log
                and "Traceback" not in log and "joined the cluster" not in log.split(" ready on port ")[-1]), log[-2000:]
