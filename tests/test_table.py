"""The command line's tables: one precision per numeric column, numbers right, text left."""

from __future__ import annotations

from smr.table import render_table


def test_a_numeric_column_has_one_precision() -> None:
    """10.0 and 5.0 in one column print as 10.0 and 5.0 (not 10.0 and 5.000); small columns keep 3 decimals."""
    table = render_table(["name", "unknown", "msgs/cmd", "count"],
                         [["a", 10.0, 1.5, 3], ["b", 5.0, 8.25, 12], ["c", None, 2.0, None]])
    lines = table.splitlines()
    assert lines[2].split() == ["a", "10.0", "1.500", "3"]
    assert lines[3].split() == ["b", "5.0", "8.250", "12"]
    assert lines[4].split() == ["c", "-", "2.000", "-"]


def test_numbers_align_right_and_text_left_to_the_longest_cell() -> None:
    """A long backend name widens its column; the other names are padded after, the numbers before."""
    table = render_table(["scenario", "backend", "p50 ms"],
                         [["kv", "raft", 4.1], ["kv", "synod-coordinator", 12.25], ["kv", "multipaxos", 100.0]])
    header, rule, *rows = table.splitlines()
    assert rule.split() == ["-" * len("scenario"), "-" * len("synod-coordinator"), "-" * len("p50 ms")]
    assert rows[0] == "kv        raft                  4.1"
    assert rows[1] == "kv        synod-coordinator    12.2"
    assert rows[2] == "kv        multipaxos          100.0"
    assert header == "scenario  backend            p50 ms"
    assert len({len(line) for line in (header, rule, *rows)}) == 1


def test_a_column_with_text_in_it_is_text() -> None:
    """'3/3' or a mix of words and numbers is left-aligned text; bools are text too."""
    table = render_table(["x", "verdict", "flag"], [[1, "3/3", True], [22, "no model, 2/2 agree", False]])
    rows = table.splitlines()[2:]
    assert rows[0] == " 1  3/3                  True"
    assert rows[1] == "22  no model, 2/2 agree  False"
