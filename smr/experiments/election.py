"""One trial of the leader-election experiment of Figure 16 of the extended Raft paper.

Ongaro and Ousterhout (2014, section 9.3) repeatedly crashed the leader of a
five-server cluster and timed how long the cluster went without a leader.
A trial here reproduces their setup in the simulator:

* **Cluster and network.**  5 replicas; every one-way delay is drawn uniformly
  from 6 to 8 ms (narrow jitter, so messages still race realistically), so a
  round trip takes 14 ms on average and a request/response round to all four
  peers -- the *broadcast time*, the slowest of four round trips -- takes
  14.85 ms on average: the paper's "roughly 15 ms".  No loss, no reordering
  beyond what the jitter causes; disk syncs take no time (the broadcast time
  is all network).
* **Timers.**  ``tick_ms = 1``, so election timeouts have millisecond
  resolution: a range ``low-high`` sets ``election_ticks_min = low`` and
  ``election_ticks_max = high``; the heartbeat interval is half the minimum
  election timeout (``low // 2`` ticks), as in the paper.  Multi-Paxos's extra
  randomised back-off after a failed ballot is set to 0 ticks, so both
  protocols draw their timeouts from exactly the same range (override with
  ``options``).  Each node's clock runs at a rate within +-100 ppm of true
  time (``clock_skew = 1e-4``, like a quartz oscillator): with a range of
  width 0 the timers of a split vote would otherwise stay in lock-step for
  ever, and real clocks are what eventually break such ties.
* **Steady state.**  One replica boots first and the other four boot when it
  campaigns, so the first election is quick whatever the range.  The trial
  then waits until all five agree on a leader, one warm-up command is
  committed and known everywhere, and the leader's heartbeats come one
  interval apart (a leader may skip the first one after its election).
* **Lagging logs and the crash.**  The next heartbeat the leader broadcasts is
  the paper's "synchronized broadcast of heartbeat RPCs": every follower
  resets its election timer when it arrives.  Right after it the leader
  replicates one more client command while the links from the leader to two
  randomly chosen followers are cut for that instant, so those two miss
  exactly that entry (and nothing else).  If the leader did not ship the entry
  to all four followers at once (Raft holds entries back from a follower it
  is probing), the attempt is called off and repeated at a later heartbeat.
  The leader then crashes at a point drawn uniformly from its heartbeat
  interval after that heartbeat.  In Raft the two lagging survivors cannot
  win: the up-to-date check (section 5.4.1) makes the other two refuse their
  votes.  Multi-Paxos has no such
  check, so a lagging replica may win and then recovers the missing entry
  from the promises of its phase 1 (Howard and Mortier's point).
* **What is measured.**  The *downtime* is the time from the crash until every
  survivor has heard the new leader's first message in its epoch (Raft: the
  first AppendEntries of the new term, carrying the new leader's no-op;
  multi-Paxos: the first Accept or Heartbeat of the new ballot), i.e. until
  all four survivors report the same leader and epoch and that replica is
  leader in it.  The *recovery* time is from the crash until the new leader
  has committed the entry the lagging followers missed.  A trial stops a
  short margin after the downtime ends, or at ``cap_ms`` after the crash
  without converging.

Every random choice (the lagging pair, the crash offset, the network, the
nodes' timeouts and clock rates) comes from the trial's seed, so a trial is
replayed exactly by :func:`run_trial` with the same setup and seed.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from ..commands import put
from ..replica import ClientRequest, ReplicaStatus, Role
from ..sim import ClientConfig, DiskConfig, FaultEvent, NetworkConfig, SimConfig
from ..sim.latency import Latency, constant
from .scripted import ScriptedSimulation

#: The election timeout ranges of Figure 16 (top graph, then bottom graph), in ms.
DEFAULT_RANGES: tuple[tuple[int, int], ...] = (
    (150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300),
    (12, 24), (25, 50), (50, 100), (100, 200))
#: One-way delay of every message: uniform 6-8 ms, a broadcast time of about 15 ms.
PAPER_LATENCY = Latency("uniform", low=6.0, high=8.0)
#: Backends the experiment knows how to set up.
ELECTION_BACKENDS = ("raft", "raft-pv-cq", "multipaxos")

_CLIENT = "c1"
_BOOT, _ELECT, _WAIT_HEARTBEAT, _ARMED, _FAILOVER, _MARGIN = range(6)


class _Stop(Exception):
    """Raised inside the simulation to end a trial early."""


def parse_range(text: str) -> tuple[int, int]:
    """Parse ``"150-300"`` into (150, 300); both bounds are positive whole milliseconds."""
    parts = text.strip().split("-")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"an election timeout range looks like 150-300, got {text!r}")
    low, high = int(parts[0]), int(parts[1])
    if not 2 <= low <= high:
        raise ValueError(f"need 2 <= low <= high in an election timeout range, got {text!r}")
    return low, high


@attrs.frozen
class ElectionSetup:
    """Everything that defines one cell of the experiment except the trial seed.

    Args:
        backend: ``raft``, ``raft-pv-cq`` or ``multipaxos``.
        low_ms, high_ms: the election timeout range, in ms (= ticks).
        nodes: cluster size (the paper used 5).
        latency: the one-way delay of every message.
        clock_skew: each node's clock rate is within this fraction of true time.
        cap_ms: a trial that has not converged this long after the crash stops.
        margin_ms: how long a trial goes on after convergence (to see recovery).
        options: backend option overrides, as (name, value) pairs.
        check_invariants: run the backend's safety checker after every step.
    """

    backend: str
    low_ms: int
    high_ms: int
    nodes: int = 5
    latency: Latency = PAPER_LATENCY
    clock_skew: float = 1e-4
    cap_ms: float = 60_000.0
    margin_ms: float = 50.0
    options: tuple[tuple[str, Any], ...] = ()
    check_invariants: bool = True

    def __attrs_post_init__(self) -> None:
        if self.backend not in ELECTION_BACKENDS:
            raise ValueError(f"the election experiment supports {', '.join(ELECTION_BACKENDS)}, "
                             f"not {self.backend!r}")
        if not 2 <= self.low_ms <= self.high_ms:
            raise ValueError("need 2 <= low_ms <= high_ms")
        if self.nodes < 5:
            raise ValueError("the experiment needs at least 5 nodes (a crashed leader, two lagging "
                             "followers and a majority that can still elect)")

    @property
    def label(self) -> str:
        """The range as the paper writes it, e.g. ``150-300``."""
        return f"{self.low_ms}-{self.high_ms}"

    @property
    def heartbeat_ms(self) -> int:
        """The heartbeat interval: half the minimum election timeout (whole ticks)."""
        return max(1, self.low_ms // 2)

    def backend_options(self) -> dict[str, Any]:
        """The backend options of this cell: timeouts in 1 ms ticks, then the overrides."""
        options: dict[str, Any] = {"election_ticks_min": self.low_ms,
                                   "election_ticks_max": self.high_ms,
                                   "heartbeat_ticks": self.heartbeat_ms}
        if self.backend == "multipaxos":
            options["backoff_ticks_max"] = 0
        options.update(dict(self.options))
        return options

    def sim_config(self) -> SimConfig:
        """The simulation of one trial (faults and actions are scripted by :func:`run_trial`)."""
        others = [f"n{i}" for i in range(2, self.nodes + 1)]
        # A trial ends itself (cap_ms after the crash at the latest); the duration only bounds
        # the time it may take to reach a steady leader before the crash.
        duration = 60_000.0 + 50.0 * self.high_ms + self.cap_ms + self.margin_ms
        return SimConfig(
            backend=self.backend, backend_options=self.backend_options(), nodes=self.nodes,
            duration_ms=duration, tick_ms=1.0, clock_skew=self.clock_skew,
            network=NetworkConfig(latency=self.latency), disk=DiskConfig(sync=constant(0.0)),
            clients=ClientConfig(count=1, stop_ms=0.0),  # one idle client, to receive the reply
            faults=tuple(FaultEvent(0.0, "crash", node=n) for n in others),
            check_invariants=self.check_invariants, trace=False, count_bytes=False,
            name=f"election-{self.backend}-{self.label}")


@attrs.frozen
class ElectionTrial:
    """What one trial measured (times in simulated ms; None where it did not happen).

    ``downtime_ms`` is from the crash until all survivors heard the new leader;
    ``crash_offset_ms`` is how long after its last heartbeat the leader crashed;
    ``epochs`` is how many terms (ballot rounds) the failover used;
    ``winner_lagging`` says whether the new leader was one of the two followers
    that missed the last entry; ``recovery_ms`` is from the crash until the new
    leader committed that entry; ``stable`` says the same leader still led, with
    every survivor following it, when the trial stopped.
    """

    backend: str
    low_ms: int
    high_ms: int
    seed: int
    converged: bool
    downtime_ms: float | None
    crash_offset_ms: float
    old_leader: str
    lagging: tuple[str, ...]
    winner: str | None
    winner_lagging: bool | None
    epochs: int | None
    recovery_ms: float | None
    stable: bool | None
    missed_messages: int
    violations: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the trial as plain JSON data."""
        doc = attrs.asdict(self)
        doc["lagging"] = list(self.lagging)
        doc["violations"] = list(self.violations)
        return doc


class _Script:
    """Drives one trial from the simulator's step hook and scripted callbacks."""

    def __init__(self, setup: ElectionSetup, seed: int) -> None:
        self.setup = setup
        self.rng = random.Random(f"{seed}/election-experiment")
        self.phase = _BOOT
        self.leader = ""
        self.epoch = 0
        self.sent_before = 0
        self.broadcast_at = 0.0
        self.crash_offset = 0.0
        self.crash_at = 0.0
        self.lagging: tuple[str, ...] = ()
        self.survivors: tuple[str, ...] = ()
        self.missed = 0
        self.attempts = 0
        self.warmup = ClientRequest(_CLIENT, 1, put("x", "warm-up"))
        self.request = ClientRequest(_CLIENT, 2, put("x", "after-heartbeat"))
        self.winner: str | None = None
        self.winner_epoch = 0
        self.converged_at: float | None = None
        self.leader_commits: list[tuple[float, str, int]] = []
        self.last_commit: dict[str, int] = {}

    # ------------------------------------------------------------ the step hook
    def on_step(self, sim: ScriptedSimulation, node_id: str) -> None:
        """Advance the script after every core step."""
        phase = self.phase
        if phase == _BOOT:
            first = sim.nodes["n1"]
            if node_id == "n1" and first.alive and self._status(sim, "n1").role != Role.FOLLOWER:
                self.phase = _ELECT  # n1 campaigns: boot the others, so they can vote
                sim.call_at(sim.now, self._boot_others)
        elif phase == _ELECT:
            agreed = self._agreement(sim, tuple(sim.node_ids))
            if agreed is not None:
                self.leader, self.epoch = agreed
                self.sent_before = sim.counters.sent_by_node[self.leader]
                self.broadcast_at = sim.now
                self.phase = _WAIT_HEARTBEAT
                if self._committed_index(sim, self.warmup) is None:
                    leader = self.leader
                    sim.call_at(sim.now, lambda sim: sim.submit(leader, self.warmup))
        elif phase == _WAIT_HEARTBEAT:
            if node_id == self.leader:
                self._heartbeat(sim)
            else:
                status = self._status(sim, node_id)
                if status.leader != self.leader or status.epoch != self.epoch:
                    self.phase = _ELECT  # leadership moved on: wait for the next agreement
        elif phase in (_FAILOVER, _MARGIN):
            if node_id in self.survivors:
                self._watch(sim, node_id)

    # ------------------------------------------------------------ the phases
    def _boot_others(self, sim: ScriptedSimulation) -> None:
        for node_id in sim.node_ids:
            if not sim.nodes[node_id].alive:
                sim.restart(node_id)

    def _heartbeat(self, sim: ScriptedSimulation) -> None:
        """Arm the crash at the first heartbeat of a steady rhythm, with every follower agreeing.

        A step in which the leader sent a message to every peer is a broadcast
        (nothing else is sent in a quiet cluster).  A heartbeat counts as
        steady when the previous broadcast was one heartbeat interval earlier:
        a leader may skip its first heartbeat after its election broadcast, and
        its followers may time out in that longer gap and depose it.
        """
        sent = sim.counters.sent_by_node[self.leader]
        if sent - self.sent_before >= len(sim.node_ids) - 1:
            if self._agreement(sim, tuple(sim.node_ids)) != (self.leader, self.epoch):
                self.phase = _ELECT  # leadership moved on: wait for the next agreement
            elif sim.now - self.broadcast_at <= self.setup.heartbeat_ms + 1.0 and self._quiet(sim):
                self._arm(sim)
            self.broadcast_at = sim.now
        self.sent_before = sent

    def _quiet(self, sim: ScriptedSimulation) -> bool:
        """True once the warm-up command is committed and every replica knows it.

        Then the leader has heard a successful reply from every follower (Raft's
        followers are past the probing state), so the next entry goes out to
        all of them at once.
        """
        index = self._committed_index(sim, self.warmup)
        if index is None:
            return False
        commits = {self._status(sim, n).commit_index for n in sim.node_ids}
        return len(commits) == 1 and commits.pop() >= index

    @staticmethod
    def _committed_index(sim: ScriptedSimulation, request: ClientRequest) -> int | None:
        return next((i for i, entry in sim.committed.items()
                     if (entry.client_id, entry.seq) == (request.client_id, request.seq)), None)

    def _arm(self, sim: ScriptedSimulation) -> None:
        """The leader just broadcast a heartbeat: replicate one entry past two followers, then crash."""
        self.phase = _ARMED
        self.attempts += 1
        attempt = self.attempts
        followers = sorted(n for n in sim.node_ids if n != self.leader)
        self.lagging = tuple(sorted(self.rng.sample(followers, 2)))
        self.survivors = tuple(followers)
        self.crash_offset = self.rng.uniform(0.0, float(self.setup.heartbeat_ms))
        self.request = ClientRequest(_CLIENT, 1 + attempt, put("x", f"after-heartbeat-{attempt}"))
        sim.call_at(sim.now, self._replicate_past_laggers)
        sim.call_at(sim.now + self.crash_offset, lambda sim: self._crash(sim, attempt))

    def _replicate_past_laggers(self, sim: ScriptedSimulation) -> None:
        dropped = sum(sim.counters.dropped.values())
        sent = sim.counters.sent_by_node[self.leader]
        links = {(self.leader, node) for node in self.lagging}
        sim.cut |= links
        sim.submit(self.leader, self.request)

        def heal(sim: ScriptedSimulation) -> None:
            # The entry's messages left at the same instant (disk syncs take no time).
            self.missed = sum(sim.counters.dropped.values()) - dropped
            shipped = sim.counters.sent_by_node[self.leader] - sent
            sim.cut -= links
            if self.missed != len(self.lagging) or shipped != len(self.survivors):
                # The leader did not send the entry to every follower at once (Raft holds
                # it back from a follower it is still probing, and its loss detection can
                # fall back to probing when round trips exceed two heartbeat intervals):
                # try again at a later heartbeat, once this entry is committed everywhere.
                self.phase = _WAIT_HEARTBEAT
                self.broadcast_at = sim.now
                self.sent_before = sim.counters.sent_by_node[self.leader]
                self.warmup = self.request

        sim.call_at(sim.now, heal)

    def _crash(self, sim: ScriptedSimulation, attempt: int) -> None:
        if attempt != self.attempts or self.phase != _ARMED:
            return  # that attempt was called off
        self.crash_at = sim.now
        sim.crash(self.leader)
        self.phase = _FAILOVER
        sim.call_at(sim.now + self.setup.cap_ms, self._stop)

    def _watch(self, sim: ScriptedSimulation, node_id: str) -> None:
        status = self._status(sim, node_id)
        if status.is_leader and status.commit_index != self.last_commit.get(node_id):
            self.last_commit[node_id] = status.commit_index
            self.leader_commits.append((sim.now, node_id, status.commit_index))
        if self.phase == _FAILOVER and status.leader is not None:
            agreed = self._agreement(sim, self.survivors)
            if agreed is not None:
                self.winner, self.winner_epoch = agreed
                self.converged_at = sim.now
                self.phase = _MARGIN
                sim.call_at(sim.now + self.setup.margin_ms, self._stop)

    def _stop(self, sim: ScriptedSimulation) -> None:
        raise _Stop

    @staticmethod
    def _status(sim: ScriptedSimulation, node_id: str) -> ReplicaStatus:
        """What live node ``node_id`` says about itself."""
        driver = sim.nodes[node_id].driver
        if driver is None:
            raise RuntimeError(f"{node_id} is down")
        return driver.status()

    @classmethod
    def _agreement(cls, sim: ScriptedSimulation, members: tuple[str, ...]) -> tuple[str, int] | None:
        """(leader, epoch) if every member follows one live member that leads that epoch."""
        statuses = []
        for node_id in members:
            node = sim.nodes[node_id]
            if not node.alive:
                return None
            status = cls._status(sim, node_id)
            if status.leader is None:
                return None
            statuses.append(status)
        first = statuses[0]
        leader_id = first.leader
        if leader_id is None or any(s.leader != leader_id or s.epoch != first.epoch for s in statuses):
            return None
        leader = sim.nodes.get(leader_id)
        if leader is None or not leader.alive or leader_id not in members:
            return None
        status = cls._status(sim, leader_id)
        if not status.is_leader or status.epoch != first.epoch:
            return None
        return leader_id, first.epoch

    # ------------------------------------------------------------ the result
    def result(self, sim: ScriptedSimulation, seed: int) -> ElectionTrial:
        """Summarise the trial once the simulation stopped."""
        setup = self.setup
        if self.phase < _FAILOVER and not sim.violations:
            raise RuntimeError(f"election trial {setup.backend} {setup.label} seed {seed}: the "
                               f"cluster never reached the crash (phase {self.phase})")
        downtime = None if self.converged_at is None else round(self.converged_at - self.crash_at, 6)
        converged = downtime is not None
        index = self._committed_index(sim, self.request)
        recovery = None
        stable = None
        if converged:
            assert self.winner is not None
            if index is not None:
                recovery = next((round(t - self.crash_at, 6) for t, node, commit in self.leader_commits
                                 if node == self.winner and commit >= index), None)
            stable = self._agreement(sim, self.survivors) == (self.winner, self.winner_epoch)
        return ElectionTrial(
            backend=setup.backend, low_ms=setup.low_ms, high_ms=setup.high_ms, seed=seed,
            converged=converged,
            downtime_ms=downtime,
            crash_offset_ms=round(self.crash_offset, 6), old_leader=self.leader, lagging=self.lagging,
            winner=self.winner, winner_lagging=(self.winner in self.lagging) if converged else None,
            epochs=self.winner_epoch - self.epoch if converged else None,
            recovery_ms=recovery, stable=stable, missed_messages=self.missed,
            violations=tuple(sim.violations))


def run_trial(setup: ElectionSetup, seed: int) -> ElectionTrial:
    """Run one trial of ``setup`` with ``seed``: crash the leader, measure the failover."""
    script = _Script(setup, seed)
    sim = ScriptedSimulation(setup.sim_config(), seed, on_step=script.on_step)
    try:
        sim.run()
    except _Stop:
        pass
    return script.result(sim, seed)
