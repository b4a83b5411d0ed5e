"""``smr compare``: reproducible reports, report.html and real pictures.

The figures are checked for what a reader relies on, not for pixels: a panel per
backend on shared axes, one unit per axis, one colour per backend everywhere,
every seed drawn, unknown operations marked, fault bands from fault to repair.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle
from PIL import Image

from smr.cli import main
from smr.colours import FAULT_GREY, backend_colour
from smr.commands import put
from smr.compare import compare
from smr.experiments.election import ElectionTrial
from smr.experiments.election_plot import draw_election
from smr.history import Operation, Outcome
from smr.plots import Band, ScenarioFigure, SeedRun, Series, draw_scenario, fault_bands, plot_scenario
from smr.scenarios import builtin_scenarios
from smr.sim import load_scenario
from smr.sim.config import FaultEvent


def _kv() -> Path:
    return next(p for p in builtin_scenarios() if p.name == "kv-leader-crash.yaml")


def test_two_runs_with_the_same_seed_give_the_same_report() -> None:
    config = load_scenario(_kv())
    first = compare([config], ["coordinator"], [1, 2])
    second = compare([config], ["coordinator"], [1, 2], jobs=2)
    assert [c.to_json() for c in first] == [c.to_json() for c in second]
    assert all(r.verdict == "linearizable" for r in first[0].runs)


def test_compare_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(_kv()), "--backends", "coordinator,raft", "--seeds", "2", "--json",
                 "--out", str(tmp_path)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    coordinator, raft = doc["cells"]
    run = coordinator["runs"][0]
    assert run["verdict"] == "linearizable" and run["ok"] > 100
    # The coordinator is down from the crash (1000 ms) to the restart (2000 ms).
    assert 900 < run["unavailability_ms"][0] <= 1100
    assert raft["runs"][1]["verdict"] == "linearizable"
    png, svg = (tmp_path / "latest" / f"kv-leader-crash{suffix}" for suffix in (".png", ".svg"))
    assert 10_000 < png.stat().st_size < 250_000  # in this run's own directory, linked as latest
    # Every point of both seeds is drawn, yet the SVG stays small: the scatter layers are rasterised
    # (1.9 MB before, with one seed of four backends drawn point by point as vectors).
    assert 10_000 < svg.stat().st_size < 300_000
    assert svg.read_text().count("<image ") >= 2
    report = (tmp_path / "latest" / "report.html").read_text()
    assert "<table>" in report and "data:image/png;base64," in report and html.escape(run["replay"]) in report
    assert "coordinator: Lamport diagram and client operations of seed 1" in report
    assert len(report.encode()) < 3_000_000


# ---------------------------------------------------------------- the figures' properties (not pixels)
def _history(ok_at: Sequence[float], unknown_at: Sequence[float] = (), failed_at: Sequence[float] = (),
             latency: float = 4.0) -> tuple[Operation, ...]:
    ops = [Operation(i, "c1", put("k", i), t, t + latency, Outcome.OK) for i, t in enumerate(ok_at)]
    ops += [Operation(100_000 + i, "c2", put("k", i), t, None, Outcome.UNKNOWN) for i, t in enumerate(unknown_at)]
    ops += [Operation(200_000 + i, "c3", put("k", i), t, t + 50.0, Outcome.FAIL) for i, t in enumerate(failed_at)]
    return tuple(ops)


def _series(backend: str, seeds: Sequence[int] = (1, 2, 3), **history: Any) -> Series:
    ok = [float(t) for t in range(0, 3000, 7)]
    return Series(backend, tuple(SeedRun(seed, _history(ok, **history), throughput=900.0 + seed, p99=5.0 + seed,
                                         messages_per_command=7.5) for seed in seeds))


_CRASH = (FaultEvent(1000.0, "crash_leader"), FaultEvent(2000.0, "restart_all"))


def _drawn(series: Sequence[Series], faults: Sequence[FaultEvent] = _CRASH) -> ScenarioFigure:
    drawn = draw_scenario("demo", series, faults, 3000.0)
    drawn.figure.canvas.draw()  # lay out, so extents are final
    return drawn


def _close(drawn: ScenarioFigure) -> None:
    plt.close(drawn.figure)


def test_every_backend_has_its_own_panel_on_shared_axes_and_nothing_buries_it() -> None:
    backends = ("coordinator", "multipaxos", "raft", "raft-pv-cq")
    drawn = _drawn([_series(b) for b in backends])
    for row in (drawn.latency, drawn.throughput):
        assert list(row) == list(backends)
        axes = list(row.values())
        assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes)
        assert all(axes[0].get_shared_y_axes().joined(axes[0], ax) for ax in axes)
    for backend, ax in drawn.latency.items():
        (points,) = [c for c in ax.collections if c.get_gid() == f"ok:{backend}"]
        assert points.get_alpha() is not None and points.get_alpha() < 1
    widths = [line.get_linewidth() for line in drawn.cdf.get_lines()]  # drawn in order, each thinner
    assert [line.get_gid() for line in drawn.cdf.get_lines()] == [f"cdf:{b}" for b in backends]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)
    _close(drawn)


def test_each_backend_has_one_colour_in_every_panel_and_figure() -> None:
    drawn = _drawn([_series("raft"), _series("multipaxos")])
    for backend in ("raft", "multipaxos"):
        colour = to_hex(backend_colour(backend))
        (points,) = [c for c in drawn.latency[backend].collections if c.get_gid() == f"ok:{backend}"]
        assert to_hex(points.get_facecolor()[0], keep_alpha=False) == colour
        assert {to_hex(line.get_color()) for line in drawn.throughput[backend].get_lines()} == {colour}
        (cdf,) = [line for line in drawn.cdf.get_lines() if line.get_gid() == f"cdf:{backend}"]
        assert to_hex(cdf.get_color()) == colour
    for ax in drawn.summaries.values():  # bars coloured by backend, whatever the metric
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert [to_hex(b.get_facecolor(), keep_alpha=False) for b in bars] == [
            to_hex(backend_colour("raft")), to_hex(backend_colour("multipaxos"))]
    _close(drawn)
    election = draw_election(_trials(), "demo")
    for ax in election.axes.values():
        for backend in ("raft", "multipaxos"):
            (line,) = [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith(f"cdf:{backend}:")]
            assert to_hex(line.get_color()) == to_hex(backend_colour(backend))
    plt.close(election.figure)
    known = ("raft", "multipaxos", "raft-pv-cq", "coordinator")
    assert len({backend_colour(b) for b in known}) == len(known)
    assert backend_colour("someone-elses-plugin") == backend_colour("someone-elses-plugin")
    assert FAULT_GREY not in {backend_colour(b) for b in known}


def _trials() -> list[ElectionTrial]:
    trials = []
    for backend in ("raft", "multipaxos"):
        for low, high in ((150, 150), (150, 300), (25, 50)):
            for seed in range(5):
                trials.append(ElectionTrial(backend, low, high, seed, True, 50.0 + 10 * seed + low, 10.0, "n1", (),
                                            "n2", False, 1, 60.0, True, 0))
    return trials


def test_one_metric_and_one_unit_per_summary_panel() -> None:
    drawn = _drawn([_series("raft"), _series("multipaxos")])
    units = {name: ax.get_ylabel() for name, ax in drawn.summaries.items()}
    assert units == {"throughput": "operations per second", "p99": "latency (ms)",
                     "messages_per_command": "peer messages per command", "unresolved": "operations per run"}
    figure_axes = [ax for sub in drawn.figure.subfigs for ax in sub.axes]
    for ax in drawn.summaries.values():
        assert ax.get_yscale() == "linear"
        assert [other for other in figure_axes if other is not ax and other.bbox.bounds == ax.bbox.bounds] == []
        assert len([p for p in ax.patches if isinstance(p, Rectangle)]) == 2  # one bar per backend, no more
    p99 = drawn.summaries["p99"]
    assert [round(b.get_height(), 6) for b in p99.patches if isinstance(b, Rectangle)] == [7.0, 7.0]  # mean 6..8
    _close(drawn)


def test_legends_cover_no_data() -> None:
    drawn = _drawn([_series("raft"), _series("multipaxos")])
    renderer = drawn.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    axes = [ax for sub in drawn.figure.subfigs for ax in sub.axes]
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    legends += [legend for sub in drawn.figure.subfigs for legend in sub.legends]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), (legend, ax)
    _close(drawn)


def test_every_seed_is_drawn_or_the_title_names_the_one_seed() -> None:
    drawn = _drawn([_series("raft", seeds=(4, 5, 6))])
    gids = [line.get_gid() for line in drawn.throughput["raft"].get_lines()]
    assert gids == ["throughput-seed4:raft", "throughput-seed5:raft", "throughput-seed6:raft",
                    "throughput-median:raft"]
    assert "seeds 4..6, all 3 drawn" in drawn.figure.get_suptitle()
    (points,) = [c for c in drawn.latency["raft"].collections if c.get_gid() == "ok:raft"]
    assert len(points.get_offsets()) == 3 * len(range(0, 3000, 7))
    _close(drawn)
    one = _drawn([_series("raft", seeds=(7,))])
    assert "seed 7 (the only one run)" in one.figure.get_suptitle()
    _close(one)


def test_unknown_and_failed_operations_are_marked_at_their_invocation() -> None:
    drawn = _drawn([_series("raft", seeds=(1,), unknown_at=(1234.0, 2999.0), failed_at=(1500.0,))])
    ax = drawn.latency["raft"]
    (unknown,) = [line for line in ax.get_lines() if line.get_gid() == "unknown:raft"]
    (failed,) = [line for line in ax.get_lines() if line.get_gid() == "failed:raft"]
    assert list(unknown.get_xdata()) == [1234.0, 2999.0] and unknown.get_marker() == "x"
    assert list(failed.get_xdata()) == [1500.0] and list(failed.get_ydata()) == [50.0]
    assert failed.get_marker() != unknown.get_marker()
    _close(drawn)
    clean = _drawn([_series("raft", seeds=(1,))])
    assert not [line for line in clean.latency["raft"].get_lines() if line.get_gid() == "unknown:raft"]
    _close(clean)


def test_a_fault_band_spans_the_fault_to_its_repair() -> None:
    assert fault_bands(_CRASH, 3000.0) == [Band(1000.0, 2000.0, "leader crashed until restart")]
    crossed = [FaultEvent(100.0, "crash", node="n1"), FaultEvent(200.0, "crash", node="n2"),
               FaultEvent(300.0, "restart", node="n2"), FaultEvent(400.0, "partition_halves"),
               FaultEvent(600.0, "heal"), FaultEvent(700.0, "crash", node="n3")]
    assert fault_bands(crossed, 1000.0) == [
        Band(100.0, 1000.0, "n1 crashed (no restart)"), Band(200.0, 300.0, "n2 crashed until restart"),
        Band(400.0, 600.0, "split in halves until heal"), Band(700.0, 1000.0, "n3 crashed (no restart)")]
    replace = [FaultEvent(1000.0, "replace_leader", new="n4")]  # a change spans its own run's start to finish
    assert fault_bands(replace, 3000.0, [(1010.0, 1195.5, "replace_leader")]) == [
        Band(1010.0, 1195.5, "leader replaced")]
    drawn = _drawn([_series("raft")])
    for ax in (drawn.latency["raft"], drawn.throughput["raft"]):
        (band,) = [p for p in ax.patches if p.get_gid() == "fault-band:leader crashed until restart"]
        extent = band.get_bbox()
        assert (extent.x0, extent.x1) == (1000.0, 2000.0)
        assert "leader crashed until restart" in [t.get_text() for t in ax.texts]
    _close(drawn)


def test_the_svg_rasterises_the_scatter_layers(tmp_path: Path) -> None:
    paths = plot_scenario("demo", [_series("raft"), _series("multipaxos")], _CRASH, 3000.0, tmp_path)
    assert [p.name for p in paths] == ["demo.png", "demo.svg"]
    svg = paths[1].read_text()
    assert svg.count("<image ") >= 2 and "<text" in svg  # points as images, words as text
    assert paths[1].stat().st_size < 200_000
    with Image.open(paths[0]) as png:  # a 256-colour palette, a third of a true-colour PNG
        assert png.mode == "P" and paths[0].stat().st_size < 200_000
    drawn = _drawn([_series("raft")])
    assert all(c.get_rasterized() for c in drawn.latency["raft"].collections)
    _close(drawn)
