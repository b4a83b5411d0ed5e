"""One Hypothesis state machine for every replicated-log backend, subclassed per backend.

:class:`NetworkSchedules` drives a 3-node :class:`smr.testing.Network` with
rules that deliver, drop, duplicate and reorder messages, tick nodes, crash
and restart them (durable state kept), partition and heal the network, while
clients submit and retry commands.  The network itself runs the backend's
invariants after every single step and compares every applied entry with what
any node applied at that index before.  The ``@invariant`` methods here add,
after every rule:

* the backend's invariants over the live cores;
* **committed prefixes agree**: every live node's committed entries equal the
  canonical committed history;
* **the reference model**: every live replica's state machine (with its client
  sessions) equals a lone replica that applied the canonical history up to the
  same index, and every OK reply to a logged command carries a result that
  lone replica produced for that command.

A subclass supplies an ``@initialize`` rule that calls :meth:`boot` with its
network, says where a core keeps its committed entries
(:meth:`committed_entries`), and may add its own rules and invariants (the
multi-Paxos one adds ``converge``).
Hypothesis shrinks any failure to a short program of these rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from smr.commands import Scalar, get, put
from smr.replica import ClientRequest, Reply, ReplyStatus
from smr.sessions import Applier
from smr.state_machines import KVStore, StateMachine
from smr.testing import Network

NODES = ("n1", "n2", "n3")


class ReferenceModel:
    """The state machine replayed alone over the canonical committed history, index by index."""

    def __init__(self, state_machine: Callable[[], StateMachine], core: Any) -> None:
        self.applier = Applier(state_machine, membership=core.initial_membership,
                               joint_consensus=core.joint_consensus)
        self.states: list[bytes] = [self.applier.snapshot()]   # states[k]: after applying 1..k
        self.results: dict[tuple[str, int], list[Scalar]] = {}  # (client, seq) -> results in the log

    def advance(self, history: Mapping[int, ClientRequest]) -> None:
        """Apply every entry of ``history`` that follows the last one applied, in index order."""
        while len(self.states) in history:
            entry = history[len(self.states)]
            _, result = self.applier.apply(entry)
            if entry.client_id:
                self.results.setdefault((entry.client_id, entry.seq), []).append(result)
            self.states.append(self.applier.snapshot())

    def state_after(self, index: int) -> bytes | None:
        """The state after applying entries 1..index (None if the history does not reach it yet)."""
        return self.states[index] if index < len(self.states) else None


def _live(self: "NetworkSchedules") -> bool:
    return hasattr(self, "net")


class NetworkSchedules(RuleBasedStateMachine):
    """Random schedules of messages, time, crashes, partitions and clients against 3 nodes."""

    net: Network
    #: The replicated state machine the subclass's network runs (the reference model replays it).
    state_machine: Callable[[], StateMachine] = KVStore

    # ------------------------------------------------------------ set-up (called by a subclass)
    def boot(self, net: Network, leader: str | None) -> None:
        """Start the run on ``net``, electing ``leader`` first when one is given."""
        self.net = net
        if leader is not None:
            net.elect(leader)
        self.seq = 0
        self.sent: list[ClientRequest] = []
        self.model = ReferenceModel(self.state_machine, next(iter(net.cores.values())))
        self.model_checked: dict[int, tuple[Any, int]] = {}  # id(core) -> (core, applied) last matched
        self.replies_seen = 0
        self.replies_open: list[Reply] = []  # OK replies whose command is not in the history yet

    def committed_entries(self, core: Any) -> Iterable[tuple[int, ClientRequest]]:
        """The (index, entry) pairs ``core`` holds as committed; a subclass says where they live."""
        raise NotImplementedError

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
        """Deliver one in-flight message, in any order."""
        self.net.deliver(i % len(self.net.in_flight))

    @precondition(lambda self: self.net.in_flight)
    @rule(i=st.integers(0, 1000))
    def drop(self, i: int) -> None:
        """Lose one in-flight message."""
        self.net.drop(i % len(self.net.in_flight))

    @precondition(lambda self: self.net.in_flight)
    @rule(i=st.integers(0, 1000))
    def duplicate(self, i: int) -> None:
        """Deliver one in-flight message twice (a copy joins the end of the queue)."""
        self.net.duplicate(i % len(self.net.in_flight))

    @rule()
    def deliver_all(self) -> None:
        """Deliver until no message is in flight."""
        self.net.stabilize()

    # ------------------------------------------------------------ time
    @rule(node=st.sampled_from(NODES), n=st.integers(1, 10))
    def tick(self, node: str, n: int) -> None:
        """Let time pass on one node, delivering nothing."""
        self.net.tick(node, n)

    @rule(n=st.integers(1, 12))
    def run_for(self, n: int) -> None:
        """Let time pass on every node with prompt delivery (elections and commits happen)."""
        self.net.tick_all(n)

    # ------------------------------------------------------------ faults
    @precondition(lambda self: len(self.net.cores) > 1)
    @rule(node=st.sampled_from(NODES))
    def crash(self, node: str) -> None:
        """Crash a node (never the last live one): its volatile state is gone."""
        if node in self.net.cores:
            self.net.crash(node)

    @rule(node=st.sampled_from(NODES))
    def restart(self, node: str) -> None:
        """Restart a crashed node from its durable state."""
        if node not in self.net.cores:
            self.net.restart(node)

    @rule(node=st.sampled_from(NODES))
    def isolate(self, node: str) -> None:
        """Cut every link of one node."""
        self.net.isolate(node)

    @rule(a=st.sampled_from(NODES), b=st.sampled_from(NODES))
    def partition(self, a: str, b: str) -> None:
        """Cut the link between two nodes."""
        if a != b:
            self.net.cut(a, b)

    @rule()
    def heal(self) -> None:
        """Restore every link."""
        self.net.recover()

    # ------------------------------------------------------------ invariants
    @precondition(_live)
    @invariant()
    def backend_invariants(self) -> None:
        """The backend's own safety invariants over the live cores."""
        self.net.check()

    @precondition(_live)
    @invariant()
    def committed_prefixes_agree(self) -> None:
        """Every live node's committed entries equal the canonical committed history."""
        for node, core in self.net.cores.items():
            for index, entry in self.committed_entries(core):
                assert self.net.applied[index] == entry, f"{node} holds {entry} at index {index}"

    @precondition(_live)
    @invariant()
    def replicas_equal_the_reference_model(self) -> None:
        """Each live replica's state (machine and sessions) is the reference model's after the same
        prefix, and every OK reply to a logged command carries a result the model produced for it.

        A replica's state changes only when it applies entries or installs a
        snapshot, both of which move its applied index, so a replica is compared
        again only once that index (or the core object, after a restart) changed.
        """
        model = self.model
        model.advance(self.net.applied)
        for node, core in self.net.cores.items():
            applied = core.status().commit_index
            seen = self.model_checked.get(id(core))
            if seen is not None and seen[0] is core and seen[1] == applied:
                continue
            expected = model.state_after(applied)
            assert expected is not None, f"{node} applied {applied} entries, beyond the canonical history"
            assert core.applier.snapshot() == expected, \
                f"{node} applied {applied} entries but its state differs from the reference model's"
            self.model_checked[id(core)] = (core, applied)
        replies = self.net.replies
        self.replies_open.extend(r for r in replies[self.replies_seen:] if r.status == ReplyStatus.OK)
        self.replies_seen = len(replies)
        still_open: list[Reply] = []
        for reply in self.replies_open:
            results = model.results.get((reply.client_id, reply.seq))
            if results is None:
                still_open.append(reply)  # a read served without the log, or not in the history yet
                continue
            assert reply.result in results, \
                f"{reply.client_id}#{reply.seq} was answered {reply.result!r}; the model gave {results}"
        self.replies_open = still_open
