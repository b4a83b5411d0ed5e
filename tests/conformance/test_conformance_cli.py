"""``smr fuzz`` and ``smr conformance``: their parser, reports, determinism and replay commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from smr.conformance.cli import register
from smr.conformance.fuzz import FuzzSettings, fuzz
from smr.errors import LocalProtocolError


def parse(*argv: str) -> argparse.Namespace:
    """Parse ``argv`` with a fresh ``smr`` parser holding only this package's subcommands."""
    parser = argparse.ArgumentParser(prog="smr")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def run(*argv: str) -> int:
    """Run one subcommand as ``smr`` would and return its exit code."""
    args = parse(*argv)
    return args.func(args)


def test_the_fuzz_parser_takes_every_documented_option() -> None:
    args = parse("fuzz", "--backend", "raft", "--seeds", "10000", "--jobs", "2", "--first-seed", "7",
                 "--duration", "6000", "--mutant", "forget_vote", "--json", "--out", "report.json")
    assert (args.backend, args.seeds, args.jobs, args.first_seed, args.duration, args.mutant, args.json,
            args.out) == ("raft", 10000, 2, 7, 6000.0, "forget_vote", True, "report.json")
    assert (args.nodes, args.liveness_bound, args.stop_at_first, args.no_progress) == (3, 1000.0, False, False)
    assert args.func.__name__ == "cmd_fuzz"


def test_a_fuzz_campaign_writes_its_report_and_shows_progress(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    assert run("fuzz", "--backend", "raft", "--seeds", "3", "--jobs", "2", "--out", str(out)) == 0
    captured = capsys.readouterr()
    assert "fuzz raft" in captured.err and "seed" in captured.err  # the tqdm bar
    assert "raft: 3 of 3 seeds from 1, 0 failed" in captured.out and f"wrote {out}" in captured.out
    report = json.loads(out.read_text())
    assert report["seeds_run"] == 3 and report["failures"] == [] and report["first_caught"] is None
    assert report["wall_s"] > 0 and report["seeds_per_s"] > 0 and report["jobs"] == 2


def test_a_mutant_campaign_reports_the_same_catches_whatever_the_number_of_processes() -> None:
    settings = FuzzSettings(backend="raft", mutant="vote_without_log_check", duration_ms=3000,
                            liveness_bound_ms=600)
    one = fuzz(settings, first_seed=1, seeds=6, jobs=1)
    two = fuzz(settings, first_seed=1, seeds=6, jobs=2)
    assert one.failures, "the mutant survived six seeds"
    assert [(f.seed, f.judgement) for f in one.failures] == [(f.seed, f.judgement) for f in two.failures]
    assert one.first_caught == two.first_caught == one.failures[0].seed
    assert "mutant caught first by seed" in one.describe()
    assert one.to_json()["failures"][0]["replay"].endswith(
        "--nodes 3 --duration 3000 --liveness-bound 600 --mutant mutant_vote_without_log_check")


def test_fuzz_json_output_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("fuzz", "--backend", "multipaxos", "--mutant", "ignore_promised_values", "--seeds", "5",
               "--stop-at-first", "--no-progress", "--json") == 0  # a mutant campaign succeeds by catching
    report = json.loads(capsys.readouterr().out)
    assert report["mutant"] == "mutant_ignore_promised_values"
    assert report["seeds_to_catch"] == report["seeds_run"] == report["first_caught"]
    assert report["failures"][0]["replay"].startswith(
        f"smr fuzz --backend multipaxos --first-seed {report['first_caught']} --seeds 1")


def test_fuzz_trace_of_one_seed(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    assert run("fuzz", "--backend", "raft", "--seeds", "1", "--first-seed", "3", "--no-progress",
               "--trace", str(trace)) == 0
    lines = trace.read_text().splitlines()
    assert lines[0].startswith("# seed=3 backend=raft") and lines[1].startswith("# swarm:")


@pytest.mark.parametrize(("argv", "words"), [
    (("fuzz", "--backend", "raft", "--mutant", "no_such_bug", "--seeds", "1"), "has no mutant 'no_such_bug'"),
    (("fuzz", "--backend", "coordinator", "--mutant", "forget_vote", "--seeds", "1"), "known: none"),
    (("fuzz", "--duration", "3000", "--seeds", "1"), "at least 5000 ms"),
    (("fuzz", "--seeds", "2", "--trace", "t.txt"), "--trace needs --seeds 1"),
    (("conformance", "no-such-scenario"), "no catalogue scenario named"),
    (("conformance", "no-faults", "leader-crash", "--trace", "t.txt"), "exactly one run"),
])
def test_misuse_is_a_local_error_naming_the_problem(argv: tuple[str, ...], words: str) -> None:
    with pytest.raises(LocalProtocolError, match=words):
        run(*argv)


def test_a_bad_count_is_refused_while_parsing(capsys: pytest.CaptureFixture[str]) -> None:
    """--seeds 0 never reaches the command: one line naming the option, exit status 2."""
    from smr.cli import main

    with pytest.raises(SystemExit) as info:
        main(["fuzz", "--seeds", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "smr fuzz: error: argument --seeds: must be at least 1, got 0\n"


def test_conformance_runs_a_cell_and_prints_its_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("conformance", "leader-crash", "--backends", "coordinator,raft", "--seeds", "1") == 0
    out = capsys.readouterr().out
    assert "leader-crash               coordinator  seed 1      failed ['liveness']  expected ['liveness']" in out
    assert "2 of 2 runs as expected" in out


def test_conformance_json_lists_runs_with_their_replay_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("conformance", "no-faults", "--backends", "raft", "--first-seed", "4", "--seeds", "1",
               "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    (only,) = doc["runs"]
    assert only["as_expected"] and only["failed"] == [] and doc["unexpected"] == 0
    assert only["replay"] == "smr conformance no-faults --backends raft --first-seed 4 --seeds 1"


def test_conformance_with_a_mutant_fails_when_nothing_catches_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("conformance", "no-faults", "--mutant", "forget_vote", "--seeds", "1") == 1
    out = capsys.readouterr().out
    assert "raft " in out and "raft-pv-cq" in out and "multipaxos" not in out  # backends offering the mutant
    assert "mutant forget_vote: caught by 0 of 2 runs" in out


def test_conformance_reads_a_scenario_file_and_writes_a_trace(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny\nliveness_bound_ms: 200\nscenario: {duration_ms: 500}\n")
    trace = tmp_path / "trace.txt"
    assert run("conformance", str(path), "--backends", "coordinator", "--seeds", "1", "--trace", str(trace)) == 0
    assert trace.read_text().startswith("# seed=1 backend=coordinator")
    assert "1 of 1 runs as expected" in capsys.readouterr().out
    assert run("conformance", "--list") == 0
    assert "restarting-voter" in capsys.readouterr().out
