"""The conformance catalogue: its files load, say what they promise, and bad files name file, line and field."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from smr.conformance import builtin_catalogue, parse_entry, to_yaml
from smr.conformance.catalogue import CHECKS, catalogue_paths, load_entry, resolve
from smr.errors import ConfigError, LocalProtocolError
from smr.replica import get_backend

#: The fault kinds issue 7 asks the catalogue to cover, by entry name (and issue 16: a leader crashing
#: between its eager send and its own sync).
REQUIRED = {
    "no-faults", "leader-crash", "minority-crash", "majority-crash-recovery", "leader-isolated",
    "flapping-partitions", "lossy-network", "duplicate-reorder", "rolling-restart",
    "lost-unsynced-writes", "clock-skew", "leader-crash-before-sync",
}


def test_the_catalogue_covers_every_required_fault_kind() -> None:
    names = {entry.name for entry in builtin_catalogue()}
    assert REQUIRED <= names, f"missing: {sorted(REQUIRED - names)}"


def test_every_entry_is_short_named_described_and_installed_as_package_data() -> None:
    for path, entry in zip(catalogue_paths(), builtin_catalogue()):
        assert path.name == f"{entry.name}.yaml"
        assert entry.description, entry.name
        assert entry.scenario.duration_ms <= 10_000, f"{entry.name} is too long for CI"
        assert entry.scenario.name == entry.name and entry.source == str(path)
        assert "smr/conformance/scenarios" in path.as_posix()


def test_the_expected_matrix_names_real_backends_and_judgements() -> None:
    expected = {(e.name, b): set(checks) for e in builtin_catalogue() for b, checks in e.expect.items()}
    # the two entries whose coordinator crashes for good: nobody takes over from it
    assert expected == {("leader-crash", "coordinator"): {"liveness"}, ("holes-in-the-log", "coordinator"): {"liveness"}}
    for (_, backend), checks in expected.items():
        get_backend(backend)
        assert checks <= set(CHECKS)


def test_the_heal_time_is_the_last_fault_and_a_flap_counts_until_it_stops() -> None:
    assert resolve("no-faults").heal_ms == 0.0
    assert resolve("majority-crash-recovery").heal_ms == 1800.0
    assert resolve("flapping-partitions").heal_ms == 2000.0


def test_repeat_blocks_expand_into_sorted_faults() -> None:
    entry = parse_entry("""
name: r
liveness_bound_ms: 100
scenario:
  duration_ms: 1000
  faults: [{at: 15, action: heal}]
repeat:
  - every_ms: 10
    from_ms: 0
    until_ms: 30
    faults: [{at: 0, action: crash, node: n1}, {at: 1, action: restart, node: n1}]
  - {every_ms: 100, from_ms: 50, until_ms: 60, faults: [{at: 5, action: flap, period_ms: 20, until_ms: 40}]}
""")
    faults = [(f.at, f.action) for f in entry.scenario.faults]
    assert faults == [(0, "crash"), (1, "restart"), (10, "crash"), (11, "restart"), (15, "heal"),
                      (20, "crash"), (21, "restart"), (55, "flap")]
    assert entry.scenario.faults[-1].until_ms == 90
    assert entry.repeat == () and entry.heal_ms == 90


def test_to_yaml_round_trips() -> None:
    for entry in builtin_catalogue():
        again = parse_entry(to_yaml(entry), "again.yaml")
        assert attrs.evolve(again, source=entry.source) == entry, entry.name


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    ("name: x\nliveness_bound_ms: 100\nscenario: {}\nbound: 3\n", 4, "bound", "extra"),
    ("name: x\nliveness_bound_ms: 100\nscenario:\n  nodes: 3\n  faults:\n    - {at: 1, action: explode}\n",
     6, "scenario.faults[0].action", "explode"),
    ("name: x\nliveness_bound_ms: 100\nscenario:\n  backend: raft\n", 4, "scenario.backend", "chosen per run"),
    ("name: x\nliveness_bound_ms: 100\nscenario:\n  network:\n    loss: 2\n", 5, "scenario.network.loss",
     "probability"),
    ("name: x\nliveness_bound_ms: 1500\nscenario: {duration_ms: 2000}\n", 2, "liveness_bound_ms",
     "twice the bound"),
    ("name: x\nliveness_bound_ms: 100\nscenario: {}\nexpect:\n  paxos9: [liveness]\n", 5, "expect.paxos9",
     "unknown backend"),
    ("name: x\nliveness_bound_ms: 100\nscenario: {}\nexpect:\n  raft: [speed]\n", 5, "expect.raft[0]",
     "speed"),
    ("name: x\nliveness_bound_ms: 100\nscenario: {}\nexpect:\n  raft: 3\n", 4, "expect", "lists of judgements"),
    ("name: x\nliveness_bound_ms: 100\nscenario: {}\nno_progress:\n  - {from_ms: 50, until_ms: 10}\n", 5,
     "no_progress[0]", "from_ms < until_ms"),
    ("name: x\nliveness_bound_ms: 100\nscenario: {}\nrepeat:\n  - {every_ms: 0, from_ms: 0, until_ms: 9, "
     "faults: [{at: 0, action: heal}]}\n", 5, "repeat[0]", "every_ms > 0"),
])
def test_errors_name_file_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_entry(text, "bad.yaml")
    err = info.value
    assert (err.file, err.line, err.field) == ("bad.yaml", line, field), str(err)
    assert words in str(err) and "bad.yaml" in str(err) and f"line {line}" in str(err)


def test_a_missing_file_and_an_unknown_name_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read conformance scenario"):
        load_entry(tmp_path / "nope.yaml")
    with pytest.raises(LocalProtocolError, match="no catalogue scenario named 'nope'; built-in: "):
        resolve("nope")
