"""The essay as an executable table: every algorithm, every scenario, many seeds.

:func:`run_essay_table` runs each WriteOnce algorithm under each scenario of
:mod:`synod.scenarios` for ``seeds`` seeds on the shared simulator, judges
every run (:mod:`synod.judge`) and fills a table algorithm x property ->
held / violated (with seed counts).  For every violated cell it searches for
the smallest counterexample: the smallest cluster and fewest proposals that
still fail (sizes tried in increasing order, a fixed range of seeds each),
and among those the run with the shortest trace, printed as a readable trace
with the one call that replays it.

The essay predicts the outcome (:data:`EXPECTED`): the coordinator is not
fault tolerant; majority voting does not terminate on a split vote;
tie-break voting is not fault tolerant (one voter crashing before it votes);
Paxos keeps agreement and validity always and terminates once the network
stabilises.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from smr.sim import Simulation

from .judge import DecisionLog, RunVerdict, run_judged
from .scenarios import DEFAULT_BOUND_MS, SCENARIOS, SCENARIOS_BY_NAME, Scenario, build_config

#: The essay's algorithms: table name -> (simulator backend, the essay's class name).
ALGORITHMS: dict[str, tuple[str, str]] = {
    "coordinator": ("synod-coordinator", "DistributedWriteOnce"),
    "majority": ("synod-majority", "MajorityRulesVoting"),
    "tiebreak": ("synod-tiebreak", "TiebreakVoting"),
    "paxos": ("synod-paxos", "Paxos synod"),
}

PROPERTIES = ("agreement", "validity", "termination", "fault_tolerance")

#: What the essay says: (algorithm, property) -> holds?
EXPECTED: dict[tuple[str, str], bool] = {
    **{(a, p): True for a in ALGORITHMS for p in PROPERTIES},
    ("coordinator", "fault_tolerance"): False,
    ("majority", "termination"): False,
    ("majority", "fault_tolerance"): False,
    ("tiebreak", "fault_tolerance"): False,
}


@attrs.frozen
class RunRecord:
    """One judged run: which algorithm, scenario, size and seed, and the verdict."""

    algorithm: str
    scenario: str
    seed: int
    nodes: int
    proposers: int
    verdict: RunVerdict

    def violates(self, prop: str) -> bool:
        """True if this run is evidence against ``prop`` (only for properties its scenario judges)."""
        if prop == "agreement":
            return not self.verdict.agreement
        if prop == "validity":
            return not self.verdict.validity
        judged = SCENARIOS_BY_NAME[self.scenario].judges
        if prop == "termination":
            return "termination" in judged and not self.verdict.termination
        return "fault_tolerance" in judged and not self.verdict.ok


@attrs.frozen
class Counterexample(RunRecord):
    """The smallest failing run found for one (algorithm, property): the run, why it fails, and its trace."""

    property: str
    faults: tuple[str, ...]
    problems: tuple[str, ...]
    trace: tuple[str, ...]

    @builtins.property  # this class has a field named ``property``
    def replay(self) -> str:
        """The Python call that replays this run."""
        return (f"synod.essay.replay({self.scenario!r}, {self.algorithm!r}, seed={self.seed}, "
                f"nodes={self.nodes}, proposers={self.proposers})")

    def format(self, max_lines: int = 60) -> str:
        """A readable account: configuration, fault schedule, reasons and the (clipped) trace."""
        title = SCENARIOS_BY_NAME[self.scenario].title
        lines = [f"counterexample: {self.algorithm} violates {self.property}",
                 f"  scenario {self.scenario} ({title}): nodes={self.nodes} proposals={self.proposers} "
                 f"seed={self.seed}",
                 f"  faults: {'; '.join(self.faults) or 'none'}"]
        lines += [f"  why: {p}" for p in self.problems]
        lines.append(f"  replay: {self.replay}")
        lines.append(f"  trace ({len(self.trace)} lines):")
        shown = self.trace if len(self.trace) <= max_lines else self.trace[:max_lines]
        lines += [f"    {t}" for t in shown]
        if len(shown) < len(self.trace):
            lines.append(f"    ... {len(self.trace) - len(shown)} more lines")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The counterexample as JSON data."""
        return {"scenario": self.scenario, "seed": self.seed, "nodes": self.nodes,
                "proposers": self.proposers, "faults": list(self.faults),
                "problems": list(self.problems), "replay": self.replay, "trace_lines": len(self.trace)}


@attrs.frozen
class Cell:
    """One (algorithm, property) cell: over how many runs it was judged and how many violated it."""

    algorithm: str
    property: str
    runs: int
    violations: int
    violating_seeds: tuple[tuple[str, int], ...]
    counterexample: Counterexample | None = None

    @builtins.property  # this class has a field named ``property``
    def held(self) -> bool:
        """True if no run violated the property."""
        return self.violations == 0

    @builtins.property  # this class has a field named ``property``
    def expected(self) -> bool:
        """What the essay predicts for this cell."""
        return EXPECTED[(self.algorithm, self.property)]


@attrs.frozen
class EssayTable:
    """The essay's verdicts: algorithm x property, with counts and counterexamples."""

    seeds: int
    scenarios: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]
    records: tuple[RunRecord, ...] = attrs.field(repr=False)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms in table order."""
        return tuple(dict.fromkeys(a for a, _ in self.cells))

    @property
    def matches_essay(self) -> bool:
        """True if every cell came out as the essay predicts."""
        return all(c.held == c.expected for c in self.cells.values())

    def format(self, counterexamples: bool = True) -> str:
        """The table as text (one row per algorithm), then each counterexample."""
        width = 18
        first = 36
        header = "algorithm".ljust(first) + "".join(p.ljust(width) for p in PROPERTIES)
        lines = [f"essay table: {self.seeds} seeds x {len(self.scenarios)} scenarios "
                 f"({', '.join(self.scenarios)})", header, "-" * len(header)]
        for alg in self.algorithms:
            row = f"{alg} ({ALGORITHMS[alg][1]})".ljust(first)
            for prop in PROPERTIES:
                cell = self.cells[(alg, prop)]
                text = (f"held {cell.runs}/{cell.runs}" if cell.held
                        else f"VIOLATED {cell.violations}/{cell.runs}")
                row += text.ljust(width)
            lines.append(row.rstrip())
        lines.append(f"matches the essay: {'yes' if self.matches_essay else 'NO'}")
        if counterexamples:
            for cell in self.cells.values():
                if cell.counterexample is not None:
                    lines.append("")
                    lines.append(cell.counterexample.format())
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The table as one JSON document."""
        algorithms: dict[str, Any] = {}
        for (alg, prop), cell in self.cells.items():
            entry: dict[str, Any] = {"held": cell.held, "violated": cell.violations, "runs": cell.runs,
                                     "seeds": self.seeds, "expected_held": cell.expected}
            if cell.counterexample is not None:
                entry["counterexample"] = cell.counterexample.to_json()
            algorithms.setdefault(alg, {})[prop] = entry
        return {"seeds": self.seeds, "scenarios": list(self.scenarios),
                "matches_essay": self.matches_essay, "algorithms": algorithms}


def run_once(scenario: str | Scenario, algorithm: str, seed: int, *, nodes: int | None = None,
             proposers: int | None = None, trace: bool = False, bound_ms: float = DEFAULT_BOUND_MS,
             backend_options: dict[str, Any] | None = None) -> tuple[RunVerdict, tuple[str, ...]]:
    """Run one algorithm in one scenario with one seed; return its verdict and trace."""
    sc = SCENARIOS_BY_NAME[scenario] if isinstance(scenario, str) else scenario
    backend = ALGORITHMS[algorithm][0] if algorithm in ALGORITHMS else algorithm
    config = build_config(sc, backend, seed, nodes=nodes, proposers=proposers, trace=trace,
                          bound_ms=bound_ms, backend_options=backend_options)
    log = DecisionLog()
    result, verdict = run_judged(Simulation(config, seed, on_step=log), log)
    return verdict, result.trace


def replay(scenario: str, algorithm: str, seed: int, nodes: int | None = None,
           proposers: int | None = None) -> str:
    """Re-run one case with tracing on; return its verdict problems and trace as text."""
    verdict, trace = run_once(scenario, algorithm, seed, nodes=nodes, proposers=proposers, trace=True)
    return "\n".join([*verdict.problems, *trace])


def _describe_faults(scenario: Scenario, seed: int, nodes: int, proposers: int) -> tuple[str, ...]:
    out = []
    for f in scenario.schedule(seed, nodes, proposers):
        detail = f.node or ""
        if f.groups:
            detail = " | ".join(",".join(g) for g in f.groups)
        if f.action == "network":
            detail = f"loss={f.loss}"
        out.append(f"t={f.at:g} {f.action} {detail}".rstrip())
    return tuple(out)


def shrink_counterexample(algorithm: str, prop: str, scenarios: Iterable[str],
                          search_seeds: int = 20) -> Counterexample | None:
    """Find the smallest failing (nodes, proposals) over ``scenarios``, then its shortest trace."""
    best: Counterexample | None = None
    for name in scenarios:
        sc = SCENARIOS_BY_NAME[name]
        sizes = sorted(((n, p) for n in range(sc.min_nodes, sc.nodes + 1)
                        for p in range(1, sc.proposers + 1)), key=lambda s: (s[0], s[1]))
        for n, p in sizes:
            if best is not None and (n, p) > (best.nodes, best.proposers):
                break
            failing: list[Counterexample] = []
            for seed in range(search_seeds):
                verdict, _ = run_once(sc, algorithm, seed, nodes=n, proposers=p)
                record = RunRecord(algorithm, name, seed, n, p, verdict)
                if record.violates(prop):
                    _, trace = run_once(sc, algorithm, seed, nodes=n, proposers=p, trace=True)
                    problems = tuple(x for x in verdict.problems
                                     if prop == "fault_tolerance" or x.startswith(prop))
                    failing.append(Counterexample(algorithm, name, seed, n, p, verdict, property=prop,
                                                  faults=_describe_faults(sc, seed, n, p), problems=problems,
                                                  trace=trace))
            if failing:
                shortest = min(failing, key=lambda c: len(c.trace))
                if best is None or (n, p, len(shortest.trace)) < (best.nodes, best.proposers,
                                                                  len(best.trace)):
                    best = shortest
                break
    return best


def run_essay_table(seeds: int = 20, *, algorithms: Sequence[str] | None = None,
                    scenarios: Sequence[str] | None = None, first_seed: int = 0,
                    counterexamples: bool = True, search_seeds: int = 20) -> EssayTable:
    """Run every algorithm under every essay scenario for ``seeds`` seeds and tabulate the verdicts."""
    algs = tuple(algorithms or ALGORITHMS)
    names = tuple(scenarios or (s.name for s in SCENARIOS))
    records: list[RunRecord] = []
    for alg in algs:
        for name in names:
            sc = SCENARIOS_BY_NAME[name]
            for seed in range(first_seed, first_seed + seeds):
                verdict, _ = run_once(sc, alg, seed)
                records.append(RunRecord(alg, name, seed, sc.nodes, sc.proposers, verdict))
    cells: dict[tuple[str, str], Cell] = {}
    for alg in algs:
        for prop in PROPERTIES:
            relevant = [r for r in records if r.algorithm == alg and (
                prop in ("agreement", "validity") or prop in SCENARIOS_BY_NAME[r.scenario].judges)]
            bad = [r for r in relevant if r.violates(prop)]
            example = None
            if bad and counterexamples:
                failing_scenarios = tuple(dict.fromkeys(r.scenario for r in bad))
                example = shrink_counterexample(alg, prop, failing_scenarios, search_seeds)
            cells[(alg, prop)] = Cell(alg, prop, len(relevant), len(bad),
                                      tuple((r.scenario, r.seed) for r in bad), example)
    return EssayTable(seeds, names, cells, tuple(records))
