"""A disk that refuses writes (full, failing) is a state a node sits out, not a crash.

The leader's storage starts refusing every commit (as SQLite does on ENOSPC)
while clients write: the node stays up, says so once in its log, promises
nothing, the others elect a leader and keep serving; once writes succeed the
node restarts its replica from disk and catches up.  Every acknowledged
write is read back at the end.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
import trio
from app_fixtures import Ledger

from smr.net import Node, open_tcp_client

from test_embedded_node import three_nodes


class FailingDisk:
    """Wraps a node's Storage.commit: while ``full``, every commit raises SQLite's ENOSPC error."""

    def __init__(self, commit: object) -> None:
        self.commit = commit
        self.full = False
        self.refused = 0

    def __call__(self, writes: object) -> None:
        if self.full:
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        self.commit(writes)  # type: ignore[operator]


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
async def test_a_leader_whose_disk_fills_sits_out_and_rejoins_losing_nothing(
        backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="smr.net")
    async with three_nodes(tmp_path, backend, fsync=False) as nodes:
        with trio.fail_after(60):
            victim: Node = next(n for n in nodes if n.is_leader)
            storage = victim.server.storage
            assert storage is not None
            disk = FailingDisk(storage.commit)
            storage.commit = disk  # type: ignore[method-assign]
            acked: dict[str, int] = {}

            async with open_tcp_client(tmp_path / "cluster.yaml") as tcp:
                async def writer(w: int) -> None:
                    ledger = tcp.client(Ledger)
                    for i in range(1, 1_000_000):
                        acked[f"w{w}"] = await ledger.credit(f"w{w}", 1)
                        if stop.is_set():
                            return

                stop = trio.Event()
                async with trio.open_nursery() as nursery:
                    for w in range(4):
                        nursery.start_soon(writer, w)
                    await trio.sleep(0.3)
                    disk.full = True
                    with trio.fail_after(20):  # the others elect a leader and go on serving
                        while disk.refused == 0 or not any(n.is_leader for n in nodes if n is not victim):
                            await trio.sleep(0.05)
                    assert victim.status().role == "disk fault" and victim.server.disk_fault is not None
                    served = dict(acked)
                    await trio.sleep(1.0)
                    assert sum(acked.values()) > sum(served.values())  # acknowledged while it sat out
                    disk.full = False
                    with trio.fail_after(20):  # it restarts from disk and catches up
                        while victim.server.disk_fault is not None:
                            await trio.sleep(0.05)
                        leader = next(n for n in nodes if n.is_leader)
                        while victim.status().commit_index < leader.status().commit_index - 50:
                            await trio.sleep(0.05)
                    stop.set()
                reader = tcp.client(Ledger)
                for key, value in acked.items():  # nothing acknowledged was lost
                    assert await reader.credit(key, 0) >= value
            assert victim.status().counters["disk_faults"] >= 1
            sit_outs = [r for r in caplog.records if "the disk refused a write" in r.getMessage()]
            assert 1 <= len(sit_outs) <= victim.status().counters["disk_faults"]  # once per fault, not per input
