"""Paxos synod under an adversarial network: agreement and validity after every step (hypothesis).

The rules are the essay's faults: messages delivered in any order, dropped or
duplicated; nodes crash (volatile state lost, durable state kept) and restart;
proposals arrive anywhere at any time; ticks fire timeouts and back-off.
"""

from __future__ import annotations

import random

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from smr.replica import TICK, Ready, ReplicaConfig, Receive, Start
from smr.state_machines import WriteOnceMap
from synod import Accepted, Acceptor, PaxosSynod, Promise, Propose

NODES = ("n1", "n2", "n3")
VALUES = ("red", "green", "blue")
nodes = st.sampled_from(NODES)


class PaxosSynodMachine(RuleBasedStateMachine):
    """Drives three PaxosSynod cores by hand through an adversarial network."""

    def __init__(self) -> None:
        super().__init__()
        self.cores: dict[str, PaxosSynod] = {}
        self.durable: dict[str, dict] = {n: {} for n in NODES}
        self.incarnation = {n: 0 for n in NODES}
        self.network: list[tuple[str, str, object]] = []
        self.proposed: set[str] = set()
        self.decisions: dict[str, str] = {}
        self.options: dict = {}

    @initialize(backoff=st.booleans(), retry=st.integers(1, 4))
    def boot(self, backoff: bool, retry: int) -> None:
        self.options = {"backoff": backoff, "retry_ticks": retry, "backoff_ticks": 3, "ask_ticks": 2}
        for node in NODES:
            self._boot(node)

    # ------------------------------------------------------------- plumbing
    def _boot(self, node: str) -> None:
        self.incarnation[node] += 1
        peers = tuple(n for n in NODES if n != node)
        config = ReplicaConfig(node, peers, random.Random(f"{node}/{self.incarnation[node]}"),
                               WriteOnceMap, self.options)
        self.cores[node] = PaxosSynod(config)
        self._apply(node, self.cores[node].step(Start(dict(self.durable[node]))))

    def _apply(self, node: str, ready: Ready) -> None:
        disk = self.durable[node]
        for write in ready.persist:
            if write.value is None:
                disk.pop(write.key, None)
            else:
                disk[write.key] = write.value
        # Persist before send: whatever this batch promises or accepts is now on disk.
        on_disk = Acceptor.restore(disk)
        for send in ready.messages:
            msg = send.message
            if isinstance(msg, (Promise, Accepted)):
                assert on_disk.promised is not None and on_disk.promised >= msg.ballot
            self.network.append((node, send.dst, msg))
        core = self.cores.get(node)
        if core is not None and core.decided is not None:
            known = self.decisions.get(node)
            assert known is None or known == core.decided, f"{node} changed its decision"
            self.decisions[node] = core.decided

    def _step(self, node: str, event: object) -> None:
        core = self.cores.get(node)
        if core is not None:
            self._apply(node, core.step(event))

    # ---------------------------------------------------------------- rules
    @rule(node=nodes, value=st.sampled_from(VALUES))
    def propose(self, node: str, value: str) -> None:
        if node in self.cores:
            self.proposed.add(value)
            self._step(node, Propose(value))

    @precondition(lambda self: self.network)
    @rule(index=st.integers(0, 10_000))
    def deliver(self, index: int) -> None:
        src, dst, msg = self.network.pop(index % len(self.network))
        self._step(dst, Receive(src, msg))

    @precondition(lambda self: self.network)
    @rule(count=st.integers(1, 40), stride=st.integers(0, 3))
    def deliver_many(self, count: int, stride: int) -> None:
        """Deliver up to ``count`` messages, oldest first or skipping ``stride`` each time."""
        position = 0
        for _ in range(count):
            if not self.network:
                return
            position = (position + stride) % len(self.network)
            src, dst, msg = self.network.pop(position)
            self._step(dst, Receive(src, msg))

    @precondition(lambda self: self.network)
    @rule(index=st.integers(0, 10_000))
    def drop(self, index: int) -> None:
        self.network.pop(index % len(self.network))

    @precondition(lambda self: self.network)
    @rule(index=st.integers(0, 10_000))
    def duplicate(self, index: int) -> None:
        self.network.append(self.network[index % len(self.network)])

    @rule(node=nodes, count=st.integers(1, 6))
    def tick(self, node: str, count: int) -> None:
        for _ in range(count):
            self._step(node, TICK)

    @precondition(lambda self: len(self.cores) > 1)
    @rule(node=nodes)
    def crash(self, node: str) -> None:
        self.cores.pop(node, None)

    @rule(node=nodes)
    def restart(self, node: str) -> None:
        if node not in self.cores:
            self._boot(node)

    # ----------------------------------------------------------- invariants
    @invariant()
    def agreement(self) -> None:
        """No two nodes ever decide different values (across crashes and restarts)."""
        assert len(set(self.decisions.values())) <= 1, self.decisions

    @invariant()
    def validity(self) -> None:
        """Every decided value was proposed."""
        assert set(self.decisions.values()) <= self.proposed


TestPaxosSynodAdversarialNetwork = PaxosSynodMachine.TestCase
TestPaxosSynodAdversarialNetwork.settings = settings(max_examples=200, stateful_step_count=50,
                                                     deadline=None)
