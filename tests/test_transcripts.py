"""Golden interaction transcripts: each script in tests/transcripts/ replays to its recorded output.

A script drives real cores through the in-memory network and prints every
batch they produce (see :mod:`transcript`).  When a change to a core changes
a transcript on purpose, rerun with ``--rewrite-transcripts`` (or
``SMR_REWRITE_TRANSCRIPTS=1``) and review the diff like any other change.
The last tests show that the transcripts pin the protocol down: breaking
one rule (a mutant option) changes what they print.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from transcript import VIOLATION, Result, check_file, parse, render, run_script

ROOT = Path(__file__).resolve().parent / "transcripts"
SCRIPTS = sorted(ROOT.glob("*/*.txt"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
def test_transcript_replays_to_its_recorded_output(path: Path, rewrite_transcripts: bool) -> None:
    """Every command prints exactly what the file says, and no invariant is ever violated."""
    check_file(path, rewrite=rewrite_transcripts)


def test_every_protocol_has_transcripts() -> None:
    """The scripts the suite promises exist: elections, pre-vote, Figures 7 and 8, recovery, gaps, and
    the leader's write in parallel."""
    names = {str(p.relative_to(ROOT)) for p in SCRIPTS}
    assert {"raft/election.txt", "raft/pre_vote.txt", "raft/figure7.txt", "raft/figure8.txt",
            "raft/figure8_overwrite.txt", "multipaxos/recovery.txt", "multipaxos/gap.txt",
            "raft/write_in_parallel.txt", "multipaxos/write_in_parallel.txt"} <= names


def test_transcripts_are_deterministic() -> None:
    """Running a script twice prints the same bytes (seeded rngs, no set or dict order leaks)."""
    text = (ROOT / "raft" / "figure7.txt").read_text()
    assert run_script(text).text == run_script(text).text


def test_parse_and_render_round_trip() -> None:
    """Comments, blank lines and outputs survive a parse and render unchanged; a command with no
    recorded output yet gets one."""
    text = "# c\nnodes 1\n----\n\n\n# d\nstatus\n----\nn1 x\n\n# tail\n"
    blocks, tail = parse(text)
    assert render(blocks, [b.expected or [] for b in blocks], tail) == text
    fresh, _ = parse("nodes 1\n\nstatus\n")
    assert [b.expected for b in fresh] == [None, None]
    assert run_script("nodes 1\n\nstatus\n").text.startswith("nodes 1\n----\n\nstatus\n----\nn1 ")


def test_a_changed_output_fails_with_a_diff_and_the_flag_rewrites_it(tmp_path: Path) -> None:
    """A transcript whose recorded output is stale fails naming the flag; rewriting fixes it."""
    script = tmp_path / "stale.txt"
    script.write_text("nodes 1 backend=raft\n----\n\nstatus\n----\nn1 leader term=9 leader=n1 commit=0\n")
    with pytest.raises(AssertionError, match="--rewrite-transcripts"):
        check_file(script)
    check_file(script, rewrite=True)
    assert script.read_text().endswith("status\n----\nn1 follower term=0 leader=- commit=0\n")
    check_file(script)


def test_a_violated_invariant_is_never_recorded(tmp_path: Path) -> None:
    """A script that breaks an invariant fails, even when asked to rewrite, and the file is kept."""
    text = (ROOT / "raft" / "figure8_overwrite.txt").read_text()
    script = tmp_path / "broken.txt"
    script.write_text(text.replace("max_batch=1", "max_batch=1 mutant_commit_previous_term=true"))
    before = script.read_text()
    with pytest.raises(AssertionError, match=VIOLATION):
        check_file(script, rewrite=True)
    assert script.read_text() == before


def _first_difference(golden: Result, changed: Result) -> tuple[str, list[str], list[str]]:
    for block, a, b in zip(golden.blocks, golden.outputs, changed.outputs):
        if a != b:
            return block.command, a, b
    raise AssertionError("the transcripts are identical")


def test_committing_a_previous_term_entry_by_counting_changes_figure_8() -> None:
    """With the Figure 8 bug the leader commits 2/1 as soon as a majority stores it, before any
    entry of its own term is committed; the correct Raft waits for 3/3.

    Reference: section 5.4.2
    """
    text = (ROOT / "raft" / "figure8.txt").read_text()
    golden = run_script(text)
    broken = run_script(text, {"mutant_commit_previous_term": True})
    command, correct, mutant = _first_difference(golden, broken)
    assert command == "deliver n3->n1"
    assert "  n1 commit 2 c1#1 put x '1'" in mutant
    assert not any(line.startswith("  n1 commit ") for line in correct)


def test_the_figure_8_bug_loses_a_committed_entry() -> None:
    """Branch (d): the correct Raft may overwrite the uncommitted 2/1; the mutant had committed it,
    so the same schedule violates leader completeness.

    Reference: section 5.4.2 (Figure 8 (d))
    """
    text = (ROOT / "raft" / "figure8_overwrite.txt").read_text()
    assert not run_script(text).violated
    broken = run_script(text, {"mutant_commit_previous_term": True})
    assert broken.violated
    assert any(line.startswith(f"{VIOLATION}: leader completeness") for out in broken.outputs for line in out)


def test_ignoring_promised_values_changes_phase_1_recovery() -> None:
    """A leader that ignores the values its promises report does not re-propose slot 1."""
    text = (ROOT / "multipaxos" / "recovery.txt").read_text()
    golden = run_script(text)
    broken = run_script(text, {"mutant_ignore_promised_values": True})
    command, correct, mutant = _first_difference(golden, broken)
    assert command == "deliver"
    assert any("Accept ballot=2.n2 slots=1..1" in line for line in correct)
    assert not any("Accept" in line for line in mutant)


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_counting_the_leader_before_its_sync_changes_write_in_parallel(backend: str) -> None:
    """With n3 down the correct leader commits only at its own ``synced`` step; a leader that counts
    its unsynced write commits as soon as n2's acknowledgement arrives.

    Reference: Ongaro's thesis, section 10.2.1
    """
    text = (ROOT / backend / "write_in_parallel.txt").read_text()
    golden = run_script(text)
    broken = run_script(text, {"mutant_count_self_before_sync": True})
    command, correct, mutant = _first_difference(golden, broken)
    assert command == "deliver"
    assert any(line.startswith("  n1 commit 1 ") for line in mutant)
    assert not any(line.startswith("  n1 commit ") for line in correct)
