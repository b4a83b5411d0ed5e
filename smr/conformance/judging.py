"""Judging one run: safety from the checkers, liveness from the history, against the expected matrix.

A run gets five judgements, each a list of problems (empty: it passed):

* **linearizability** -- the client history has a linearization under the
  workload's model (the checker of :mod:`smr.checker`, via
  :func:`smr.compare.judge`);
* **invariants** -- the backend's own invariants, run after every step, and
  the simulator's check that every replica commits the same entry at every
  index (``SimResult.violations``);
* **workload** -- the workload's own invariants (an order is never both
  shipped and cancelled, one user per day);
* **liveness** -- after the last fault, some operation completes OK within
  the bound, and no operation invoked a bound or more after the last fault
  (and a bound or more before the end) is left unanswered; every membership
  change of the schedule finishes (none refused for good, none pending two
  bounds after the last fault).  A membership change that finishes after the
  last fault (the admin client runs them one at a time, so faults can push
  them past the heal) counts as a fault: removing a leader costs an election
  like crashing it, so the bound runs from the last change's end; if that
  leaves less than a bound of the run, only the changes are judged;
* **quorum** -- no operation invoked while no majority is up completes OK
  before a majority is back.

A run that breaks an invariant stops there, so its history is cut short: only
the invariants judgement is reported for it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..history import Operation, Outcome
from ..replica import ReplicaConfig, get_backend
from ..sim import simulate
from ..sim.admin import ChangeRecord
from ..sim.engine import SimResult
from .catalogue import CHECKS, ConformanceScenario, NoProgress, catalogue_paths

_SHOWN = 3  # problems of one kind spelled out before "... and N more"


@attrs.frozen
class Judgement:
    """The five judgements of one run; each field holds that judgement's problems."""

    linearizability: tuple[str, ...] = ()
    invariants: tuple[str, ...] = ()
    workload: tuple[str, ...] = ()
    liveness: tuple[str, ...] = ()
    quorum: tuple[str, ...] = ()

    @property
    def failed(self) -> frozenset[str]:
        """The names of the judgements that failed."""
        return frozenset(name for name in CHECKS if getattr(self, name))

    @property
    def passed(self) -> bool:
        """True when every judgement passed."""
        return not self.failed

    def problems(self) -> list[str]:
        """Every problem, prefixed by the judgement it belongs to."""
        return [f"{name}: {p}" for name in CHECKS for p in getattr(self, name)]


def liveness_problems(history: Sequence[Operation], heal_ms: float, bound_ms: float,
                      end_ms: float) -> tuple[str, ...]:
    """Problems with progress after ``heal_ms``: none within the bound, or requests left unanswered."""
    problems = []
    deadline = heal_ms + bound_ms
    if not any(op.outcome is Outcome.OK and heal_ms < op.end <= deadline for op in history):
        problems.append(f"no operation completed in the {bound_ms:g} ms after the last fault at "
                        f"{heal_ms:g} ms")
    stalled = [op for op in history if op.outcome is Outcome.UNKNOWN
               and deadline <= op.invoke <= end_ms - bound_ms]
    problems += [f"operation #{op.id} ({op.process} {op.command}) invoked at {op.invoke:.1f} ms, "
                 f"{op.invoke - heal_ms:.0f} ms after the last fault, never completed"
                 for op in stalled[:_SHOWN]]
    if len(stalled) > _SHOWN:
        problems.append(f"... and {len(stalled) - _SHOWN} more operations never completed")
    return tuple(problems)


def change_problems(changes: Sequence[ChangeRecord], heal_ms: float, bound_ms: float,
                    end_ms: float) -> tuple[str, ...]:
    """Membership changes that did not finish: refused for good, or still pending two bounds after the
    later of the last fault and their request (the admin client waits for each before the next)."""
    problems = [f"membership change {c.change} (asked for at {c.requested_at:g} ms) was {c.outcome}"
                for c in changes if c.outcome.startswith("refused")]
    problems += [f"membership change {c.change} (asked for at {c.requested_at:g} ms) never finished"
                 + ("" if c.started_at is not None else " (nor started: the one before it never finished)")
                 for c in changes if c.outcome == "pending" and end_ms - max(heal_ms, c.requested_at) >= 2 * bound_ms]
    return tuple(problems[:_SHOWN]) + ((f"... and {len(problems) - _SHOWN} more membership changes",)
                                       if len(problems) > _SHOWN else ())


def last_disruption(heal_ms: float, changes: Sequence[ChangeRecord]) -> float:
    """The last fault, or the end of the last membership change that finished after it (see the module)."""
    return max([heal_ms, *(c.finished_at for c in changes if c.finished_at is not None)])


def quorum_problems(history: Sequence[Operation], windows: Iterable[NoProgress]) -> tuple[str, ...]:
    """Operations invoked while no majority was up that completed OK before one came back."""
    problems = []
    for w in windows:
        done = [op for op in history if op.outcome is Outcome.OK
                and w.from_ms <= op.invoke and op.end < w.until_ms]
        problems += [f"operation #{op.id} ({op.process} {op.command}) invoked at {op.invoke:.1f} ms "
                     f"completed at {op.end:.1f} ms, while no majority was up "
                     f"({w.from_ms:g}-{w.until_ms:g} ms)" for op in done[:_SHOWN]]
        if len(done) > _SHOWN:
            problems.append(f"... and {len(done) - _SHOWN} more completed without a majority")
    return tuple(problems)


def judge_result(result: SimResult, heal_ms: float, bound_ms: float,
                 no_progress: Iterable[NoProgress] = ()) -> Judgement:
    """All five judgements of a finished run (only invariants if the run stopped at a violation)."""
    from ..compare import AGREED, judge
    from ..sim.engine import workload_for

    if result.violations:
        return Judgement(invariants=tuple(result.violations))
    workload = workload_for(result.config)  # the one the run used (a user's app: its calls)
    verdict, workload_problems = judge(result, workload)
    history = result.history
    end_ms = result.config.duration_ms
    quiet_ms = last_disruption(heal_ms, result.changes)
    progress = liveness_problems(history, quiet_ms, bound_ms, end_ms) if quiet_ms + bound_ms <= end_ms else ()
    return Judgement(
        linearizability=() if verdict in ("linearizable", AGREED) else (f"the history is {verdict}",),
        workload=tuple(workload_problems),
        liveness=progress + change_problems(result.changes, heal_ms, bound_ms, end_ms),
        quorum=quorum_problems(history, no_progress))


# ------------------------------------------------------------------ mutants
def mutant_option(name: str) -> str:
    """The backend option that switches mutant ``name`` on (``forget_vote`` -> ``mutant_forget_vote``)."""
    return name if name.startswith("mutant_") else f"mutant_{name}"


def mutants_of(backend: str) -> tuple[str, ...]:
    """The ``mutant_*`` options ``backend`` offers (read from its cores' ``opts``), sorted."""
    from ..state_machines import make_state_machine

    registered = get_backend(backend)
    core = registered.factory(ReplicaConfig("n1", ("n2", "n3"), random.Random(0),
                                            lambda: make_state_machine("kv"), dict(registered.options)))
    opts = getattr(core, "opts", None)
    if opts is None or not attrs.has(type(opts)):
        return ()
    return tuple(sorted(f.name for f in attrs.fields(type(opts)) if f.name.startswith("mutant_")))


def mutant_options(backend: str, mutant: str | None) -> dict[str, Any]:
    """Backend options that switch ``mutant`` on for ``backend``; LocalProtocolError if it has no such mutant."""
    from ..errors import LocalProtocolError

    if mutant is None:
        return {}
    option = mutant_option(mutant)
    known = mutants_of(backend)
    if option not in known:
        raise LocalProtocolError(f"backend {backend!r} has no mutant {mutant!r}; "
                                 f"known: {', '.join(known) or 'none'}")
    return {option: True}


def conformance_backends() -> list[str]:
    """Every registered replicated-log backend except test-only probes (described as "test-only: ...")."""
    from ..replica import backend_names

    return [name for name in backend_names(replicated_log_only=True)
            if not get_backend(name).description.startswith("test-only")]


# -------------------------------------------------------------- catalogue runs
@attrs.frozen
class CellReport:
    """One catalogue run (entry x backend x seed, maybe a mutant), judged against the expected matrix."""

    scenario: str
    backend: str
    seed: int
    mutant: str | None
    judgement: Judgement
    expected: frozenset[str]
    replay: str

    @property
    def as_expected(self) -> bool:
        """True when exactly the expected judgements failed."""
        return self.judgement.failed == self.expected

    def describe(self) -> str:
        """A few lines for a person: outcome versus expectation, problems, and the replay command."""
        failed = sorted(self.judgement.failed)
        head = (f"{self.scenario} on {self.backend}" + (f" with {self.mutant}" if self.mutant else "")
                + f", seed {self.seed}: failed {failed or 'nothing'}, expected to fail "
                f"{sorted(self.expected) or 'nothing'}")
        lines = [head, *(f"  {p}" for p in self.judgement.problems())]
        lines.append(f"  replay: {self.replay}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"scenario": self.scenario, "backend": self.backend, "seed": self.seed,
                "mutant": self.mutant, "failed": sorted(self.judgement.failed),
                "expected": sorted(self.expected), "as_expected": self.as_expected,
                "problems": self.judgement.problems(), "replay": self.replay}


def replay_command(entry: ConformanceScenario, backend: str, seed: int, mutant: str | None = None) -> str:
    """The one command that replays and re-judges one catalogue run.

    A built-in entry is named; any other is its file (``NAME.yaml`` for an
    entry never read from one: write it there with :func:`.catalogue.to_yaml`).
    """
    builtin = {p.resolve() for p in catalogue_paths()}
    if entry.source is None:
        target = f"{entry.name}.yaml"
    else:
        target = entry.name if Path(entry.source).resolve() in builtin else entry.source
    command = f"smr conformance {target} --backends {backend} --first-seed {seed} --seeds 1"
    return command + (f" --mutant {mutant}" if mutant else "")


def run_cell(entry: ConformanceScenario, backend: str, seed: int, mutant: str | None = None,
             trace: bool = False) -> tuple[CellReport, SimResult]:
    """Simulate ``entry`` on ``backend`` with ``seed`` (and ``mutant`` switched on) and judge it."""
    config = attrs.evolve(entry.for_backend(backend, mutant_options(backend, mutant)),
                          trace=trace, count_bytes=False)
    result = simulate(config, seed)
    judgement = judge_result(result, entry.heal_ms, entry.liveness_bound_ms, entry.no_progress)
    report = CellReport(entry.name, backend, seed, mutant, judgement, entry.expected_failures(backend),
                        replay_command(entry, backend, seed, mutant))
    return report, result
