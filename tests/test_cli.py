"""The ``smr`` command line: human output by default, one JSON document with --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smr.cli import main


def test_sim_json_prints_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--nodes", "3", "--duration", "200", "--seed", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seed"] == 4 and doc["summary"]["ok"] > 0
    assert doc["replay"].endswith("--seed 4")


def test_sim_writes_trace_and_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace, history = tmp_path / "t.txt", tmp_path / "h.jsonl"
    assert main(["sim", "--nodes", "3", "--duration", "100", "--trace", str(trace),
                 "--history", str(history)]) == 0
    assert trace.read_text().startswith("# seed=1 backend=coordinator")
    assert history.read_text().count("\n") > 10
    assert "ops ok=" in capsys.readouterr().out


def test_bad_scenario_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: 3\nnetwork:\n  loss: lots\n")
    assert main(["sim", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml, line 3, field 'network.loss'" in err


def test_unknown_backend_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--backend", "nope", "--duration", "10"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_backends_lists_the_coordinator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--json"]) == 0
    names = {b["name"] for b in json.loads(capsys.readouterr().out)}
    assert "coordinator" in names
