"""Reconfiguration under faults: the catalogue's membership entries and swarm seeds that draw changes.

The catalogue entries themselves run in test_catalogue.py (on the backends
each names); here: that they are the ones a membership-keeping backend needs,
that swarm campaigns draw membership changes with ``--membership`` and judge
them like any other seed, and that a change that never finishes is a
liveness failure.
"""

from __future__ import annotations

import pytest

from smr.conformance import builtin_catalogue, parse_entry
from smr.conformance.cli import cmd_conformance, register
from smr.conformance.fuzz import FuzzSettings, fuzz
from smr.conformance.judging import change_problems
from smr.errors import ConfigError
from smr.sim.admin import ChangeRecord, supports_membership
from smr.sim.config import MEMBERSHIP_ACTIONS

RECONFIG = [e for e in builtin_catalogue() if any(f.action in MEMBERSHIP_ACTIONS for f in e.scenario.faults)]


def test_the_catalogue_changes_membership_in_every_required_way() -> None:
    names = {e.name for e in RECONFIG}
    assert names == {"reconfig-grow-under-load", "reconfig-remove-leaders", "reconfig-replace-cut-off",
                     "reconfig-leader-crash", "reconfig-concurrent-removals", "reconfig-change-before-term-commit",
                     "reconfig-early-configuration"}
    actions = {f.action for e in RECONFIG for f in e.scenario.faults}
    assert {"add_node", "remove_leader", "replace_node", "replace_leader", "partition", "crash_leader"} <= actions


def test_reconfiguration_entries_run_on_both_protocols_and_only_where_membership_is_kept() -> None:
    for entry in RECONFIG:
        assert {"raft", "multipaxos"} <= set(entry.backends), entry.name
        assert all(supports_membership(b) for b in entry.backends), entry.name
        assert not entry.runs_on("coordinator")
    # every other entry runs everywhere, but lease reads, which the coordinator backend does not have
    assert all(e.runs_on("coordinator") for e in builtin_catalogue()
               if e not in RECONFIG and "read_mode" not in e.scenario.backend_options)


def test_smr_conformance_leaves_out_the_backends_an_entry_is_not_for(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["conformance", "reconfig-remove-leaders", "--backends", "coordinator,raft",
                              "--seeds", "1"])
    assert cmd_conformance(args) == 0
    out = capsys.readouterr().out
    assert "raft" in out and "coordinator" not in out and "1 of 1 runs as expected" in out


def test_membership_changes_cannot_repeat() -> None:
    text = """name: r
liveness_bound_ms: 100
scenario: {duration_ms: 1000}
repeat:
  - every_ms: 100
    from_ms: 0
    until_ms: 300
    faults:
      - {at: 0, action: remove_leader}
"""
    with pytest.raises(ConfigError, match="cannot repeat") as info:
        parse_entry(text, "r.yaml")
    assert (info.value.line, info.value.field) == (9, "repeat[0].faults[0].action")


def _change(outcome: str, requested: float = 100.0, started: float | None = 100.0) -> ChangeRecord:
    return ChangeRecord("add_node", "add n4", requested, started, None, None, outcome, 1, 0, 0)


def test_a_change_that_never_finishes_or_is_refused_fails_liveness() -> None:
    assert change_problems([_change("done"), _change("skipped: n2 is not running")], 500, 300, 2000) == ()
    (pending,) = change_problems([_change("pending")], 500, 300, 2000)
    assert "add n4" in pending and "never finished" in pending
    assert change_problems([_change("pending", requested=1500)], 500, 300, 2000) == ()  # too late to judge
    (refused,) = change_problems([_change("refused: MembershipError: no")], 500, 300, 2000)
    assert "refused" in refused


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_swarm_seeds_with_membership_changes_pass_every_judgement(backend: str) -> None:
    settings = FuzzSettings(backend=backend, membership=True, duration_ms=2500, liveness_bound_ms=500)
    for seed in (1, 5, 6):
        report = fuzz(settings, seed, 1)
        assert not report.failures, report.describe()
    assert settings.config().swarm_membership
    assert settings.replay(5).endswith("--membership")
    assert report.to_json()["membership"] is True
