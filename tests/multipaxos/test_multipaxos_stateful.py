"""Multi-Paxos safety under arbitrary schedules: a Hypothesis state machine drives the cores.

Rules deliver, drop, duplicate and reorder messages, tick nodes, crash and
restart them (durable state kept) and partition and heal the network, while
clients submit and retry commands.  :func:`multipaxos.check_invariants` runs
after every single step inside :class:`smr.testing.Network`, which also
compares every applied entry with what any node applied at that slot before.
The ``@invariant`` methods add what only a global observer of the *durable*
state can see, crashed nodes included: at most one value is ever chosen per
slot, a chosen value is never lost or replaced (every later acceptance at
that slot in a higher ballot carries it), and replicas that applied the same
prefix hold the same state.  Hypothesis shrinks any failure to a short program.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from smr.commands import get, put
from smr.replica import ClientRequest
from smr.testing import Network

from multipaxos import ACCEPTOR_PREFIX, MultiPaxosCore, check_invariants
from synod.ballot import Ballot

NODES = ("n1", "n2", "n3")
FAST = {"election_ticks_min": 4, "election_ticks_max": 8, "heartbeat_ticks": 1, "backoff_ticks_max": 4}
SLOT_PREFIX = f"{ACCEPTOR_PREFIX}slot/"


def durable_votes(net: Network) -> dict[int, list[tuple[Ballot, Any]]]:
    """Every node's durably accepted (ballot, value) per slot, crashed nodes included."""
    votes: dict[int, list[tuple[Ballot, Any]]] = {}
    for durable in net.durable.values():
        for key, value in durable.items():
            if key.startswith(SLOT_PREFIX):
                votes.setdefault(int(key[len(SLOT_PREFIX):]), []).append((Ballot.from_json(value[0]), value[1]))
    return votes


class MultiPaxosSchedules(RuleBasedStateMachine):
    """Random schedules of messages, time, crashes and partitions against a 3-node cluster."""

    net: Network

    @initialize(snapshot_every=st.sampled_from([0, 0, 2, 3]), max_batch=st.integers(1, 3),
                max_inflight=st.integers(1, 2), seed=st.integers(0, 3),
                leader=st.sampled_from([None, *NODES]))
    def boot(self, snapshot_every: int, max_batch: int, max_inflight: int, seed: int,
             leader: str | None) -> None:
        options = {**FAST, "snapshot_every": snapshot_every, "max_batch": max_batch,
                   "max_inflight": max_inflight}
        self.net = Network(MultiPaxosCore, 3, options, seed, invariants=check_invariants)
        if leader is not None:
            self.net.elect(leader)
        self.seq = 0
        self.sent: list[ClientRequest] = []
        self.chosen: dict[int, tuple[Ballot, Any]] = {}  # slot -> lowest ballot it was chosen in, value

    # ------------------------------------------------------------ clients
    @rule(node=st.sampled_from([None, None, *NODES]), key=st.sampled_from(["a", "b"]), read=st.booleans(),
          client=st.sampled_from(["c1", "c2"]))
    def client_request(self, node: str | None, key: str, read: bool, client: str) -> None:
        """A new command, to the current leader (node None) or to a given node."""
        node = node or self.net.leader()
        if node in self.net.cores:
            self.seq += 1
            request = ClientRequest(client, self.seq, get(key) if read else put(key, str(self.seq)))
            self.sent.append(request)
            self.net.step(node, request)

    @precondition(lambda self: self.sent)
    @rule(node=st.sampled_from([None, *NODES]), i=st.integers(0, 1000))
    def client_retry(self, node: str | None, i: int) -> None:
        """An earlier command again, same client and sequence number."""
        node = node or self.net.leader()
        if node in self.net.cores:
            self.net.step(node, self.sent[i % len(self.sent)])

    # ------------------------------------------------------------ messages
    @precondition(lambda self: self.net.in_flight)
    @rule(i=st.integers(0, 1000))
    def deliver(self, i: int) -> None:
        self.net.deliver(i % len(self.net.in_flight))

    @precondition(lambda self: self.net.in_flight)
    @rule(i=st.integers(0, 1000))
    def drop(self, i: int) -> None:
        self.net.drop(i % len(self.net.in_flight))

    @precondition(lambda self: self.net.in_flight)
    @rule(i=st.integers(0, 1000))
    def duplicate(self, i: int) -> None:
        self.net.duplicate(i % len(self.net.in_flight))

    @rule()
    def deliver_all(self) -> None:
        self.net.stabilize()

    # ------------------------------------------------------------ time
    @rule(node=st.sampled_from(NODES), n=st.integers(1, 10))
    def tick(self, node: str, n: int) -> None:
        self.net.tick(node, n)

    @rule(n=st.integers(1, 12))
    def run_for(self, n: int) -> None:
        """Let time pass on every node with prompt delivery (elections and commits happen)."""
        self.net.tick_all(n)

    @rule()
    def converge(self) -> None:
        """Heal the network and let every live node run for an election timeout (progress happens)."""
        self.net.recover()
        self.net.tick_all(FAST["election_ticks_max"] + 2)

    # ------------------------------------------------------------ faults
    @precondition(lambda self: len(self.net.cores) > 1)
    @rule(node=st.sampled_from(NODES))
    def crash(self, node: str) -> None:
        if node in self.net.cores:
            self.net.crash(node)

    @rule(node=st.sampled_from(NODES))
    def restart(self, node: str) -> None:
        if node not in self.net.cores:
            self.net.restart(node)

    @rule(node=st.sampled_from(NODES))
    def isolate(self, node: str) -> None:
        self.net.isolate(node)

    @rule(a=st.sampled_from(NODES), b=st.sampled_from(NODES))
    def partition(self, a: str, b: str) -> None:
        if a != b:
            self.net.cut(a, b)

    @rule()
    def heal(self) -> None:
        self.net.recover()

    # ------------------------------------------------------------ invariants
    @invariant()
    def multipaxos_invariants(self) -> None:
        """The backend's invariants over the live cores (one value per slot, chosen values stick)."""
        if hasattr(self, "net"):
            self.net.check()

    @invariant()
    def at_most_one_value_is_chosen_per_slot_and_it_is_never_replaced(self) -> None:
        """Over durable state (crashed nodes too): a value a majority accepted in one ballot is the
        only value chosen at its slot for ever, and every acceptance there in a higher ballot is it."""
        if not hasattr(self, "net"):
            return
        quorum = len(NODES) // 2 + 1
        for slot, votes in durable_votes(self.net).items():
            for ballot, value in set((b, v) for b, v in votes):
                if votes.count((ballot, value)) < quorum:
                    continue
                known = self.chosen.get(slot)
                assert known is None or known[1] == value, \
                    f"one value per slot: slot {slot} chose {known} and then {(ballot, value)}"
                if known is None or ballot < known[0]:
                    self.chosen[slot] = (ballot, value)
            if slot in self.chosen:
                chosen_in, value = self.chosen[slot]
                for ballot, other in votes:
                    assert not (ballot > chosen_in and other != value), \
                        f"chosen values stick: slot {slot} chose {value!r} in {chosen_in} " \
                        f"but {other!r} was accepted in {ballot}"

    @invariant()
    def nothing_chosen_is_lost_and_applied_prefixes_agree(self) -> None:
        """Every applied entry equals the value chosen at its slot, every live log equals the
        canonical applied history, and replicas with the same applied prefix hold the same state."""
        if not hasattr(self, "net"):
            return
        for slot, entry in self.net.applied.items():
            if slot in self.chosen:
                assert self.chosen[slot][1] == entry, f"slot {slot} applied {entry} but chose {self.chosen[slot]}"
        states: dict[int, bytes] = {}
        for node, core in self.net.cores.items():
            for slot, entry in core.log.items():
                assert self.net.applied[slot] == entry, f"{node} holds {entry} at slot {slot}"
            state = core.applier.snapshot()
            assert states.setdefault(core.applied, state) == state, \
                f"{node} applied {core.applied} slots but its state differs from another replica's"


MultiPaxosSchedules.TestCase.settings = settings(max_examples=300, stateful_step_count=80, deadline=None,
                                                 suppress_health_check=[HealthCheck.too_slow])
test_multipaxos_schedules = MultiPaxosSchedules.TestCase
