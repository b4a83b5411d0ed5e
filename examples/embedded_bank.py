"""The bank inside its own programs, PySyncObj's shape: no servers to start, each program is a replica.

    smr cluster init --dir /tmp/bank --app examples/bank.py:Bank
    python examples/embedded_bank.py /tmp/bank/cluster.yaml n1     # and n2, n3, in three terminals

Every program deposits 10 into its own account, waits until all three have, and prints the
balances: a call on the leader enters its core directly, one on a follower takes one hop.
"""

import sys

import trio

import smr.net
from bank import Bank


async def main(cluster_file: str, node_id: str) -> None:
    async with smr.net.open_node(cluster_file, node_id, app=Bank) as node:
        bank = node.client(Bank)
        await bank.deposit(node_id, 10)
        while True:
            balances = {n: await bank.balance(n) for n in node.node_ids}
            if 0 not in balances.values():
                break
            await trio.sleep(0.05)  # the others are still starting
        print(node_id, balances)
        await trio.sleep(1.0)  # stay a replica a little longer, so the others can finish too


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
