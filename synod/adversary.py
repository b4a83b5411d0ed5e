"""A scheduler that chooses which pending event of a cluster of sans-IO cores fires next.

The simulator draws every delay at random.  FLP asks a different question: is
there *some* order of events in which a fault-tolerant algorithm never
decides?  :class:`Scheduler` answers it by handing the choice to a policy.  It
drives cores of any registered backend directly through ``step``, holds every
message in flight and every node's next tick as a pending :class:`Event`, and
asks its policy which one fires next:

* :class:`DuelAdversary` -- the FLP adversary for the Paxos synod, the classic
  duelling-proposers schedule: an ``Accept`` its acceptor would take is held
  back until a higher ``Prepare`` has pre-empted it there, so each proposer's
  prepare pre-empts the other's accept.  Every other message is delivered
  oldest first, and nothing is held longer than ``patience`` steps (a bounded
  delay: the schedule is admissible in FLP's sense);
* :class:`RandomNetwork` -- not adversarial: seeded random link latencies and
  slightly jittery ticks in virtual time, earliest event first.

The contract of :mod:`smr.replica` is kept: a batch's ``persist`` goes into the
node's durable map before any of its messages (``eager`` ones included) becomes
pending, its ``after_sync`` input is stepped within the same step, and a crashed
node (at most one, as in FLP) keeps its durable map and takes no more steps.
Every step is recorded (:class:`StepRecord`), so the schedule can be printed
as a trace and checked for admissibility (:meth:`Scheduler.admissibility`).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol, overload

import attrs

from smr.driver import Driver, apply_writes
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.replica import TICK, Ready, ReplicaConfig, ReplicaCore, Receive, Start, get_backend
from smr.state_machines import make_state_machine

from .messages import Accept
from .paxos import PaxosSynod

DELIVER, TICK_EVENT = "deliver", "tick"


@attrs.frozen
class Event:
    """One pending event: a message in flight (``deliver``) or a node's next ``tick``."""

    id: int
    kind: str
    dst: str
    src: str | None = None
    message: Any = None
    sent: int = 0  # the step that made it pending (0: boot)


@attrs.frozen
class StepRecord:
    """One step of the schedule: what fired, on which node, and which messages it sent.

    ``kind`` is ``input`` (a local input such as a proposal), ``deliver``,
    ``drop`` (a message reaching the crashed node), ``tick`` or ``crash``;
    ``sent`` is the step at which the fired event became pending; ``outputs``
    are the ids of the messages this step sent.
    """

    index: int
    time: float
    kind: str
    node: str
    src: str | None = None
    event_id: int | None = None
    sent: int | None = None
    message: Any = None
    outputs: tuple[int, ...] = ()


@attrs.frozen
class Admissibility:
    """What the recorded schedule says about fairness (FLP's admissible runs).

    ``undelivered`` lists messages to live nodes that were never delivered and
    have waited longer than ``bound`` steps by the end of the schedule; an
    admissible prefix has none, delivers every other message within ``bound``
    steps, and crashes at most one node.
    """

    messages: int
    delivered: int
    to_crashed: int
    in_flight: int
    max_hold: int
    bound: int
    undelivered: tuple[int, ...]
    late: tuple[int, ...]
    crashes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True if no message was starved, none was late, and at most one node crashed."""
        return not self.undelivered and not self.late and len(self.crashes) <= 1

    def to_json(self) -> dict[str, Any]:
        """The check as JSON data."""
        return {**attrs.asdict(self), "ok": self.ok}


class Policy(Protocol):
    """Chooses the next event; told about every event that becomes pending."""

    def pending(self, event: Event, scheduler: "Scheduler") -> None:
        """Note that ``event`` is now pending."""
        ...

    def choose(self, scheduler: "Scheduler") -> Event:
        """Return the pending event to fire next (it may crash one node first)."""
        ...


class Scheduler:
    """``nodes`` cores of ``backend`` whose every next event is chosen by ``policy``.

    Args:
        backend: a registered backend name (e.g. ``synod-paxos``, ``raft``).
        nodes: cluster size; nodes are ``n1``..``nN``.
        seed: seeds every node's private generator (``{seed}/{node}/1``).
        policy: who picks the next event (:class:`DuelAdversary`, :class:`RandomNetwork`).
        options: backend options merged over the backend's defaults.
        record: keep a :class:`StepRecord` per step (off for bulk measurements).
        observer: called as ``observer(scheduler, node)`` after every core step.
    """

    def __init__(self, backend: str, nodes: int, seed: int, policy: Policy, *,
                 options: Mapping[str, Any] | None = None, record: bool = True,
                 observer: Callable[["Scheduler", str], None] | None = None) -> None:
        self.backend = get_backend(backend)
        self.options = {**self.backend.options, **(options or {})}
        self.node_ids = tuple(f"n{i}" for i in range(1, nodes + 1))
        self.seed = seed
        self.policy = policy
        self.record = record
        self.observer = observer
        self.now = 0.0
        self.steps = 0
        self.records: list[StepRecord] = []
        #: Every message ever sent, by id (kept only when recording, for traces and checks).
        self.messages: dict[int, Event] = {}
        self.pending: dict[int, Event] = {}
        self.durable: dict[str, dict[str, Any]] = {n: {} for n in self.node_ids}
        self.crashed: list[str] = []
        self.remote_errors = 0
        self._next_id = 0
        sm_name = "write_once" if not self.backend.replicated_log else "kv"
        #: The live nodes' cores, and the drivers that step them.
        self.cores: dict[str, ReplicaCore] = {}
        self.drivers: dict[str, Driver[ReplicaCore]] = {}
        for node in self.node_ids:
            peers = tuple(n for n in self.node_ids if n != node)
            rng = random.Random(f"{seed}/{node}/1")
            core = self.cores[node] = self.backend.factory(
                ReplicaConfig(node, peers, rng, lambda: make_state_machine(sm_name), self.options))
            self.drivers[node] = Driver(core, node, on_reject=self._reject)
        for node in self.node_ids:
            self._apply(node, self._step_core(node, Start({})), record=None)
            self._arm_tick(node)

    # ------------------------------------------------------------------ driving
    def input(self, node: str, event: Any) -> StepRecord:
        """Feed a local input (e.g. ``Propose``) to ``node`` now; recorded as an ``input`` step."""
        if node in self.crashed:
            raise LocalProtocolError(f"{node} has crashed; it takes no more inputs")
        self.steps += 1
        ready = self._step_core(node, event)
        return self._apply(node, ready, StepRecord(self.steps, self.now, "input", node, message=event))

    def crash(self, node: str) -> None:
        """Crash ``node`` for good: its durable map stays, its timer stops (at most one crash)."""
        if node in self.crashed:
            return
        if self.crashed:
            raise LocalProtocolError(f"the FLP adversary crashes at most one node; {self.crashed[0]} already did")
        self.crashed.append(node)
        del self.cores[node]
        del self.drivers[node]
        for event in [e for e in self.pending.values() if e.kind == TICK_EVENT and e.dst == node]:
            del self.pending[event.id]
        self.steps += 1
        if self.record:
            self.records.append(StepRecord(self.steps, self.now, "crash", node))

    def fire_next(self) -> StepRecord:
        """Let the policy pick one pending event and fire it; return its record."""
        event = self.policy.choose(self)
        return self.fire(event)

    def fire(self, event: Event) -> StepRecord:
        """Fire pending ``event`` now and return its record (a message reaching a crashed node is dropped).

        Without ``record`` the returned record lists no ``outputs`` and is not kept.
        """
        del self.pending[event.id]
        self.steps += 1
        node = event.dst
        if event.kind == TICK_EVENT:
            record = StepRecord(self.steps, self.now, "tick", node, event_id=event.id, sent=event.sent)
            result = self._apply(node, self._step_core(node, TICK), record)
            self._arm_tick(node)
            return result
        if node in self.crashed:
            record = StepRecord(self.steps, self.now, "drop", node, event.src, event.id, event.sent,
                                event.message)
            if self.record:
                self.records.append(record)
            return record
        record = StepRecord(self.steps, self.now, "deliver", node, event.src, event.id, event.sent,
                            event.message)
        assert event.src is not None
        return self._apply(node, self._step_core(node, Receive(event.src, event.message)), record)

    def run(self, until: Callable[["Scheduler"], bool], max_steps: int) -> bool:
        """Fire events until ``until(self)`` holds (True) or ``max_steps`` more steps passed (False)."""
        limit = self.steps + max_steps
        while not until(self):
            if self.steps >= limit or not self.pending:
                return until(self)
            self.fire_next()
        return True

    def alive(self, node: str) -> bool:
        """True unless ``node`` crashed."""
        return node in self.cores

    # ------------------------------------------------------------ bookkeeping
    def admissibility(self, bound: int) -> Admissibility:
        """Check the recorded schedule: every message to a live node delivered within ``bound`` steps."""
        if not self.record:
            raise LocalProtocolError("admissibility needs a recorded schedule (record=True)")
        sent_at: dict[int, int] = {}
        delivered: dict[int, int] = {}
        dropped: set[int] = set()
        for rec in self.records:
            for mid in rec.outputs:
                sent_at[mid] = rec.index
            if rec.event_id is not None and rec.event_id in sent_at:
                if rec.kind == "deliver":
                    delivered[rec.event_id] = rec.index
                elif rec.kind == "drop":
                    dropped.add(rec.event_id)
        holds = {mid: at - sent_at[mid] for mid, at in delivered.items()}
        waiting = [mid for mid in sent_at if mid not in delivered and mid not in dropped]
        starved = tuple(sorted(mid for mid in waiting if self.messages[mid].dst not in self.crashed
                               and self.steps - sent_at[mid] > bound))
        return Admissibility(messages=len(sent_at), delivered=len(delivered), to_crashed=len(dropped),
                             in_flight=len(waiting), max_hold=max(holds.values(), default=0), bound=bound,
                             undelivered=starved,
                             late=tuple(sorted(mid for mid, hold in holds.items() if hold > bound)),
                             crashes=tuple(self.crashed))

    def _step_core(self, node: str, event: Any) -> Ready:
        return self.drivers[node].step(event)  # a rejected input gives the empty batch

    def _reject(self, node: str, exc: RemoteProtocolError) -> None:
        self.remote_errors += 1

    @overload
    def _apply(self, node: str, ready: Ready, record: StepRecord) -> StepRecord: ...

    @overload
    def _apply(self, node: str, ready: Ready, record: None) -> None: ...

    def _apply(self, node: str, ready: Ready, record: StepRecord | None) -> StepRecord | None:
        outputs = []
        while True:
            apply_writes(self.durable[node], ready.persist)  # durable before any message of this batch is pending
            for send in ready.all_messages:
                event = self._new_event(DELIVER, send.dst, node, send.message)
                outputs.append(event.id)
            if ready.after_sync is None:
                break
            ready = self.drivers[node].synced(ready)  # its writes are durable now: part of the same step
        if record is not None and self.record:
            record = attrs.evolve(record, outputs=tuple(outputs))
            self.records.append(record)
        if self.observer is not None:
            self.observer(self, node)
        return record

    def _arm_tick(self, node: str) -> None:
        if node in self.cores:
            self._new_event(TICK_EVENT, node)

    def _new_event(self, kind: str, dst: str, src: str | None = None, message: Any = None) -> Event:
        self._next_id += 1
        event = Event(self._next_id, kind, dst, src, message, self.steps)
        self.pending[event.id] = event
        if self.record and kind == DELIVER:
            self.messages[event.id] = event
        self.policy.pending(event, self)
        return event


class DuelAdversary:
    """The FLP adversary for the Paxos synod: each proposer's prepare pre-empts the other's accept.

    An ``Accept`` is *dangerous* while its destination would take it (it has
    promised no higher ballot); the adversary holds dangerous accepts back and
    delivers every other message oldest first; ticks fire only when nothing
    else is harmless.  No event waits more than ``patience`` steps: an older
    one is forced out first, dangerous or not, so every message reaches every
    live node (an admissible schedule).  The adversary may crash one node,
    ``crash``, once the highest ballot round reaches ``crash_round``.
    """

    def __init__(self, patience: int = 48, crash: str | None = None, crash_round: int = 1) -> None:
        self.patience = patience
        self.crash = crash
        self.crash_round = crash_round
        self.forced = 0
        #: Ids of the messages this adversary held back at least once (dangerous accepts).
        self.held: set[int] = set()

    def pending(self, event: Event, scheduler: Scheduler) -> None:
        """Nothing to note: the scheduler's pending map is already in sending order."""

    def choose(self, scheduler: Scheduler) -> Event:
        """Pick the next event: an overdue one, else the oldest harmless message, else a tick."""
        if self.crash is not None and scheduler.alive(self.crash) and \
                highest_round(scheduler) >= self.crash_round:
            scheduler.crash(self.crash)
        step = scheduler.steps
        tick: Event | None = None
        harmless: Event | None = None
        for event in scheduler.pending.values():  # insertion order: oldest first
            if step - event.sent >= self.patience:
                if event.kind == DELIVER and not self.is_harmless(event, scheduler):
                    self.forced += 1
                return event
            if event.kind == TICK_EVENT:
                if tick is None:
                    tick = event
            elif self.is_harmless(event, scheduler):
                if harmless is None:
                    harmless = event
            else:
                self.held.add(event.id)
        chosen = harmless or tick
        if chosen is None:  # only dangerous accepts and no live timer: the adversary must give in
            self.forced += 1
            chosen = next(iter(scheduler.pending.values()))
        return chosen

    @staticmethod
    def is_harmless(event: Event, scheduler: Scheduler) -> bool:
        """False only for an ``Accept`` its live destination would take now."""
        if not isinstance(event.message, Accept) or not scheduler.alive(event.dst):
            return True
        core = scheduler.cores[event.dst]
        if not isinstance(core, PaxosSynod):
            raise LocalProtocolError(f"the duel adversary plays against the Paxos synod, not {core.backend}")
        promised = core.acceptor.promised
        return promised is not None and event.message.ballot < promised


class RandomNetwork:
    """Not an adversary: seeded random latencies and jittery ticks, earliest event first.

    Args:
        seed: seeds the network's generator (``{seed}/network``).
        latency: one-way message delay, uniform in this range (virtual ms).
        tick_ms: the nominal tick period of every node.
        jitter: each tick period is ``tick_ms * (1 ± jitter)``, drawn afresh; a
            node's first tick comes at a random phase in ``[0, tick_ms)``.
    """

    def __init__(self, seed: int, latency: tuple[float, float] = (0.5, 1.5), tick_ms: float = 1.0,
                 jitter: float = 0.0) -> None:
        self.rng = random.Random(f"{seed}/network")
        self.latency = latency
        self.tick_ms = tick_ms
        self.jitter = jitter
        self._heap: list[tuple[float, int]] = []
        self._booted: set[str] = set()

    def pending(self, event: Event, scheduler: Scheduler) -> None:
        """Give ``event`` a due time: a latency for a message, a (jittered) period for a tick."""
        if event.kind == DELIVER:
            delay = self.rng.uniform(*self.latency)
        elif event.dst not in self._booted:
            self._booted.add(event.dst)
            delay = self.tick_ms * self.rng.random()
        else:
            delay = self.tick_ms * (1.0 + self.rng.uniform(-self.jitter, self.jitter))
        heapq.heappush(self._heap, (scheduler.now + delay, event.id))

    def choose(self, scheduler: Scheduler) -> Event:
        """Return the earliest pending event and advance virtual time to it."""
        while True:
            due, event_id = heapq.heappop(self._heap)
            event = scheduler.pending.get(event_id)
            if event is not None:
                scheduler.now = due
                return event


def highest_round(scheduler: Scheduler) -> int:
    """The highest ballot round (or term) any live node has seen: its status epoch."""
    return max((core.status().epoch for core in scheduler.cores.values()), default=0)
