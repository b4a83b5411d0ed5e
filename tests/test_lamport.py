"""The Lamport diagram's data: which windows it draws, what its filters list, how it bounds itself."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from smr import lamport
from smr.cli import main
from smr.scenarios import builtin_scenarios
from smr.sim import SimConfig, load_scenario


def _kv(backend: str = "raft") -> SimConfig:
    path = next(p for p in builtin_scenarios() if p.name == "kv-leader-crash.yaml")
    return attrs.evolve(load_scenario(path), backend=backend)


@pytest.fixture(scope="module")
def span() -> lamport.Recording:
    """``smr trace``'s default recording of kv-leader-crash on Raft, seed 1."""
    return lamport.record_span(_kv(), 1)


@pytest.fixture(scope="module")
def focus() -> lamport.Recording:
    """The report's recording of the same run: focus windows only."""
    return lamport.record_windows(_kv(), 1)


def test_stopping_a_run_early_gives_exactly_the_full_runs_prefix() -> None:
    """The diagram shows the run compare measured: stopping at 400 ms changes nothing before it."""
    config = attrs.evolve(_kv(), duration_ms=900.0)
    full = lamport.record(config, 2, config.duration_ms).timeline
    early = lamport.record(config, 2, 400.0).timeline
    assert full is not None and early is not None
    assert early == [e for e in full if e[1] <= 400.0]


def test_the_default_trace_window_holds_the_first_election_and_every_fault(span: lamport.Recording) -> None:
    (window,) = span.windows
    assert window.start == 0.0
    first_leader = span.leaders[0][0]
    assert 0 < first_leader < window.end
    for fault in span.faults:  # the crash at 1000 ms and the restart at 2000 ms
        assert window.holds(fault.at)
    # ... and the election that follows the leader's crash.
    assert any(1000 < t < window.end for t, _, _ in span.leaders)
    kinds = {m.kind for m in span.messages}
    assert {"RequestVote", "RequestVoteReply", "AppendEntries"} <= kinds
    # Bounded: it stops soon after the last fault, not at the end of the run.
    assert window.end < max(f.at for f in span.faults) + lamport.SETTLE_MS + 50


def test_focus_windows_hold_the_first_election_and_each_fault_and_its_election(focus: lamport.Recording) -> None:
    first, *rest = focus.windows
    assert first.start == 0.0 and first.holds(focus.leaders[0][0])
    for fault in focus.faults:
        assert any(w.holds(fault.at) for w in focus.windows), fault
    crash = next(f for f in focus.faults if f.action == "crash_leader")
    window = next(w for w in focus.windows if w.holds(crash.at))
    assert any(crash.at < t and window.holds(t) for t, _, _ in focus.leaders), "the re-election is drawn"
    # Only the windows' messages are kept; the rest is counted per gap.
    assert all(any(w.holds(m.sent) or (m.arrive is not None and w.holds(m.arrive)) for w in focus.windows)
               for m in focus.messages)
    assert len(focus.gaps) == len(focus.windows) - 1 and all(n > 1000 for _, _, n in focus.gaps)


def test_the_type_filter_lists_every_message_type_present(span: lamport.Recording) -> None:
    from bokeh.models.widgets import CheckboxGroup

    d = lamport.diagram(span, 300)  # cut short: some types may have no message drawn, they are still listed
    present = {m.kind for m in span.messages}
    assert set(d.types) == present and len(d.types) == len(present)
    root = lamport.layout(d)
    boxes = list(root.select({"type": CheckboxGroup}))
    types_box = next(b for b in boxes if b.labels[0].startswith(d.types[0]))
    assert [label.split(" (")[0] for label in types_box.labels] == list(d.types)
    assert types_box.active == list(range(len(d.types)))
    nodes_box = next(b for b in boxes if b is not types_box)
    assert nodes_box.labels == ["n1", "n2", "n3", "n4", "n5", "c1", "c2", "c3", "c4", "c5"]


def test_the_message_cap_cuts_windows_short_and_says_so(focus: lamport.Recording) -> None:
    cap = 120
    assert len(focus.messages) > cap
    d = lamport.diagram(focus, cap)
    assert len(d.messages) <= cap
    assert any("cut at" in note and f"at most {cap}" in note for note in d.notes)
    # Never thinned: every message sent inside a drawn window is drawn.
    kept = set(d.messages)
    for m in focus.messages:
        if any(w.start <= m.sent <= w.end for w in d.windows):
            assert m in kept, m
    # Each window still starts where it did; the cap only moves ends.
    assert [w.start for w in d.windows] == [w.start for w in focus.windows]
    assert all(a.end <= b.end for a, b in zip(d.windows, focus.windows))


def test_shares_give_every_window_its_due() -> None:
    assert lamport._shares([10, 20, 30], 100) == [10, 20, 30]
    assert lamport._shares([10, 200, 300], 100) == [10, 45, 45]
    assert lamport._shares([0, 5, 500], 30) == [0, 5, 25]
    assert sum(lamport._shares([7, 7, 7], 10)) == 10


def test_a_page_needs_no_network_and_packs_its_texts(span: lamport.Recording) -> None:
    page = lamport.page(lamport.diagram(span, 500))
    assert page.startswith("<!DOCTYPE html>")
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page)
    assert tags and not [t for t in tags if "src=" in t or "href=" in t]  # Bokeh's JavaScript is inlined
    assert "DecompressionStream" in page
    assert len(page.encode()) < 2_500_000


def test_trace_command_writes_the_diagram(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kv = next(p for p in builtin_scenarios() if p.name == "kv-leader-crash.yaml")
    out = tmp_path / "d.html"
    assert main(["trace", "2", str(kv), "--from", "100", "--until", "250", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "raft, seed 2, 100 to 250 ms" in printed
    assert "smr-lamport" in out.read_text()
    assert main(["trace", "2", str(kv), "--to", "50", "--out", str(tmp_path / "d.svg")]) == 2
    assert "HTML" in capsys.readouterr().err
    assert main(["trace", "2", str(kv), "--from", "60", "--to", "50", "--out", str(out)]) == 2
