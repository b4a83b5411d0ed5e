"""One test per cell of the essay's table: each algorithm keeps or loses exactly what the essay says.

Reference: "Consensus, FLP and Paxos", Parts 1 and 2 (coordinator, majority-rules
voting, tie-break voting) and the Paxos outline.
"""

from __future__ import annotations

import argparse
import json

import pytest

from synod import EXPECTED, PROPERTIES, EssayTable, run_essay_table
from synod.cli import register

SEEDS = 20


@pytest.fixture(scope="module")
def table() -> EssayTable:
    return run_essay_table(SEEDS, counterexamples=False)


CELLS = [
    ("coordinator", "agreement", True), ("coordinator", "validity", True),
    ("coordinator", "termination", True), ("coordinator", "fault_tolerance", False),
    ("majority", "agreement", True), ("majority", "validity", True),
    ("majority", "termination", False), ("majority", "fault_tolerance", False),
    ("tiebreak", "agreement", True), ("tiebreak", "validity", True),
    ("tiebreak", "termination", True), ("tiebreak", "fault_tolerance", False),
    ("paxos", "agreement", True), ("paxos", "validity", True),
    ("paxos", "termination", True), ("paxos", "fault_tolerance", True),
]


def test_the_cells_below_are_the_essays_predictions() -> None:
    assert {(a, p): held for a, p, held in CELLS} == EXPECTED


@pytest.mark.parametrize(("algorithm", "prop", "held"), CELLS,
                         ids=[f"{a}-{p}" for a, p, _ in CELLS])
def test_essay_cell(table: EssayTable, algorithm: str, prop: str, held: bool) -> None:
    cell = table.cells[(algorithm, prop)]
    assert cell.runs > 0
    assert cell.held is held, (f"{algorithm} {prop}: {cell.violations}/{cell.runs} violations "
                               f"{cell.violating_seeds[:5]}")


def test_where_each_algorithm_fails_is_where_the_essay_says(table: EssayTable) -> None:
    def scenarios(alg: str, prop: str) -> set[str]:
        return {s for s, _ in table.cells[(alg, prop)].violating_seeds}

    assert scenarios("coordinator", "fault_tolerance") <= {"coordinator_crash", "voter_crash"}
    assert "coordinator_crash" in scenarios("coordinator", "fault_tolerance")
    assert scenarios("majority", "termination") == {"split_vote"}
    # Tie-break blocks whenever one node is down and the live votes split: any crash will do.
    assert "voter_crash" in scenarios("tiebreak", "fault_tolerance")
    assert scenarios("tiebreak", "fault_tolerance") <= {"voter_crash", "coordinator_crash"}
    assert scenarios("paxos", "fault_tolerance") == set()
    assert table.matches_essay


def test_counterexample_is_small_and_readable() -> None:
    result = run_essay_table(6, algorithms=["tiebreak"], scenarios=["voter_crash", "no_faults"],
                             search_seeds=20)
    example = result.cells[("tiebreak", "fault_tolerance")].counterexample
    assert example is not None
    assert (example.nodes, example.scenario) == (3, "voter_crash")
    assert example.faults == ("t=0 crash n3",)
    text = example.format()
    assert "termination: live nodes n1,n2 still undecided" in text
    assert "DROP(down)" in text and "Vote value=" in text


def test_cli_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["essay", "--seeds", "2", "--json", "--costs", "--no-counterexamples"])
    code = args.func(args)
    document = json.loads(capsys.readouterr().out)
    assert set(document["algorithms"]) == {"coordinator", "majority", "tiebreak", "paxos"}
    for alg, props in document["algorithms"].items():
        assert set(props) == set(PROPERTIES)
        assert all(entry["seeds"] == 2 for entry in props.values())
    assert document["costs"]["cold"]["delays"] == 4
    assert code == (0 if document["matches_essay"] else 1)
