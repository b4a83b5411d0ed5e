"""``smr experiment election`` and ``smr bench messages`` measure what they claim.

The election experiment reproduces Figure 16 of the extended Raft paper
(section 9.3): a 5-server cluster, a broadcast time of about 15 ms, a
heartbeat every half minimum election timeout, the leader crashed at a random
point of its heartbeat interval, two followers one entry behind.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex

from smr.colours import backend_colour
from smr.commands import put
from smr.experiments import ElectionSetup, run_campaign, run_trial, summarize, trial_seed
from smr.experiments.cli import cmd_election, register, register_bench
from smr.experiments.election import ElectionTrial, parse_range
from smr.experiments.election_plot import draw_election, panels
from smr.experiments.election_report import summarize_range
from smr.experiments.messages import count_messages
from smr.experiments.scripted import ScriptedSimulation
from smr.replica import ClientRequest
from smr.sim import ClientConfig, SimConfig
from smr.sim.latency import uniform
from smr.testing import unstamped

LAT_LOW, LAT_HIGH = 6.0, 8.0  # the experiment's one-way delay bounds (uniform 6-8 ms)


def _trials(backend: str, low: int, high: int, n: int, **kwargs: object) -> list[ElectionTrial]:
    setup = ElectionSetup(backend, low, high, **kwargs)  # type: ignore[arg-type]
    return [run_trial(setup, trial_seed(1, low, high, i)) for i in range(n)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smr")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    bench = sub.add_parser("bench").add_subparsers(dest="bench", required=True)
    register_bench(bench)
    return parser


# ------------------------------------------------------------------ the scripting hooks
def test_scripted_actions_run_at_their_virtual_time_and_see_every_message() -> None:
    config = SimConfig(backend="raft", nodes=3, duration_ms=600.0, trace=False,
                       clients=ClientConfig(count=1, stop_ms=0.0))
    seen: list[tuple[float, str]] = []
    sent: list[str] = []
    sim = ScriptedSimulation(config, 4, on_send=lambda sim, src, dst, m: sent.append(type(m).__name__))

    def submit_to_leader(sim: ScriptedSimulation) -> None:
        seen.append((sim.now, "submit"))
        leader = sim.current_leader()
        assert leader is not None
        sim.submit(leader, ClientRequest("c1", 1, put("k", "v")))

    sim.call_at(412.5, submit_to_leader)
    sim.call_at(412.5, lambda sim: seen.append((sim.now, "after")))
    result = sim.run()
    assert seen == [(412.5, "submit"), (412.5, "after")]
    assert ClientRequest("c1", 1, put("k", "v")) in unstamped(list(result.committed.values()))
    assert sent.count("Reply") == 1 and "RequestVote" in sent
    sim2 = ScriptedSimulation(config, 4)
    sim2.crash("n1")
    with pytest.raises(ValueError):
        sim2.submit("n1", ClientRequest("c1", 1, put("k", "v")))


# ------------------------------------------------------------------ the election experiment
def test_a_failover_takes_the_election_timeout_minus_the_heartbeat_offset_plus_four_delays() -> None:
    """Section 9.3: the least downtime is about the minimum election timeout minus the crash offset.

    Followers reset their timers when the last heartbeat arrives (one delay after
    it left), time out a whole timeout later, and the winner needs a vote round
    trip and one AppendEntries: four one-way delays on top.  A failover won in
    the first term can take no longer than the maximum timeout on the same terms.
    """
    low, high = 150, 300
    trials = _trials("raft", low, high, 12)
    assert all(t.converged and not t.violations for t in trials)
    for t in trials:
        assert 0.0 <= t.crash_offset_ms < low // 2
        assert t.downtime_ms is not None and t.downtime_ms >= low - t.crash_offset_ms
        assert t.downtime_ms >= low - t.crash_offset_ms + 4 * LAT_LOW - 1.0
        if t.epochs == 1:
            assert t.downtime_ms <= high - t.crash_offset_ms + 4 * LAT_HIGH + 1.0
    assert any(t.epochs == 1 for t in trials)


def test_without_randomness_split_votes_make_the_tail_long() -> None:
    """Figure 16 (top): with a 150-150 range, elections split again and again."""
    fixed = _trials("raft", 150, 150, 6)
    random_ = _trials("raft", 150, 300, 6)
    assert all(t.converged for t in fixed + random_)
    fixed_median = statistics.median(t.downtime_ms for t in fixed)  # type: ignore[type-var]
    random_median = statistics.median(t.downtime_ms for t in random_)  # type: ignore[type-var]
    assert fixed_median > 3 * random_median
    assert statistics.fmean(t.epochs for t in fixed) >= 5  # type: ignore[misc]


def test_raft_never_elects_one_of_the_two_lagging_survivors() -> None:
    """Section 5.4.1: the up-to-date check refuses votes to a candidate whose log is behind."""
    trials = _trials("raft", 150, 155, 12) + _trials("raft", 12, 24, 12)
    for t in trials:
        assert t.missed_messages == 2  # exactly the new entry's messages to the two laggers
        assert len(t.lagging) == 2 and t.old_leader not in t.lagging
        assert t.converged and t.winner not in t.lagging and t.winner_lagging is False
        assert t.recovery_ms is not None  # the entry the laggers missed survived and was committed


@pytest.mark.parametrize("seed", [826259778486759634, 426998601440996713, 362429052807451762])
def test_the_entry_reaches_the_up_to_date_followers_even_when_raft_was_probing(seed: int) -> None:
    """Regression: with 12-24 ms timeouts a round trip (about 14 ms) outlasts two heartbeats, so
    Raft may be probing a follower when the entry arrives and hold it back; the trial must then
    wait for another heartbeat, or no survivor would hold the entry and a lagger could win."""
    t = run_trial(ElectionSetup("raft", 12, 24), seed)
    assert t.converged and not t.winner_lagging and t.recovery_ms is not None


def test_without_the_up_to_date_check_a_lagging_survivor_can_win() -> None:
    """The deliberately broken Raft (votes ignore logs) lets a lagger win, and loses a committed entry."""
    trials = _trials("raft", 150, 155, 16, options=(("mutant_vote_without_log_check", True),))
    lost = [t for t in trials if any("leader completeness" in v for v in t.violations)]
    assert lost or any(t.winner_lagging for t in trials)


def test_multi_paxos_may_elect_a_lagging_replica_which_then_catches_up() -> None:
    """Howard and Mortier: any replica may win a Paxos ballot and recover the log in phase 1."""
    trials = _trials("multipaxos", 150, 155, 12)
    assert all(t.converged and t.missed_messages == 2 and not t.violations for t in trials)
    lagging_winners = [t for t in trials if t.winner_lagging]
    assert lagging_winners
    for t in lagging_winners:
        # the new leader committed the entry it had missed, after everyone heard from it
        assert t.recovery_ms is not None and t.downtime_ms is not None
        assert t.recovery_ms >= t.downtime_ms - 2 * LAT_HIGH


def test_the_same_seed_gives_the_same_numbers_whatever_the_number_of_processes() -> None:
    setups = [ElectionSetup("raft", 25, 50), ElectionSetup("multipaxos", 25, 50)]
    one = run_campaign(setups, 3, base_seed=5, jobs=1)
    two = run_campaign(setups, 3, base_seed=5, jobs=2)
    other = run_campaign(setups, 3, base_seed=6, jobs=1)
    assert [t.to_json() for t in one] == [t.to_json() for t in two]
    assert [t.downtime_ms for t in one] != [t.downtime_ms for t in other]
    # both backends meet the same seeds
    assert [t.seed for t in one[:3]] == [t.seed for t in one[3:]]


def test_summaries_count_trials_that_did_not_converge_apart() -> None:
    def trial(downtime: float | None) -> ElectionTrial:
        return ElectionTrial("raft", 150, 300, 1, downtime is not None, downtime, 1.0, "n1",
                             ("n2", "n3"), "n4" if downtime else None, False if downtime else None,
                             1 if downtime else None, None, True if downtime else None, 2)

    summary = summarize_range([trial(float(d)) for d in range(1, 21)] + [trial(None)])
    assert (summary.trials, summary.converged, summary.not_converged) == (21, 20, 1)
    assert (summary.median, summary.mean, summary.p95, summary.max) == (10.5, 10.5, 19.0, 20.0)
    with pytest.raises(ValueError):
        summarize_range([trial(1.0), ElectionTrial("multipaxos", *attrs_tail(trial(2.0)))])


def attrs_tail(t: ElectionTrial) -> tuple[object, ...]:
    """The fields of ``t`` after its backend."""
    return tuple(t.to_json()[k] if k != "lagging" else t.lagging
                 for k in ("low_ms", "high_ms", "seed", "converged", "downtime_ms", "crash_offset_ms",
                           "old_leader", "lagging", "winner", "winner_lagging", "epochs",
                           "recovery_ms", "stable", "missed_messages"))


def test_the_plot_splits_ranges_into_the_papers_two_panels() -> None:
    default = [(150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300),
               (12, 24), (25, 50), (50, 100), (100, 200)]
    top, bottom = panels(default)
    assert top[1] == default[:6]
    assert bottom[1] == [(150, 300), (12, 24), (25, 50), (50, 100), (100, 200)]
    assert len(panels([(150, 160), (150, 170)])) == 1


def test_election_command_prints_one_json_document_and_writes_data_and_plots(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["experiment", "election", "--backend", "raft,multipaxos", "--trials", "2",
                                 "--ranges", "25-50,50-100", "--seed", "3", "--json",
                                 "--out", str(tmp_path)])
    assert cmd_election(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["experiment"] == "election"
    assert [(r["backend"], r["range"], r["trials"]) for r in doc["ranges"]] == [
        ("raft", "25-50", 2), ("raft", "50-100", 2), ("multipaxos", "25-50", 2), ("multipaxos", "50-100", 2)]
    run = tmp_path / "latest"  # this run's own directory
    raw = json.loads((run / "election-raft.json").read_text())
    assert len(raw["trials"]) == 4 and raw["setup"]["latency"] == "uniform(6,8)ms"
    assert len((run / "election-multipaxos.csv").read_text().splitlines()) == 1 + 4
    for suffix in (".png", ".svg"):  # one figure: every backend in each range's panel
        assert (run / f"election{suffix}").stat().st_size > 5_000
    assert not (run / "election-raft.png").exists()
    assert sorted(Path(f).name for f in doc["files"]) == [
        "election-multipaxos.csv", "election-multipaxos.json", "election-raft.csv", "election-raft.json",
        "election.png", "election.svg"]


def test_the_election_figure_has_a_panel_per_range_with_every_backend_on_shared_axes() -> None:
    ranges = [(150, 150), (150, 155), (150, 300), (12, 24), (25, 50)]
    trials = [ElectionTrial(backend, low, high, seed, seed < 4, 40.0 + low + 7 * seed if seed < 4 else None, 5.0,
                            "n1", (), "n2", False, 1, None, True, 0)
              for backend in ("raft", "multipaxos", "raft-pv-cq") for low, high in ranges for seed in range(5)]
    drawn = draw_election(trials, "demo")
    assert list(drawn.axes) == ranges  # the paper's two groups, each range once
    axes = list(drawn.axes.values())
    assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    assert all(axes[0].get_shared_y_axes().joined(axes[0], ax) for ax in axes)
    assert axes[0].get_xscale() == "log"
    for (low, high), ax in drawn.axes.items():
        lines = {line.get_gid(): line for line in ax.get_lines()}
        assert set(lines) == {f"cdf:{b}:{low}-{high}" for b in ("raft", "multipaxos", "raft-pv-cq")}
        for backend in ("raft", "multipaxos", "raft-pv-cq"):
            line = lines[f"cdf:{backend}:{low}-{high}"]
            assert to_hex(line.get_color()) == to_hex(backend_colour(backend))
            assert max(line.get_ydata()) == pytest.approx(80.0)  # of all trials: one of five never converged
        assert ax.get_legend() is None  # one legend, outside every panel
    assert len(drawn.figure.legends) == 1
    plt.close(drawn.figure)


def test_election_table_lists_every_range(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["experiment", "election", "--backend", "raft", "--trials", "2",
                                 "--ranges", "50-100", "--no-files"])
    assert cmd_election(args) == 0
    out = capsys.readouterr().out
    assert "range (ms)" in out and "p95" in out and "50-100" in out and "wall time" in out


def test_election_parser() -> None:
    args = _parser().parse_args(["experiment", "election", "--backend", "raft-pv-cq", "--trials", "7",
                                 "--ranges", "150-150,12-24", "--seed", "9", "--jobs", "2", "--json",
                                 "--out", "d", "--latency", "7", "--option", "backoff_ticks_max=10",
                                 "--cap", "5000"])
    assert args.func is cmd_election
    assert (args.backend, args.trials, args.seed, args.jobs, args.json, args.out) == (
        "raft-pv-cq", 7, 9, 2, True, "d")
    assert args.ranges == [(150, 150), (12, 24)]
    assert args.latency.describe() == "7ms" and args.option == [("backoff_ticks_max", 10)]
    assert args.cap == 5000.0
    defaults = _parser().parse_args(["experiment", "election"])
    assert (defaults.trials, defaults.ranges, defaults.latency.describe()) == (1000, None, "uniform(6,8)ms")
    for bad in (["--ranges", "150"], ["--ranges", "300-150"], ["--latency", "x"], ["--option", "x"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(["experiment", "election", *bad])
    with pytest.raises(ValueError):
        parse_range("0-10")


def test_messages_parser() -> None:
    args = _parser().parse_args(["bench", "messages", "--backend", "multipaxos", "--clients", "4", "--json"])
    assert (args.backend, args.clients, args.json, args.latency) == ("multipaxos", 4, True, None)
    assert _parser().parse_args(["bench", "messages"]).backend is None


# ------------------------------------------------------------------ the message benchmark
@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_messages_per_command_split_exactly_into_first_sends_and_overhead(backend: str) -> None:
    count = count_messages(backend, clients=5, warmup_ms=500.0, window_ms=1000.0)
    assert count.commands > 500
    assert count.per_command == pytest.approx(2 * count.first_sends / count.commands
                                              + sum(count.overhead.values()))
    # every committed command reached each of the four followers once as a new position
    assert count.new_pairs == pytest.approx(4 * count.commands, rel=0.02)
    assert count.optimum == pytest.approx(8 / count.batch)
    assert count.ratio >= 0.98
    assert "ClientRequest" not in count.per_type and "Reply" not in count.per_type


def test_raft_resends_come_from_appends_that_overtake_each_other() -> None:
    """On links that reorder (not FIFO), pipelined AppendEntries overtake each other and are
    refused; on FIFO links (TCP-like, the default) nothing is refused and only heartbeats are
    left over."""
    jittery = count_messages("raft", clients=10, warmup_ms=500.0, window_ms=1000.0, fifo=False)
    steady = count_messages("raft", clients=10, warmup_ms=500.0, window_ms=1000.0)
    assert jittery.rejections > 0 and jittery.resends > 0
    assert steady.rejections == 0 and steady.resends == 0
    assert steady.heartbeats > 0
    assert steady.per_command - steady.optimum == pytest.approx(
        steady.overhead["heartbeats"] + steady.overhead["heartbeat_replies"], abs=0.01)


def test_messages_command_prints_one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["bench", "messages", "--clients", "3", "--warmup", "300",
                                 "--window", "500", "--json"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["backend"] for r in doc["results"]] == ["raft", "multipaxos"]
    assert all(r["ratio"] > 0 and r["commands"] > 0 for r in doc["results"])


def test_messages_table_puts_backends_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["bench", "messages", "--clients", "3", "--warmup", "300",
                                 "--window", "500"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "raft" in line and "multipaxos" in line)
    assert header.split() == ["raft", "multipaxos"]
    assert "optimum 2(N-1)/b" in out and "ratio (target <= 1.05)" in out


def test_summarize_groups_by_backend_and_range() -> None:
    setups = [ElectionSetup("raft", 50, 100), ElectionSetup("multipaxos", 50, 100)]
    summaries = summarize(run_campaign(setups, 2, base_seed=2))
    assert [(s.backend, s.label, s.trials) for s in summaries] == [("raft", "50-100", 2),
                                                                   ("multipaxos", "50-100", 2)]
