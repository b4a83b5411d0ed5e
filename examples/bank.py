"""A replicated bank: `smr cluster up --app examples/bank.py:Bank`, then `python examples/bank.py CLUSTER_FILE`."""

import sys

import smr


class Bank(smr.StateMachine):
    def __init__(self) -> None:
        self.accounts: dict[str, int] = {}

    @smr.command
    def deposit(self, account: str, amount: int) -> int:
        if amount <= 0:
            raise ValueError("a deposit must be positive")
        self.accounts[account] = self.accounts.get(account, 0) + amount
        return self.accounts[account]

    @smr.command
    def transfer(self, source: str, target: str, amount: int) -> None:
        if self.accounts.get(source, 0) < amount:
            raise ValueError(f"{source} cannot pay {amount}")
        self.accounts[source] -= amount
        self.accounts[target] = self.accounts.get(target, 0) + amount

    @smr.query
    def balance(self, account: str) -> int:
        return self.accounts.get(account, 0)


if __name__ == "__main__":
    with smr.connect(sys.argv[1], Bank) as bank:
        bank.deposit("alice", 100)
        bank.transfer("alice", "bob", 30)
        print("alice", bank.balance("alice"), "bob", bank.balance("bob"))
