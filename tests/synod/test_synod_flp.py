"""Part 3 of the essay, FLP: an admissible adversary keeps the synod undecided; randomness ends it.

FLP: every deterministic fault-tolerant consensus algorithm has an admissible
execution (every message to a live process is eventually delivered, at most
one process crashes) that never decides.  For the Paxos synod without
back-off that execution is the duel: each proposer's prepare pre-empts the
other's accept.  Paxos's way around FLP is probability: with randomised
back-off "1 in 10 executions proceed to the second round, 1 in 100 to the
third", a geometric tail.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from smr.errors import LocalProtocolError
from synod import Propose
from synod.adversary import DuelAdversary, Event, RandomNetwork, Scheduler
from synod.cli import register
from synod.flp import FlpReport, election_rounds, fit_geometric, run_duel, synod_rounds
from synod.flp_plot import draw_flp


def test_adversary_keeps_the_backoff_free_synod_undecided_for_50_rounds_admissibly() -> None:
    duel = run_duel(rounds=50, crash="n3", crash_round=2, patience=48)
    assert not duel.decided
    assert duel.rounds_undecided >= 50
    # The ballots climb: every ballot of rounds 1..50 was started and pre-empted by a higher one.
    rounds = sorted({int(row.ballot.split(".")[0]) for row in duel.ballots})
    assert rounds[:51] == list(range(1, 52))
    assert all(row.preempted_by is not None for row in duel.ballots if int(row.ballot.split(".")[0]) <= 50)

    # Admissibility, checked on the raw schedule: each message the adversary held back
    # is delivered at a later step (or went to the crashed node, or is younger than the bound).
    sent_at = {mid: rec.index for rec in duel.schedule for mid in rec.outputs}
    delivered_at = {rec.event_id: rec.index for rec in duel.schedule if rec.kind == "deliver"}
    crashes = [rec.node for rec in duel.schedule if rec.kind == "crash"]
    last = duel.schedule[-1].index
    assert len(crashes) <= 1
    assert duel.held_ids, "the adversary never held anything back: no duel happened"
    for mid in duel.held_ids:
        if mid in delivered_at:
            assert delivered_at[mid] > sent_at[mid]
        else:
            assert duel.messages[mid].dst in crashes or last - sent_at[mid] <= 48, f"message {mid} starved"
    # ... and so is every other message to a live node, within the adversary's bound.
    for mid, at in sent_at.items():
        if duel.messages[mid].dst not in crashes:
            assert delivered_at.get(mid, last) - at <= 48
    assert duel.admissibility.ok and duel.held_delivered_later and duel.ok


def test_the_same_algorithm_decides_on_an_ordinary_random_network() -> None:
    curve = synod_rounds(20, backoff=False, nodes=3, proposers=2)
    assert curve.undecided_at_limit == 0
    assert all(r is not None and r >= 1 for r in curve.decided_in)


def test_with_backoff_the_undecided_fraction_falls_at_least_geometrically() -> None:
    with_backoff = synod_rounds(300, backoff=True)
    without = synod_rounds(200, backoff=False)
    fit = with_backoff.fit
    assert fit is not None and without.fit is not None
    print(f"back-off: r={fit.r:.3f} c={fit.c:.3f} over rounds {fit.rounds}; fractions {with_backoff.fractions}")
    print(f"no back-off: r={without.fit.r:.3f} c={without.fit.c:.3f} over rounds {without.fit.rounds}")
    assert 0 < fit.r < 1
    assert with_backoff.undecided_at_limit == 0 and with_backoff.fractions[-1] == 0.0
    fractions = with_backoff.fractions
    assert all(later <= earlier for earlier, later in zip(fractions, fractions[1:]))
    # Every measured round is under a geometric envelope, and back-off makes the tail steeper.
    for k in fit.rounds:
        assert fractions[k - 1] <= 2 * fit.at(k)
    assert fit.r < without.fit.r


def test_fit_geometric_recovers_a_known_ratio() -> None:
    fractions = [0.5 * 0.3 ** k for k in range(1, 6)]
    fit = fit_geometric(fractions, [1000] * 5)
    assert fit is not None
    assert fit.r == pytest.approx(0.3) and fit.c == pytest.approx(0.5)
    assert fit_geometric([0.1, 0.0], [10, 0]) is None  # one usable round: no fit


class _StarveN3:
    """A policy that is not admissible: it never delivers anything to n3."""

    def pending(self, event: Event, scheduler: Scheduler) -> None:
        """Nothing to note."""

    def choose(self, scheduler: Scheduler) -> Event:
        """The oldest event not addressed to n3."""
        return next(e for e in scheduler.pending.values() if e.dst != "n3")


def test_the_admissibility_check_catches_a_starved_message() -> None:
    sched = Scheduler("synod-paxos", 3, 0, _StarveN3(), options={"backoff": False})
    sched.input("n1", Propose("red"))
    sched.run(lambda s: False, max_steps=200)
    verdict = sched.admissibility(bound=48)
    assert not verdict.ok and verdict.undelivered


def test_the_adversary_crashes_at_most_one_node_and_keeps_persist_before_send() -> None:
    sched = Scheduler("synod-paxos", 3, 0, DuelAdversary(), options={"backoff": False})
    sched.input("n1", Propose("red"))
    # n1's ballot is on its disk before its Prepare is pending.
    assert sched.durable["n1"]["proposer/round"] == 1
    sched.crash("n3")
    with pytest.raises(LocalProtocolError):
        sched.crash("n2")
    assert not sched.alive("n3") and sched.durable["n3"] == {}


def test_same_seed_same_schedule() -> None:
    a = run_duel(rounds=10)
    b = run_duel(rounds=10)
    assert a.schedule == b.schedule and a.trace == b.trace
    first = synod_rounds(30, backoff=True, first_seed=7)
    second = synod_rounds(30, backoff=True, first_seed=7)
    assert first.decided_in == second.decided_in


def _random_run(seed: int) -> tuple[list[tuple[float, str]], set[object]]:
    steps: list[tuple[float, str]] = []
    sched = Scheduler("synod-paxos", 3, seed, RandomNetwork(seed, latency=(1.0, 2.0), tick_ms=1.0),
                      options={"backoff": True}, observer=lambda s, node: steps.append((s.now, node)))
    sched.input("n1", Propose("red"))
    sched.input("n2", Propose("green"))
    assert sched.run(lambda s: all(c.decided is not None for c in s.cores.values()), 100_000)
    return steps, {c.decided for c in sched.cores.values()}


def test_random_network_is_seeded_fires_the_earliest_event_and_agrees() -> None:
    steps, decided = _random_run(3)
    assert [t for t, _ in steps] == sorted(t for t, _ in steps)
    assert len(decided) == 1 and decided <= {"red", "green"}
    assert _random_run(3) == (steps, decided)
    assert _random_run(4)[0] != steps


def test_wider_election_timeout_ranges_need_fewer_rounds() -> None:
    tight = election_rounds("raft", 150, 150, 15)
    wide = election_rounds("raft", 150, 300, 15)
    paxos = election_rounds("multipaxos", 150, 150, 15)
    assert None not in tight.rounds and None not in wide.rounds
    assert min(r for r in tight.rounds if r is not None) >= 2  # identical timers always split round 1
    assert sum(r for r in wide.rounds if r is not None) < sum(r for r in tight.rounds if r is not None)
    assert set(paxos.rounds) == {1}  # ordered ballots: the highest candidate of round 1 wins


def test_cli_flp_prints_one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["essay", "flp", "--json", "--seeds", "40", "--election-seeds", "2",
                              "--rounds", "5"])
    code = args.func(args)
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"duel", "backoff", "elections", "matches_essay"}
    assert document["duel"]["rounds_undecided"] >= 5 and not document["duel"]["decided"]
    assert [c["backoff"] for c in document["backoff"]] == [True, False]
    assert len(document["elections"]) == 6
    assert code == (0 if document["matches_essay"] else 1)


def test_cli_flp_text_shows_the_trace_and_the_fit(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["essay", "flp", "--seeds", "40", "--election-seeds", "2", "--rounds", "4"])
    args.func(args)
    text = capsys.readouterr().out
    assert "Prepare 1.n1" in text and "[held" in text and "UNDECIDED" in text
    assert "back-off: r = " in text and "raft" in text and "multipaxos" in text
    assert parser.parse_args(["essay"]).part == "table"


def test_cli_flp_plots_the_decay_with_its_fitted_geometric_law(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    stem = tmp_path / "flp"
    args = parser.parse_args(["essay", "flp", "--json", "--seeds", "40", "--election-seeds", "1", "--rounds", "3",
                              "--plot", str(stem)])
    args.func(args)
    document = json.loads(capsys.readouterr().out)
    assert document["files"] == [str(stem) + ".png", str(stem) + ".svg"]
    assert all(Path(f).stat().st_size > 5_000 for f in document["files"])
    table = parser.parse_args(["essay", "--plot", str(stem)])
    assert table.func(table) == 2  # the figure belongs to flp


def test_the_flp_figure_draws_each_observed_decay_and_its_fit() -> None:
    curves = (synod_rounds(100, backoff=True), synod_rounds(100, backoff=False))
    report = FlpReport(run_duel(2, trace_rounds=0), curves, ())
    drawn = draw_flp(report)
    lines = {line.get_gid(): line for line in drawn.axes.get_lines()}
    assert drawn.axes.get_yscale() == "log"
    for curve in curves:
        assert curve.fit is not None
        observed = [(k, f) for k, f in enumerate(curve.fractions, start=1) if k in curve.fit.rounds]
        points = lines[f"observed:{curve.label}"]
        assert list(zip(points.get_xdata(), points.get_ydata())) == observed
        fit = lines[f"fit:{curve.label}"]
        assert [round(y, 12) for y in fit.get_ydata()] == [round(curve.fit.at(int(k)), 12) for k in fit.get_xdata()]
        assert f"{curve.fit.r:.3f}^k" in str(fit.get_label())
    plt.close(drawn.figure)
