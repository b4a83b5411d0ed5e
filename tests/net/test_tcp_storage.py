"""Durable storage: every value a backend writes round-trips, batches are atomic, and synced batches
survive SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smr import commands as c
from smr import wire
from smr.errors import ConfigError, LocalProtocolError
from smr.net import CorruptValue, Storage, open_storage
from smr.net._values import dumps, from_storable, loads
from smr.replica import ClientRequest, ReplyStatus, Write, backend_names, get_backend
from smr.testing import Network

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False))
messages = st.builds(ClientRequest, st.text(max_size=5), st.integers(0, 99),
                     st.builds(c.Command, st.sampled_from(["put", "get", "cas"]), st.text(max_size=4),
                               st.tuples(st.one_of(st.none(), st.text(max_size=4)))))
values = st.recursive(
    st.one_of(scalars, st.binary(max_size=8), messages),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(values)
def test_every_storable_value_round_trips_with_its_types(value: Any) -> None:
    decoded = loads(dumps(value))
    assert decoded == value
    assert repr(decoded) == repr(value)  # tuples stay tuples, bytes stay bytes, messages stay messages


def test_strings_any_client_can_send_are_storable() -> None:
    request = wire.decode(wire.encode(ClientRequest("c", 1, c.put("k\u00e9", "\u00e9\U0001f600"))))
    assert loads(dumps(request)) == request  # non-ASCII text survives the wire and the disk
    with pytest.raises(TypeError, match="lone surrogate"):  # not text: refused where it is made
        c.put("k", "\udfff")


def test_dicts_that_look_like_tags_are_escaped() -> None:
    tricky = {"$tuple": [1, 2]}, {"$msg": "x", "other": 1}, {"$bytes": 5}
    for value in tricky:
        assert loads(dumps(value)) == value


@pytest.mark.parametrize("blob", [b"not json", b'{"$tuple": 3}', b'{"$bytes": "!!"}',
                                  b'{"$msg": {"t": "smr.Nope", "b": {}}}', b'{"$msg": 1, "x": 2}',
                                  b"\x00", b"\x00\x92\xa4Nope\x90", b"\x00garbage", b"\x00" + b"\x91" * 5000])
def test_undecodable_stored_values_are_corrupt(blob: bytes) -> None:
    with pytest.raises(CorruptValue):
        loads(blob)


def test_log_entries_are_stored_as_their_wire_bytes() -> None:
    entry = ClientRequest("c", 7, c.put("k", "v"))
    assert dumps(entry) == b"\x00" + wire.encode(entry)  # the fast path: no JSON for a message
    assert dumps((entry,))[:1] == b"{"  # a message inside other data stays tagged JSON


def test_values_without_a_storage_form_are_refused() -> None:
    for bad in (object(), float("nan"), {3.5}, {"k": {1, 2}}):
        with pytest.raises(LocalProtocolError):
            dumps(bad)
    assert from_storable([1, "a", None]) == [1, "a", None]
    assert loads(dumps({1: "x", ("a", 2): b"y"})) == {1: "x", ("a", 2): b"y"}  # any plain keys round-trip


def _run(net: Network, command: c.Command, seq: int) -> Any:
    """Submit (client "c", seq) to each node in turn, ticking between rounds, until one answers OK."""
    for _ in range(300):
        for node in net.ids:
            net.request(node, command, client="c", seq=seq)
            net.stabilize()
            done = [r for r in net.replies_to("c", seq) if r.status == ReplyStatus.OK]
            if done:
                return done[0].result
        net.tick_all(1)
    raise AssertionError(f"no replica applied {command}")


#: The project's own backends (test-only ones, like the simulator's probe, write other things).
BUILT_IN = [n for n in backend_names(replicated_log_only=True)
            if get_backend(n).factory.__module__.split(".")[0] in {"smr", "raft", "multipaxos", "synod"}]


def test_the_built_in_backends_are_all_here() -> None:
    assert {"coordinator", "raft", "raft-pv-cq", "multipaxos"} <= set(BUILT_IN)


@pytest.mark.parametrize("backend", BUILT_IN)
def test_every_backends_durable_state_survives_storage_and_restart(backend: str, tmp_path: Path) -> None:
    """What each backend writes, stored and loaded back, restarts every replica with nothing lost."""
    spec = get_backend(backend)
    options = {**spec.options, **({"snapshot_every": 4} if backend != "coordinator" else {})}
    net = Network(spec.factory, 3, options=options, seed=7)
    for seq in range(1, 11):
        _run(net, c.put(f"k{seq % 3}", f"v{seq}"), seq)
    if backend != "coordinator":  # compaction ran, so snapshot records are among the stored values
        assert all(any(k.endswith("snapshot") for k in net.durable[n]) for n in net.ids)
    for node in net.ids:
        with Storage(tmp_path / node, node) as storage:
            storage.commit([Write(k, v) for k, v in net.durable[node].items()])
        storage, recovered = open_storage(tmp_path / node, node)
        storage.close()
        assert recovered == net.durable[node]
        assert repr(sorted(recovered.items())) == repr(sorted(net.durable[node].items()))
        net.crash(node)
        net.durable[node] = recovered
    net.in_flight.clear()
    for node in net.ids:
        net.start(node)
    assert [_run(net, c.get(f"k{i}"), 11 + i) for i in range(3)] == ["v9", "v10", "v8"]


def test_commit_applies_writes_in_order_and_deletes(tmp_path: Path) -> None:
    with Storage(tmp_path, "n1") as storage:
        storage.commit([Write("a", 1), Write("b", (2, b"x")), Write("a", 3), Write("c", None)])
        storage.commit([Write("b", None), Write("d", {"e": [1]})])
        assert storage.stats.commits == 2 and storage.stats.writes == 6 and storage.stats.max_batch == 4
        assert storage.load() == {"a": 3, "d": {"e": [1]}}


def test_a_value_that_cannot_be_stored_loses_nothing(tmp_path: Path) -> None:
    with Storage(tmp_path, "n1") as storage:
        storage.commit([Write("a", 1)])
        with pytest.raises(LocalProtocolError):
            storage.commit([Write("a", 2), Write("b", object())])
        assert storage.load() == {"a": 1}
        assert storage.stats.commits == 1


def test_a_data_directory_serves_one_process_and_one_node(tmp_path: Path) -> None:
    with Storage(tmp_path, "n1"):
        with pytest.raises(ConfigError, match="locked by another running process"):
            Storage(tmp_path, "n1")
    with pytest.raises(ConfigError, match="belongs to node 'n1', not 'n2'"):
        Storage(tmp_path, "n2")
    with Storage(tmp_path, "n1") as storage:  # the lock was released by close()
        assert storage.load() == {}
        storage.claim("backend", "raft")
        storage.claim("backend", "raft")
        with pytest.raises(ConfigError, match="belongs to backend 'raft', not 'multipaxos'"):
            storage.claim("backend", "multipaxos")


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_nodes_data_is_private_to_its_user(tmp_path: Path) -> None:
    """Directories a node makes are 0700 and every file in them 0600, SQLite's WAL and shared-memory
    files included; a database an older version left world-readable is narrowed on open."""
    data = tmp_path / "cluster" / "n1"
    with Storage(data, "n1") as storage:
        storage.commit([Write("a", 1)])
        assert _mode(tmp_path / "cluster") == _mode(data) == 0o700
        files = sorted(p.name for p in data.iterdir())
        assert {"LOCK", "replica.sqlite3", "replica.sqlite3-wal", "replica.sqlite3-shm"} <= set(files)
        assert {name: _mode(data / name) for name in files} == dict.fromkeys(files, 0o600)
    os.chmod(data / "replica.sqlite3", 0o644)
    with Storage(data, "n1") as storage:
        assert storage.load() == {"a": 1}
    assert _mode(data / "replica.sqlite3") == 0o600


_WRITER = textwrap.dedent("""
    import sys
    from smr.net import Storage
    from smr.replica import Write
    storage = Storage(sys.argv[1], "n1")
    for i in range(100000):
        storage.commit([Write(f"batch/{i}/a", i), Write(f"batch/{i}/b", "x" * 200), Write("last", i)])
        print(i, flush=True)  # acknowledged only after the sync returned
""")


def test_acknowledged_batches_survive_sigkill_whole(tmp_path: Path) -> None:
    """SIGKILL mid-stream: every acknowledged batch is on disk, and no batch is half there."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    acked = -1
    for line in proc.stdout:
        acked = int(line)
        if acked >= 40:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    storage, durable = open_storage(tmp_path, "n1")
    storage.close()
    last = durable["last"]
    assert last >= acked
    for i in range(last + 1):
        assert durable[f"batch/{i}/a"] == i and durable[f"batch/{i}/b"] == "x" * 200
    assert not any(k.startswith(f"batch/{last + 1}/") for k in durable)


def test_a_stored_value_whose_bytes_changed_is_refused_naming_every_damaged_key(tmp_path: Path) -> None:
    """Each value carries a CRC over key and value: a changed value, or a value moved to another key,
    stops the node with one error naming the file and every damaged key."""
    with Storage(tmp_path, "n1") as storage:
        storage.commit([Write("a", "first"), Write("b", "second"), Write("c", "third")])
    db = sqlite3.connect(tmp_path / "replica.sqlite3")
    with db:
        stored = dict(db.execute("SELECT key, value FROM durable"))
        db.execute("UPDATE durable SET value = ? WHERE key = 'a'", (stored["a"][:-1] + b"X",))
        db.execute("UPDATE durable SET value = ? WHERE key = 'c'", (stored["b"],))  # b's bytes under c
    db.close()
    with pytest.raises(CorruptValue) as refused:
        open_storage(tmp_path, "n1")
    message = str(refused.value)
    assert "replica.sqlite3" in message and "2 damaged value(s)" in message
    assert "key 'a': checksum mismatch" in message and "key 'c': checksum mismatch" in message
    assert "key 'b'" not in message
    db = sqlite3.connect(tmp_path / "replica.sqlite3")
    with db:  # a flipped bit in a record header can turn a blob into an integer
        db.execute("UPDATE durable SET value = 7 WHERE key = 'b'")
    db.close()
    with pytest.raises(CorruptValue, match="key 'b': stored as str -> int, not text -> blob"):
        open_storage(tmp_path, "n1")


def test_a_database_from_before_checksums_is_given_them_once_and_reads_the_same(tmp_path: Path) -> None:
    with Storage(tmp_path, "n1") as storage:
        storage.commit([Write("a", 1), Write("b", {"x": [1, 2]})])
    db = sqlite3.connect(tmp_path / "replica.sqlite3")
    with db:  # what an older version left: raw values, no format marker
        for key, blob in list(db.execute("SELECT key, value FROM durable")):
            db.execute("UPDATE durable SET value = ? WHERE key = ?", (blob[4:], key))
        db.execute("DELETE FROM meta WHERE key = 'format'")
    db.close()
    storage, durable = open_storage(tmp_path, "n1")
    storage.close()
    assert durable == {"a": 1, "b": {"x": [1, 2]}}
    db = sqlite3.connect(tmp_path / "replica.sqlite3")
    with db:
        db.execute("UPDATE meta SET value = 'crc64-9' WHERE key = 'format'")
    db.close()
    with pytest.raises(ConfigError, match="stores values as 'crc64-9'"):
        Storage(tmp_path, "n1")


@pytest.mark.parametrize("damage", ["truncated", "garbage page"])
def test_a_damaged_database_file_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    with Storage(tmp_path, "n1") as storage:
        storage.commit([Write(f"k{i}", "v" * 200) for i in range(200)])
    path = tmp_path / "replica.sqlite3"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 3]
    else:
        data[4096:8192] = os.urandom(4096)
    path.write_bytes(bytes(data))
    with pytest.raises((CorruptValue, ConfigError)) as refused:
        open_storage(tmp_path, "n1")
    assert "replica.sqlite3" in str(refused.value)
    assert not isinstance(refused.value, sqlite3.DatabaseError)


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_fifty_single_bit_flips_in_a_stopped_nodes_files_never_load_damaged(backend: str, tmp_path: Path) -> None:
    """Issue 23: every flip is refused or leaves the durable map exactly as it was (`smr bitflip` runs
    1,000)."""
    from smr.net._bitflip import SERVED, bitflip

    report = bitflip(tmp_path, backend, trials=50, seed=1, puts=150)
    assert report["outcomes"][SERVED] == 0, report["served"]
    assert report["outcomes"]["refused"] >= 20  # most bits are in data, not slack
    assert "a traceback (no clear message)" not in report["refused_by"], report["refused_by"]


def test_a_write_ahead_log_cut_by_synced_transactions_is_refused(tmp_path: Path) -> None:
    """The probe's case: a node SIGKILLed, then the tail of its WAL cut off at a frame boundary (SQLite
    takes that as transactions that never happened). The count of acknowledged batches kept outside
    the database says otherwise, and the node refuses to start; an intact copy starts."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 60:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    wal = tmp_path / "replica.sqlite3-wal"
    frame = 24 + 4096  # frame header + one page
    size = wal.stat().st_size
    frames = (size - 32) // frame
    assert frames > 40, "the WAL should hold the recent batches"
    intact = tmp_path.parent / "intact"
    subprocess.run(["cp", "-a", str(tmp_path), str(intact)], check=True)
    with open(wal, "r+b") as f:
        f.truncate(32 + (frames - 30) * frame)  # thirty frames: several synced batches
    with pytest.raises(CorruptValue, match=r"the last \d+ are missing \(a cut write-ahead log\?\)"):
        open_storage(tmp_path, "n1")
    storage, durable = open_storage(intact, "n1")
    storage.close()
    assert durable["last"] >= 60


def _emptied_directory(path: Path) -> None:
    """A directory whose database was deleted after 5 acknowledged batches, its COMMITS file left."""
    with Storage(path, "n1") as storage:
        for i in range(5):
            storage.commit([Write(f"k{i}", i)])
    for name in os.listdir(path):
        if name.startswith("replica.sqlite3"):
            os.remove(path / name)


def test_an_emptied_directory_is_remembered_as_emptied_after_its_watermark_is_reset(tmp_path: Path) -> None:
    """With --rejoin-empty the lost database counts as emptied, and stays known as emptied at every later
    start (so the node never takes it for a new cluster's); without the flag it is refused; a write
    ahead log cut after the rejoin is still refused."""
    _emptied_directory(tmp_path)
    with pytest.raises(CorruptValue, match="the database is gone"):
        Storage(tmp_path, "n1")  # (it leaves an empty database behind: still counted as gone below)
    with Storage(tmp_path, "n1", emptied_ok=True) as storage:
        assert storage.emptied == 5 and storage.load() == {}
        storage.commit([Write("new", 1)])
    for emptied_ok in (True, False):
        with Storage(tmp_path, "n1", emptied_ok=emptied_ok) as storage:
            assert storage.emptied == 5 and storage.load() == {"new": 1}


def test_a_node_killed_between_recording_emptied_and_resetting_the_watermark_starts_the_same(
        tmp_path: Path) -> None:
    """The record is synced before the watermark goes: a start that finds the record, nothing else, and the
    old watermark (killed in between) takes the directory as emptied again; one killed after the reset but
    before it was noted notes it.  A database that took a commit, or joined, is never taken for emptied:
    with the old watermark beside it, it was cut."""
    _emptied_directory(tmp_path)
    watermark = (tmp_path / "COMMITS").read_bytes()
    with Storage(tmp_path, "n1", emptied_ok=True) as storage:
        storage.set_meta({"emptied": "5"})  # as it was before the reset was noted
    (tmp_path / "COMMITS").write_bytes(watermark)  # and the old watermark: the kill before the reset
    with Storage(tmp_path, "n1", emptied_ok=True) as storage:
        assert storage.emptied == 5 and storage.meta()["emptied"] == "5 reset"
    with Storage(tmp_path, "n1", emptied_ok=True) as storage:
        storage.set_meta({"emptied": "5"})  # reset, not noted
    with Storage(tmp_path, "n1") as storage:
        assert storage.emptied == 5 and storage.meta()["emptied"] == "5 reset"
        storage.commit([Write("new", 1)])
    (tmp_path / "COMMITS").write_bytes(watermark)  # now a real cut: refused, record or not
    with pytest.raises(CorruptValue, match="a cut write-ahead log"):
        Storage(tmp_path, "n1", emptied_ok=True)


def test_a_database_rolled_back_to_its_join_is_a_cut_not_an_emptied_directory(tmp_path: Path) -> None:
    """A database that lost every commit but kept the rows of its join (a cut write-ahead log) holds no
    value and no commit -- but it joined: with the watermark saying 5 it is refused, flag or not, never
    served as a joined voter with an empty log."""
    _emptied_directory(tmp_path)
    watermark = (tmp_path / "COMMITS").read_bytes()
    (tmp_path / "COMMITS").unlink()
    with Storage(tmp_path, "n1") as storage:
        storage.set_meta({"incarnation": "abc", "joined": "1"})
    (tmp_path / "COMMITS").write_bytes(watermark)
    for emptied_ok in (False, True):
        with pytest.raises(CorruptValue, match="a cut write-ahead log"):
            Storage(tmp_path, "n1", emptied_ok=emptied_ok)


def test_a_database_is_never_set_aside_under_a_running_node(tmp_path: Path) -> None:
    """set_aside takes the directory's lock: a database another process (here: an open Storage) serves is
    refused, not moved; once free, every file moves, the write-ahead log before the database."""
    from smr.net._storage import set_aside

    with Storage(tmp_path, "n1") as storage:
        storage.commit([Write("k", 1)])
        with pytest.raises(ConfigError, match="locked"):
            set_aside(tmp_path, "test")
        assert (tmp_path / "replica.sqlite3").exists()
    aside = set_aside(tmp_path, "test")
    assert not list(tmp_path.glob("replica.sqlite3*")) and (aside / "replica.sqlite3").exists()
    assert (aside / "REASON").read_text() == "test\n"
