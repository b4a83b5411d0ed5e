"""The Bank of examples/bank.py, unchanged, on raft and multi-Paxos: simulated under faults, then in-process.

    python examples/bank_everywhere.py
"""

import trio
from bank import Bank

import smr
from smr.sim import ClientConfig, FaultEvent, SimConfig, simulate


def simulated(backend: str) -> None:
    """Three clients call Bank's methods (drawn from its type hints) while the leader crashes."""
    config = SimConfig(backend=backend, state_machine=Bank, duration_ms=3000, clients=ClientConfig(count=3),
                       faults=(FaultEvent(1000, "crash_leader"), FaultEvent(1800, "restart_all")))
    result = simulate(config, seed=7)
    errors = sum(isinstance(op.result, dict) and "error" in op.result for op in result.history)
    print(f"{backend:10s} simulated: {len(result.history)} calls, {errors} raised in Bank, "
          f"replicas agree: {result.ok}  (replay: {result.replay})")
    assert result.ok, result.violations


async def in_process(backend: str) -> None:
    """A 3-replica cluster inside this program, called through the typed proxy."""
    async with smr.open_local_cluster(Bank, backend=backend) as cluster:
        bank = cluster.client(Bank)
        await bank.deposit("alice", 100)
        await bank.transfer("alice", "bob", 30)
        try:
            await bank.transfer("bob", "carol", 1000)
        except smr.CommandError as exc:
            print(f"{backend:10s} in-process: the cluster refused: {exc}")
        print(f"{backend:10s} in-process: alice {await bank.balance('alice')}, bob {await bank.balance('bob')}")


if __name__ == "__main__":
    for name in ("raft", "multipaxos"):
        simulated(name)
        trio.run(in_process, name)
