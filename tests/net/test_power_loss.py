"""Power loss under real nodes (issue 24, deliverable 1): the shim, and the power-loss crash loop.

The power-loss shim (``smr/net/_powerloss_shim.c``, preloaded) records how to undo every write to a
file under a node's data directory since that file's last sync; a cut SIGKILLs the process and
applies the records, so each file is exactly as of its last sync.  First the shim itself: a random
program of writes, truncates, syncs, renames and unlinks ends, after a cut, with every file at its
content of its last sync; SQLite in this Python writes and syncs through the interposed calls, and a
commit made without a sync is gone after a cut while the synced ones stay.  Then whole clusters: 10
power cuts under load (every fifth of all three nodes at once) lose no acknowledged write and leave a
linearizable history, on both backends with the leader writing in parallel (the default); and the
same run with the sync turned off loses acknowledged writes -- so the check can fail.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smr.net._crashloop import ALL_NODES_EVERY, crashloop
from smr.net._powerloss import PowerLossError, revert_unsynced, shim_environment, shim_library

BACKENDS = ["raft", "multipaxos"]

#: Runs under the shim: a random program over files in DATA (and one outside it), printing each file's
#: content as of its last sync (what a cut must leave) before it SIGKILLs itself.
RANDOM_PROGRAM = r'''
import json, os, random, signal, sys
seed, steps, data, outside = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(seed)
names = ["a", "b", "d %x", "sub/e"]
os.makedirs(os.path.join(data, "sub"), exist_ok=True)
current, durable, fds = {}, {}, {}          # name -> bytes now / at its last sync; name -> [(fd, append)]
out = os.open(outside, os.O_RDWR | os.O_CREAT, 0o600)
out_bytes = b""

def where(name):
    return os.path.join(data, name)

def spliced(old, at, new):
    old = old + bytes(max(0, at - len(old)))
    return old[:at] + new + old[at + len(new):]

def close_all(name):
    for fd, _ in fds.pop(name, []):
        os.close(fd)

for _ in range(steps):
    name = rng.choice(names)
    handles = fds.get(name, [])
    op = rng.choice(["open"] * 3 + ["unlink", "rename", "truncate_path", "outside"]
                    + (["write", "pwrite", "writev", "seek", "ftruncate", "fsync", "fdatasync", "close", "dup"] * 3
                       if handles else []))
    if op == "open":
        flags = rng.choice([os.O_RDWR, os.O_WRONLY]) | os.O_CREAT
        flags |= os.O_APPEND if rng.random() < 0.3 else 0
        flags |= os.O_TRUNC if rng.random() < 0.1 else 0
        if not os.path.exists(where(name)):
            current[name] = durable[name] = b""  # creation is durable at once
        fd = os.open(where(name), flags, 0o600)
        if flags & os.O_TRUNC:
            current[name] = b""
        fds.setdefault(name, []).append((fd, bool(flags & os.O_APPEND)))
        continue
    if op == "unlink":
        if name in current:
            close_all(name)
            os.unlink(where(name))
            del current[name], durable[name]
        continue
    if op == "rename":
        target = rng.choice([n for n in names if n != name])
        if name in current:
            close_all(target)
            os.rename(where(name), where(target))
            current[target], durable[target] = current.pop(name), durable.pop(name)
            if name in fds:
                fds[target] = fds.pop(name)
        continue
    if op == "truncate_path":
        if name in current:
            size = rng.randrange(len(current[name]) + 300)
            os.truncate(where(name), size)
            current[name] = current[name][:size] + bytes(max(0, size - len(current[name])))
        continue
    if op == "outside":
        chunk = rng.randbytes(rng.randrange(1, 500))
        os.write(out, chunk)
        out_bytes += chunk
        continue
    fd, append = rng.choice(handles)
    if op in ("write", "writev"):
        chunks = [rng.randbytes(rng.randrange(1, 3000)) for _ in range(1 if op == "write" else 3)]
        at = len(current[name]) if append else os.lseek(fd, 0, os.SEEK_CUR)
        written = os.write(fd, chunks[0]) if op == "write" else os.writev(fd, chunks)
        assert written == sum(map(len, chunks))
        current[name] = spliced(current[name], at, b"".join(chunks))
    elif op == "pwrite":
        chunk = rng.randbytes(rng.randrange(1, 3000))
        at = rng.randrange(len(current[name]) + 200)
        os.pwrite(fd, chunk, at)
        current[name] = spliced(current[name], len(current[name]) if append else at, chunk)  # Linux appends
    elif op == "seek":
        os.lseek(fd, rng.randrange(len(current[name]) + 200), os.SEEK_SET)
    elif op == "ftruncate":
        size = rng.randrange(len(current[name]) + 300)
        os.ftruncate(fd, size)
        current[name] = current[name][:size] + bytes(max(0, size - len(current[name])))
    elif op in ("fsync", "fdatasync"):
        (os.fsync if op == "fsync" else os.fdatasync)(fd)
        durable[name] = current[name]
    elif op == "close":
        os.close(fd)
        handles.remove((fd, append))
    elif op == "dup":
        handles.append((os.dup(fd), append))
print(json.dumps({"durable": {n: b.hex() for n, b in durable.items()}, "outside": out_bytes.hex(),
                  "lost": sum(current[n] != durable[n] for n in current)}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
'''

#: Runs under the shim: SQLite commits rows 1-50 with a sync each, then 51-100 without (synchronous
#: OFF), prints the shim's counters and SIGKILLs itself.
SQLITE_PROGRAM = r'''
import ctypes, os, signal, sqlite3, sys
db = sqlite3.connect(os.path.join(sys.argv[1], "x.sqlite3"), isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
for i in range(1, 51):
    db.execute("INSERT INTO t VALUES (?, ?)", (i, "synced" * 50))
db.execute("PRAGMA synchronous=OFF")
for i in range(51, 101):
    db.execute("INSERT INTO t VALUES (?, ?)", (i, "unsynced" * 50))
buf = ctypes.create_string_buffer(4096)
assert ctypes.CDLL(None).smr_powerloss_stats(buf, len(buf)) > 0, "the shim is not enabled"
print(buf.value.decode(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
'''


def _run_under_shim(program: str, args: list[str], data: Path, undo: Path) -> str:
    """Run ``program`` in a Python process over the shim (tracking ``data``); its output once it has killed
    itself with SIGKILL."""
    done = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True,
                          env={**os.environ, **shim_environment(data, undo)}, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.stdout


@pytest.mark.parametrize("seed", range(1, 9))
def test_a_cut_returns_every_file_to_its_content_at_its_last_sync(tmp_path: Path, seed: int) -> None:
    data, undo = tmp_path / "data", tmp_path / "undo"
    data.mkdir()
    outside = tmp_path / "outside"
    expected = json.loads(_run_under_shim(RANDOM_PROGRAM, [str(seed), "300", str(data), str(outside)], data, undo))
    assert expected["lost"], "the program left something unsynced for the cut to take"
    revert_unsynced(data, undo)
    found = {str(p.relative_to(data)): p.read_bytes().hex() for p in data.rglob("*") if p.is_file()}
    assert found == expected["durable"], f"seed {seed}"
    assert outside.read_bytes().hex() == expected["outside"], "a file outside the data directory keeps every write"
    assert not list(undo.iterdir()), "the cut consumed every undo log"


def test_sqlite_syncs_through_the_shim_and_a_cut_loses_exactly_the_unsynced_commits(tmp_path: Path) -> None:
    data, undo = tmp_path / "data", tmp_path / "undo"
    data.mkdir()
    counters = dict(item.split("=") for item in _run_under_shim(SQLITE_PROGRAM, [str(data)], data, undo).split())
    # SQLite in this Python writes its pages with pwrite64 and syncs with fdatasync: both interposed
    assert int(counters["pwrite64"]) > 0 and int(counters["fdatasync"]) >= 50, counters
    assert counters["untrackable"] == "0", counters
    killed = tmp_path / "killed"  # the control: a process crash alone keeps every commit (the OS has them)
    killed.mkdir()
    for path in data.iterdir():
        (killed / path.name).write_bytes(path.read_bytes())

    def rows(directory: Path) -> list[int]:
        db = sqlite3.connect(directory / "x.sqlite3")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            return [k for (k,) in db.execute("SELECT k FROM t ORDER BY k")]
        finally:
            db.close()

    assert rows(killed) == list(range(1, 101))
    reverted = revert_unsynced(data, undo)
    assert reverted.undone.get("x.sqlite3-wal", 0) >= 50, reverted
    assert rows(data) == list(range(1, 51)), "every synced commit survives the cut, no unsynced one does"


def test_a_missing_compiler_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(PowerLossError, match="needs a C compiler: 'no-such-cc' was not found"):
        shim_library()


def test_undo_logs_inside_the_data_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PowerLossError, match="must lie outside the data directory"):
        shim_environment(tmp_path, tmp_path / "undo")


async def _power_loss_run(tmp_path: Path, backend: str, kills: int, *, fsync: bool = True) -> dict[str, Any]:
    """A power-loss crash loop on a real 3-node cluster (10 cuts take 20-40 s on a loaded 2-core machine)."""
    report = await crashloop(tmp_path / "cluster", backend, kills, 1.5, 3, seed=7, power_loss=True, fsync=fsync)
    print("\n".join(report["lines"]))  # pytest -s shows what each cut took back
    return report


@pytest.mark.parametrize("backend", BACKENDS)
async def test_power_cuts_lose_no_acknowledged_write(tmp_path: Path, backend: str) -> None:
    report = await _power_loss_run(tmp_path, backend, 10)
    kinds = [event["kind"] for event in report["kills"]]
    assert kinds.count("power cut of all nodes") == 10 // ALL_NODES_EVERY
    ledger = report["ledger"]
    assert ledger is not None and ledger["acknowledged"] > 0, report["lines"]
    assert report["lost"] == 0, report["lines"]
    assert report["verdict"] == "linearizable", report["lines"]


async def test_without_the_sync_power_cuts_lose_acknowledged_writes(tmp_path: Path) -> None:
    """The detector works: with fsync off (SQLite ``synchronous=OFF``) the cut of every node takes back
    writes the cluster acknowledged, and the run says so."""
    report = await _power_loss_run(tmp_path, "raft", ALL_NODES_EVERY, fsync=False)
    assert report["lost"] is None or report["lost"] > 0, report["lines"]
