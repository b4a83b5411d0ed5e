"""Swarm campaigns: many seeds, each drawing its own fault settings, judged like the catalogue.

Each seed runs ``SimConfig(swarm=True)``: the seed draws the network
settings and a two-phase fault schedule (faults during the first 60 % of the
run, then everything heals and every node restarts; see
:mod:`smr.sim.faults`).  The run is judged as a catalogue run is, with the
liveness phase starting at that heal.  The liveness bound (default 1 s, about
four election rounds; plain Raft's slowest recovery in 200 seeds took 0.6 s)
needs twice its length after the heal, so the default run is 5 s long.

Seeds are independent, so a campaign spreads them over processes; results are
collected in seed order, so the report (and "the first seed that caught it")
is the same whatever the number of processes.
"""

from __future__ import annotations

import random
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import attrs

from ..errors import LocalProtocolError
from ..sim import ClientConfig, SimConfig, simulate
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

    def config(self) -> SimConfig:
        """The swarm simulator config of one seed of this campaign (LocalProtocolError if inconsistent)."""
        if self.liveness_bound_ms <= 0 or 0.4 * self.duration_ms < 2 * self.liveness_bound_ms:
            raise LocalProtocolError(
                f"a swarm run heals at 60% of its duration and then needs twice the liveness bound "
                f"({self.liveness_bound_ms:g} ms): use a duration of at least "
                f"{5 * self.liveness_bound_ms:g} ms or a smaller bound")
        return SimConfig(backend=self.backend, backend_options=mutant_options(self.backend, self.mutant),
                         nodes=self.nodes, duration_ms=self.duration_ms, swarm=True,
                         swarm_membership=self.membership, trace=False,
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
        return " ".join(parts)


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


def _task(args: tuple[FuzzSettings, int]) -> SeedReport:
    return run_seed(*args)[0]


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
        """The report as plain JSON data."""
        s = self.settings
        return {
            "backend": s.backend, "mutant": None if s.mutant is None else mutant_option(s.mutant),
            "nodes": s.nodes, "duration_ms": s.duration_ms, "clients": s.clients,
            "liveness_bound_ms": s.liveness_bound_ms, "membership": s.membership,
            "first_seed": self.first_seed, "seeds_requested": self.seeds_requested,
            "seeds_run": self.seeds_run, "stopped_early": self.stopped_early, "jobs": self.jobs,
            "wall_s": round(self.wall_s, 3), "seeds_per_s": round(self.seeds_per_s, 3),
            "first_caught": self.first_caught, "seeds_to_catch": self.seeds_to_catch,
            "failures": [{"seed": f.seed, "failed": sorted(f.judgement.failed),
                          "problems": f.judgement.problems(), "swarm": f.swarm,
                          "replay": s.replay(f.seed)} for f in self.failures],
        }

    def describe(self) -> str:
        """The report for a person: totals, speed, then every failure with its replay command."""
        s = self.settings
        what = s.backend + (f" with {mutant_option(s.mutant)}" if s.mutant else "") + \
            (" with membership changes" if s.membership else "")
        lines = [f"{what}: {self.seeds_run} of {self.seeds_requested} seeds from {self.first_seed}"
                 f"{' (stopped at the first failure)' if self.stopped_early else ''}, "
                 f"{len(self.failures)} failed; {self.wall_s:.1f} s wall, {self.seeds_per_s:.2f} seeds/s "
                 f"on {self.jobs} process(es)"]
        if s.mutant:
            lines.append(f"mutant caught first by seed {self.first_caught} after {self.seeds_to_catch} seeds"
                         if self.first_caught is not None else
                         f"mutant NOT caught in {self.seeds_run} seeds")
        for f in self.failures:
            lines.append(f"seed {f.seed} failed {sorted(f.judgement.failed)}  ({f.swarm})")
            lines += [f"  {p}" for p in f.judgement.problems()]
            lines.append(f"  replay: {s.replay(f.seed)}")
        return "\n".join(lines)


def _results(settings: FuzzSettings, seeds: Sequence[int], jobs: int) -> Iterator[SeedReport]:
    if jobs <= 1:
        for seed in seeds:
            yield run_seed(settings, seed)[0]
        return
    pool = ProcessPoolExecutor(max_workers=jobs)
    try:
        # One seed per task: a seed takes a good fraction of a second, far more than the hand-off,
        # and a campaign that stops at its first failure wastes at most one seed per process.
        yield from pool.map(_task, [(settings, seed) for seed in seeds])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def fuzz(settings: FuzzSettings, first_seed: int, seeds: int, jobs: int = 1,
         stop_at_first: bool = False, progress: bool = False) -> FuzzReport:
    """Run ``seeds`` swarm seeds from ``first_seed`` over ``jobs`` processes and report what failed."""
    settings.config()  # an unknown backend or mutant fails here, before any process starts
    numbers = list(range(first_seed, first_seed + seeds))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=seeds, desc=f"fuzz {settings.backend}", unit="seed", file=sys.stderr,
                   leave=False, dynamic_ncols=True)
    failures: list[SeedReport] = []
    run = 0
    started = time.monotonic()
    stopped = False
    results = _results(settings, numbers, jobs)
    try:
        for report in results:
            run += 1
            if not report.passed:
                failures.append(report)
            if bar is not None:
                bar.update()
                bar.set_postfix(failed=len(failures), refresh=False)
            if failures and stop_at_first:
                stopped = run < seeds
                break
    finally:
        getattr(results, "close", lambda: None)()
        if bar is not None:
            bar.close()
    return FuzzReport(settings, first_seed, seeds, run, tuple(failures), time.monotonic() - started,
                      jobs, stopped)
