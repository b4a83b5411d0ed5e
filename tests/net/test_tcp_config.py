"""The cluster file: a wrong one is a clear error naming file, line and field; the commands parse."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from smr.cli import build_parser as smr_parser
from smr.errors import ConfigError, LocalProtocolError
from smr.net import ClusterConfig, LocalTcpCluster, dump_cluster, load_cluster, parse_cluster
from smr.net.cli import build_parser, main, register, register_bench

GOOD = """\
backend: raft
backend_options: {pre_vote: true}
state_machine: kv
tick_ms: 10
secret: "0123456789abcdef-cluster"
nodes:
  - {id: n1, host: 127.0.0.1, port: 7001}
  - {id: n2, host: 127.0.0.1, port: 7002}
  - {id: n3, host: 127.0.0.1, port: 7003}
"""


def test_a_good_cluster_file_parses_and_round_trips() -> None:
    config = parse_cluster(GOOD, "c.yaml")
    assert config.node_ids == ("n1", "n2", "n3")
    assert config.address("n2").port == 7002
    assert config.backend_options == {"pre_vote": True}
    assert config.secret_bytes() == b"0123456789abcdef-cluster"
    again = parse_cluster(dump_cluster(config), "c.yaml")
    assert again == config


@pytest.mark.parametrize(("old", "new", "line", "field", "words"), [
    ("tick_ms: 10", "tick_ms: fast", 4, "tick_ms", "expected a float, got 'fast'"),
    ("tick_ms: 10", "tick_ms: 0", 4, "tick_ms", "positive"),
    ("port: 7002}", "port: 70000}", 8, "nodes[1].port", "1..65535"),
    ("port: 7003}", "port: 7002}", 9, "nodes[2].port", "also used by nodes[1]"),
    ("id: n3,", "id: n1,", 9, "nodes[2].id", "duplicate node id"),
    ("port: 7001}", "prot: 7001}", 7, "nodes[0]", ""),
    ("backend: raft", "backend: rafft", 1, "backend", "unknown backend 'rafft'"),
    ("{pre_vote: true}", "{pre_vot: true}", 2, "backend_options", "unknown raft option"),
    ("state_machine: kv", "state_machine: kvv", 3, "state_machine", "app 'kvv': give a built-in"),
    ('secret: "0123456789abcdef-cluster"', "secret: short", 5, "secret", "at least 16"),
    ("tick_ms: 10", "tick_ms: 10\ncolour: blue", 5, "colour", "extra"),
])
def test_a_wrong_cluster_file_names_file_line_and_field(old: str, new: str, line: int, field: str,
                                                        words: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        parse_cluster(GOOD.replace(old, new), "bad.yaml")
    err = info.value
    assert (err.file, err.line) == ("bad.yaml", line), str(err)
    assert err.field is not None and err.field.startswith(field), str(err)
    assert words.lower() in str(err).lower()
    assert (str(err).startswith(f"bad.yaml, line {line}, field '{err.field}'")  # one problem
            or f"\n  bad.yaml:{line}: {err.field}: " in str(err))  # the first of several, one a line


def test_broken_yaml_and_non_mappings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"c.yaml, line 2: not valid YAML"):
        parse_cluster("nodes: [\n  {id: n1,,\n", "c.yaml")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse_cluster("- 1\n- 2\n", "c.yaml")
    with pytest.raises(ConfigError, match="missing"):
        parse_cluster("backend: raft\n", "c.yaml")


def test_the_secret_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.replace('secret: "0123456789abcdef-cluster"', "secret_env: MY_SECRET")
    config = parse_cluster(text, "c.yaml")
    monkeypatch.delenv("MY_SECRET", raising=False)
    with pytest.raises(ConfigError, match="c.yaml, field 'secret_env': no secret.*MY_SECRET"):
        config.secret_bytes()
    monkeypatch.setenv("MY_SECRET", "tiny")
    with pytest.raises(ConfigError, match="at least 16"):
        config.secret_bytes()
    monkeypatch.setenv("MY_SECRET", "a-long-enough-secret")
    assert config.secret_bytes() == b"a-long-enough-secret"
    both = GOOD.replace('secret: "0123456789abcdef-cluster"',
                        'secret: "0123456789abcdef-cluster"\nsecret_env: X')
    with pytest.raises(ConfigError, match="field 'secret_env': give either"):
        parse_cluster(both, "c.yaml")


def test_an_unknown_node_is_named() -> None:
    config = parse_cluster(GOOD, "c.yaml")
    with pytest.raises(ConfigError, match="node 'n9' is not in the cluster"):
        config.address("n9")


def test_smr_serve_with_a_wrong_cluster_file_exits_2_naming_it(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text(GOOD.replace("port: 7002}", "port: many}"))
    code = main(["serve", "--cluster", str(bad), "--node", "n1", "--data", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}, line 8, field 'nodes[1].port'" in err
    assert not (tmp_path / "d").exists()  # nothing was created for a config that does not load
    code = main(["kv", "get", "x", "--cluster", str(tmp_path / "missing.yaml")])
    assert code == 2
    assert "cannot read cluster file" in capsys.readouterr().err


def test_load_cluster_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    config = load_cluster(path)
    assert isinstance(config, ClusterConfig) and config.source == str(path)


def test_the_commands_parse() -> None:
    parser = argparse.ArgumentParser(prog="smr")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    bench = sub.add_parser("bench").add_subparsers(dest="bench", required=True)
    register_bench(bench)
    args = parser.parse_args(["serve", "--cluster", "c.yaml", "--node", "n2", "--data", "/d"])
    assert (args.cluster, args.node, args.data, args.func.__name__) == ("c.yaml", "n2", "/d", "cmd_serve")
    args = parser.parse_args(["kv", "cas", "x", "1", "2", "--cluster", "c.yaml"])
    assert (args.kv_op, args.key, args.values, args.func.__name__) == ("cas", "x", ["1", "2"], "cmd_kv")
    args = parser.parse_args(["kv", "put", "x", "v", "--cluster", "c.yaml", "--timeout", "0.5"])
    assert (args.value, args.timeout) == ("v", 0.5)
    args = parser.parse_args(["status", "--cluster", "c.yaml", "--json"])
    assert args.json and args.func.__name__ == "cmd_status"
    args = parser.parse_args(["cluster", "up", "--nodes", "5", "--backend", "multipaxos", "--dir", "x"])
    assert (args.nodes, args.backend, args.dir, args.func.__name__) == (5, "multipaxos", "x", "cmd_cluster_up")
    args = parser.parse_args(["crashloop", "--backend", "raft", "--kills", "7"])
    assert (args.kills, args.func.__name__) == (7, "cmd_crashloop")
    args = parser.parse_args(["bench", "tcp", "--backends", "raft", "--loads", "1,64", "--modes", "embedded"])
    assert (args.backends, args.loads, args.modes, args.func.__name__) == ("raft", "1,64", "embedded",
                                                                          "cmd_bench_tcp")
    args = parser.parse_args(["bench", "storage", "--batches", "1,50"])
    assert (args.batches, args.func.__name__) == ("1,50", "cmd_bench_storage")
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--cluster", "c.yaml"])  # --node is required
    assert build_parser().parse_args(["status", "--cluster", "c"]).cluster == "c"


def test_cas_arguments_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    assert main(["kv", "cas", "x", "1", "--cluster", str(path)]) == 2
    assert "cas takes KEY EXPECTED NEW" in capsys.readouterr().err


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_the_commands_fit_into_the_smr_parser() -> None:
    """No name clashes with the rest of `smr`, whether or not smr/cli.py wires them in yet."""
    parser = smr_parser()
    sub = _subparsers(parser)
    bench = _subparsers(sub.choices["bench"])
    if "serve" not in sub.choices:  # not wired into smr/cli.py (yet): add them as it will
        register(sub)
        register_bench(bench)
    assert {"serve", "kv", "status", "cluster", "crashloop"} <= set(sub.choices)
    assert {"tcp", "storage"} <= set(bench.choices)
    assert parser.parse_args(["kv", "get", "x", "--cluster", "c"]).func.__name__ == "cmd_kv"
    assert parser.parse_args(["bench", "tcp"]).func.__name__ == "cmd_bench_tcp"


def test_a_cluster_directory_is_reused_only_for_the_same_cluster(tmp_path: Path) -> None:
    first = LocalTcpCluster(tmp_path, nodes=3, backend="multipaxos")
    again = LocalTcpCluster(tmp_path, nodes=3, backend="multipaxos")
    assert again.config == first.config  # same ports, same secret: the data directories still fit
    assert oct((tmp_path / "cluster.yaml").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(LocalProtocolError, match="already holds a 3-node multipaxos cluster, not a 5-node raft"):
        LocalTcpCluster(tmp_path, nodes=5, backend="raft")


def test_a_batch_bound_beyond_the_frame_limit_is_refused_with_its_field() -> None:
    """A replication bound that cannot fit in one frame would wedge a follower: refused at load."""
    text = ("max_frame_bytes: 65536\nbackend_options: {max_batch_bytes: 1048576}\nsecret: 0123456789abcdef0123\n"
            "nodes:\n  - {id: n1, host: 127.0.0.1, port: 7001}\n")
    with pytest.raises(ConfigError) as err:
        parse_cluster(text, "big.yaml")
    assert err.value.line == 2 and "backend_options.max_batch_bytes" in str(err.value)
    assert "would not fit in a frame" in str(err.value)
