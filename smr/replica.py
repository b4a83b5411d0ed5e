"""The sans-IO replica contract every backend implements.

A backend is a pure state machine with no I/O, no clock and no global random.
The runtime (the simulator, the in-process live cluster, the TCP runtime)
feeds it one input at a time through :meth:`ReplicaCore.step` and gets back
one :class:`Ready` batch of outputs.

Inputs:

* :class:`Start` -- always the first input of an incarnation, carrying the
  durable state that survived (empty on first boot): a restart from durable
  storage is just a ``Start`` with a non-empty map;
* :class:`Tick` -- one logical clock tick; all timeouts count ticks;
* :class:`Receive` -- a message from a peer;
* :class:`ClientRequest` -- a command from a client, tagged with
  (client id, sequence number) so retries are de-duplicated;
* :class:`Synced` -- this node's own writes are durable up to a point: the
  runtime steps ``ready.after_sync`` once that batch's ``persist`` is synced.

**The ordering rule (persist before you promise).**  A runtime that receives a
``Ready`` must make ``ready.persist`` durable (written *and* synced) before it
sends any of ``ready.messages`` or ``ready.replies``: every vote, promise,
accepted value or acknowledged entry is on stable storage before the message
that depends on it leaves.  It must also keep batches in order: the outputs of
a later batch are never released before those of an earlier one.  Committed
entries (``ready.committed``) have already been applied by the core to its
state machine; the runtime uses them for tracing and safety checking only.

**The one exception: the leader's write in parallel with replication.**
``ready.eager`` holds messages that may leave *before* ``ready.persist`` is
durable (and before earlier batches' held outputs): a leader's
AppendEntries/Accept carrying entries it is still writing itself.  The core
then sets ``ready.after_sync`` to a :class:`Synced` input, which the runtime
steps once this batch's ``persist`` (and so every earlier write) is durable,
and never before; a crash before that loses the input with the writes.

Why this is safe (the Raft thesis, section 10.2.1; etcd raft's asynchronous
storage writes): an eager message promises nothing on the sender's behalf.
It carries only entries the leader itself proposed in its current epoch,
whose epoch (term or ballot) was made durable when it was won, so a receiver
learns nothing that a crash of the leader could contradict: if the leader
loses the unsynced entries, they are uncommitted entries of a deposed epoch,
which both protocols already overwrite or re-propose.  What must not happen
is the leader *counting itself* toward a quorum for an entry that is not yet
on its own disk: a commit reported by that count could vanish with the
leader's crash (its acknowledgement would rest on the followers alone).  So a
core counts its own copy only on the matching ``Synced`` -- the simulator's
lost-unsynced-writes model and the mutant ``count-self-before-sync`` check
exactly that.  A runtime that cannot send early may release ``eager`` with
``messages`` after the sync: that is always correct, only slower.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from typing import Any, Callable, ClassVar, Protocol, Union

import attrs

from . import wire
from .commands import Command
from .values import INT_MAX, INT_MIN, Value, canonical
# The backend registry lives in smr.registry (the built-ins table, the entry-point
# group, programmatic registration); runtimes import these three names from here.
from .registry import backend_names as backend_names
from .registry import get_backend as get_backend
from .registry import register_backend as register_backend
from .machine import StateMachine

NodeId = str


# --------------------------------------------------------------------- inputs
@attrs.frozen
class Start:
    """Boot (or reboot) the replica from the durable state that survived."""

    durable: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Tick:
    """One logical clock tick."""


TICK = Tick()


@attrs.frozen
class Receive:
    """A message ``message`` from peer ``src``."""

    src: NodeId
    message: Any


@wire.message
@attrs.frozen
class ClientRequest:
    """A client command; (client_id, seq) identifies it across retries.

    ``acked`` is the highest seq this client has had answered (so a replica
    can tell an expired session from a new one); ``time`` is the leader's log
    clock in ms, stamped when the leader appends the request (clients send 0).
    """

    client_id: str
    seq: int
    command: Command
    acked: int = 0
    time: int = 0


@wire.message
@attrs.frozen
class Synced:
    """This node's writes are durable up to log position ``index``, written in epoch ``epoch``.

    A core asks for it in ``Ready.after_sync`` and uses it to count its own
    copy of entries toward a quorum (see the module docstring); it is never
    sent between nodes.
    """

    epoch: int
    index: int


Input = Union[Start, Tick, Receive, ClientRequest, Synced]


# -------------------------------------------------------------------- outputs
@attrs.frozen
class Write:
    """Set durable key ``key`` to ``value`` (``None`` deletes it)."""

    key: str
    value: Any


@attrs.frozen
class Send:
    """Send ``message`` to peer ``dst``."""

    dst: NodeId
    message: Any


@attrs.frozen
class Committed:
    """Log position ``index`` now holds ``entry`` for ever, and has been applied."""

    index: int
    entry: Any


class ReplyStatus:
    """The ways a replica can answer a client request."""

    OK = "ok"              # applied; ``result`` holds the state machine's answer
    ERROR = "error"        # applied, and the command raised: ``result`` is {"error": kind, "message": ...}
    REDIRECT = "redirect"  # not the leader; try ``leader`` (None: unknown)
    FAIL = "fail"          # definitely not applied and never will be


@wire.message
@attrs.frozen
class Reply:
    """The answer to client request (client_id, seq).

    ``digest`` is :func:`smr.sessions.command_digest` of the command it
    answers (0 if unknown): a client takes an answer only for its own
    command, so two commands sent under one (client_id, seq) are never
    answered with each other's outcome.
    """

    client_id: str
    seq: int
    status: str
    result: Value = None
    leader: NodeId | None = None
    digest: int = 0

    def __attrs_post_init__(self) -> None:
        result = self.result  # a decoded reply's result is checked like any value (smr.values)
        if not (result is None or type(result) is bool or (type(result) is str and result.isascii()) or
                (type(result) is int and INT_MIN <= result <= INT_MAX)):
            object.__setattr__(self, "result", canonical(result, "result"))


@attrs.frozen
class Ready:
    """One batch of outputs; see the module docstring for the ordering rule.

    ``persist`` must be durable before ``messages``, ``replies`` and
    ``committed`` are released; ``eager`` may leave at once; ``after_sync``
    (if set) is stepped into the core once ``persist`` is durable.
    """

    persist: tuple[Write, ...] = ()
    messages: tuple[Send, ...] = ()
    committed: tuple[Committed, ...] = ()
    replies: tuple[Reply, ...] = ()
    eager: tuple[Send, ...] = ()
    after_sync: Synced | None = None

    @property
    def all_messages(self) -> tuple[Send, ...]:
        """Every message of the batch, eager ones first: what a runtime that syncs before sending anything sends."""
        return self.eager + self.messages if self.eager else self.messages

    def __bool__(self) -> bool:
        return self is not EMPTY and bool(self.persist or self.messages or self.committed or self.replies
                                          or self.eager or self.after_sync is not None)


#: The empty batch (shared: cores return it when an input changed nothing).
EMPTY = Ready()


class Role(enum.StrEnum):
    """Every role a core can report; a ``StrEnum``, so it prints and compares as its name."""

    FOLLOWER = "follower"
    PRECANDIDATE = "precandidate"
    CANDIDATE = "candidate"
    LEADER = "leader"
    COORDINATOR = "coordinator"  # the single coordinator's chosen node (it leads)
    REPLICA = "replica"          # any other node of the single coordinator
    PROPOSER = "proposer"        # single-decree Paxos during a ballot
    ACCEPTOR = "acceptor"
    VOTER = "voter"              # the essay's voting algorithms
    VOTED = "voted"
    NODE = "node"                # an algorithm with no roles


#: The roles whose holder orders client commands: the one rule for "who leads".
LEADING_ROLES = frozenset({Role.LEADER, Role.COORDINATOR})


@attrs.frozen
class ReplicaStatus:
    """What a replica says about itself, for tracing, faults and invariants.

    ``role`` is one of :class:`Role`; ``epoch`` is the term or ballot round;
    ``leader`` is who it believes leads.
    """

    node: NodeId
    role: str
    epoch: int
    leader: NodeId | None
    commit_index: int

    @property
    def is_leader(self) -> bool:
        """True if this replica orders client commands now (a leader or the coordinator)."""
        return self.role in LEADING_ROLES


@attrs.frozen
class ReplicaConfig:
    """Everything a core needs at construction, handed over by the runtime.

    ``rng`` is the node's private generator, seeded from the run's seed;
    ``options`` holds backend-specific settings (timeouts in ticks, features).
    """

    node: NodeId
    peers: tuple[NodeId, ...]
    rng: random.Random
    state_machine: Callable[[], StateMachine]
    options: Mapping[str, Any] = attrs.field(factory=dict)
    #: How long one tick lasts in this runtime (the leader's log clock advances by it per tick).
    tick_ms: float = 10.0
    #: The cluster's first voters (the configuration before any log entry); empty: ``members``.  A node
    #: that joins a running cluster is given them (it is not one of them) and learns the rest from the log.
    initial_voters: tuple[NodeId, ...] = ()
    #: Nonzero for a node that starts from an emptied data directory under an id the cluster removed and
    #: added again (``smr serve --rejoin-empty``): an index at or past that removal (the runtime passes one
    #: past the re-adding).  The core campaigns, votes, promises and accepts nothing until it has applied
    #: the log up to there (``readmitted``), so nothing it says can stand in for what its lost incarnation
    #: said.  0: not rejoining.
    rejoin_after: int = 0
    #: With ``rejoin_after``: an epoch at or past the one in which its re-adding was committed (the runtime
    #: passes the epoch of a node whose commit index is past it).  Raft starts its term there, so a stale
    #: leader of an older term -- one that never saw the removal and still counts the lost incarnation --
    #: cannot have its entries acknowledged by the new one.  Multi-Paxos accepts nothing before it is
    #: readmitted and needs no floor (it ignores it).  0: none.
    rejoin_epoch: int = 0

    @property
    def members(self) -> tuple[NodeId, ...]:
        """All nodes of the cluster (this one included), sorted."""
        return tuple(sorted((self.node, *self.peers)))

    @property
    def joining(self) -> bool:
        """True for a node that joins a running cluster (not one of the initial voters, or rejoining)."""
        return self.rejoin_after > 0 or (bool(self.initial_voters) and self.node not in self.initial_voters)

    @property
    def quorum(self) -> int:
        """The size of a strict majority of the cluster."""
        return len(self.members) // 2 + 1


class ReplicaCore(Protocol):
    """The sans-IO surface of a backend: one way in (``step``), one batch out."""

    backend: ClassVar[str]

    def step(self, event: Input) -> Ready:
        """Consume one input and return the outputs it caused (see module docstring)."""
        ...

    def status(self) -> ReplicaStatus:
        """Return this replica's current role, epoch, leader belief and commit index."""
        ...


@attrs.frozen
class Backend:
    """A registered protocol: how to build its cores and check their invariants.

    ``invariants`` (optional) makes a fresh checker for one run; the simulator
    calls that checker after every step with the live cores by node id, and it
    raises ``AssertionError`` naming the violated property (a checker may keep
    state across the steps of its run).  ``options`` are the defaults merged
    under a run's.  ``replicated_log`` is False for single-value (write-once)
    backends, which serve one variable rather than a log of commands.
    """

    name: str
    factory: Callable[[ReplicaConfig], ReplicaCore]
    description: str
    options: Mapping[str, Any] = attrs.field(factory=dict)
    invariants: Callable[[], Callable[[Mapping[NodeId, Any]], None]] | None = None
    replicated_log: bool = True

