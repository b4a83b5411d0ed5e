"""examples/bank.py with PySyncObj: `python bank_pysyncobj.py SELF PARTNER PARTNER` once per node."""

import sys
import time

from pysyncobj import SyncObj, replicated


class Bank(SyncObj):
    def __init__(self, self_address, partners):
        super().__init__(self_address, partners)
        self.accounts = {}

    @replicated
    def deposit(self, account, amount):
        if amount <= 0:
            raise ValueError("a deposit must be positive")
        self.accounts[account] = self.accounts.get(account, 0) + amount
        return self.accounts[account]

    @replicated
    def transfer(self, source, target, amount):
        if self.accounts.get(source, 0) < amount:
            raise ValueError(f"{source} cannot pay {amount}")
        self.accounts[source] -= amount
        self.accounts[target] = self.accounts.get(target, 0) + amount

    def balance(self, account):
        return self.accounts.get(account, 0)


if __name__ == "__main__":
    bank = Bank(sys.argv[1], sys.argv[2:])
    while not bank.isReady():
        time.sleep(0.1)
    bank.deposit("alice", 100, sync=True)
    bank.transfer("alice", "bob", 30, sync=True)
    print("alice", bank.balance("alice"), "bob", bank.balance("bob"))
