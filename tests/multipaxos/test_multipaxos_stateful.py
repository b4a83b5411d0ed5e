"""Multi-Paxos safety under arbitrary schedules: a Hypothesis state machine drives the cores.

The rules of :class:`stateful_network.NetworkSchedules` deliver, drop,
duplicate and reorder messages, tick nodes, crash and restart them (durable
state kept) and partition and heal the network, while clients submit and
retry commands.  :func:`multipaxos.check_invariants` runs after every single
step inside :class:`smr.testing.Network`, which also compares every applied
entry with what any node applied at that slot before; the shared invariants
add that committed prefixes agree and that every replica equals the
reference model (so replicas that applied the same prefix hold the same
state).  The ``@invariant`` methods here add what only a global observer of
the *durable* state can see, crashed nodes included: at most one value is
ever chosen per slot, a chosen value is never lost or replaced (every later
acceptance at that slot in a higher ballot carries it).  Hypothesis shrinks
any failure to a short program.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from smr.replica import ClientRequest
from smr.testing import Network

from multipaxos import ACCEPTOR_PREFIX, MultiPaxosCore, check_invariants
from stateful_network import NODES, NetworkSchedules
from synod.ballot import Ballot

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


class MultiPaxosSchedules(NetworkSchedules):
    """Random schedules of messages, time, crashes and partitions against a 3-node cluster."""

    @initialize(snapshot_every=st.sampled_from([0, 0, 2, 3]), max_batch=st.integers(1, 3),
                max_inflight=st.integers(1, 2), seed=st.integers(0, 3),
                leader=st.sampled_from([None, *NODES]))
    def boot_multipaxos(self, snapshot_every: int, max_batch: int, max_inflight: int, seed: int,
                        leader: str | None) -> None:
        """Three multi-Paxos replicas with the settings drawn, optionally with a leader elected first."""
        options = {**FAST, "snapshot_every": snapshot_every, "max_batch": max_batch,
                   "max_inflight": max_inflight}
        self.boot(Network(MultiPaxosCore, 3, options, seed, invariants=check_invariants), leader)
        self.chosen: dict[int, tuple[Ballot, Any]] = {}  # slot -> lowest ballot it was chosen in, value

    def committed_entries(self, core: Any) -> Iterable[tuple[int, ClientRequest]]:
        """The applied slots above the snapshot."""
        items: Iterable[tuple[int, ClientRequest]] = core.log.items()
        return items

    @rule()
    def converge(self) -> None:
        """Heal the network and let every live node run for an election timeout (progress happens)."""
        self.net.recover()
        self.net.tick_all(FAST["election_ticks_max"] + 2)

    @precondition(lambda self: hasattr(self, "net"))
    @invariant()
    def at_most_one_value_is_chosen_per_slot_and_it_is_never_replaced(self) -> None:
        """Over durable state (crashed nodes too): a value a majority accepted in one ballot is the
        only value chosen at its slot for ever, and every acceptance there in a higher ballot is it."""
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

    @precondition(lambda self: hasattr(self, "net"))
    @invariant()
    def nothing_chosen_is_lost(self) -> None:
        """Every applied entry equals the value chosen at its slot."""
        for slot, entry in self.net.applied.items():
            if slot in self.chosen:
                assert self.chosen[slot][1] == entry, f"slot {slot} applied {entry} but chose {self.chosen[slot]}"


MultiPaxosSchedules.TestCase.settings = settings(max_examples=300, stateful_step_count=80, deadline=None,
                                                 suppress_health_check=[HealthCheck.too_slow])
test_multipaxos_schedules = MultiPaxosSchedules.TestCase
