"""``smr compare`` and ``smr trace``: reproducible reports and real pictures."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from smr.cli import main
from smr.compare import compare
from smr.scenarios import builtin_scenarios
from smr.sim import load_scenario


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
    report = (tmp_path / "latest" / "report.html").read_text()
    assert "<table>" in report and "data:image/png;base64," in report and html.escape(run["replay"]) in report
    assert "coordinator: Lamport diagram and client operations of seed 1" in report
    assert len(report.encode()) < 3_000_000
