"""The ``smr`` command line: human output by default, one JSON document with --json."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import pytest

from smr import cli
from smr.cli import build_parser, main


def test_sim_json_prints_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--nodes", "3", "--duration", "200", "--seed", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seed"] == 4 and doc["summary"]["ok"] > 0
    assert doc["replay"].endswith("--seed 4")


def test_sim_writes_trace_and_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace, history = tmp_path / "t.txt", tmp_path / "h.jsonl"
    assert main(["sim", "--nodes", "3", "--duration", "500", "--trace", str(trace),
                 "--history", str(history)]) == 0
    assert trace.read_text().startswith("# seed=1 backend=raft")
    assert history.read_text().count("\n") > 10
    assert "ops ok=" in capsys.readouterr().out


def test_bad_scenario_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: 3\nnetwork:\n  loss: lots\n")
    assert main(["sim", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml, line 3, field 'network.loss'" in err


def test_unknown_backend_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["sim", "--backend", "nope", "--duration", "10"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_backends_lists_the_coordinator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--json"]) == 0
    names = {b["name"] for b in json.loads(capsys.readouterr().out)}
    assert "coordinator" in names


# ------------------------------------------------------------------ help, descriptions, bad arguments
def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command and subcommand parser of ``smr``, by its full name."""
    found = []
    todo: list[tuple[str, argparse.ArgumentParser]] = [("smr", build_parser())]
    while todo:
        name, parser = todo.pop()
        found.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {sub}", child) for sub, child in action.choices.items()]
    return found


#: Commands another change owns (the trace command is being rewritten with its description).
_OWNED_ELSEWHERE = {"smr trace"}


def test_every_command_and_subcommand_says_what_it_does() -> None:
    """Each parser has a description: what the command does and what it prints."""
    missing = [name for name, parser in _parsers() if not parser.description and name not in _OWNED_ELSEWHERE]
    assert len(_parsers()) > 30 and not missing, missing


def test_every_help_shows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """An option whose default means something shows it in --help, unless its help explains it in words."""
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside a default
    unshown = []
    for name, parser in _parsers():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings or action.default in (None, False, [], argparse.SUPPRESS):
                continue
            if isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction)):
                continue
            if "default" in (action.help or "").lower():
                continue
            if f"default: {action.default})" not in text and f"default: {action.default} " not in text:
                unshown.append(f"{name} {action.option_strings[0]}")
    assert not unshown, unshown


def test_help_keeps_paragraphs_and_shows_a_default_without_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    """`smr bench reads --help` keeps its description's two paragraphs; `smr sim --help` shows --seed's default."""
    with pytest.raises(SystemExit):
        main(["bench", "reads", "--help"])
    assert "lease.\n\nFor each backend" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    assert "(default: 5)" in capsys.readouterr().out


def _run(argv: list[str]) -> int:
    """Run ``smr argv``; its exit status, whether returned or raised as SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(("argv", "words"), [
    (["experiment", "election", "--trials", "0", "--no-files"],
     "smr experiment election: error: argument --trials: must be at least 1, got 0"),
    (["experiment", "election", "--cap", "-5", "--no-files"], "argument --cap: must be a number greater than 0"),
    (["sim", "--nodes", "0"], "smr sim: error: argument --nodes: must be at least 1"),
    (["sim", "--duration", "-1"], "smr sim: error: argument --duration"),
    (["sim", "--backend", "nope"], "smr sim: error: argument --backend: unknown backend 'nope'"),
    (["sim", "--duration", "10", "--trace", "/nonexistent-dir/t.txt"],
     "smr sim: error: /nonexistent-dir/t.txt: No such file or directory"),
    (["fuzz", "--backend", "nope", "--seeds", "1"], "smr fuzz: error: argument --backend: unknown backend"),
    (["conformance", "--mutant", "nope", "--no-files"], "smr conformance: error: no backend has a mutant 'nope'"),
    (["compare", "--backends", "raft,,x", "--no-plots"], "argument --backends: expected a comma-separated"),
    (["bench", "sim", "--repeat", "0"], "smr bench sim: error: argument --repeat"),
    (["bench", "messages", "--backend", "nope"], "smr bench messages: error: --backend must be one of"),
    (["bench", "storage", "--batches", "x"], "argument --batches: expected a whole number, got 'x'"),
    (["bench", "tcp", "--modes", "x"], "argument --modes: unknown 'x'"),
    (["crashloop", "--options", "{bad"], "smr crashloop: error: argument --options: not JSON"),
    (["cluster", "up", "--nodes", "0"], "smr cluster up: error: argument --nodes"),
    (["essay", "--seeds", "0"], "smr essay: error: argument --seeds"),
])
def test_a_bad_argument_is_one_line_and_exit_status_2(argv: list[str], words: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input never shows a traceback: one line on stderr naming the command, exit status 2."""
    code = _run(argv)
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_bug_still_shows_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only bad input becomes a one-line error: an exception from our own code propagates."""
    def broken(args: argparse.Namespace) -> int:
        raise OSError("not a file the user named")

    monkeypatch.setattr(cli, "cmd_backends", broken)
    with pytest.raises(OSError, match="not a file the user named"):
        main(["backends"])


def test_commands_take_a_builtin_scenario_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    """`smr sim kv-leader-crash` and `smr compare kv-leader-crash` run the shipped scenario."""
    assert main(["sim", "kv-leader-crash", "--no-trace"]) == 0
    assert "nodes 5  simulated 3000 ms" in capsys.readouterr().out
    assert main(["compare", "kv-leader-crash", "--seeds", "1", "--backends", "raft", "--no-plots",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "kv-leader-crash  raft" in out
    assert out.endswith("rerun: smr compare kv-leader-crash --backends raft --seeds 1 --first-seed 1\n")


def test_an_unknown_scenario_name_lists_the_builtin_ones(capsys: pytest.CaptureFixture[str]) -> None:
    """A name that is neither a file nor a built-in: one line listing the built-in names, exit 2."""
    assert main(["compare", "nope", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smr compare: error: nope: cannot read scenario") and err.count("\n") == 1
    assert "kv-leader-crash" in err and "counter-leader-crash" in err


# ------------------------------------------------------------------ smr sim: raft by default, replay every run
def test_sim_runs_raft_unless_told_otherwise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """From flags, and from a scenario file that names no backend, smr sim runs raft; a file's own backend
    and --backend still win."""
    assert main(["sim", "--nodes", "3", "--duration", "100", "--no-trace"]) == 0
    assert "backend raft " in capsys.readouterr().out
    plain, named = tmp_path / "plain.yaml", tmp_path / "named.yaml"
    plain.write_text("nodes: 3\nduration_ms: 100\n")
    named.write_text("backend: coordinator\nnodes: 3\nduration_ms: 100\n")
    for path, argv, backend in ((plain, [], "raft"), (named, [], "coordinator"),
                                (named, ["--backend", "multipaxos"], "multipaxos")):
        assert main(["sim", str(path), "--no-trace", *argv]) == 0
        assert f"backend {backend} " in capsys.readouterr().out


def test_sim_text_prints_fixed_precision_and_a_replay_that_replays(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A clean run prints its replay command too (not only a failing one), and that command replays it."""
    scenario, first, again = tmp_path / "s.yaml", tmp_path / "first.txt", tmp_path / "again.txt"
    scenario.write_text("nodes: 3\nduration_ms: 600\n")  # time for an election and some operations
    assert main(["sim", str(scenario), "--seed", "5", "--trace", str(first)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"latency ms p50=\d+\.\d{3} p99=\d+\.\d{3}  messages/command=\d+\.\d{3}", out[-2]), out
    assert out[-1] == f"replay: smr sim {scenario} --backend raft --seed 5"
    assert main(shlex.split(out[-1].removeprefix("replay: "))[1:] + ["--trace", str(again)]) == 0
    assert again.read_text() == first.read_text()


def test_sim_with_the_trace_on_stdout_prints_the_replay_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """`--trace -` keeps stdout for the trace alone."""
    assert main(["sim", "--nodes", "3", "--duration", "50", "--trace", "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# seed=1 backend=raft") and "replay:" not in captured.out
    assert captured.err.startswith("replay: smr sim --config ")
