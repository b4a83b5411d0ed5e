"""Campaigns beyond one machine: any executor, Dask by name, streaming, clean stops, resume, merge, results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from smr.campaign import SeedSet, StopRequest, stream
from smr.cli import main
from smr.conformance.fuzz import RUN_FIELDS, FuzzReport, FuzzSettings, fuzz, merge_reports
from smr.errors import LocalProtocolError
from smr.results import list_runs

QUICK = FuzzSettings(backend="raft", duration_ms=1000.0, liveness_bound_ms=200.0)
QUICK_FLAGS = ["--backend", "raft", "--duration", "1000", "--liveness-bound", "200"]


def verdicts(doc: dict[str, Any]) -> dict[str, Any]:
    """A report's JSON without the fields that say how the run went (time, workers)."""
    return {k: v for k, v in doc.items() if k not in RUN_FIELDS}


def test_a_seed_set_keeps_ranges_and_yields_what_is_missing() -> None:
    seeds = SeedSet()
    for seed in (5, 3, 4, 9, 1, 10):
        seeds.add(seed)
    assert seeds.ranges() == [[1, 1], [3, 5], [9, 10]] and len(seeds) == 6 and 4 in seeds and 8 not in seeds
    assert list(seeds.missing(1, 12)) == [2, 6, 7, 8, 11, 12]
    assert seeds.overlap(SeedSet([(5, 9)])).ranges() == [[5, 5], [9, 9]]


def test_streaming_keeps_a_bounded_number_of_tasks_in_flight_and_results_in_order() -> None:
    drawn = consumed = ahead = 0

    def tasks() -> Any:
        nonlocal drawn, ahead
        for i in range(200):
            drawn += 1
            ahead = max(ahead, drawn - consumed)
            yield i

    with ThreadPoolExecutor(2) as pool:
        out = []
        for task, result in stream(pool, lambda x: x * x, tasks(), in_flight=3):
            consumed += 1
            out.append((task, result))
    assert out == [(i, i * i) for i in range(200)]
    assert ahead <= 4  # the three in flight and the one being drawn


def test_a_stop_hands_out_no_more_tasks() -> None:
    stop = StopRequest()

    def slow(x: int) -> int:
        if x == 3:
            stop.set("test")
        time.sleep(0.01)
        return x

    with ThreadPoolExecutor(2) as pool:
        done = [task for task, _ in stream(pool, slow, range(10_000), stop, in_flight=4)]
    assert len(done) < 20 and stop.reason == "test"


def test_dask_distributed_gives_the_same_verdicts_and_figures_as_local_processes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    distributed = pytest.importorskip("distributed")  # the dask extra; CI installs it
    fuzz_flags = ["fuzz", "--backend", "raft", "--mutant", "vote_without_log_check", "--duration", "3000",
                  "--liveness-bound", "600", "--seeds", "6", "--quiet", "--json"]
    election_flags = ["experiment", "election", "--backend", "raft", "--trials", "3", "--ranges", "50-100",
                      "--seed", "2", "--no-files", "--quiet", "--json"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert main([*fuzz_flags, "--scheduler", cluster.scheduler_address]) == 0
        on_dask = json.loads(capsys.readouterr().out)
        assert main([*election_flags, "--scheduler", cluster.scheduler_address]) == 0
        election_on_dask = json.loads(capsys.readouterr().out)
    assert main([*fuzz_flags, "--jobs", "2"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(election_flags) == 0
    election_local = json.loads(capsys.readouterr().out)
    assert on_dask["failures"] and on_dask["scheduler"] == cluster.scheduler_address
    assert verdicts(on_dask) == verdicts(local)
    assert election_on_dask["ranges"] == election_local["ranges"]


def test_scheduler_without_dask_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    assert main(["fuzz", "--seeds", "1", "--scheduler", "tcp://127.0.0.1:1", "--quiet"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "pip install 'smr-compare[dask]'" in line


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_the_partial_report_and_resume_finishes_it_exactly(tmp_path: Path,
                                                                          signum: int) -> None:
    report, final = tmp_path / "report.json", tmp_path / "final.json"
    seeds = 30
    argv = [sys.executable, "-m", "smr", "fuzz", *QUICK_FLAGS, "--seeds", str(seeds), "--jobs", "2", "--quiet"]
    child = subprocess.Popen([*argv, "--checkpoint", "0.1", "--out", str(report)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not report.exists() or json.loads(report.read_text())["seeds_run"] < 3:
        assert time.monotonic() < deadline and child.poll() is None, "the campaign never got going"
        time.sleep(0.02)
    workers = _children(child.pid)
    child.send_signal(signum)
    sent = time.monotonic()
    _, err = child.communicate(timeout=30)
    stop_s = time.monotonic() - sent
    assert child.returncode == 128 + signum
    assert stop_s < 10, f"took {stop_s:.1f} s to stop"
    assert err.strip().splitlines()[-1].startswith(f"smr: stopped by {signal.Signals(signum).name} after")
    assert workers and not [p for p in workers if Path(f"/proc/{p}").exists()], "a worker outlived the command"
    partial = json.loads(report.read_text())
    assert partial["stopped_by"] == signal.Signals(signum).name and not partial["complete"]
    done = SeedSet(partial["seed_ranges"])
    assert 3 <= len(done) == partial["seeds_run"] < seeds
    if signum != signal.SIGINT:
        return
    # Resuming judges only the seeds not listed, and ends where one uninterrupted run ends.
    resumed = subprocess.run([*argv, "--resume", str(report), "--out", str(final)], capture_output=True, text=True)
    assert resumed.returncode in (0, 1), resumed.stderr
    whole = fuzz(QUICK, 1, seeds, jobs=1)
    doc = json.loads(final.read_text())
    assert doc["complete"] and doc["seeds_run"] == seeds
    assert verdicts(doc) == verdicts(whole.to_json())


def test_resume_refuses_a_report_of_another_campaign() -> None:
    part = fuzz(QUICK, 1, 2)
    with pytest.raises(LocalProtocolError, match="settings differ"):
        fuzz(FuzzSettings(backend="raft", duration_ms=1000.0, liveness_bound_ms=150.0), 1, 2, resume=part)
    with pytest.raises(LocalProtocolError, match="outside"):
        fuzz(QUICK, 10, 2, resume=part)


def test_shards_merge_into_the_report_of_one_run_and_overlaps_are_refused(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]
                                                                         ) -> None:
    shards = [fuzz(QUICK, 1, 5), fuzz(QUICK, 6, 5)]
    whole = fuzz(QUICK, 1, 10)
    assert whole.failures  # this short a liveness bound catches some seeds
    merged = merge_reports(shards)
    assert verdicts(merged.to_json()) == verdicts(whole.to_json())
    files = []
    for i, shard in enumerate(shards):
        files.append(tmp_path / f"shard{i}.json")
        files[-1].write_text(json.dumps(shard.to_json()))
    out = tmp_path / "merged.json"
    assert main(["fuzz", "merge", *map(str, files), "--out", str(out)]) == 1  # some seed failed
    assert verdicts(json.loads(out.read_text())) == verdicts(whole.to_json())
    assert main(["fuzz", "merge", str(files[0]), str(files[0])]) == 2
    assert "overlaps an earlier one on seeds 1-5" in capsys.readouterr().err
    other = FuzzReport.from_json({**shards[1].to_json(), "commit": "0" * 40})
    with pytest.raises(LocalProtocolError, match="different code"):
        merge_reports([shards[0], other])


def test_two_compare_runs_keep_two_directories_each_enough_to_run_again(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]
                                                                       ) -> None:
    scenario = tmp_path / "short.yaml"
    scenario.write_text("name: short\nnodes: 3\nduration_ms: 300\nclients: {count: 2, workload: kv}\n")
    root = tmp_path / "results"
    argv = ["compare", str(scenario), "--backends", "raft,coordinator", "--seeds", "1", "--jobs", "1",
            "--quiet", "--out", str(root)]
    assert main(argv) == 0 and main(argv) == 0
    runs = list_runs(root)
    assert len(runs) == 2 and runs[0]["id"] != runs[1]["id"] and all(r["status"] == "complete" for r in runs)
    first = root / runs[0]["id"]
    record = json.loads((first / "compare.json").read_text())
    assert record["version"] and record["settings"]["backends"] == ["raft", "coordinator"]
    assert record["scenarios"] == {str(scenario): scenario.read_text()}
    assert record["histories"] and (first / record["histories"][0]).stat().st_size > 0
    assert (root / "latest").resolve() == (root / runs[1]["id"]).resolve()
    scenario.write_text("name: short\nnodes: 5\nduration_ms: 300\n")  # the original may change or go
    rerun = record["rerun"].split()
    assert rerun[:2] == ["smr", "compare"]
    assert main([*rerun[1:], "--quiet", "--out", str(root)]) == 0
    again = json.loads((root / "latest" / "compare.json").read_text())
    assert again["cells"] == record["cells"]
    capsys.readouterr()
    assert main(["results", "list", "--root", str(root)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["results", "show", runs[0]["id"], "--root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rerun"] == record["rerun"]


def test_dask_workers_running_other_code_are_named() -> None:
    """A campaign refuses a Dask cluster whose workers run another version (or git commit) of the package."""
    from smr.campaign import foreign_workers

    ours = {"version": "0.9", "commit": "abc", "python": "3.11.2"}
    theirs = {"tcp://b:1": {"version": "0.9", "commit": "abc"}, "tcp://a:1": {"version": "0.8", "commit": None},
              "tcp://c:1": {"version": "0.9", "commit": "def+dirty"}, "tcp://d:1": {"version": "0.9", "commit": None}}
    assert foreign_workers(theirs, ours) == ["tcp://a:1 has version 0.8, this command 0.9",
                                             "tcp://c:1 has commit def+dirty, this command abc"]
    assert foreign_workers(theirs, {**ours, "commit": None}) == ["tcp://a:1 has version 0.8, this command 0.9"]
