"""The one wrapper every runtime puts around a core (like etcd raft's ``RawNode``).

A runtime -- the simulator, the in-process live cluster, the TCP server, the
test network, the essay's schedulers -- never steps a core directly; it steps
a :class:`Driver`, which keeps the parts of the :mod:`smr.replica` contract
that are the same for every core and every runtime:

* the first input of an incarnation is :class:`~smr.replica.Start`, and only
  the first (a misuse is a :class:`~smr.errors.LocalProtocolError` naming the
  node, the core and the input);
* an input of a type the core does not take is a ``LocalProtocolError``, not
  whatever the core happens to raise;
* a :class:`~smr.errors.RemoteProtocolError` from the core (a peer sent
  garbage) is counted, kept (the last message) and handed to an optional hook,
  and the step returns the empty batch: the replica keeps serving;
* after a non-empty batch the driver compares the core's status with the last
  one and notes when the node *became leader* of a new epoch
  (:attr:`Driver.became_leader`), so every runtime counts and logs leader
  changes the same way.

Beside it live the other rules every runtime shares: :func:`apply_writes` (a
batch's writes onto a durable map), :func:`current_leader` (who leads, among
several status claims) and :class:`CommitLedger` (the one canonical commit
history a run's replicas must agree with).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Generic, Protocol, TypeVar

from .errors import LocalProtocolError, RemoteProtocolError
from .replica import (EMPTY, LEADING_ROLES, ClientRequest, Committed, NodeId, Ready, ReplicaCore,
                      ReplicaStatus, Receive, Start, Synced, Tick, Write)

#: The inputs every core takes once started; a core adds its own local inputs in ``local_inputs``.
CONTRACT_INPUTS: tuple[type, ...] = (Tick, Receive, ClientRequest, Synced)

CoreT = TypeVar("CoreT", bound=ReplicaCore)

#: Called with the node and the error when the core rejects a peer's input.
RejectHook = Callable[[NodeId, RemoteProtocolError], None]


class Driver(Generic[CoreT]):
    """One incarnation of one replica: its core, wrapped so every runtime steps it the same way.

    Args:
        core: a freshly built core (``Backend.factory(config)``); it gets ``Start`` next.
        node: the replica's id, for error messages (default: what the core's status says).
        on_reject: called as ``on_reject(node, error)`` when the core raises
            ``RemoteProtocolError``, e.g. to log ``REJECT ...``.

    A core may declare extra local inputs it takes (e.g. the essay's
    ``Propose``) as a class attribute ``local_inputs: tuple[type, ...]``.
    """

    def __init__(self, core: CoreT, node: NodeId | None = None, *,
                 on_reject: RejectHook | None = None) -> None:
        self.core = core
        self._node = node
        self.on_reject = on_reject
        local: tuple[type, ...] = tuple(getattr(core, "local_inputs", ()))
        self._inputs = frozenset((*CONTRACT_INPUTS, *local))
        self._accepts: frozenset[type] = frozenset()  # nothing until Start (the slow path checks it)
        self.started = False
        #: How many inputs the core rejected as a peer's protocol error.
        self.remote_errors = 0
        #: The message of the latest such rejection.
        self.last_reject: str | None = None
        #: True if the latest input was rejected (its step returned the empty batch).
        self.rejected = False
        #: The epoch in which the latest step made this node leader, else None.
        self.became_leader: int | None = None
        #: How many times this incarnation became leader (of a new epoch).
        self.leader_changes = 0
        #: The status after the latest non-empty batch (None before the first one).
        self.last_status: ReplicaStatus | None = None
        self._leader_epoch: int | None = None

    @property
    def node(self) -> NodeId:
        """The replica's id."""
        if self._node is None:
            self._node = self.core.status().node
        return self._node

    def step(self, event: Any) -> Ready:
        """Feed one input to the core and return its batch (the empty one if a peer's input was rejected)."""
        self.became_leader = None
        self.rejected = False
        if type(event) not in self._accepts:
            self._admit(event)
        try:
            ready = self.core.step(event)
        except RemoteProtocolError as exc:
            self.rejected = True
            self.remote_errors += 1
            self.last_reject = str(exc)
            if self.on_reject is not None:
                self.on_reject(self.node, exc)
            return EMPTY
        if ready:
            # A replica cannot become leader without saying something (a heartbeat, a
            # no-op entry), so leadership is only looked at after a non-empty batch.
            status = self.core.status()
            self.last_status = status
            if status.is_leader:
                if status.epoch != self._leader_epoch:
                    self._leader_epoch = status.epoch
                    self.leader_changes += 1
                    self.became_leader = status.epoch
            else:
                self._leader_epoch = None
        return ready

    def synced(self, ready: Ready) -> Ready:
        """Step ``ready.after_sync`` (call it once ``ready.persist`` is durable); the empty batch if unset."""
        if ready.after_sync is None:
            return EMPTY
        return self.step(ready.after_sync)

    def status(self) -> ReplicaStatus:
        """The core's current role, epoch, leader belief and commit index."""
        return self.core.status()

    def _admit(self, event: Any) -> None:
        """Check an input outside the fast path: ``Start`` first and once, known types only."""
        if isinstance(event, Start):
            if self.started:
                raise LocalProtocolError(
                    f"{self.node}: Start given twice to one incarnation of {type(self.core).__name__} "
                    f"({event!r}); a restart needs a new core")
            self.started = True
            self._accepts = self._inputs
            return
        if not self.started:
            raise LocalProtocolError(
                f"{self.node}: {type(self.core).__name__} must get Start first, not {event!r}")
        if not isinstance(event, tuple(self._inputs)):
            names = ", ".join(sorted(t.__name__ for t in self._inputs))
            raise LocalProtocolError(
                f"{self.node}: {type(self.core).__name__} cannot step {event!r} "
                f"(it takes Start, then {names})")


def apply_writes(durable: MutableMapping[str, Any], writes: Iterable[Write]) -> None:
    """Apply ``writes`` in order to the durable map ``durable`` (a ``None`` value deletes the key)."""
    for write in writes:
        if write.value is None:
            durable.pop(write.key, None)
        else:
            durable[write.key] = write.value


class LeaderClaim(Protocol):
    """What a node says about itself: enough to pick the leader (a ReplicaStatus, a TCP StatusReport)."""

    @property
    def node(self) -> NodeId:
        """The node making the claim."""
        ...

    @property
    def role(self) -> str:
        """Its role (one of :class:`smr.replica.Role`)."""
        ...

    @property
    def epoch(self) -> int:
        """Its term or ballot round."""
        ...


def current_leader(claims: Iterable[LeaderClaim]) -> NodeId | None:
    """The node whose claim to lead has the highest epoch (the first such on a tie), if any claims to.

    A claim leads if its role is a leading role (``ReplicaStatus.is_leader``:
    a leader or the coordinator).
    """
    best: LeaderClaim | None = None
    for claim in claims:
        if claim.role in LEADING_ROLES and (best is None or claim.epoch > best.epoch):
            best = claim
    return None if best is None else best.node


_MISSING = object()


class CommitLedger:
    """The one canonical commit history of a run: each node commits in order, and agrees with it.

    Every committed entry any replica reports goes through :meth:`record`; a
    node's commits must have increasing indexes within one incarnation (call
    :meth:`boot` when it restarts: it re-applies from its snapshot), and an
    index must hold the same entry at every node that commits it.  A breach
    raises ``error`` (``AssertionError`` unless given) naming the node, index
    and entries.

    Args:
        error: the exception class to raise (e.g. the simulator's ``SafetyViolation``).
    """

    def __init__(self, error: Callable[[str], Exception] = AssertionError) -> None:
        self.error = error
        #: index -> the entry committed there (the first report of it).
        self.entries: dict[int, Any] = {}
        self._last: dict[NodeId, int] = {}

    def boot(self, node: NodeId) -> None:
        """Forget ``node``'s position: a new incarnation commits again from its snapshot."""
        self._last[node] = 0

    def last(self, node: NodeId) -> int:
        """The highest index ``node`` committed in this incarnation (0 if none)."""
        return self._last.get(node, 0)

    def record(self, node: NodeId, committed: Committed) -> None:
        """Check and record that ``node`` committed ``committed``; raise ``error`` if that is unsafe."""
        index = committed.index
        last = self._last.get(node, 0)
        if index <= last:
            raise self.error(f"{node} committed index {index} after index {last}")
        self._last[node] = index
        known = self.entries.get(index, _MISSING)
        if known is _MISSING:
            self.entries[index] = committed.entry
        elif known != committed.entry:
            raise self.error(f"state machine safety: {node} committed {committed.entry!r} at index "
                             f"{index}, but {known!r} was committed there before")
