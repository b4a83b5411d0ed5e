"""Malformed scenario files give an error naming the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from smr.errors import ConfigError
from smr.scenarios import builtin_scenarios
from smr.sim import load_scenario, parse_scenario


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    ("nodes: five\n", 1, "nodes", "int"),
    ("nodes: 3\nnetwork:\n  los: 0.1\n", 3, "network.los", "extra"),
    ("nodes: 3\nfaults:\n  - at: 1\n    action: explode\n", 4, "faults[0].action", "explode"),
    ("faults:\n  - at: 100\n    action: crash\n    nod: n1\n", 4, "faults[0].nod", "extra"),
    ("network:\n  loss: 2\n", 2, "network.loss", "probability"),
    ("clients:\n  count: 2\n  timeout_ms: abc\n", 3, "clients.timeout_ms", "float"),
])
def test_errors_name_file_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario(text, "bad.yaml")
    err = info.value
    assert (err.file, err.line, err.field) == ("bad.yaml", line, field)
    assert words in str(err) and "bad.yaml" in str(err) and f"line {line}" in str(err)


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(ConfigError, match=r"bad.yaml, line \d+: not valid YAML"):
        parse_scenario("nodes: 3\nfaults: [\n", "bad.yaml")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")


def test_builtin_scenarios_load() -> None:
    paths = builtin_scenarios()
    assert paths
    for path in paths:
        assert load_scenario(path).nodes >= 3


def test_a_builtin_scenario_is_found_by_name() -> None:
    """`kv-leader-crash` (with or without .yaml) is the shipped file; the run names it by that name."""
    path = next(p for p in builtin_scenarios() if p.stem == "kv-leader-crash")
    by_name = load_scenario("kv-leader-crash")
    assert by_name.source == "kv-leader-crash" and load_scenario("kv-leader-crash.yaml") == by_name
    assert by_name == attrs.evolve(load_scenario(path), source="kv-leader-crash")


def test_a_file_wins_over_a_builtin_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing file is read even when a built-in scenario has the same name."""
    monkeypatch.chdir(tmp_path)
    Path("kv-leader-crash").write_text("nodes: 7\n")
    assert load_scenario("kv-leader-crash").nodes == 7


def test_an_unknown_name_lists_the_builtin_scenarios() -> None:
    """A name that is neither a file nor a built-in says which names there are."""
    with pytest.raises(ConfigError) as info:
        load_scenario("kv-leader-crashh")
    message = str(info.value)
    assert message.startswith("kv-leader-crashh: cannot read scenario: no such file")
    assert all(p.stem in message for p in builtin_scenarios()) and "\n" not in message


def test_a_file_with_three_mistakes_reports_all_three_with_their_lines(tmp_path: Path) -> None:
    """An unknown key, a value the class's own check refuses and a fault naming a missing node: one error
    listing each as file:line: field: message (the first one used to hide the other two)."""
    bad = tmp_path / "three.yaml"
    bad.write_text("name: three mistakes\n"
                   "nodes: 3\n"
                   "duration_ms: -5\n"
                   "clients:\n"
                   "  count: 2\n"
                   "  colour: red\n"
                   "faults:\n"
                   "  - {at: 10, action: crash, node: n9}\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(bad)
    head, *problems = str(info.value).splitlines()
    assert head == f"{bad}: 3 problems:"
    assert [p.split(": ", 2)[:2] for p in problems] == [
        [f"  {bad}:3", "duration_ms"], [f"  {bad}:6", "clients.colour"], [f"  {bad}:8", "faults[0].node"]]
    assert "must be positive" in problems[0] and "extra field 'colour'" in problems[1]
    assert "unknown node 'n9'" in problems[2]
    assert (info.value.file, info.value.line, info.value.field) == (str(bad), 3, "duration_ms")
