"""Malformed scenario files give an error naming the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

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
