"""``smr compare`` and ``smr trace``: reproducible reports and real pictures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smr.cli import main
from smr.compare import compare
from smr.scenarios import builtin_scenarios
from smr.sim import load_scenario
from smr.spacetime import record, render_page


def _kv() -> Path:
    return next(p for p in builtin_scenarios() if p.name == "kv-leader-crash.yaml")


def test_two_runs_with_the_same_seed_give_the_same_report() -> None:
    config = load_scenario(_kv())
    first = compare([config], ["coordinator"], [1, 2])
    second = compare([config], ["coordinator"], [1, 2], jobs=2)
    assert [c.to_json() for c in first] == [c.to_json() for c in second]
    assert all(r.verdict == "linearizable" for r in first[0].runs)


def test_compare_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(_kv()), "--backends", "coordinator", "--seeds", "1", "--json",
                 "--out", str(tmp_path)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    (cell,) = doc["cells"]
    run = cell["runs"][0]
    assert run["verdict"] == "linearizable" and run["ok"] > 100
    # The coordinator is down from the crash (1000 ms) to the restart (2000 ms).
    assert 900 < run["unavailability_ms"][0] <= 1100
    for suffix in (".png", ".svg"):  # in this run's own directory, linked as latest
        assert (tmp_path / "latest" / f"kv-leader-crash{suffix}").stat().st_size > 10_000


def test_space_time_page_draws_every_message(tmp_path: Path) -> None:
    config = load_scenario(_kv())
    _, timeline = record(config, 3, 15.0)
    messages = [e for e in timeline if e[0] == "msg"]
    page = render_page(config, 3, 15.0)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert page.count("<g><title>") >= len(messages)
    assert "&#9733;" in page  # the coordinator's leadership star


def test_trace_command_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.html"
    assert main(["trace", "2", str(_kv()), "--until", "10", "--out", str(out)]) == 0
    assert "marker-end" in out.read_text()
