"""Helpers for tests on real clusters of ``smr serve`` processes (tests/net/): finding the leader, reading
roles, emptying a node's data directory, and writers whose acknowledged writes must all read back."""

from __future__ import annotations

import shutil

import trio

from smr import commands as c
from smr.net import LocalTcpCluster, TcpCluster


def wipe(cluster: LocalTcpCluster, node: str, database_only: bool = False) -> None:
    """Empty ``node``'s data directory; ``database_only``: delete just ``replica.sqlite3*`` (the count of
    acknowledged batches, ``COMMITS``, stays behind, as when the probe wiped nodes)."""
    if database_only:
        for path in cluster.data_dir(node).glob("replica.sqlite3*"):
            path.unlink()
    else:
        shutil.rmtree(cluster.data_dir(node))


async def wait_for_leader(tcp: TcpCluster, timeout: float = 15.0) -> str:
    """The current leader, waiting out an election in progress."""
    with trio.fail_after(timeout):
        while (found := await tcp.find_leader(timeout=0.5)) is None:
            await trio.sleep(0.05)
    return found


async def roles(tcp: TcpCluster) -> dict[str, str | None]:
    """Every node's role as it reports it (None: no answer)."""
    return {node: (report.role if report else None) for node, report in (await tcp.statuses(timeout=1.0)).items()}


async def wait_for_role(tcp: TcpCluster, node: str, wanted: tuple[str, ...], timeout: float) -> None:
    """Wait until ``node`` reports one of the ``wanted`` roles (TimeoutError after ``timeout`` s)."""
    with trio.fail_after(timeout):
        while (await roles(tcp)).get(node) not in wanted:
            await trio.sleep(0.1)


class Writers:
    """Clients that put increasing numbers under keys of their own until stopped; an attempt that gets no
    answer is not counted, so ``acked`` holds each key's last *acknowledged* number."""

    def __init__(self, tcp: TcpCluster, count: int = 3) -> None:
        self.tcp = tcp
        self.count = count
        self.acked: dict[str, int] = {}
        self.stopped = trio.Event()
        self.done = trio.Event()
        #: When the last write was acknowledged, and the longest wait between two acknowledgements (s).
        self.last_ack: float | None = None
        self.longest_gap = 0.0

    @property
    def total(self) -> int:
        """Writes acknowledged so far."""
        return sum(self.acked.values())

    async def run(self) -> None:
        """Run every writer until :meth:`stop` (start it in a nursery)."""
        async with trio.open_nursery() as nursery:
            for w in range(self.count):
                nursery.start_soon(self._writer, f"w{w}")
        self.done.set()

    async def halt(self) -> None:
        """Stop the writers and wait until the last of them has its last write answered."""
        self.stop()
        await self.done.wait()

    async def _writer(self, key: str) -> None:
        session = self.tcp.client()
        for i in range(1, 10**6):
            try:
                await session.submit(c.put(key, str(i)), timeout=0.5, attempts=200)
            except TimeoutError:
                continue  # unknown outcome: not counted as acknowledged
            self.acked[key] = i
            now = trio.current_time()
            if self.last_ack is not None:
                self.longest_gap = max(self.longest_gap, now - self.last_ack)
            self.last_ack = now
            if self.stopped.is_set():
                return

    def stop(self) -> None:
        """Let every writer finish the write it is making, then stop."""
        self.stopped.set()

    async def lost(self) -> dict[str, tuple[int, int | None]]:
        """The keys whose value reads back below the last acknowledged one: key -> (acknowledged, read)."""
        reader = self.tcp.client()
        lost = {}
        for key, value in sorted(self.acked.items()):
            read = await reader.submit(c.get(key))
            if read is None or int(str(read)) < value:
                lost[key] = (value, None if read is None else int(str(read)))
        return lost
