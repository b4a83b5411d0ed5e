"""Real clusters of `smr serve` processes on 127.0.0.1: crashes lose nothing acknowledged, disks recover state."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from smr import commands as c
from smr.checker import check, make_model
from smr.history import Outcome
from smr.net import TcpCluster, open_local_tcp_cluster, open_tcp_client
from smr.net._loadgen import Recorder, final_reads, run_clients
from smr.net.cli import main
from workloads import make_workload

BACKENDS = ["raft", "multipaxos"]


async def _wait_caught_up(client: TcpCluster, node: str, index: int, timeout: float = 15.0) -> int:
    with trio.fail_after(timeout):
        while True:
            report = await client.status(node, timeout=5.0)
            if report is not None and report.commit_index >= index:
                return report.commit_index
            await trio.sleep(0.05)


async def _leader(client: TcpCluster, timeout: float = 15.0) -> str:
    """The current leader, waiting out an election in progress."""
    with trio.fail_after(timeout):
        while (leader := await client.find_leader()) is None:
            await trio.sleep(0.05)
    return leader


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sigkill_of_the_leader_under_load_is_linearizable_and_loses_no_acknowledged_write(
        backend: str, tmp_path: Path) -> None:
    """Three clients run a KV workload; the leader is SIGKILLed, later restarted from its disk;
    the checker finds the history (with a final read of every key) linearizable."""
    workload = make_workload("kv", {"keys": 4})
    recorder = Recorder()
    with trio.fail_after(120):
        async with open_local_tcp_cluster(tmp_path, nodes=3, backend=backend) as cluster:
            async with open_tcp_client(cluster.cluster_file) as client:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(lambda: run_clients(client, recorder, workload, clients=3, seconds=4.5,
                                                           max_ops=3000))
                    await trio.sleep(1.0)
                    victim = await _leader(client)
                    before_kill = recorder.counts.ok
                    assert cluster.kill(victim) == -signal.SIGKILL
                    await trio.sleep(1.5)
                    ok_without_victim = recorder.counts.ok
                    cluster.start_node(victim)
                reads = await final_reads(client, recorder, [f"k{i}" for i in range(4)])
                leader_report = await client.status(await _leader(client), timeout=5.0)
                assert leader_report is not None
                await _wait_caught_up(client, victim, leader_report.commit_index)
                reports = await client.statuses(timeout=5.0)
    survivors = [r for n, r in reports.items() if n != victim]
    assert all(r is not None for r in survivors)
    # two connections each at start, and at least one reconnection to the restarted victim
    assert sum(r.counters["peer_connects"] for r in survivors if r is not None) >= 5
    history = recorder.history.finish()
    verdict = check(history, make_model("kv"))
    assert verdict.status.value == "linearizable", verdict.describe()
    assert workload.check(history) == []
    assert before_kill > 10 and ok_without_victim > before_kill  # progress before and without the victim
    assert len(reads) == 4
    acknowledged = {op.command.key for op in history if op.outcome is Outcome.OK and op.command.op != "get"}
    assert all(reads[k] is not None for k in acknowledged)  # nothing acknowledged vanished


@pytest.mark.parametrize("backend", BACKENDS)
async def test_killing_every_node_recovers_the_state_from_disk(backend: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Write, SIGKILL all three processes, start them again: every acknowledged value is read back
    (with compaction on, so snapshots and log suffixes are both recovered)."""
    written: dict[str, str] = {}
    with trio.fail_after(120):
        async with open_local_tcp_cluster(tmp_path, nodes=3, backend=backend,
                                          backend_options={"snapshot_every": 16}) as cluster:
            async with open_tcp_client(cluster.cluster_file) as client:

                async def writer(n: int) -> None:
                    session = client.client()
                    for i in range(15):
                        key, value = f"k{n}-{i}", f"v{n}-{i}"
                        assert await session.submit(c.put(key, value), timeout=1.0) is None
                        written[key] = value

                async with trio.open_nursery() as nursery:
                    for n in range(3):
                        nursery.start_soon(writer, n)
            for node in cluster.node_ids:
                assert cluster.kill(node) == -signal.SIGKILL
            cluster.start()
            await cluster.wait_for_leader()
            async with open_tcp_client(cluster.cluster_file) as client:
                read = {key: await client.submit(c.get(key)) for key in written}
                # a node that booted last may not have heard the leader's commit index yet
                for node in cluster.node_ids:
                    await _wait_caught_up(client, node, 45)
            assert read == written
            # the command line reads the same state
            file = str(cluster.cluster_file)
            code = await trio.to_thread.run_sync(main, ["kv", "get", "k2-14", "--cluster", file])
            assert code == 0 and capsys.readouterr().out.strip() == '"v2-14"'
            code = await trio.to_thread.run_sync(main, ["status", "--cluster", file, "--json"])
            assert code == 0 and '"role": "leader"' in capsys.readouterr().out
    assert len(written) == 45
    # every acknowledged write was on a majority's disks, so at least two processes recovered a
    # non-empty state (the third may have booted too late to hear anything before the kill)
    recovered = {node: [int(n) for n in re.findall(r"recovered (\d+) durable keys",
                                                    (tmp_path / f"{node}.log").read_text())]
                 for node in ("n1", "n2", "n3")}
    assert all(len(counts) == 2 and counts[0] == 0 for counts in recovered.values()), recovered
    assert sum(counts[1] > 0 for counts in recovered.values()) >= 2, recovered


async def test_cluster_up_serves_and_stops_cleanly_on_sigterm(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`smr cluster up` starts three processes, waits for a leader, and stops them all on SIGTERM."""
    proc = subprocess.Popen([sys.executable, "-m", "smr.net", "cluster", "up", "--nodes", "3", "--dir",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    try:
        with trio.fail_after(60):
            lines = []
            while not any("Ctrl-C stops it" in line for line in lines):
                line = await trio.to_thread.run_sync(proc.stdout.readline)
                assert line, "".join(lines)
                lines.append(line)
        assert any("is up; leader n" in line for line in lines)
        cluster_file = tmp_path / "cluster.yaml"
        assert oct(cluster_file.stat().st_mode & 0o777) == "0o600"  # it holds the secret
        put = ["kv", "put", "greeting", "hello", "--cluster", str(cluster_file)]
        code = await trio.to_thread.run_sync(main, put)
        assert code == 0 and capsys.readouterr().out.strip() == "null"
        proc.send_signal(signal.SIGTERM)
        rest = await trio.to_thread.run_sync(proc.stdout.read)
        assert await trio.to_thread.run_sync(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert "stopped: n1 exit 0, n2 exit 0, n3 exit 0" in rest
    for node in ("n1", "n2", "n3"):
        assert "stopping on signal 15" in (tmp_path / f"{node}.log").read_text()
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_node_of(p, tmp_path)]


def _is_node_of(pid: str, directory: Path) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        return str(directory).encode() in cmdline and b"serve" in cmdline
    except OSError:
        return False
