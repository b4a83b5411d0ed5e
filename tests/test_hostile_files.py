"""Hostile config and scenario files: each is refused in one line naming the file, the line and the field.

One test per case of issue 22's "Config files" paragraph: an alias bomb, deep
nesting, non-UTF-8 bytes, duplicate keys, lax types (bool, float or string
where something else belongs, infinities), and scenarios whose faults or
workload options name what does not exist.  None of them may take more than a
moment, hold more than a few MB or print a traceback from the ``smr`` commands.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from smr.cli import main as smr_main
from smr.errors import ConfigError
from smr.net import load_cluster, parse_cluster
from smr.net.cli import main as net_main
from smr.sim import load_scenario, parse_scenario
from smr.yamlfiles import MAX_ALIAS_VALUES, MAX_DEPTH

CLUSTER = """\
backend: raft
state_machine: kv
tick_ms: 10
fsync: true
secret: "0123456789abcdef-cluster"
nodes:
  - {id: n1, host: 127.0.0.1, port: 47001}
  - {id: n2, host: 127.0.0.1, port: 47002}
  - {id: n3, host: 127.0.0.1, port: 47003}
"""

SCENARIO = """\
nodes: 3
duration_ms: 500
clients:
  workload: kv
  workload_options:
    keys: 3
faults:
  - {at: 100, action: crash, node: n2}
  - at: 200
    action: partition
    groups: [[n1], [n2, n3]]
"""


def _refused(parse: object, text: str, source: str = "bad.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, source)  # type: ignore[operator]
    return info.value


def _names(err: ConfigError, line: int, field: str, words: str, source: str = "bad.yaml") -> None:
    """The one-line message starts with file, line and field, and says what is wrong."""
    assert (err.file, err.line, err.field) == (source, line, field), str(err)
    assert str(err).startswith(f"{source}, line {line}, field '{field}': "), str(err)
    assert words in str(err) and "\n" not in str(err), str(err)


def _laughs(levels: int, per_level: int, mapping: bool) -> str:
    names = [f"l{i}" for i in range(levels)]
    lines = [f'{names[0]}: &{names[0]} [{", ".join(["lol"] * per_level)}]']
    for prev, name in zip(names, names[1:]):
        items = (", ".join(f"k{j}: *{prev}" for j in range(per_level)) if mapping
                 else ", ".join([f"*{prev}"] * per_level))
        lines.append(f"{name}: &{name} {'{' if mapping else '['}{items}{'}' if mapping else ']'}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("levels", "mapping"), [(9, False), (10, False), (9, True)])
def test_a_billion_laughs_is_refused_by_the_alias_bound_in_kilobytes(levels: int, mapping: bool) -> None:
    """~10^9 values from a few hundred bytes: refused while composing, before anything is expanded."""
    text = _laughs(levels, 9 if mapping else 10, mapping)
    assert len(text.encode()) < 1000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        err = _refused(parse_scenario, text)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"aliases expand to more than {MAX_ALIAS_VALUES} values" in str(err)
    assert err.line is not None and err.field is not None and err.field.startswith("l")
    assert peak < 8 << 20 and elapsed < 2.0, (peak, elapsed)


def test_an_alias_that_contains_itself_is_refused() -> None:
    err = _refused(parse_scenario, "nodes: 3\nbackend_options: &loop {again: *loop}\n")
    _names(err, 2, "backend_options.again", "refers to a value that contains it")


@pytest.mark.parametrize("text", [
    "nodes: 3\nclients: {workload_options: {x: " + "[" * 5000 + "]" * 5000 + "}}\n",
    "nodes: 3\nclients:\n  workload_options:\n" + "".join("  " * (i + 3) + f"k{i}:\n" for i in range(400)),
])
def test_five_thousand_deep_nesting_is_refused_without_recursion(text: str) -> None:
    """Flow or block nesting past the bound stops the scanner, long before Python's recursion limit."""
    started = time.perf_counter()
    err = _refused(parse_scenario, text)
    assert time.perf_counter() - started < 2.0
    assert f"nested deeper than {MAX_DEPTH} levels" in str(err)
    assert err.field is not None and err.field.startswith("clients.workload_options"), str(err)
    assert err.line is not None and str(err).startswith(f"bad.yaml, line {err.line}, field '{err.field}'")


def test_non_utf8_bytes_are_named_by_offset_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(SCENARIO.replace("workload: kv", "workload: k\xff").encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    offset = SCENARIO.index("workload: kv") + len("workload: k")
    _names(info.value, 4, "clients.workload", f"not UTF-8: byte 0xff at offset {offset}", str(path))
    path.write_bytes(CLUSTER.encode() + b"\x80\n")
    with pytest.raises(ConfigError, match=r"not UTF-8: byte 0x80") as again:
        load_cluster(path)
    assert again.value.line == CLUSTER.count("\n") + 1


def test_a_duplicate_key_names_both_lines() -> None:
    err = _refused(parse_cluster, CLUSTER.replace("fsync: true\n", "fsync: true\ntick_ms: 20\n"))
    _names(err, 5, "tick_ms", "duplicate key 'tick_ms' (first at line 3)")
    nested = _refused(parse_scenario, SCENARIO.replace("keys: 3", "keys: 3\n    keys: 4"))
    _names(nested, 7, "clients.workload_options.keys", "duplicate key 'keys' (first at line 6)")


@pytest.mark.parametrize(("old", "new", "line", "field", "words"), [
    ("port: 47001}", "port: true}", 7, "nodes[0].port", "expected an int, got true (a bool)"),
    ("port: 47001}", "port: 47001.7}", 7, "nodes[0].port", "expected an int, got 47001.7 (a float)"),
    ("fsync: true", 'fsync: "no"', 4, "fsync", "expected a bool (true or false), got 'no' (a str)"),
    ("tick_ms: 10", "tick_ms: .inf", 3, "tick_ms", ".inf is not a finite number"),
    ("tick_ms: 10", "tick_ms: .nan", 3, "tick_ms", ".nan is not a finite number"),
    ("id: n2,", "id: 2,", 8, "nodes[1].id", "expected a str, got 2 (an int); quote it"),
    ("port: 47003}", "port: 1" + "0" * 30 + "}", 9, "nodes[2].port", "out of range (64-bit"),
])
def test_lax_types_in_a_cluster_file_are_refused(old: str, new: str, line: int, field: str, words: str) -> None:
    """port: true is not port 1, 47001.7 is not 47001, "no" is not true, .inf is not a tick."""
    assert old in CLUSTER
    _names(_refused(parse_cluster, CLUSTER.replace(old, new)), line, field, words)


@pytest.mark.parametrize(("old", "new", "line", "field", "words"), [
    ("node: n2}", "node: n9}", 8, "faults[0].node", "unknown node 'n9' (nodes: n1, n2, n3)"),
    (", node: n2}", "}", 8, "faults[0].node", "crash needs a node"),
    ("at: 100,", "at: -5,", 8, "faults[0].at", "must not be negative, got -5"),
    ("[n2, n3]]", "[n2, n7]]", 11, "faults[1].groups[1][1]", "unknown node 'n7'"),
    ("[[n1], [n2, n3]]", "[[n1], [n1, n3]]", 11, "faults[1].groups[1][0]", "node 'n1' is in two groups"),
    ("keys: 3", "keys: -3", 6, "clients.workload_options.keys", "needs at least one key"),
    ("keys: 3", "kees: 3", 6, "clients.workload_options.kees", "unexpected keyword argument 'kees'"),
    ("workload: kv", "workload: kvv", 4, "clients.workload", "unknown workload 'kvv'"),
    ("nodes: 3", "nodes: 3\nbackend: rafft", 2, "backend", "unknown backend 'rafft'"),
    ("nodes: 3", "nodes: 3\nbackend: raft\nbackend_options: {pre_vot: true}", 3, "backend_options.pre_vot",
     "unknown raft option"),
    ("duration_ms: 500", "duration_ms: .inf", 2, "duration_ms", ".inf is not a finite number"),
    ("nodes: 3", "nodes: true", 1, "nodes", "expected an int, got true"),
])
def test_a_scenario_naming_what_does_not_exist_is_refused(old: str, new: str, line: int, field: str,
                                                          words: str) -> None:
    """Crashing node n9 of three, keys: -3, an unknown workload or backend: refused at load, not at run."""
    assert old in SCENARIO
    _names(_refused(parse_scenario, SCENARIO.replace(old, new)), line, field, words)


def test_every_problem_in_a_file_is_reported_with_its_line_and_field() -> None:
    """Type errors, unknown keys and cross-references together: the first in the attributes, each on a line."""
    text = SCENARIO.replace("nodes: 3", "nodes: 3\ntrace: 'no'\ncolour: red").replace(
        "node: n2}", "node: n9}").replace("at: 200", "at: -1")
    err = _refused(parse_scenario, text)
    assert (err.file, err.line, err.field) == ("bad.yaml", 2, "trace"), str(err)
    lines = str(err).splitlines()
    assert lines[0] == "bad.yaml: 4 problems:" and len(lines) == 5, str(err)
    for line, start in zip(lines[1:], ("  bad.yaml:2: trace: expected a bool (true or false), got 'no' (a str)",
                                       "  bad.yaml:3: colour: extra field 'colour' is not allowed",
                                       "  bad.yaml:10: faults[0].node: unknown node 'n9' (nodes: n1, n2, n3)",
                                       "  bad.yaml:11: faults[1].at: a fault's time must not be negative")):
        assert line.startswith(start), str(err)
    cluster = _refused(parse_cluster, CLUSTER.replace("port: 47001}", "port: 70000}").replace(
        "id: n3,", "id: n2,").replace('"0123456789abcdef-cluster"', "short"))
    assert "bad.yaml:5: secret: " in str(cluster) and "bad.yaml:9: nodes[2].id: " in str(cluster)


@pytest.mark.parametrize("command", ["sim", "compare", "trace"])
def test_smr_commands_print_one_line_for_a_hostile_scenario(tmp_path: Path, command: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    for content in (_laughs(10, 10, False).encode(), b"nodes: \xff\n", b"nodes: true\nnodes: 3\n",
                    ("x: " + "[" * 5000 + "]" * 5000 + "\n").encode()):
        bad.write_bytes(content)
        args = {"sim": ["sim", str(bad)], "compare": ["compare", str(bad), "--no-plots", "--seeds", "1"],
                "trace": ["trace", "1", str(bad)]}[command]
        assert smr_main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"smr {command}: error: {bad}, line ") and err.count("\n") == 1, err


def test_smr_serve_and_cluster_up_print_one_line_for_a_hostile_cluster_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cluster.yaml"
    for content in (CLUSTER.replace("port: 47001}", "port: true}").encode(), b"nodes: \xff\n",
                    _laughs(10, 10, False).encode()):
        bad.write_bytes(content)
        assert net_main(["serve", "--cluster", str(bad), "--node", "n1", "--data", str(tmp_path / "d")]) == 2
        assert net_main(["cluster", "up", "--dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 2 and all(f"{bad}, line " in line for line in err), err
    assert not (tmp_path / "d").exists()
