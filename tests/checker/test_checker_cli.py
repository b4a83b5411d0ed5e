"""The ``check`` and ``bench checker`` subcommands, driven through a parser built here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from smr.checker.bench import BENCH_SHAPES, format_table, register_bench, run_bench
from smr.checker.cli import register_check
from smr.commands import Command
from smr.history import Operation, Outcome, dump_history


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smr")
    sub = p.add_subparsers(required=True)
    register_check(sub)
    bench = sub.add_parser("bench").add_subparsers(required=True)
    register_bench(bench)
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.func(args)  # type: ignore[no-any-return]


def write_native(path: Path, stale: bool) -> Path:
    """write 1, write 2, then a read of 2 -- or of the stale 1."""
    ops = [
        Operation(0, "p1", Command("write", "", (1,)), 0.0, 1.0, Outcome.OK, None),
        Operation(1, "p1", Command("write", "", (2,)), 2.0, 3.0, Outcome.OK, None),
        Operation(2, "p2", Command("read"), 4.0, 5.0, Outcome.OK, 1 if stale else 2),
    ]
    with path.open("w") as f:
        dump_history(ops, f)
    return path


def test_linearizable_history_exits_0_with_a_human_report(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A good history prints LINEARIZABLE and exits 0."""
    assert run(["check", str(write_native(tmp_path / "h.jsonl", stale=False)), "--model", "register"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("LINEARIZABLE")


def test_stale_read_exits_1_with_a_readable_counterexample(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A bad history prints the prefix, the op that could not be placed, and a timeline; exits 1."""
    assert run(["check", str(write_native(tmp_path / "h.jsonl", stale=True)), "--model", "register"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT LINEARIZABLE")
    assert "#2 p2: read -> 1" in out
    assert "Longest linearizable prefix" in out
    assert "Timeline" in out and "!!" in out


def test_json_output_is_exactly_one_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one JSON document holding the verdict and the counterexample."""
    path = write_native(tmp_path / "h.jsonl", stale=True)
    assert run(["check", str(path), "--model", "kv", "--format", "native", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "not linearizable"
    assert doc["counterexample"]["failed"]["id"] == 2
    assert [op["id"] for op in doc["counterexample"]["prefix"]] == [0, 1]
    assert doc["history"] == {"file": str(path), "format": "native"}


def test_exhausted_budget_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-steps too small for the search gives the verdict unknown and exit status 2."""
    path = write_native(tmp_path / "h.jsonl", stale=False)
    assert run(["check", str(path), "--model", "register", "--max-steps", "1", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["verdict"] == "unknown"


def test_malformed_input_exits_2_with_one_line_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A bad line is reported on one stderr line naming the file and line; nothing on stdout."""
    path = tmp_path / "bad.edn"
    path.write_text("{:process 0 :type :invoke :f :read}\n{:process 0 :type :ok :f :read :value [1\n")
    assert run(["check", str(path), "--model", "register"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("smr check: error: ") and "bad.edn, line 2" in captured.err


def test_missing_file_and_wrong_model_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable file, or ops the model does not define, are bad input too."""
    assert run(["check", str(tmp_path / "absent.jsonl"), "--model", "kv"]) == 2
    path = write_native(tmp_path / "h.jsonl", stale=False)
    assert run(["check", str(path), "--model", "counter"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "absent.jsonl" in err[0] and "'write'" in err[1]


def test_bench_reports_throughput_for_four_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    """bench checker --json reports ops/s for 1 000/10 000 ops with 5/20 clients, all linearizable."""
    assert run(["bench", "checker", "--json", "--seed", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seed"] == 3
    assert [(r["operations"], r["clients"]) for r in doc["rows"]] == list(BENCH_SHAPES)
    for row in doc["rows"]:
        for result in row["results"]:
            assert result["verdict"] == "linearizable"
            assert result["ops_per_second"] > 0


def test_bench_is_deterministic_in_its_seed_and_prints_a_table() -> None:
    """The same seed checks the same histories: the same number of model steps."""
    first = run_bench(5, shapes=((300, 5),))
    second = run_bench(5, shapes=((300, 5),))
    assert [r.steps for r in first[0].results] == [r.steps for r in second[0].results]
    assert format_table(first).splitlines()[1].split()[:2] == ["300", "5"]
