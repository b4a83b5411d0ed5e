"""A lock service with leases (smr.ReplLockManager): two workers share a job; a crashed holder's lease runs out.

    python examples/locks.py [raft|multipaxos]
"""

import sys

import trio

import smr


async def worker(locks: smr.AppClient[smr.ReplLockManager], name: str, done: list[str]) -> None:
    """Take the lock, do the job while holding it, release it."""
    while not await locks.acquire("job", name, 0.5):
        await trio.sleep(0.05)
    done.append(f"{name} took the lock")
    await trio.sleep(0.1)
    assert await locks.holder("job") == name
    await locks.release("job", name)


async def main(backend: str) -> None:
    async with smr.open_local_cluster(smr.ReplLockManager, backend=backend) as cluster:
        locks = cluster.client(smr.ReplLockManager)
        done: list[str] = []
        async with trio.open_nursery() as nursery:
            for name in ("worker-1", "worker-2"):
                nursery.start_soon(worker, cluster.client(smr.ReplLockManager), name, done)
        print("\n".join(done))
        # A holder that vanishes without releasing: its lease (0.3 s of log time) runs out.
        assert await locks.acquire("job", "crashed-worker", 0.3)
        assert not await locks.acquire("job", "worker-3", 0.3)
        while not await locks.acquire("job", "worker-3", 0.3):
            await trio.sleep(0.05)  # each attempt is a log entry: log time moves on
        print(f"{backend}: worker-3 took the lock after the crashed worker's lease ran out")


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "raft")
