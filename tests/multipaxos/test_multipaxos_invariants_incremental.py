"""The simulator's incremental multi-Paxos checker gives the full check's verdicts on swarm runs.

:class:`multipaxos.MultiPaxosInvariants` re-checks only the slots a step
could have changed.  Here swarm seeds with membership changes (so
configurations move under the check) run once with it and once with the
stateless :func:`multipaxos.check_invariants` over the whole window after
every step, and must end alike.  That it catches what the full check catches
is shown by ``test_multipaxos_mutants.py`` and
``test_multipaxos_reconfiguration.py``, which run every scripted mutant under it.
"""

from __future__ import annotations

import pytest

from multipaxos import check_invariants
from smr.conformance.fuzz import FuzzSettings
from smr.sim.engine import SafetyViolation, Simulation

def _verdict(settings: FuzzSettings, seed: int, full: bool) -> tuple[str, float]:
    """Run one swarm seed; the safety violation's message (or 'passed') and the simulated time it stopped at."""
    sim = Simulation(settings.config(), seed)
    if full:
        sim.invariants = check_invariants
    try:
        sim.run()
    except SafetyViolation as exc:
        return str(exc), sim.now
    return "passed", sim.now


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_incremental_checker_agrees_while_membership_changes(seed: int) -> None:
    settings = FuzzSettings(backend="multipaxos", membership=True)
    assert _verdict(settings, seed, False) == _verdict(settings, seed, True), settings.replay(seed)
