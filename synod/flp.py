"""Part 3 of the essay made visible: FLP, and how Paxos makes non-termination ever less likely.

Three experiments, each on the :class:`synod.adversary.Scheduler`:

1. :func:`run_duel` -- the FLP adversary (:class:`DuelAdversary`) against the
   synod algorithm *without* randomised back-off: each proposer's prepare
   pre-empts the other's accept, round after round, while every message still
   reaches every live node within a bounded number of steps and at most one
   node crashes.  The algorithm stays undecided for as many rounds as asked.
2. :func:`synod_rounds` -- the same cores on a random network
   (:class:`RandomNetwork`), with and without back-off: the fraction of runs
   still undecided after ballot round k, over many seeds, with a geometric
   curve ``c * r**k`` fitted by least squares on the log fractions
   (:func:`fit_geometric`): "1 in 10 executions proceed to the second round,
   1 in 100 to the third".
3. :func:`election_rounds` -- the same question for leader election in the
   Raft and multi-Paxos backends: from a cold cluster whose election timers
   all race, how many terms (ballot rounds) pass before a leader emerges that
   stays leader, for a few election timeout ranges.

:func:`run_flp` runs all three and returns an :class:`FlpReport` that prints
as text or as one JSON document.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from smr.errors import LocalProtocolError
from smr.replica import Role
from smr.sim.tracefmt import describe

from .adversary import Admissibility, DuelAdversary, Event, RandomNetwork, Scheduler, StepRecord, highest_round
from .ballot import Ballot
from .core import Propose
from .messages import Accept, Accepted, AskDecided, Decided, Nack, Prepare, Promise
from .paxos import PaxosSynod
from .workload import COLOURS

#: Election timeout ranges compared in part 3 (ms), as in the Raft paper's Figure 16.
ELECTION_RANGES: tuple[tuple[int, int], ...] = ((150, 150), (150, 155), (150, 300))
ELECTION_BACKENDS: tuple[str, ...] = ("raft", "multipaxos")
_SHOWN_ROUNDS = 12  # rows of the part 2 table printed as text (JSON has them all)


# ===================================================================== part 1
@attrs.frozen
class BallotRow:
    """One ballot of the duel: who started it, when, and what pre-empted it."""

    ballot: str
    proposer: str
    started: int
    accept_sent: int | None
    preempted_by: str | None

    def to_json(self) -> dict[str, Any]:
        """The row as JSON data."""
        return attrs.asdict(self)


@attrs.frozen
class DuelResult:
    """The FLP adversary against the back-off-free synod: rounds survived undecided, and the schedule."""

    rounds: int
    nodes: int
    decided: bool
    rounds_undecided: int
    steps: int
    ticks: int
    ballots: tuple[BallotRow, ...]
    held: int
    held_delivered_later: bool
    forced: int
    admissibility: Admissibility
    trace: tuple[str, ...]
    trace_rounds: int
    #: The raw schedule, for independent checks: every step, every message by id, the held ids.
    schedule: tuple[StepRecord, ...] = attrs.field(default=(), repr=False, eq=False)
    messages: Mapping[int, Event] = attrs.field(factory=dict, repr=False, eq=False)
    held_ids: frozenset[int] = attrs.field(default=frozenset(), repr=False, eq=False)

    @property
    def ok(self) -> bool:
        """True if the adversary kept the algorithm undecided for all rounds with an admissible schedule."""
        return (not self.decided and self.rounds_undecided >= self.rounds and self.admissibility.ok
                and self.held_delivered_later)

    def format(self) -> str:
        """The duel as readable text: trace of the first rounds, then the ballots climbing."""
        adm = self.admissibility
        lines = [
            f"Part 1 -- FLP: an adversarial (but admissible) schedule keeps the synod undecided",
            f"  {self.nodes} nodes, n1 proposes {COLOURS[0]}, n2 proposes {COLOURS[1]}; Paxos synod "
            f"WITHOUT randomised back-off (a nacked proposer retries at once).",
            f"  The adversary holds back every Accept its acceptor would take until a higher Prepare",
            f"  has pre-empted it there, and delivers everything else oldest first.",
            "",
            f"  Trace of the first {self.trace_rounds} ballot rounds (#step event -> what it sent; "
            f"'held' marks an Accept the adversary held back):",
        ]
        lines.extend("    " + line for line in self.trace)
        lines.append("")
        lines.append("  The ballots climb (every one is pre-empted before a majority accepts it):")
        lines.append(f"    {'ballot':>7}  {'proposer':8}  {'started':>7}  {'accept sent':>11}  pre-empted by")
        shown = [row for row in self.ballots if int(row.ballot.split('.')[0]) <= self.trace_rounds + 3]
        for row in shown:
            accept = "-" if row.accept_sent is None else f"#{row.accept_sent}"
            lines.append(f"    {row.ballot:>7}  {row.proposer:8}  {'#' + str(row.started):>7}  {accept:>11}  "
                         f"{row.preempted_by or '-'}")
        if len(self.ballots) > len(shown):
            rest = [row.ballot for row in self.ballots[len(shown):]]
            lines.append(f"    ... then {' '.join(rest[:6])}{' ... ' if len(rest) > 9 else ' '}"
                         f"{' '.join(rest[-3:]) if len(rest) > 9 else ' '.join(rest[6:])}")
        verdict = "UNDECIDED" if not self.decided else "DECIDED (the adversary lost)"
        lines += [
            "",
            f"  After {self.steps} steps ({self.ticks} ticks): {verdict}; ballot rounds 1..{self.rounds_undecided} "
            f"all started and abandoned, none chosen.",
            f"  Admissible: {adm.delivered} messages delivered to live nodes, each within {adm.max_hold} steps "
            f"(bound {adm.bound}); {adm.in_flight} still in flight, none older than the bound; "
            f"{adm.to_crashed} reached the crashed node; crashes: {', '.join(adm.crashes) or 'none'}.",
            f"  {self.held} Accepts were held back, "
            f"{'every one delivered later' if self.held_delivered_later else 'NOT all delivered later'}; "
            f"forced deliveries of a dangerous message: {self.forced}.  "
            f"{'OK' if self.ok else 'NOT OK'}",
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The duel as JSON data."""
        return {"rounds": self.rounds, "nodes": self.nodes, "decided": self.decided,
                "rounds_undecided": self.rounds_undecided, "steps": self.steps, "ticks": self.ticks,
                "ballots": [row.to_json() for row in self.ballots], "held": self.held,
                "held_delivered_later": self.held_delivered_later, "forced": self.forced,
                "admissibility": self.admissibility.to_json(), "trace": list(self.trace), "ok": self.ok}


def run_duel(rounds: int = 20, *, nodes: int = 3, seed: int = 0, crash: str | None = "n3",
             crash_round: int = 2, patience: int = 48, trace_rounds: int = 3,
             max_steps: int = 1_000_000) -> DuelResult:
    """Run the FLP adversary against the back-off-free synod until ballot rounds 1..``rounds`` are all abandoned."""
    adversary = DuelAdversary(patience=patience, crash=crash if nodes >= 3 else None, crash_round=crash_round)
    sched = Scheduler("synod-paxos", nodes, seed, adversary, options={"backoff": False})
    proposers = ("n1", "n2")
    for node, colour in zip(proposers, COLOURS):
        sched.input(node, Propose(colour))
    synods = _synods(sched)

    def decided(s: Scheduler) -> bool:
        return any(synods[n].decided is not None for n in s.cores)

    def past(s: Scheduler) -> bool:
        return all(_round(synods[p]) > rounds for p in proposers if p in s.cores)

    sched.run(lambda s: decided(s) or past(s), max_steps)
    is_decided = decided(sched)
    live = [_round(synods[p]) for p in proposers if p in sched.cores and synods[p].ballot]
    undecided_rounds = highest_round(sched) if is_decided else min(live, default=1) - 1
    ballots = _ballot_rows(sched)
    delivered = {rec.event_id: rec.index for rec in sched.records if rec.kind == "deliver"}
    held_ok = all(delivered[m] > sched.messages[m].sent if m in delivered else
                  sched.messages[m].dst in sched.crashed or sched.steps - sched.messages[m].sent <= patience
                  for m in adversary.held)
    trace = _trace(sched, adversary.held, trace_rounds)
    return DuelResult(rounds=rounds, nodes=nodes, decided=is_decided, rounds_undecided=undecided_rounds,
                      steps=sched.steps, ticks=sum(1 for rec in sched.records if rec.kind == "tick"),
                      ballots=ballots, held=len(adversary.held), held_delivered_later=held_ok,
                      forced=adversary.forced, admissibility=sched.admissibility(patience),
                      trace=trace, trace_rounds=trace_rounds, schedule=tuple(sched.records),
                      messages=dict(sched.messages), held_ids=frozenset(adversary.held))


def _synods(sched: Scheduler) -> dict[str, PaxosSynod]:
    """The scheduler's cores as what they must be here: Paxos synod nodes."""
    synods = {}
    for node, core in sched.cores.items():
        if not isinstance(core, PaxosSynod):
            raise LocalProtocolError(f"{node} runs {core.backend}, not the Paxos synod")
        synods[node] = core
    return synods


def _round(core: PaxosSynod) -> int:
    """The round of ``core``'s current ballot (0 before its first)."""
    return 0 if core.ballot is None else core.ballot.round


def show(message: Any) -> str:
    """A short rendering of a synod message or local input (``Prepare 2.n1``, ``Accept 1.n2 green``)."""
    if isinstance(message, Prepare):
        return f"Prepare {message.ballot}"
    if isinstance(message, Promise):
        extra = "" if message.accepted_ballot is None else \
            f" (accepted {message.accepted_ballot} {message.accepted_value})"
        return f"Promise {message.ballot}{extra}"
    if isinstance(message, Accept):
        return f"Accept {message.ballot} {message.value}"
    if isinstance(message, Accepted):
        return f"Accepted {message.ballot} {message.value}"
    if isinstance(message, Nack):
        return f"Nack {message.ballot} (promised {message.promised})"
    if isinstance(message, AskDecided):
        return "AskDecided"
    if isinstance(message, Decided):
        return f"Decided {message.value}"
    if isinstance(message, Propose):
        return f"propose {message.value}"
    return describe(message)


def _trace(sched: Scheduler, held: set[int], rounds: int) -> tuple[str, ...]:
    lines = []
    for rec in sched.records:
        if _rounds_started(sched, rec) > rounds:
            break
        lines.append(_trace_line(sched, rec, held))
    return tuple(lines)


def _rounds_started(sched: Scheduler, rec: StepRecord) -> int:
    starts = [sched.messages[m].message.ballot.round for m in rec.outputs
              if isinstance(sched.messages[m].message, Prepare)]
    return max(starts, default=0)


def _trace_line(sched: Scheduler, rec: StepRecord, held: set[int]) -> str:
    head = f"#{rec.index:<4}"
    if rec.kind == "crash":
        return f"{head} {rec.node} CRASHES (the adversary's one crash; its disk survives, it never returns)"
    if rec.kind == "tick":
        what = f"{rec.node} tick"
    elif rec.kind == "input":
        what = f"{rec.node} {show(rec.message)}"
    else:
        what = f"{rec.src}->{rec.node} {show(rec.message)}"
        if rec.event_id in held and rec.sent is not None:
            what += f"  [held {rec.index - rec.sent} steps]"
        if rec.kind == "drop":
            what += "  (lost: crashed)"
    sent: dict[str, list[str]] = {}
    for mid in rec.outputs:
        event = sched.messages[mid]
        sent.setdefault(show(event.message), []).append(event.dst)
    effect = "; ".join(f"{text} to {','.join(dsts)}" for text, dsts in sent.items())
    return f"{head} {what:44} -> {effect}" if effect else f"{head} {what}"


def _ballot_rows(sched: Scheduler) -> tuple[BallotRow, ...]:
    started: dict[Ballot, int] = {}
    accepts: dict[Ballot, int] = {}
    preempted: dict[Ballot, str] = {}
    for rec in sched.records:
        for mid in rec.outputs:
            msg = sched.messages[mid].message
            if isinstance(msg, Prepare):
                started.setdefault(msg.ballot, rec.index)
            elif isinstance(msg, Accept):
                accepts.setdefault(msg.ballot, rec.index)
        if rec.kind == "deliver" and isinstance(rec.message, Nack) and rec.node == rec.message.ballot.node:
            preempted.setdefault(rec.message.ballot, str(rec.message.promised))
    return tuple(BallotRow(str(b), b.node, at, accepts.get(b), preempted.get(b))
                 for b, at in sorted(started.items(), key=lambda item: item[0].key))


# ===================================================================== part 2
@attrs.frozen
class GeometricFit:
    """``fraction(k) ~ c * r**k``, fitted by least squares on log fractions over ``rounds``."""

    r: float
    c: float
    rounds: tuple[int, ...]

    def at(self, k: int) -> float:
        """The fitted fraction after round ``k``."""
        return self.c * self.r ** k

    def to_json(self) -> dict[str, Any]:
        """The fit as JSON data."""
        return {"r": self.r, "c": self.c, "rounds": list(self.rounds)}


def fit_geometric(fractions: Sequence[float], counts: Sequence[int], min_count: int = 3) -> GeometricFit | None:
    """Fit ``c * r**k`` to ``fractions[k-1]`` (k = 1, 2, ...) by least squares on the logs.

    Only rounds where at least ``min_count`` runs are still undecided take part
    (the log of a count of 0, 1 or 2 is mostly noise); fewer than two such
    rounds give no fit (None).
    """
    points = [(k, math.log(f)) for k, (f, n) in enumerate(zip(fractions, counts), start=1) if n >= min_count]
    if len(points) < 2:
        return None
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return GeometricFit(r=math.exp(slope), c=math.exp(my - slope * mx), rounds=tuple(xs))


@attrs.frozen
class RoundsCurve:
    """Over many seeds: the ballot round in which the synod decided, and the undecided fractions."""

    label: str
    backoff: bool
    seeds: int
    decided_in: tuple[int | None, ...]
    fractions: tuple[float, ...]
    counts: tuple[int, ...]
    fit: GeometricFit | None
    settings: dict[str, Any]

    @property
    def undecided_at_limit(self) -> int:
        """Runs that had not decided when the time limit ran out."""
        return sum(1 for r in self.decided_in if r is None)

    def to_json(self) -> dict[str, Any]:
        """The curve as JSON data."""
        return {"label": self.label, "backoff": self.backoff, "seeds": self.seeds,
                "decided_in_round": list(self.decided_in),
                "undecided_after_round": {str(k): f for k, f in enumerate(self.fractions, start=1)},
                "undecided_runs_after_round": {str(k): n for k, n in enumerate(self.counts, start=1)},
                "fit": None if self.fit is None else self.fit.to_json(),
                "fitted": None if self.fit is None else
                {str(k): self.fit.at(k) for k in range(1, len(self.fractions) + 1)},
                "undecided_at_limit": self.undecided_at_limit, "settings": self.settings}


def synod_rounds(seeds: int, *, backoff: bool = True, nodes: int = 5, proposers: int = 3,
                 latency: tuple[float, float] = (1.0, 3.0), tick_ms: float = 1.0, retry_ticks: int = 20,
                 backoff_ticks: int = 4, limit_ms: float = 5_000.0, first_seed: int = 0) -> RoundsCurve:
    """For seeds ``first_seed``.., the ballot round in which the synod decides on a random network."""
    options = {"backoff": backoff, "retry_ticks": retry_ticks, "backoff_ticks": backoff_ticks}
    decided_in: list[int | None] = []
    for seed in range(first_seed, first_seed + seeds):
        decided_in.append(_decision_round(seed, nodes, proposers, options, latency, tick_ms, limit_ms))
    horizon = max((r for r in decided_in if r is not None), default=1)
    if any(r is None for r in decided_in):
        horizon += 1
    counts = tuple(sum(1 for r in decided_in if r is None or r > k) for k in range(1, horizon + 1))
    fractions = tuple(n / seeds for n in counts)
    settings = {"nodes": nodes, "proposers": proposers, "latency_ms": list(latency), "tick_ms": tick_ms,
                "retry_ticks": retry_ticks, "backoff_ticks": backoff_ticks if backoff else None,
                "limit_ms": limit_ms, "first_seed": first_seed}
    return RoundsCurve(label="back-off" if backoff else "no back-off", backoff=backoff, seeds=seeds,
                       decided_in=tuple(decided_in), fractions=fractions, counts=counts,
                       fit=fit_geometric(fractions, counts), settings=settings)


def _decision_round(seed: int, nodes: int, proposers: int, options: dict[str, Any],
                    latency: tuple[float, float], tick_ms: float, limit_ms: float) -> int | None:
    sched = Scheduler("synod-paxos", nodes, seed, RandomNetwork(seed, latency, tick_ms), options=options,
                      record=False)
    for i in range(proposers):
        sched.input(f"n{i + 1}", Propose(COLOURS[i % len(COLOURS)]))
    cores = tuple(_synods(sched).values())  # nobody crashes here
    if not sched.run(lambda s: s.now > limit_ms or any(c.decided is not None for c in cores),
                     max_steps=10_000_000) or sched.now > limit_ms:
        return None
    first = next(c for c in cores if c.decided is not None)
    chosen = [b for b, voters in first.learner.votes.items() if len(voters) >= first.quorum]
    return min(b.round for b in chosen)


# ===================================================================== part 3
@attrs.frozen
class ElectionStats:
    """Leader elections from a cold start for one backend and one timeout range, over many seeds.

    ``rounds`` holds, per run, the term (ballot round) of the first leader that
    stayed leader for ``hold_ms``, or None if none did within ``limit_ms``;
    ``times`` when that leader was elected; ``candidacies`` how many
    candidacies (node, term) were started before it.
    """

    backend: str
    low_ms: int
    high_ms: int
    rounds: tuple[int | None, ...]
    times: tuple[float | None, ...]
    candidacies: tuple[int, ...]
    settings: dict[str, Any]

    def histogram(self, top: int = 6) -> dict[str, int]:
        """Runs per number of rounds: "1".."top-1", "top+" and "none"."""
        hist = {str(k): 0 for k in range(1, top)}
        hist[f"{top}+"] = 0
        hist["none"] = 0
        for r in self.rounds:
            key = "none" if r is None else (str(r) if r < top else f"{top}+")
            hist[key] += 1
        return hist

    def time_quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the time to a stable leader (runs without one count as infinite)."""
        times = sorted(math.inf if t is None else t for t in self.times)
        if not times:
            return None
        value = times[min(len(times) - 1, max(0, math.ceil(q * len(times)) - 1))]
        return None if math.isinf(value) else value

    def to_json(self) -> dict[str, Any]:
        """The statistics as JSON data."""
        return {"backend": self.backend, "timeout_ms": [self.low_ms, self.high_ms],
                "rounds": list(self.rounds), "times_ms": list(self.times),
                "candidacies": list(self.candidacies), "histogram": self.histogram(),
                "median_ms": self.time_quantile(0.5), "p99_ms": self.time_quantile(0.99),
                "mean_candidacies": statistics.fmean(self.candidacies) if self.candidacies else None,
                "settings": self.settings}


class _StableLeader:
    """Observer: the first leader that keeps its term for ``hold_ms`` while no higher term starts."""

    def __init__(self, hold_ms: float) -> None:
        self.hold_ms = hold_ms
        self.max_epoch = 0
        self.current: tuple[str, int, float] | None = None
        self.candidacies: set[tuple[str, int]] = set()

    def __call__(self, sched: Scheduler, node: str) -> None:
        core = sched.cores.get(node)
        if core is None:
            return
        status = core.status()
        if status.role == Role.CANDIDATE:
            self.candidacies.add((node, status.epoch))
        if status.epoch > self.max_epoch:
            self.max_epoch = status.epoch
            if self.current is not None and self.current[1] < status.epoch:
                self.current = None
        if status.is_leader and status.epoch == self.max_epoch:
            if self.current is None or self.current[0] != node:
                self.current = (node, status.epoch, sched.now)
        elif self.current is not None and self.current[0] == node:
            self.current = None

    def stable(self, sched: Scheduler) -> bool:
        """True once the current leader has held on for ``hold_ms``."""
        return self.current is not None and sched.now - self.current[2] >= self.hold_ms


def election_rounds(backend: str, low_ms: int, high_ms: int, seeds: int, *, nodes: int = 5,
                    tick_ms: float = 5.0, latency: tuple[float, float] = (5.0, 10.0),
                    heartbeat_ms: float = 50.0, hold_factor: float = 2.0, limit_ms: float = 10_000.0,
                    first_seed: int = 0) -> ElectionStats:
    """Elect a leader from a cold start ``seeds`` times; timeouts ``low_ms``..``high_ms`` in ``tick_ms`` ticks."""
    low, high = round(low_ms / tick_ms), round(high_ms / tick_ms)
    options: dict[str, Any] = {"election_ticks_min": low, "election_ticks_max": high,
                               "heartbeat_ticks": max(1, min(low - 1, round(heartbeat_ms / tick_ms)))}
    hold_ms = hold_factor * high_ms
    rounds: list[int | None] = []
    times: list[float | None] = []
    candidacies: list[int] = []
    for seed in range(first_seed, first_seed + seeds):
        watch = _StableLeader(hold_ms)
        sched = Scheduler(backend, nodes, seed, RandomNetwork(seed, latency, tick_ms), options=options,
                          record=False, observer=watch)
        sched.run(lambda s: watch.stable(s) or s.now > limit_ms, max_steps=50_000_000)
        if watch.stable(sched) and watch.current is not None:
            rounds.append(watch.current[1])
            times.append(watch.current[2])
            candidacies.append(sum(1 for _, epoch in watch.candidacies if epoch <= watch.current[1]))
        else:
            rounds.append(None)
            times.append(None)
            candidacies.append(len(watch.candidacies))
    settings = {"nodes": nodes, "tick_ms": tick_ms, "latency_ms": list(latency), "heartbeat_ms": heartbeat_ms,
                "hold_ms": hold_ms, "limit_ms": limit_ms, "options": options, "first_seed": first_seed}
    return ElectionStats(backend, low_ms, high_ms, tuple(rounds), tuple(times), tuple(candidacies), settings)


# ===================================================================== report
@attrs.frozen
class FlpReport:
    """All three parts: the duel, the back-off curves, the election distributions."""

    duel: DuelResult
    curves: tuple[RoundsCurve, ...]
    elections: tuple[ElectionStats, ...]

    @property
    def matches_essay(self) -> bool:
        """The essay's claims: the adversary wins without back-off; randomness makes the tail geometric."""
        backoff = [c for c in self.curves if c.backoff]
        return self.duel.ok and all(c.fit is not None and c.fit.r < 1 and c.undecided_at_limit == 0
                                    for c in backoff)

    def format(self) -> str:
        """The report as readable text."""
        return "\n\n".join([self.duel.format(), _format_curves(self.curves), _format_elections(self.elections),
                            "Essay's claims " + ("hold." if self.matches_essay else "DO NOT hold.")])

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON document."""
        return {"duel": self.duel.to_json(), "backoff": [c.to_json() for c in self.curves],
                "elections": [e.to_json() for e in self.elections], "matches_essay": self.matches_essay}


def _format_curves(curves: Sequence[RoundsCurve]) -> str:
    first = curves[0].settings
    lines = [
        "Part 2 -- a random network: the fraction of runs still undecided after ballot round k",
        f"  {first['nodes']} nodes, {first['proposers']} proposers at t=0 "
        f"({', '.join(COLOURS[:first['proposers']])}); ticks of {first['tick_ms']:g} ms, one-way delay "
        f"uniform {first['latency_ms'][0]:g}-{first['latency_ms'][1]:g} ms; a ballot is abandoned after a "
        f"Nack or {first['retry_ticks']} ticks;",
        f"  back-off: retry after a random 1..{_backoff_ticks(curves)} ticks (no back-off: retry at once); "
        f"{curves[0].seeds} seeds per column.  Fit: c*r^k by least squares on log fractions "
        "(rounds with >= 3 runs undecided).",
    ]
    horizon = min(max(len(c.fractions) for c in curves), _SHOWN_ROUNDS)
    header = "  round k " + "".join(f"| {c.label + ': undecided':>24} {'fitted':>8} " for c in curves)
    lines.append(header)
    for k in range(1, horizon + 1):
        row = f"  {k:>7} "
        for c in curves:
            if k <= len(c.fractions):
                frac = f"{c.fractions[k - 1]:.3f} ({c.counts[k - 1]})"
            else:
                frac = f"{0.0:.3f} (0)"
            fitted = f"{c.fit.at(k):.3f}" if c.fit is not None else "-"
            row += f"| {frac:>24} {fitted:>8} "
        lines.append(row)
    for c in curves:
        decided = [r for r in c.decided_in if r is not None]
        if len(c.fractions) > horizon:
            lines.append(f"  ... {c.label}: {c.counts[horizon - 1]} runs still undecided after round {horizon}; "
                         f"the last one decided in round {max(decided, default=0)}")
    for c in curves:
        if c.fit is None:
            lines.append(f"  {c.label}: too few undecided runs to fit a curve")
        else:
            lines.append(f"  {c.label}: r = {c.fit.r:.3f} per round (c = {c.fit.c:.3f}, rounds "
                         f"{c.fit.rounds[0]}..{c.fit.rounds[-1]}); undecided at the time limit: "
                         f"{c.undecided_at_limit}")
    if any(not c.backoff and c.undecided_at_limit == 0 for c in curves):
        lines.append("  The back-off-free synod that Part 1's adversary keeps undecided decides in every run here: "
                     "random delays break the duel too, only more slowly.")
    return "\n".join(lines)


def _backoff_ticks(curves: Sequence[RoundsCurve]) -> str:
    return ", ".join(str(c.settings["backoff_ticks"]) for c in curves if c.backoff) or "-"


def _format_elections(stats: Sequence[ElectionStats]) -> str:
    s0 = stats[0].settings
    hist_keys = list(stats[0].histogram())
    lines = [
        "Part 3 -- leader election from a cold start: rounds (terms / ballot rounds) until a stable leader",
        f"  {s0['nodes']} nodes, every election timer starting at t=0; ticks of {s0['tick_ms']:g} ms "
        f"(timeouts scaled to whole ticks); one-way delay uniform {s0['latency_ms'][0]:g}-"
        f"{s0['latency_ms'][1]:g} ms (~15 ms round trip);",
        f"  heartbeat every {s0['heartbeat_ms']:g} ms; stable = leader keeps its term for 2x the longest "
        f"timeout with no higher term started; give up after {s0['limit_ms']:g} ms; "
        f"{len(stats[0].rounds)} seeds per row.",
        f"  {'backend':10} {'timeout':>9} | rounds: " + " ".join(f"{k:>4}" for k in hist_keys)
        + f" | {'median':>7} {'p99':>7} ms | candidacies",
    ]
    for st in stats:
        hist = st.histogram()
        median, p99 = st.time_quantile(0.5), st.time_quantile(0.99)
        mean_c = statistics.fmean(st.candidacies) if st.candidacies else 0.0
        lines.append(f"  {st.backend:10} {f'{st.low_ms}-{st.high_ms}':>9} |         "
                     + " ".join(f"{hist[k]:>4}" for k in hist_keys)
                     + f" | {_ms(median):>7} {_ms(p99):>7}    | {mean_c:.1f}")
    lines.append("  (Raft: one vote per term, so candidates of one term can split it.  Multi-Paxos: ballots are "
                 "(round, node), so candidates of one round never split a vote -- the higher ballot pre-empts "
                 "the lower -- and a pre-empted candidate adds its own random back-off of 0.."
                 f"{_paxos_backoff()} ticks.)")
    return "\n".join(lines)


def _paxos_backoff() -> int:
    from multipaxos.options import MultiPaxosOptions

    return MultiPaxosOptions().backoff_ticks_max


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def run_flp(rounds: int = 20, seeds: int = 200, *, trace_rounds: int = 3, election_seeds: int | None = None,
            ranges: Sequence[tuple[int, int]] = ELECTION_RANGES,
            backends: Sequence[str] = ELECTION_BACKENDS) -> FlpReport:
    """Run all three parts of the FLP demonstration."""
    duel = run_duel(rounds, trace_rounds=trace_rounds)
    curves = (synod_rounds(seeds, backoff=True), synod_rounds(seeds, backoff=False))
    n_elect = seeds if election_seeds is None else election_seeds
    elections = tuple(election_rounds(backend, low, high, n_elect) for backend in backends for low, high in ranges)
    return FlpReport(duel, curves, elections)
