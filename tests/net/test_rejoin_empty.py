"""``smr serve --rejoin-empty``: an emptied node brings itself back (issue 23, deliverable 3).

Real clusters of ``smr serve`` processes, both backends, every node started
with the flag (on a new cluster and an intact directory it changes nothing).
A node whose data directory is emptied while clients write has the cluster
remove its id, add it again, catches up as a learner and votes again once
promoted; the cluster serves throughout, and every acknowledged write reads
back.  The acceptance line: any minority of nodes wiped and restarted, in
any order, under load -- nothing acknowledged lost, the cluster serving
within a bounded time.  A rejoining node killed at any stage resumes when
restarted.  Each test prints what it measured (``pytest -s``).
"""

from __future__ import annotations

import re
import sqlite3
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest
import trio
from real_clusters import Writers, roles, wait_for_leader, wait_for_role, wipe

from smr import commands as c
from smr.net import LocalTcpCluster, TcpCluster, open_local_tcp_cluster, open_tcp_client

BACKENDS = ["raft", "multipaxos"]
#: The longest a client may wait for an acknowledgement while nodes are wiped and rejoin (a leader's death
#: costs an election; a rejoin costs nothing); generous, for a loaded CI machine.
MAX_GAP_S = 10.0
SERVING = ("follower", "leader")
#: How long a new cluster may take to elect its first leader (starting the processes dominates on a busy machine).
LEADER_S = 40.0


async def _voter_again(tcp: TcpCluster, node: str, timeout: float = 30.0) -> None:
    """Wait until ``node`` is a voter of the committed configuration and serves (no longer ``rejoining``)."""
    with trio.fail_after(timeout):
        while node not in (await tcp.membership(timeout=1.0)).voters \
                or (await roles(tcp)).get(node) not in SERVING:
            await trio.sleep(0.1)


async def _caught_up(tcp: TcpCluster, node: str, timeout: float = 20.0) -> int:
    """Wait until ``node`` has applied as far as the leader (the writes have stopped); that index."""
    with trio.move_on_after(timeout):
        while True:
            reports = await tcp.statuses(timeout=1.0)
            leader = next((r for r in reports.values() if r is not None and r.role == "leader"), None)
            mine = reports.get(node)
            if leader is not None and mine is not None and mine.commit_index >= leader.commit_index:
                return mine.commit_index
            await trio.sleep(0.1)
    raise AssertionError(f"{node} did not catch up: " + "; ".join(
        f"{n} {r.role} epoch {r.epoch} leader {r.leader} commit {r.commit_index}" if r else f"{n} -"
        for n, r in (await tcp.statuses(timeout=1.0)).items()))


async def _reads_back_and_catches_up(tcp: TcpCluster, node: str, keys: int) -> None:
    """Every one of the ``keys`` puts k<i>=<i> made before ``node`` was emptied reads back, and after one
    more write ``node`` catches up with the leader."""
    for i in range(keys):
        assert await tcp.submit(c.get(f"k{i}")) == str(i)
    await tcp.submit(c.put("after", "1"))
    await _caught_up(tcp, node)


@asynccontextmanager
async def _under_load(cluster: LocalTcpCluster) -> AsyncIterator[tuple[TcpCluster, Writers, str]]:
    """A client of ``cluster`` whose writers have run for a second, and the leader then; halt the writers
    (``Writers.halt``) before the block ends."""
    async with open_tcp_client(cluster.cluster_file) as tcp:
        writers = Writers(tcp)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writers.run)
            await trio.sleep(1.0)
            yield tcp, writers, await wait_for_leader(tcp, timeout=20.0)


def _rejoined(cluster: LocalTcpCluster, node: str) -> float:
    """Check that ``node``'s log says it had its id removed, added again, and caught up past the re-adding;
    how long that took, from the node's first word of its emptied directory to its readmission (s)."""
    log = cluster.log_file(node).read_text()
    assert "rejoining: the cluster removed" in log and "rejoining: the cluster added" in log, log[-3000:]
    waited_for = re.search(r"rejoined: it has applied the log past its re-adding \(index (\d+)\)", log)
    assert waited_for and int(waited_for.group(1)) > 0, "its core must be a rejoining one (rejoin_after)"
    assert "Traceback" not in log

    def when(text: str) -> datetime:
        line = next(line for line in log.splitlines() if text in line)
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")

    return (when("rejoined: it has applied") - when("with --rejoin-empty it has the cluster")).total_seconds()


@pytest.mark.parametrize("victim_is_leader", [False, True], ids=["follower", "leader"])
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_wiped_node_restarted_with_rejoin_empty_votes_again_and_nothing_acknowledged_is_lost(
        backend: str, victim_is_leader: bool, tmp_path: Path) -> None:
    """3 nodes under write load; one (the leader, or a follower) is killed, its directory emptied, and
    restarted with --rejoin-empty: it becomes a voter again while the cluster serves on, every
    acknowledged write reads back, and its copy catches up with the leader's."""
    with trio.fail_after(90):
        async with open_local_tcp_cluster(tmp_path, backend=backend, fsync=False, rejoin_empty=True,
                                          leader_timeout=LEADER_S) as cluster:
            async with _under_load(cluster) as (tcp, writers, leader):
                victim = leader if victim_is_leader else next(n for n in cluster.node_ids if n != leader)
                assert cluster.kill(victim) == -signal.SIGKILL
                wipe(cluster, victim)
                started = trio.current_time()
                cluster.start_node(victim)
                await _voter_again(tcp, victim)
                took = trio.current_time() - started
                before = writers.total
                await trio.sleep(1.0)
                assert writers.total > before  # serving with the rejoined node among the voters
                await writers.halt()
                assert await writers.lost() == {}
                index = await _caught_up(tcp, victim)
    rejoin_s = _rejoined(cluster, victim)
    assert all("rejoining" not in cluster.log_file(n).read_text() for n in cluster.node_ids if n != victim)
    assert writers.longest_gap < MAX_GAP_S
    print(f"\n{backend} {victim} ({'leader' if victim_is_leader else 'follower'}): rejoined in {rejoin_s:.2f} s "
          f"(voter again {took:.1f} s after its process started); {writers.total} writes acknowledged, 0 lost; "
          f"longest wait for an ack {writers.longest_gap:.2f} s; caught up to index {index}")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_of_five_wiped_at_once_and_restarted_in_either_order_lose_nothing(
        backend: str, tmp_path: Path) -> None:
    """5 nodes under write load; the leader and a follower are killed together and their directories
    emptied; both are restarted with --rejoin-empty, a moment apart (Raft: the old follower first,
    multi-Paxos: the old leader first), so their rejoins overlap.  Both vote again, the three others served
    throughout (an election aside), and every acknowledged write reads back."""
    with trio.fail_after(120):
        async with open_local_tcp_cluster(tmp_path, nodes=5, backend=backend, fsync=False,
                                          rejoin_empty=True, leader_timeout=LEADER_S) as cluster:
            async with _under_load(cluster) as (tcp, writers, leader):
                follower = next(n for n in cluster.node_ids if n != leader)
                for victim in (leader, follower):
                    cluster.kill(victim)
                    wipe(cluster, victim)
                await trio.sleep(1.0)
                before = writers.total
                await trio.sleep(1.0)
                assert writers.total > before  # three of five serve while two are down
                order = (follower, leader) if backend == "raft" else (leader, follower)
                started = trio.current_time()
                for victim in order:
                    cluster.start_node(victim)
                    await trio.sleep(0.3)
                for victim in order:
                    await _voter_again(tcp, victim, timeout=60)
                took = trio.current_time() - started
                before = writers.total
                await trio.sleep(1.0)
                assert writers.total > before
                await writers.halt()
                assert await writers.lost() == {}
                assert (await tcp.membership()).voters == cluster.node_ids
                for victim in order:
                    await _caught_up(tcp, victim)
    rejoin_s = [_rejoined(cluster, victim) for victim in order]
    assert writers.longest_gap < MAX_GAP_S
    print(f"\n{backend}: {' then '.join(order)} wiped out of 5 and restarted: rejoined in "
          f"{' and '.join(f'{t:.2f}' for t in rejoin_s)} s (both voters again {took:.1f} s after the first "
          f"process started); {writers.total} writes acknowledged, 0 lost; longest wait for an ack "
          f"{writers.longest_gap:.2f} s")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_node_killed_mid_rejoin_resumes_when_restarted(backend: str, tmp_path: Path) -> None:
    """A follower's database is deleted (its COMMITS file stays: with the flag that counts as emptied) while
    the other follower is down, so the cluster cannot commit its removal: it shows ``rejoining`` and says
    once why it waits.  Killed there and restarted without the flag once the other is back, it stays out;
    restarted with it, it carries on from its removal; killed again once it has rejoined and restarted, it
    just catches up -- a voter each time, with every write in place."""
    with trio.fail_after(150):
        async with open_local_tcp_cluster(tmp_path, backend=backend, fsync=False, rejoin_empty=True,
                                          leader_timeout=LEADER_S) as cluster:
            async with open_tcp_client(cluster.cluster_file) as tcp:
                leader = await wait_for_leader(tcp, timeout=20.0)
                victim, other = (n for n in cluster.node_ids if n != leader)
                for i in range(30):
                    await tcp.submit(c.put(f"k{i}", str(i)))
                cluster.kill(victim)
                wipe(cluster, victim, database_only=True)
                cluster.kill(other)
                cluster.start_node(victim)
                await wait_for_role(tcp, victim, ("rejoining",), 45)
                with trio.fail_after(30):
                    while "rejoining: waiting to have its id removed" not in cluster.log_file(victim).read_text():
                        await trio.sleep(0.1)
                cluster.kill(victim)  # mid-rejoin: its removal asked for, not committed
                cluster.start_node(other)
                cluster.rejoin_empty = False  # restarted without the flag, it goes no further
                cluster.start_node(victim)
                await wait_for_role(tcp, victim, ("stays out",), 45)
                cluster.kill(victim)
                cluster.rejoin_empty = True
                cluster.start_node(victim)
                await _voter_again(tcp, victim, timeout=60)
                cluster.kill(victim)  # rejoined: restarted, it only has to catch up again
                cluster.start_node(victim)
                await _voter_again(tcp, victim, timeout=60)
                await _reads_back_and_catches_up(tcp, victim, 30)
    _rejoined(cluster, victim)
    log = cluster.log_file(victim).read_text()
    assert "the directory counts as emptied and the node starts afresh" in log
    runs = log.split(" ready on port ")  # what each process said: [before, original, no quorum, no flag, ...]
    assert runs[2].count("rejoining: waiting to have its id removed") == 1  # said once, not per attempt
    assert "a rejoin is under way (stage 'remove'): restart this node with --rejoin-empty" in log
    assert log.count("rejoining (stage 'remove')") == 2  # each restart picked up where it was killed
    assert "rejoining" not in cluster.log_file(other).read_text()  # an intact directory: the flag does nothing


def _damage(cluster: LocalTcpCluster, node: str, how: str) -> None:
    """Damage ``node``'s stopped database: one stored value's bytes changed (its checksum fails), or
    garbage over the database file's header (SQLite cannot read it)."""
    db = cluster.data_dir(node) / "replica.sqlite3"
    if how == "value":
        conn = sqlite3.connect(db)
        key, blob = conn.execute("SELECT key, value FROM durable ORDER BY key DESC LIMIT 1").fetchone()
        changed = bytearray(blob)
        changed[-1] ^= 0x01
        conn.execute("UPDATE durable SET value = ? WHERE key = ?", (bytes(changed), key))
        conn.commit()
        conn.close()
    else:
        conn = sqlite3.connect(db)  # everything into the file first: else the WAL's copy of page 1 masks it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        with open(db, "r+b") as f:
            f.write(b"\xff" * 100)


@pytest.mark.parametrize(("backend", "how"), [("raft", "value"), ("multipaxos", "header")])
async def test_a_node_whose_database_is_damaged_sets_it_aside_and_rejoins(
        backend: str, how: str, tmp_path: Path) -> None:
    """A follower's stopped database is damaged.  Restarted without the flag it refuses to start, with one
    clear line; restarted with --rejoin-empty it moves the database aside (kept, with the reason), rejoins
    empty under its id and votes again, and every acknowledged write reads back."""
    with trio.fail_after(120):
        async with open_local_tcp_cluster(tmp_path, backend=backend, fsync=False,
                                          leader_timeout=LEADER_S) as cluster:
            async with open_tcp_client(cluster.cluster_file) as tcp:
                leader = await wait_for_leader(tcp, timeout=20.0)
                victim = next(n for n in cluster.node_ids if n != leader)
                for i in range(20):
                    await tcp.submit(c.put(f"k{i}", str(i)))
                await _caught_up(tcp, victim)
                cluster.kill(victim)
                _damage(cluster, victim, how)
                cluster.start_node(victim)
                with trio.fail_after(30):
                    while cluster.alive(victim):
                        await trio.sleep(0.1)
                refused = cluster.log_file(victim).read_text()
                assert "damaged" in refused and "Traceback" not in refused, refused[-2000:]
                cluster.start_node(victim, rejoin_empty=True)
                await _voter_again(tcp, victim, timeout=60)
                await _reads_back_and_catches_up(tcp, victim, 20)
    _rejoined(cluster, victim)
    asides = list(cluster.data_dir(victim).glob("damaged-*"))
    assert len(asides) == 1 and (asides[0] / "replica.sqlite3").exists()
    assert "damaged" in (asides[0] / "REASON").read_text()
    assert "the damaged database is moved to" in cluster.log_file(victim).read_text()
