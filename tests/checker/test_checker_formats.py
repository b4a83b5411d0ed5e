"""Readers for Jepsen/Knossos EDN histories and jepsen.util log lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from smr.checker import RegisterModel, Status, check, parse_edn_history, parse_jepsen_log, read_history
from smr.commands import Command
from smr.errors import ConfigError
from smr.history import Outcome, dump_history

EDN = """\
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :ok, :f :read, :value 1}
{:process :nemesis, :type :info, :f :start, :value nil}
{:process 2, :type :invoke, :f :cas, :value [1 2]}
{:process 2, :type :info, :f :cas, :value [1 2]}
{:process 3, :type :invoke, :f :write, :value 5}
{:process 3, :type :fail, :f :write, :value 5}
{:process 1, :type :invoke, :f :read, :value nil} ; a comment
{:process 1, :type :ok, :f :read, :value 2}
{:process 4, :type :invoke, :f :cas, :value [2 3]}
"""


def test_edn_history_pairs_invocations_with_completions_by_process() -> None:
    """ok/fail/info complete the process's open invocation; info and never-completed mean unknown."""
    ops = parse_edn_history(EDN, "sample.edn")
    assert [(op.process, op.command, op.outcome, op.result) for op in ops] == [
        ("0", Command("write", "", (1,)), Outcome.OK, None),
        ("1", Command("read"), Outcome.OK, 1),
        ("2", Command("cas", "", (1, 2)), Outcome.UNKNOWN, None),
        ("3", Command("write", "", (5,)), Outcome.FAIL, None),
        ("1", Command("read"), Outcome.OK, 2),
        ("4", Command("cas", "", (2, 3)), Outcome.UNKNOWN, None),
    ]
    assert ops[0].invoke < ops[1].invoke < ops[0].complete < ops[1].complete  # type: ignore[operator]
    # The read of 2 needs the unknown cas 1->2 to have taken effect, which it may have.
    assert check(ops, RegisterModel()).status is Status.LINEARIZABLE


def test_edn_vector_history_and_independent_keys() -> None:
    """A Knossos file may hold one vector of ops; [:k v] values put an op on key k."""
    text = """[{:process 0 :type :invoke :f :write :value [:x 3]}
 {:process 0 :type :ok :f :write :value [:x 3]}
 {:process 1 :type :invoke :f :read :value [:x nil]}
 {:process 1 :type :ok :f :read :value [:x 3]}
 {:process 2 :type :invoke :f :cas :value [:y [nil 4]]}
 {:process 2 :type :ok :f :cas :value [:y [nil 4]]}]"""
    ops = parse_edn_history(text)
    assert [op.command for op in ops] == [
        Command("write", "x", (3,)), Command("read", "x"), Command("cas", "y", (None, 4))]
    assert [op.result for op in ops] == [None, 3, True]
    assert check(ops, RegisterModel()).partitions == 2


def test_edn_malformed_line_names_file_and_line() -> None:
    """An unparseable or incomplete op map is reported with the line it is on."""
    bad = EDN.splitlines()
    bad[3] = "{:process 1, :type :ok, :f :read, :value [1 2}"
    with pytest.raises(ConfigError, match=r"sample\.edn, line 4") as info:
        parse_edn_history("\n".join(bad), "sample.edn")
    assert info.value.line == 4
    with pytest.raises(ConfigError, match=r"line 2.*:type"):
        parse_edn_history('{:process 0 :type :invoke :f :read}\n{:process 0 :f :read}', "x.edn")
    with pytest.raises(ConfigError, match=r"line 1.*never invoked"):
        parse_edn_history("{:process 0 :type :ok :f :read :value 1}", "x.edn")
    with pytest.raises(ConfigError, match=r"line 2.*completes :write"):
        parse_edn_history("{:process 0 :type :invoke :f :read}\n{:process 0 :type :ok :f :write}")


LOG = """\
2017-03-01 12:00:00,001 INFO  jepsen.core - Running test
INFO  jepsen.util - 3\t:invoke\t:write\t4
INFO  jepsen.util - 1\t:invoke\t:read\tnil
INFO  jepsen.util - 3\t:ok\t:write\t4
INFO  jepsen.util - 1\t:fail\t:read\t:timed-out
INFO  jepsen.util - 2\t:invoke\t:cas\t[4 0]
INFO  jepsen.util - :nemesis\t:info\t:start\tnil
INFO  jepsen.util - 2\t:ok\t:cas\t[4 0]
INFO  jepsen.util - 0\t:invoke\t:write\t1
INFO  jepsen.util - 0\t:info\t:write\t:timed-out
INFO  jepsen.util - 4\t:invoke\t:cas\t[9 9]
INFO  jepsen.util - 4\t:fail\t:cas\t[9 9]
INFO  jepsen.util - 1\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:ok\t:read\t1
"""


def test_jepsen_log_lines_become_operations() -> None:
    """:fail :read :timed-out and :info are unknown; other :fail ops definitely did not happen."""
    ops = parse_jepsen_log(LOG, "etcd.log")
    assert [(op.process, op.command, op.outcome, op.result) for op in ops] == [
        ("3", Command("write", "", (4,)), Outcome.OK, None),
        ("1", Command("read"), Outcome.UNKNOWN, None),
        ("2", Command("cas", "", (4, 0)), Outcome.OK, True),
        ("0", Command("write", "", (1,)), Outcome.UNKNOWN, None),
        ("4", Command("cas", "", (9, 9)), Outcome.FAIL, None),
        ("1", Command("read"), Outcome.OK, 1),
    ]
    # The final read of 1 is explained by the timed-out write of 1 taking effect after the cas.
    assert check(ops, RegisterModel()).status is Status.LINEARIZABLE


def test_jepsen_log_malformed_line_names_the_line() -> None:
    """A jepsen.util event with an impossible type is an error naming file and line."""
    lines = LOG.splitlines()
    lines[5] = "INFO  jepsen.util - 2\t:frobnicate\t:cas\t[4 0]"
    with pytest.raises(ConfigError, match=r"etcd\.log, line 6: .*:frobnicate"):
        parse_jepsen_log("\n".join(lines), "etcd.log")
    lines[5] = "INFO  jepsen.util - 2\t:invoke\t:cas\t[4 0"
    with pytest.raises(ConfigError, match=r"etcd\.log, line 6"):
        parse_jepsen_log("\n".join(lines), "etcd.log")


def test_read_history_infers_the_format_from_the_file_name(tmp_path: Path) -> None:
    """.edn and .log files are read as EDN and jepsen logs; anything else as native JSON lines."""
    (tmp_path / "h.edn").write_text(EDN)
    (tmp_path / "h.log").write_text(LOG)
    assert len(read_history(tmp_path / "h.edn")) == 6
    assert len(read_history(tmp_path / "h.log")) == 6
    native = tmp_path / "h.jsonl"
    with native.open("w") as f:
        dump_history(read_history(tmp_path / "h.log"), f)
    assert read_history(native) == read_history(tmp_path / "h.log")
    with pytest.raises(ConfigError, match="unknown history format"):
        read_history(native, "yaml")
