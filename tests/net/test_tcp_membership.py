"""Membership over TCP: a cluster of `smr serve` processes grows and shrinks under load, losing nothing.

Issue 18's acceptance test: 3 nodes grow to 5 and shrink back to 3 while
clients run a KV workload, with the leader SIGKILLed in the middle of a
change; every acknowledged write survives and the history is linearizable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
import trio
from real_clusters import wait_for_leader

from smr import commands as c
from smr.checker import Budget, check, make_model
from smr.errors import LocalProtocolError
from smr.history import Outcome
from smr.live import open_local_cluster
from smr.net import LocalTcpCluster, TcpCluster, free_ports, load_cluster, open_local_tcp_cluster, open_tcp_client
from smr.net._loadgen import Recorder, final_reads, run_clients
from smr.net._launcher import running
from smr.net.cli import main
from workloads import make_workload

BACKENDS = ["raft", "multipaxos"]
KEYS = 4


async def _add(cluster: LocalTcpCluster, client: TcpCluster, node: str) -> None:
    """Write ``node`` into the cluster file, start its process (empty data directory) and add it."""
    cluster.new_node(node)
    cluster.start_node(node)
    membership = await client.add_node(node, cluster.address(node), timeout=30.0)
    assert node in membership.voters and not membership.joint


async def _exited(cluster: LocalTcpCluster, node: str, timeout: float = 15.0) -> int | None:
    """Wait for ``node``'s process to exit on its own; its exit code."""
    proc = cluster.processes[node]
    with trio.fail_after(timeout):
        while proc.poll() is None:
            await trio.sleep(0.05)
    return proc.returncode


@pytest.mark.parametrize("backend", BACKENDS)
async def test_three_nodes_grow_to_five_and_shrink_to_three_under_load_with_a_leader_sigkill_losing_nothing(
        backend: str, tmp_path: Path) -> None:
    """Add n4, then n5 -- the leader is SIGKILLed while n5 is being added, and restarted from its disk --
    then remove n4 and n5, all while three clients run a KV workload.  Every added node joins from an
    empty data directory and becomes a voter; every removed one exits 0 by itself; the final reads
    find every acknowledged write; the history is linearizable."""
    workload = make_workload("kv", {"keys": KEYS})
    recorder = Recorder()
    with trio.fail_after(90):
        async with open_local_tcp_cluster(tmp_path, nodes=3, backend=backend) as cluster:
            async with open_tcp_client(cluster.cluster_file) as client:
                async with trio.open_nursery() as nursery:
                    load = trio.CancelScope()

                    async def clients() -> None:
                        with load:
                            await run_clients(client, recorder, workload, clients=3, seconds=60, max_ops=20_000)

                    nursery.start_soon(clients)
                    await trio.sleep(0.5)
                    await _add(cluster, client, "n4")
                    grown_at = recorder.counts.ok
                    async with trio.open_nursery() as change:
                        change.start_soon(_add, cluster, client, "n5")
                        await trio.sleep(0.3)  # n5 is catching up, or about to be promoted
                        victim = await wait_for_leader(client)
                        assert cluster.kill(victim) == -signal.SIGKILL
                        await trio.sleep(1.0)
                        cluster.start_node(victim)
                    members = await client.membership()
                    assert members.voters == ("n1", "n2", "n3", "n4", "n5"), members
                    for node in ("n4", "n5"):
                        membership = await client.remove_node(node, timeout=30.0)
                        assert node not in membership.members
                    assert await _exited(cluster, "n4") == 0 and await _exited(cluster, "n5") == 0
                    await trio.sleep(0.5)  # the three alone take writes
                    load.cancel()
                final = await client.membership()
                reads = await final_reads(client, recorder, [f"k{i}" for i in range(KEYS)])
    assert final.voters == ("n1", "n2", "n3") and not final.learners, final
    for node in ("n4", "n5"):
        assert "it has left the cluster" in cluster.log_file(node).read_text()
    history = recorder.history.finish()
    verdict = check(history, make_model("kv"), Budget(timeout=60.0))
    assert verdict.status.value == "linearizable", verdict.describe()
    assert workload.check(history) == []
    assert grown_at > 10 and recorder.counts.ok > grown_at  # progress before and after the changes
    assert len(reads) == KEYS
    acknowledged = {op.command.key for op in history if op.outcome is Outcome.OK and op.command.op != "get"}
    assert all(reads[k] is not None for k in acknowledged)  # nothing acknowledged vanished


async def test_smr_cluster_add_status_and_remove_change_a_running_cluster_and_its_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`smr cluster add` starts n4 from an empty directory beside the others and returns once it votes;
    `smr cluster status` shows it; `smr cluster remove` returns once the change is committed and n4 has
    exited, and takes it out of the cluster file."""
    pid = None
    try:
        with trio.fail_after(60):
            async with open_local_tcp_cluster(tmp_path, nodes=3) as cluster:
                file = str(cluster.cluster_file)
                address = f"127.0.0.1:{free_ports(1)[0]}"
                code = await trio.to_thread.run_sync(main, ["cluster", "add", "n4", "--address", address,
                                                            "--cluster", file, "--timeout", "30"])
                out = capsys.readouterr().out
                assert code == 0, out
                pid = int(re.search(r"n4: started \(pid (\d+)", out).group(1))  # type: ignore[union-attr]
                assert "n4 is a voter" in out and "voters:   n1, n2, n3, n4" in out
                assert (tmp_path / "n4").is_dir() and (tmp_path / "n4.log").is_file()  # beside the others
                assert load_cluster(file).added[0].id == "n4" and load_cluster(file).initial_voters == (
                    "n1", "n2", "n3")
                code = await trio.to_thread.run_sync(main, ["cluster", "status", "--cluster", file])
                out = capsys.readouterr().out
                assert code == 0 and re.search(r"^n4 +voter +follower", out, re.M), out
                code = await trio.to_thread.run_sync(main, ["cluster", "remove", "n4", "--cluster", file])
                out = capsys.readouterr().out
                assert code == 0 and "n4 has stopped" in out, out
                assert load_cluster(file).added == ()
                with trio.fail_after(10):
                    while running(pid):
                        await trio.sleep(0.05)
                code = await trio.to_thread.run_sync(main, ["cluster", "status", "--cluster", file, "--json"])
                status = json.loads(capsys.readouterr().out)
                assert code == 0 and status["membership"]["voters"] == ["n1", "n2", "n3"]
                assert "n4" not in status["nodes"]
    finally:
        if pid is not None and running(pid):
            os.kill(pid, signal.SIGKILL)


async def test_a_node_added_at_run_time_whose_directory_is_emptied_stays_out_and_votes_nothing(
        tmp_path: Path) -> None:
    """Issue 23 holds for added nodes: n4 joins and votes; its directory is deleted and it restarts: the
    members that remember its incarnation refuse it, it stays out (never silently a voter again), and
    the other four keep taking writes."""
    with trio.fail_after(60):
        async with open_local_tcp_cluster(tmp_path, nodes=3) as cluster:
            async with open_tcp_client(cluster.cluster_file) as client:
                await _add(cluster, client, "n4")
                await client.submit(c.put("before", "1"))
                assert cluster.kill("n4") == -signal.SIGKILL
                shutil.rmtree(cluster.data_dir("n4"))
                cluster.start_node("n4")
                with trio.fail_after(20):
                    while (report := await client.status("n4", timeout=0.5)) is None or report.role != "stays out":
                        await trio.sleep(0.1)
                assert await client.submit(c.put("after", "2")) is None  # three of the four voters suffice
                assert await client.submit(c.get("before")) == "1"
                assert (await client.membership()).voters == ("n1", "n2", "n3", "n4")
                reports = await client.statuses(timeout=2.0)
    log = cluster.log_file("n4").read_text()
    assert "staying out of the cluster" in log and "remembers this node as incarnation" in log
    # it dialled nobody meanwhile (a node that has not been admitted says nothing), so nobody had to refuse it
    assert sum(r.counters.get("peers_refused_identity", 0) for n, r in reports.items() if r and n != "n4") == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_in_process_cluster_adds_replaces_and_removes_nodes_through_the_same_client_api(
        backend: str) -> None:
    """smr.live: add_node starts a joiner and returns once it votes; replace_node and remove_node take
    nodes out, which stop by themselves; the writes made meanwhile all stay."""
    with trio.fail_after(30):
        async with open_local_cluster("kv", backend=backend, n=3, tick_ms=2) as cluster:
            await cluster.submit(c.put("k0", "v"))
            assert "n4" in (await cluster.add_node("n4")).voters
            await cluster.submit(c.put("k1", "v"))
            replaced = await cluster.replace_node("n1", "n5")
            assert replaced.voters == ("n2", "n3", "n4", "n5")
            removed = await cluster.remove_node("n2")
            assert removed.voters == ("n3", "n4", "n5") and await cluster.membership() == removed
            await cluster.submit(c.put("k2", "v"))
            with trio.fail_after(10):
                while cluster.nodes["n1"].alive or cluster.nodes["n2"].alive:
                    await trio.sleep(0.01)
            assert cluster.nodes["n1"].retired and cluster.nodes["n2"].retired
            assert [await cluster.submit(c.get(f"k{i}")) for i in range(3)] == ["v", "v", "v"]
            with pytest.raises(LocalProtocolError, match="never reused"):
                await cluster.add_node("n1")
