"""A small in-memory network of sans-IO cores for tests (like etcd raft's ``network`` helper).

:class:`Network` drives the cores of any backend synchronously:
messages wait in one list until delivered (in order, one by one, or all
"until quiet"); links can be cut, nodes isolated, messages dropped by a
predicate, duplicated or delivered out of order; nodes crash and restart.
Persistence is honoured: each node's durable map is updated from
``Ready.persist`` (synced at once, before its messages join the network; a
leader's ``Ready.eager`` messages go first), then the batch's ``after_sync``
input is stepped, and a restart hands that map back in ``Start``.  With
``hold_syncs`` a node's batches wait, in order, until :meth:`Network.sync`
makes them durable (only their eager messages leave at once), and a crash
loses every batch still waiting, ``after_sync`` included.  After every step the backend's
invariants run (when given), and every applied entry is compared with what any other node
applied at that index (state machine safety, :class:`smr.driver.CommitLedger`), so a test
fails at the first unsafe step.  Each core is stepped through a :class:`smr.driver.Driver`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from .commands import Command
from .driver import CommitLedger, Driver, apply_writes, current_leader
from .errors import RemoteProtocolError
from .replica import (TICK, ClientRequest, Ready, ReplicaConfig, ReplicaCore, ReplicaStatus, Receive, Reply,
                      Role, Start)
from .machine import StateMachine
from .state_machines import KVStore


Message = tuple[str, str, Any]  # (src, dst, message)

CoreT = TypeVar("CoreT", bound=ReplicaCore)


class Network(Generic[CoreT]):
    """An in-memory cluster: cores, durable maps, in-flight messages and faults.

    Args:
        factory: builds one core from its ReplicaConfig (e.g. ``raft.RaftCore``).
        size: the number of nodes, named n1..n<size>.
        options: backend options for every node.
        seed: seeds each node's private rng (with its name and incarnation).
        state_machine: the replicated state machine factory.
        invariants: called with the live cores after every step; raises AssertionError.
        check: run the invariants after every step.
        hold_syncs: batches with writes wait for :meth:`sync` (a slow disk under the test's control).
    """

    def __init__(self, factory: Callable[[ReplicaConfig], CoreT], size: int = 3,
                 options: Mapping[str, Any] | None = None, seed: int = 0,
                 state_machine: Callable[[], StateMachine] = KVStore,
                 invariants: Callable[[Mapping[str, Any]], None] | None = None,
                 check: bool = True, hold_syncs: bool = False) -> None:
        self.factory = factory
        self.ids = tuple(f"n{i}" for i in range(1, size + 1))
        #: The cluster's first voters (a node added later is given them, see ReplicaConfig.initial_voters).
        self.initial_ids = self.ids
        self.options = dict(options or {})
        self.seed = seed
        self.state_machine = state_machine
        self.check_enabled = check
        self.invariants = invariants
        self.durable: dict[str, dict[str, Any]] = {n: {} for n in self.ids}
        self.hold_syncs = hold_syncs
        #: Per node, the batches waiting for their sync (oldest first; only with ``hold_syncs``).
        self.unsynced: dict[str, list[Ready]] = {n: [] for n in self.ids}
        #: The live cores, and the drivers that step them.
        self.cores: dict[str, CoreT] = {}
        self.drivers: dict[str, Driver[CoreT]] = {}
        self.incarnations: dict[str, int] = {n: 0 for n in self.ids}
        #: Nodes booted with an emptied disk as rejoining cores, and the index each rejoins after (``wipe``).
        self.rejoin_after: dict[str, int] = {}
        #: ... and the epoch each starts at (``ReplicaConfig.rejoin_epoch``).
        self.rejoin_epoch: dict[str, int] = {}
        self.in_flight: list[Message] = []
        self.cut_links: set[tuple[str, str]] = set()
        self.drop_if: Callable[[str, str, Any], bool] | None = None
        self.replies: list[Reply] = []
        self.ledger = CommitLedger()
        #: index -> the entry applied there (by whichever node applied it first).
        self.applied: dict[int, Any] = self.ledger.entries
        self.remote_errors: list[str] = []
        self.delivered: Counter[str] = Counter()
        for node in self.ids:
            self.start(node)

    # ------------------------------------------------------------ nodes
    def start(self, node: str) -> None:
        """Boot ``node`` from its durable map (a restart if it ran before)."""
        self.incarnations[node] += 1
        peers = tuple(n for n in self.ids if n != node)
        rng = random.Random(f"{self.seed}/{node}/{self.incarnations[node]}")
        core = self.factory(ReplicaConfig(node, peers, rng, self.state_machine, self.options,
                                          initial_voters=self.initial_ids,
                                          rejoin_after=self.rejoin_after.get(node, 0),
                                          rejoin_epoch=self.rejoin_epoch.get(node, 0)))
        self.cores[node] = core
        watch = getattr(core, "watch_executions", None)
        if watch is not None:  # exactly-once, checked at every apply
            watch(lambda what, node=node: self._ran_twice(node, what))
        driver = self.drivers[node] = Driver(core, node, on_reject=self._reject)
        self.ledger.boot(node)
        self._handle(node, driver.step(Start(dict(self.durable[node]))))

    @staticmethod
    def _ran_twice(node: str, what: str) -> None:
        """A state machine of ``node`` was about to run a client request a second time."""
        raise AssertionError(f"{node}: {what}")

    def join(self, node: str) -> None:
        """Boot a new node ``node`` with an empty disk, to join the running cluster (it knows the first voters)."""
        if node in self.ids:
            raise ValueError(f"{node} is already a node of this network")
        self.ids = (*self.ids, node)
        self.durable[node] = {}
        self.unsynced[node] = []
        self.incarnations[node] = 0
        self.start(node)

    def crash(self, node: str) -> None:
        """Stop ``node``: its volatile state is gone, its durable map stays (batches not synced are lost)."""
        del self.cores[node]
        del self.drivers[node]
        self.unsynced[node] = []

    def wipe(self, node: str, rejoin_after: int = 0, rejoin_epoch: int = 0) -> None:
        """Crash ``node`` if it runs and boot it with an emptied disk: as a core rejoining after index
        ``rejoin_after`` from epoch ``rejoin_epoch`` (what ``smr serve --rejoin-empty`` builds once the cluster
        has removed it), or, with 0, as if it had never promised anything (unsafe: what the TCP runtime's
        node identity forbids)."""
        self.durable[node] = {}
        self.rejoin_after[node] = rejoin_after
        self.rejoin_epoch[node] = rejoin_epoch
        self.restart(node)

    def restart(self, node: str) -> None:
        """Crash ``node`` if it runs, then boot it from durable state."""
        self.cores.pop(node, None)
        self.drivers.pop(node, None)
        self.unsynced[node] = []
        self.start(node)

    def sync(self, node: str, batches: int | None = None) -> int:
        """Make ``node``'s oldest waiting batches durable (all, or ``batches``) and release their outputs.

        Each released batch's ``after_sync`` is stepped at once; what that step
        returns waits for a later sync if it has writes.  Returns how many
        batches were released.
        """
        done = 0
        waiting = self.unsynced[node]
        while waiting and (batches is None or done < batches) and node in self.drivers:
            self._release(node, waiting.pop(0))
            done += 1
        return done

    def step(self, node: str, event: Any) -> Ready:
        """Feed one input to ``node`` and route its outputs; a remote error is recorded, not raised."""
        driver = self.drivers[node]
        ready = driver.step(event)
        if not driver.rejected:
            self._handle(node, ready)
        return ready

    def _reject(self, node: str, exc: RemoteProtocolError) -> None:
        self.remote_errors.append(str(exc))

    def _handle(self, node: str, ready: Ready) -> None:
        for send in ready.eager:  # they may leave before this batch's writes are durable
            self.in_flight.append((node, send.dst, send.message))
        if self.hold_syncs and (ready.persist or self.unsynced[node]):
            self.unsynced[node].append(ready)  # behind its writes, or behind an earlier batch's
            self.check()
            return
        self._release(node, ready)

    def _release(self, node: str, ready: Ready) -> None:
        apply_writes(self.durable[node], ready.persist)  # synced before any message leaves
        for c in ready.committed:
            self.ledger.record(node, c)
        for send in ready.messages:
            self.in_flight.append((node, send.dst, send.message))
        self.replies.extend(ready.replies)
        self.check()
        if ready.after_sync is not None:
            self._handle(node, self.drivers[node].synced(ready))

    def check(self) -> None:
        """Run the backend's invariants over the live cores."""
        if self.check_enabled and self.invariants is not None:
            self.invariants(self.cores)

    # ------------------------------------------------------------ links
    def cut(self, a: str, b: str) -> None:
        """Cut the link between ``a`` and ``b`` both ways."""
        self.cut_links |= {(a, b), (b, a)}

    def isolate(self, node: str) -> None:
        """Cut every link of ``node``."""
        for other in self.ids:
            if other != node:
                self.cut(node, other)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between different groups (nodes not listed form one more group)."""
        sets = [set(g) for g in groups]
        rest = set(self.ids) - set().union(*sets)
        if rest:
            sets.append(rest)
        for i, a in enumerate(sets):
            for b in sets[i + 1:]:
                for x in a:
                    for y in b:
                        self.cut(x, y)

    def recover(self) -> None:
        """Restore every link and stop dropping messages."""
        self.cut_links.clear()
        self.drop_if = None

    # ------------------------------------------------------------ delivery
    def deliver(self, i: int = 0) -> bool:
        """Deliver in-flight message ``i``; return False if it was dropped."""
        src, dst, msg = self.in_flight.pop(i)
        if dst not in self.cores or (src, dst) in self.cut_links or \
                (self.drop_if is not None and self.drop_if(src, dst, msg)):
            return False
        self.delivered[type(msg).__name__] += 1
        self.step(dst, Receive(src, msg))
        return True

    def drop(self, i: int = 0) -> Message:
        """Lose in-flight message ``i``."""
        return self.in_flight.pop(i)

    def duplicate(self, i: int = 0) -> None:
        """Put a second copy of in-flight message ``i`` at the end of the queue."""
        self.in_flight.append(self.in_flight[i])

    def take(self, kind: type | None = None, src: str | None = None,
             dst: str | None = None) -> list[Message]:
        """Remove and return the in-flight messages matching type/src/dst (to hold or replay)."""
        taken: list[Message] = []
        kept: list[Message] = []
        for m in self.in_flight:
            match = (kind is None or isinstance(m[2], kind)) and (src is None or m[0] == src) \
                and (dst is None or m[1] == dst)
            (taken if match else kept).append(m)
        self.in_flight = kept
        return taken

    def inject(self, messages: Iterable[Message]) -> None:
        """Put messages (e.g. ones taken earlier) back in flight."""
        self.in_flight.extend(messages)

    def stabilize(self, limit: int = 100_000) -> int:
        """Deliver messages in order until none is in flight; return how many were handled."""
        n = 0
        while self.in_flight:
            n += 1
            if n > limit:
                raise AssertionError(f"no quiescence after {limit} messages")
            self.deliver(0)
        return n

    def settle(self, limit: int = 100_000) -> int:
        """Sync every live node and deliver until nothing waits for a sync or is in flight (= stabilize
        without ``hold_syncs``); return how many messages were handled."""
        n = self.stabilize(limit)
        while any(self.unsynced[node] for node in self.drivers):
            for node in self.ids:
                if node in self.drivers:
                    self.sync(node)
            n += self.stabilize(limit)
        return n

    # ------------------------------------------------------------ time
    def tick(self, node: str, n: int = 1) -> None:
        """Give ``node`` ``n`` ticks (no delivery in between)."""
        for _ in range(n):
            if node in self.cores:
                self.step(node, TICK)

    def tick_all(self, n: int = 1, stabilize: bool = True) -> None:
        """Tick every live node ``n`` times, delivering until quiet after each round if asked."""
        for _ in range(n):
            for node in self.ids:
                self.tick(node)
            if stabilize:
                self.stabilize()

    def campaign(self, node: str) -> None:
        """Tick ``node`` until its election timeout fires (it campaigns), without delivering."""
        core: Any = self.cores[node]  # a core with election timers (Raft, multi-Paxos)
        for _ in range(core.opts.election_ticks_max + 1):
            if self.status(node).role != Role.FOLLOWER:
                return
            self.tick(node)
        raise AssertionError(f"{node} did not campaign")

    def elect(self, node: str) -> None:
        """Make ``node`` campaign and deliver (and sync) until quiet; it must end up leader."""
        self.campaign(node)
        self.settle()
        status = self.status(node)
        if not status.is_leader:
            raise AssertionError(f"{node} campaigned but is {status.role}")

    # ------------------------------------------------------------ clients
    def request(self, node: str, command: Command, client: str = "c1", seq: int = 1) -> list[Reply]:
        """Send client request (client, seq) to ``node``; return the replies it caused at once."""
        before = len(self.replies)
        self.step(node, ClientRequest(client, seq, command))
        return self.replies[before:]

    def replies_to(self, client: str, seq: int) -> list[Reply]:
        """Every reply to (client, seq) so far."""
        return [r for r in self.replies if r.client_id == client and r.seq == seq]

    # ------------------------------------------------------------ views
    def status(self, node: str) -> ReplicaStatus:
        """What live ``node`` says about itself (role, epoch, leader belief, commit index)."""
        return self.drivers[node].status()

    def leader(self) -> str | None:
        """The live leader (or coordinator) with the highest epoch (term or ballot round), if any."""
        return current_leader(d.status() for d in self.drivers.values())


def unstamped(value: Any) -> Any:
    """``value`` with every ClientRequest's leader time stamp zeroed (inside tuples, lists, dicts, attrs).

    A leader stamps its log clock into each request it appends, so a test that
    compares what a log holds with the request a client sent compares them
    unstamped.
    """
    if isinstance(value, ClientRequest):
        return attrs.evolve(value, time=0) if value.time else value
    if isinstance(value, (tuple, list)):
        return type(value)(unstamped(v) for v in value)
    if isinstance(value, dict):
        return {k: unstamped(v) for k, v in value.items()}
    if attrs.has(type(value)) and not isinstance(value, Command):
        changes = {f.name: unstamped(getattr(value, f.name)) for f in attrs.fields(type(value)) if f.init}
        return attrs.evolve(value, **changes)
    return value

