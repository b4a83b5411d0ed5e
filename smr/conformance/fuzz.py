"""Swarm campaigns: many seeds, each drawing its own fault settings, judged like the catalogue.

Each seed runs ``SimConfig(swarm=True)``: the seed draws the network
settings and a two-phase fault schedule (faults during the first 60 % of the
run, then everything heals and every node restarts; see
:mod:`smr.sim.faults`).  The run is judged as a catalogue run is, with the
liveness phase starting at that heal.  The liveness bound (default 1 s, about
four election rounds; plain Raft's slowest recovery in 200 seeds took 0.6 s)
needs twice its length after the heal, so the default run is 5 s long.

Seeds are independent, so a campaign streams them to any executor (local
processes, or a Dask scheduler's workers; see :mod:`smr.campaign`) with a
bounded number in flight and folds each result into the report as it
arrives: the parent keeps the seed ranges done and the failures, nothing per
passing seed.  Results are folded in seed order, so the report (and "the first
seed that caught it") is the same whatever the executor.  A stopped campaign's
report says which seeds are done; resuming from it runs the rest, and reports
of disjoint shards merge into one (:func:`merge_reports`).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import random
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any

import attrs

from ..campaign import Progress, SeedSet, StopRequest, Workers, provenance, stream, worker_count
from ..errors import LocalProtocolError
from ..sim import ClientConfig, DiskConfig, SimConfig, simulate
from ..sim.faults import draw_swarm
from .judging import Judgement, judge_result, mutant_option, mutant_options


@attrs.frozen
class FuzzSettings:
    """What every seed of a campaign shares: backend, mutant, cluster size, simulated time."""

    backend: str = "raft"
    mutant: str | None = None
    nodes: int = 3
    duration_ms: float = 5000.0
    clients: int = 3
    liveness_bound_ms: float = 1000.0
    #: Each seed also draws membership changes (adds, removes, replaces) among its faults.
    membership: bool = False
    #: Each seed also draws storage faults (wipes, bit flips, lost tails, full disks; smr.sim.disk).
    storage: bool = False
    #: Nodes check their durable state at start (False: the broken variant that loads damage as it is).
    storage_checks: bool = True

    def config(self) -> SimConfig:
        """The swarm simulator config of one seed of this campaign (LocalProtocolError if inconsistent)."""
        if self.liveness_bound_ms <= 0 or 0.4 * self.duration_ms < 2 * self.liveness_bound_ms:
            raise LocalProtocolError(
                f"a swarm run heals at 60% of its duration and then needs twice the liveness bound "
                f"({self.liveness_bound_ms:g} ms): use a duration of at least "
                f"{5 * self.liveness_bound_ms:g} ms or a smaller bound")
        if self.storage and self.membership:
            raise LocalProtocolError("--storage and --membership cannot be drawn together: a run's damaged "
                                     "nodes must stay a minority of its voters")
        return SimConfig(backend=self.backend, backend_options=mutant_options(self.backend, self.mutant),
                         nodes=self.nodes, duration_ms=self.duration_ms, swarm=True,
                         swarm_membership=self.membership, swarm_storage=self.storage,
                         disk=DiskConfig(checks=self.storage_checks), trace=False,
                         count_bytes=False, clients=ClientConfig(count=self.clients))

    def replay(self, seed: int) -> str:
        """The one command that replays and re-judges ``seed`` of this campaign."""
        parts = [f"smr fuzz --backend {self.backend} --first-seed {seed} --seeds 1",
                 f"--nodes {self.nodes} --duration {self.duration_ms:g}"]
        if self.clients != 3:
            parts.append(f"--clients {self.clients}")
        if self.liveness_bound_ms != 1000.0:
            parts.append(f"--liveness-bound {self.liveness_bound_ms:g}")
        if self.mutant:
            parts.append(f"--mutant {mutant_option(self.mutant)}")
        if self.membership:
            parts.append("--membership")
        if self.storage:
            parts.append("--storage" if self.storage_checks else "--storage-unchecked")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The settings as plain JSON data (the mutant by its option name)."""
        return {"backend": self.backend, "mutant": None if self.mutant is None else mutant_option(self.mutant),
                "nodes": self.nodes, "duration_ms": self.duration_ms, "clients": self.clients,
                "liveness_bound_ms": self.liveness_bound_ms, "membership": self.membership,
                "storage": self.storage, "storage_checks": self.storage_checks}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FuzzSettings:
        """The settings recorded in a report's JSON."""
        return cls(backend=doc["backend"], mutant=doc["mutant"], nodes=doc["nodes"],
                   duration_ms=float(doc["duration_ms"]), clients=doc["clients"],
                   liveness_bound_ms=float(doc["liveness_bound_ms"]), membership=bool(doc.get("membership", False)),
                   storage=bool(doc.get("storage", False)), storage_checks=bool(doc.get("storage_checks", True)))


@attrs.frozen
class SeedReport:
    """One judged swarm seed."""

    seed: int
    judgement: Judgement
    swarm: str
    ops: int

    @property
    def passed(self) -> bool:
        """True when every judgement passed."""
        return self.judgement.passed


def swarm_heal(config: SimConfig, seed: int) -> tuple[float, str]:
    """When the swarm schedule of ``seed`` heals for good, and the one-line description of the draw."""
    drawn = draw_swarm(config, random.Random(f"{seed}/swarm"))  # the very draw the engine makes
    heal = max((max(f.at, f.until_ms) if f.action == "flap" else f.at) for f in drawn.faults)
    return heal, drawn.describe()


def run_seed(settings: FuzzSettings, seed: int, trace: bool = False) -> tuple[SeedReport, Any]:
    """Simulate and judge one swarm seed; returns the report and the SimResult."""
    config = settings.config()
    if trace:
        config = attrs.evolve(config, trace=True)
    heal, drawn = swarm_heal(config, seed)
    try:
        result = simulate(config, seed)
    except Exception as exc:  # a core (or the simulator) crashed: a finding with its replay, not the campaign's end
        where = traceback.extract_tb(exc.__traceback__)[-1]
        crash = f"the run raised {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})"
        return SeedReport(seed, Judgement(invariants=(crash,)), drawn, 0), None
    if result.swarm != drawn:
        raise AssertionError(f"seed {seed}: the simulator drew {result.swarm!r}, the judge expected "
                             f"{drawn!r}; smr.sim's swarm seeding changed")
    judgement = judge_result(result, heal, settings.liveness_bound_ms)
    return SeedReport(seed, judgement, drawn, len(result.history)), result



def judge_seed(settings: FuzzSettings, seed: int) -> SeedReport:
    """Simulate and judge one swarm seed (what a campaign's workers run)."""
    return run_seed(settings, seed)[0]


def draw_seed(settings: FuzzSettings, seed: int) -> SeedReport:
    """Draw one seed's swarm settings without simulating: a passing report (``--dry-run``)."""
    _, drawn = swarm_heal(settings.config(), seed)
    return SeedReport(seed, Judgement(), drawn, 0)


#: Report fields that describe how a run went rather than what it found (left out when comparing).
RUN_FIELDS = ("wall_s", "seeds_per_s", "jobs", "scheduler")


def _failure_json(settings: FuzzSettings, failure: SeedReport) -> dict[str, Any]:
    return {"seed": failure.seed, "failed": sorted(failure.judgement.failed),
            "problems": failure.judgement.problems(), "swarm": failure.swarm, "ops": failure.ops,
            "judgement": {k: list(v) for k, v in attrs.asdict(failure.judgement).items()},
            "replay": settings.replay(failure.seed)}


def _failure_from_json(doc: dict[str, Any]) -> SeedReport:
    judgement = Judgement(**{k: tuple(v) for k, v in doc["judgement"].items()})
    return SeedReport(int(doc["seed"]), judgement, doc["swarm"], int(doc.get("ops", 0)))


@attrs.frozen
class FuzzReport:
    """What a campaign found: seeds run, failures with replay commands, speed, and first catch."""

    settings: FuzzSettings
    first_seed: int
    seeds_requested: int
    seeds_run: int
    failures: tuple[SeedReport, ...]
    wall_s: float
    jobs: int
    stopped_early: bool
    done: SeedSet = attrs.field(factory=SeedSet)
    requested: SeedSet | None = None
    stopped_by: str | None = None
    scheduler: str | None = None
    dry_run: bool = False
    provenance: dict[str, Any] = attrs.field(factory=dict)

    @property
    def requested_seeds(self) -> SeedSet:
        """Every seed the campaign was asked to judge."""
        if self.requested is not None:
            return self.requested
        return SeedSet([(self.first_seed, self.first_seed + self.seeds_requested - 1)])

    @property
    def complete(self) -> bool:
        """True when every requested seed was judged."""
        return self.seeds_run >= self.seeds_requested

    @property
    def seeds_per_s(self) -> float:
        """Seeds judged per wall-clock second."""
        return self.seeds_run / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def first_caught(self) -> int | None:
        """The lowest seed that failed a judgement, if any."""
        return self.failures[0].seed if self.failures else None

    @property
    def seeds_to_catch(self) -> int | None:
        """How many seeds (counting from the first) it took to see the first failure."""
        return None if self.first_caught is None else self.first_caught - self.first_seed + 1

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data: settings, seed ranges done, verdicts, provenance, speed."""
        s = self.settings
        return {
            **s.to_json(), **self.provenance, "format": 2,
            "first_seed": self.first_seed, "seeds_requested": self.seeds_requested,
            "requested_ranges": self.requested_seeds.ranges(), "seed_ranges": self.done.ranges(),
            "seeds_run": self.seeds_run, "complete": self.complete, "stopped_early": self.stopped_early,
            "stopped_by": self.stopped_by, "dry_run": self.dry_run,
            "jobs": self.jobs, "scheduler": self.scheduler,
            "wall_s": round(self.wall_s, 3), "seeds_per_s": round(self.seeds_per_s, 3),
            "first_caught": self.first_caught, "seeds_to_catch": self.seeds_to_catch,
            "failures": [_failure_json(s, f) for f in self.failures],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FuzzReport:
        """A report read back from its JSON (LocalProtocolError if it is not one)."""
        try:
            settings = FuzzSettings.from_json(doc)
            first, requested_count = int(doc["first_seed"]), int(doc["seeds_requested"])
            done = SeedSet(doc["seed_ranges"])
            requested = SeedSet(doc.get("requested_ranges") or [(first, first + requested_count - 1)])
            failures = tuple(_failure_from_json(f) for f in doc["failures"])
            return cls(settings, first, requested_count, int(doc["seeds_run"]), failures,
                       float(doc["wall_s"]), int(doc["jobs"]), bool(doc["stopped_early"]), done, requested,
                       doc.get("stopped_by"), doc.get("scheduler"), bool(doc.get("dry_run", False)),
                       {k: doc.get(k) for k in ("version", "commit", "python")})
        except (KeyError, TypeError, ValueError) as exc:
            raise LocalProtocolError(f"not a fuzz report (format 2): missing or bad {exc}") from None

    def describe(self) -> str:
        """The report for a person: totals, speed, then every failure with its replay command."""
        s = self.settings
        what = s.backend + (f" with {mutant_option(s.mutant)}" if s.mutant else "") + \
            (" with membership changes" if s.membership else "") + \
            ("" if not s.storage else " with storage faults" if s.storage_checks else " with unchecked storage faults")
        where = f"Dask scheduler {self.scheduler}" if self.scheduler else f"{self.jobs} process(es)"
        lines = [f"{what}: {self.seeds_run} of {self.seeds_requested} seeds from {self.first_seed}"
                 f"{' (stopped at the first failure)' if self.stopped_early else ''}"
                 f"{' (dry run: drawn, not simulated)' if self.dry_run else ''}, "
                 f"{len(self.failures)} failed; {self.wall_s:.1f} s wall, {self.seeds_per_s:.2f} seeds/s "
                 f"on {where}"]
        if not self.complete:
            lines.append(f"seeds done: {self.done.describe()}")
        if s.mutant:
            lines.append(f"mutant caught first by seed {self.first_caught} after {self.seeds_to_catch} seeds"
                         if self.first_caught is not None else
                         f"mutant NOT caught in {self.seeds_run} seeds")
        for f in self.failures:
            lines.append(f"seed {f.seed} failed {sorted(f.judgement.failed)}  ({f.swarm})")
            lines += [f"  {p}" for p in f.judgement.problems()]
            lines.append(f"  replay: {s.replay(f.seed)}")
        return "\n".join(lines)


def _check_consistent(what: str, first: FuzzReport, other: FuzzReport) -> None:
    if other.settings.to_json() != first.settings.to_json():
        raise LocalProtocolError(f"{what}: settings differ ({other.settings.to_json()} vs "
                                 f"{first.settings.to_json()})")
    for key in ("version", "commit"):
        if other.provenance.get(key) != first.provenance.get(key):
            raise LocalProtocolError(f"{what}: made by different code ({key} {other.provenance.get(key)} vs "
                                     f"{first.provenance.get(key)})")
    if other.dry_run != first.dry_run:
        raise LocalProtocolError(f"{what}: one is a dry run and the other is not")


def merge_reports(reports: Sequence[FuzzReport]) -> FuzzReport:
    """One report from shards with the same settings and code and no seed in common (else LocalProtocolError)."""
    if not reports:
        raise LocalProtocolError("nothing to merge")
    first = reports[0]
    requested, done = SeedSet(), SeedSet()
    for i, report in enumerate(reports):
        _check_consistent(f"report {i + 1} cannot merge with report 1", first, report)
        common = requested.overlap(report.requested_seeds)
        if len(common):
            raise LocalProtocolError(f"report {i + 1} overlaps an earlier one on seeds {common.describe()}")
        for low, high in report.requested_seeds.ranges():
            requested.add_range(low, high)
        for low, high in report.done.ranges():
            done.add_range(low, high)
    failures = tuple(sorted((f for r in reports for f in r.failures), key=lambda f: f.seed))
    lows = requested.ranges()
    return FuzzReport(first.settings, lows[0][0], len(requested), sum(r.seeds_run for r in reports), failures,
                      sum(r.wall_s for r in reports), max(r.jobs for r in reports),
                      any(r.stopped_early for r in reports), done, requested,
                      next((r.stopped_by for r in reports if r.stopped_by), None), None, first.dry_run,
                      dict(first.provenance))


def fuzz(settings: FuzzSettings, first_seed: int, seeds: int, jobs: int = 1,
         stop_at_first: bool = False, progress: bool = False, *, executor: Executor | None = None,
         stop: StopRequest | None = None, resume: FuzzReport | None = None, dry_run: bool = False,
         scheduler: str | None = None, checkpoint: Callable[[FuzzReport], None] | None = None,
         checkpoint_every_s: float = 60.0) -> FuzzReport:
    """Judge ``seeds`` swarm seeds from ``first_seed`` on ``executor`` (else ``jobs`` local processes).

    With ``resume`` (an earlier report of the same campaign) its judged seeds
    are kept and skipped.  When ``stop`` is set the campaign stops handing out
    seeds and returns what it has (``stopped_by`` says why).  ``checkpoint``
    gets the report so far every ``checkpoint_every_s`` seconds.
    """
    settings.config()  # an unknown backend or mutant fails here, before any process starts
    done = SeedSet()
    failures: list[SeedReport] = []
    run, wall_before = 0, 0.0
    made_by = provenance()
    if resume is not None:
        _check_consistent("--resume report does not match this campaign", resume,
                          FuzzReport(settings, first_seed, seeds, 0, (), 0.0, jobs, False,
                                     dry_run=dry_run, provenance=made_by))
        extra = SeedSet([(first_seed, first_seed + seeds - 1)])
        outside = len(resume.done) - len(resume.done.overlap(extra))
        if outside:
            raise LocalProtocolError(f"the --resume report judged {outside} seed(s) outside "
                                     f"{first_seed}-{first_seed + seeds - 1}; give the same --first-seed and "
                                     f"--seeds as the campaign it came from")
        done, failures, run, wall_before = SeedSet(resume.done.ranges()), list(resume.failures), \
            resume.seeds_run, resume.wall_s
    stop = stop if stop is not None else StopRequest()
    judge = functools.partial(draw_seed if dry_run else judge_seed, settings)
    bar = Progress(f"fuzz {settings.backend}", seeds, "seed", quiet=not progress)
    bar.advance(run, f"{len(failures)} failed")
    started = saved = time.monotonic()
    stopped = False
    workers = jobs

    def report_now() -> FuzzReport:
        return FuzzReport(settings, first_seed, seeds, run, tuple(failures),
                          wall_before + time.monotonic() - started, workers, stopped, SeedSet(done.ranges()),
                          None, stop.reason if stop else None, scheduler, dry_run, made_by)

    owned = Workers(jobs=jobs).executor(stop) if executor is None else contextlib.nullcontext(executor)
    try:
        with owned as pool:
            workers = worker_count(pool)
            todo: Iterable[int] = done.missing(first_seed, seeds)
            if stop_at_first and failures:
                todo = ()
            with contextlib.closing(stream(pool, judge, todo, stop)) as results:
                for seed, report in results:
                    run += 1
                    done.add(seed)
                    if not report.passed:
                        bisect.insort(failures, report, key=lambda f: f.seed)
                    bar.advance(1, f"{len(failures)} failed")
                    if failures and stop_at_first and not stop:
                        stopped = run < seeds
                        break
                    if checkpoint is not None and time.monotonic() - saved >= checkpoint_every_s:
                        checkpoint(report_now())
                        saved = time.monotonic()
    finally:
        bar.close()
    return report_now()

