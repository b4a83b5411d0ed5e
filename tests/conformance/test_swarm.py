"""Swarm testing: Hypothesis draws fault settings and schedules; every backend must pass all five judgements.

A failing draw shrinks to a short schedule, which the failure message prints
as catalogue YAML (also written to a file) with the command that replays it.
The examples are derandomized, so CI runs the same draws every time.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from smr.conformance import ConformanceScenario, conformance_backends, parse_entry, run_cell, to_yaml
from strategies import describe_failure, seeds, swarm_entries

SWARM = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("backend", conformance_backends())
@SWARM
@given(entry=swarm_entries(), seed=seeds())
def test_drawn_fault_schedules_pass_every_judgement(tmp_path_factory: pytest.TempPathFactory, backend: str,
                                                    entry: ConformanceScenario, seed: int) -> None:
    report, _ = run_cell(entry, backend, seed)
    failure = ""
    if report.judgement.failed:  # an AssertionError, so Hypothesis shrinks it; the last one is minimal
        path = tmp_path_factory.mktemp("swarm") / f"{backend}-seed{seed}.yaml"
        path.write_text(to_yaml(entry), encoding="utf-8")
        failure = describe_failure(entry, report, str(path))
    assert report.judgement.passed, failure


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(entry=swarm_entries(max_faults=4), seed=seeds())
def test_drawn_entries_are_valid_catalogue_yaml(entry: ConformanceScenario, seed: int) -> None:
    again = parse_entry(to_yaml(entry), "drawn.yaml")
    assert again.scenario.faults == entry.scenario.faults
    assert again.scenario.network == entry.scenario.network and again.scenario.disk == entry.scenario.disk
    assert entry.heal_ms == 1500 and 0 <= seed <= 2**16
