"""A replica's durable map on disk: one SQLite database in WAL mode, one sync per batch.

**Choice: SQLite (standard library) in WAL mode with ``synchronous=FULL``.**
A ``COMMIT`` appends the transaction's pages to the write-ahead log and
syncs it before returning, so a committed batch survives a process crash
*and* a power loss; WAL frames carry checksums, so a torn tail is discarded
on recovery and a half-written batch never appears.

Measured with ``smr bench storage`` on the development VM (ext4 on a virtio
disk, 2 CPUs shared with other jobs; ranges over three runs), Raft-like
entries of ~250 bytes:

=============================  ==========  ==========  ===============
what                           ms/commit   commits/s   writes/s
=============================  ==========  ==========  ===============
bare append + ``fdatasync``    4.3 - 4.5   223 - 232   223 - 232
SQLite FULL, batch 1           3.8 - 5.3   188 - 263   188 - 263
SQLite FULL, batch 10          4.1 - 8.5   118 - 247   1,180 - 2,470
SQLite FULL, batch 100         7.0 - 7.6   131 - 142   13,100 - 14,200
SQLite OFF (no sync), batch 1  0.05        19,000      19,000
=============================  ==========  ==========  ===============

The device flush *is* the cost: a hand-made checksummed log pays the same
4.3-4.6 ms per ``fdatasync`` (appending, or overwriting a preallocated file,
measured alike), and SQLite is no slower at the batch sizes a node sees
(it reuses its WAL file, so no file-size metadata is journaled) -- while
giving atomic multi-key batches, deletes and compaction for free (Raft
truncates and compacts its log by deleting keys) and a recovery that is one
``SELECT``.  Group commit is where throughput comes from: one sync covers a
whole batch, ~250 writes/s at batch 1 against ~14,000 at batch 100.

``synchronous=NORMAL`` was rejected: in WAL mode it does not sync at commit
at all (only at checkpoints), so an acknowledged vote or entry could vanish
on power loss; making it safe needs an explicit checkpoint per batch, which
syncs the WAL *and* the database file -- two syncs where FULL needs one.
``fsync=False`` (``synchronous=OFF``) exists for benchmarks only: commits
still reach the OS, so they survive a process crash but not a power loss.

Durable state is just the keys the backends wrote (snapshot and log
included), so recovery is one ``SELECT``: :meth:`Storage.load` returns the
map that goes into :class:`smr.replica.Start`.  A lock file stops two
processes from sharing a data directory, and the directory remembers which
node it belongs to.

**Nothing damaged is served.**  Every value is stored behind a CRC-32 of its
key and bytes, checked on load; ``PRAGMA quick_check`` runs at open; any
damage stops the node with one error naming the file and every bad key
(``smr bitflip`` flips random bits in a stopped node's files: before
checksums 70 of 200 flips loaded changed state, now none does).  A database
from before checksums gets them once, in one transaction, at its first open.
What a node writes is private (directories 0700, files 0600).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from smr.errors import ConfigError
from smr.replica import Write

from ._values import CorruptValue, dumps, loads

DB_NAME = "replica.sqlite3"
LOCK_NAME = "LOCK"
#: Outside the database, how many batches it acknowledged (see :class:`Storage`): a database that comes
#: back with fewer lost synced transactions (a cut write-ahead log), and the node must not serve.
WATERMARK_NAME = "COMMITS"
#: SQLite's ``PRAGMA synchronous`` values by name.
SYNC_MODES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
#: Where a node started with --rejoin-empty moves a database it finds damaged (:func:`set_aside`).
DAMAGED_PREFIX = "damaged-"
COMMITS_KEY = "commits"
#: The ``meta`` row recording that this directory was found emptied (the batches its watermark said were
#: acknowledged), written before the watermark is reset, so that a restart still knows it.
EMPTIED_KEY = "emptied"
#: The ``meta`` row naming how values are stored; absent in databases from before checksums.
FORMAT_KEY, FORMAT = "format", "crc32-1"
#: What SQLite says when the disk, not the file, is the problem (anything else reading it is damage).
DISK_CONDITIONS = ("disk I/O error", "database or disk is full", "database is locked", "unable to open",
                   "readonly database", "out of memory")
#: Corrupt keys named in one error (the count says how many more).
MAX_NAMED = 20

#: Modes of what a node writes: its data is nobody else's to read (SQLite gives its -wal and -shm
#: files the database file's mode).
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


class DiskUnavailable(ConfigError):
    """The disk, not the data, stops the database from opening (full, failing, read-only, locked)."""


def private_dir(path: str | Path) -> Path:
    """Create ``path`` and any missing parents with mode 0700 (existing directories are left alone)."""
    path = Path(path)
    missing = []
    for parent in (path, *path.parents):
        if parent.exists():
            break
        missing.append(parent)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass  # made meanwhile by someone else
    return path


def private_file(path: str | Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """Open ``path`` (created with mode 0600; an existing file of ours is narrowed to it); return the fd."""
    fd = os.open(path, flags, PRIVATE_FILE)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, PRIVATE_FILE)
    return fd


def lock_directory(path: Path) -> int:
    """Take ``path``'s ``LOCK`` file for this process (released when the returned fd closes); ConfigError
    if the directory cannot be used or another running process holds it."""
    try:
        fd = private_file(path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise ConfigError(f"cannot use data directory: {exc.strerror}", file=str(path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError("data directory is locked by another running process", file=str(path)) from None
    return fd


@attrs.define
class StorageStats:
    """What the storage has done since it was opened."""

    commits: int = 0
    writes: int = 0
    max_batch: int = 0
    sync_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The counters as JSON data."""
        return {"commits": self.commits, "writes": self.writes, "max_batch": self.max_batch,
                "sync_seconds": round(self.sync_seconds, 6)}


class Storage:
    """The durable map of one node in ``data_dir``; ``commit`` makes a batch durable with one sync."""

    def __init__(self, data_dir: str | Path, node: str, *, fsync: bool = True, emptied_ok: bool = False) -> None:
        self.path = Path(data_dir)
        self.node = node
        self.fsync = fsync
        self.stats = StorageStats()
        #: Batches a leftover watermark said were acknowledged by a database that was gone (``emptied_ok``:
        #: the directory counts as emptied and starts afresh), at this start or an earlier one (the
        #: ``emptied`` meta row keeps it); 0 if this directory was never found emptied.
        self.emptied = 0
        try:
            private_dir(self.path)
        except OSError as exc:
            raise ConfigError(f"cannot use data directory: {exc.strerror}", file=str(self.path)) from None
        self._lock_fd = lock_directory(self.path)
        db = self.path / DB_NAME
        try:
            os.close(private_file(db, os.O_RDWR | os.O_CREAT))  # before SQLite makes it 0644
            self._db = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise ConfigError(f"SQLite refused WAL mode (got {mode!r})", file=str(self.path))
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
            #: What SQLite runs with, read back (asserted, never assumed): "wal", and "FULL" or "OFF".
            self.journal_mode = str(mode)
            self.synchronous = SYNC_MODES.get(self._db.execute("PRAGMA synchronous").fetchone()[0], "?")
            if self.synchronous != ("FULL" if fsync else "OFF"):
                raise ConfigError(f"SQLite runs with synchronous={self.synchronous}, not "
                                  f"{'FULL' if fsync else 'OFF'} as asked", file=str(self.path))
            damage = [row[0] for row in self._db.execute("PRAGMA quick_check")]
            if damage != ["ok"]:
                raise CorruptValue(f"{db}: SQLite finds the database damaged: {'; '.join(damage[:5])}")
            fresh = not self._db.execute("SELECT name FROM sqlite_master WHERE name = 'durable'").fetchone()
            self._db.execute("CREATE TABLE IF NOT EXISTS durable (key TEXT PRIMARY KEY, value BLOB NOT NULL)"
                             " WITHOUT ROWID")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._claim(node)
            self._checksum_all(fresh)
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (COMMITS_KEY,)).fetchone()
            self._commits = int(row[0]) if row is not None and str(row[0]).isdigit() else 0
            self._watermark_fd = private_file(self.path / WATERMARK_NAME, os.O_RDWR | os.O_CREAT)
            acknowledged = _read_watermark(self._watermark_fd)
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            found, _, done = str(meta.get(EMPTIED_KEY, "")).partition(" ")
            found_before = int(found) if found.isdigit() else 0
            # Gone: no database; or one holding nothing but what a start writes before it refuses or
            # before it resets the watermark (its node, the format, an ``emptied`` row not yet "reset") --
            # never one that joined, took a commit or holds a value (that one was cut, not deleted).
            gone = fresh or (not self._commits and not done and set(meta) <= {"node", FORMAT_KEY, EMPTIED_KEY}
                             and not self._db.execute("SELECT 1 FROM durable LIMIT 1").fetchone())
            if acknowledged is not None and acknowledged > self._commits and emptied_ok and gone:
                self.emptied = acknowledged  # the database was deleted, not cut: an emptied directory
                self.set_meta({EMPTIED_KEY: str(acknowledged)})  # recorded (synced) before the watermark goes
                _write_watermark(self._watermark_fd, self._commits)
                os.fsync(self._watermark_fd)  # lowered: a power loss must not bring the old count back
                self.set_meta({EMPTIED_KEY: f"{acknowledged} reset"})
            elif acknowledged is not None and acknowledged > self._commits:
                raise CorruptValue(
                    f"{db}: holds {self._commits} committed batches, but {acknowledged} were synced and "
                    f"acknowledged ({WATERMARK_NAME}): the last {acknowledged - self._commits} are missing"
                    f"{' (the database is gone)' if gone else ' (a cut write-ahead log?)'}; this node would "
                    f"serve without entries it acknowledged -- restore the directory from a backup"
                    f"{', or start it with --rejoin-empty' if gone else ''}")
            else:
                self.emptied = found_before  # found emptied at an earlier start (0: never)
                if found_before and not done:  # killed after the watermark's reset, before it was noted
                    self.set_meta({EMPTIED_KEY: f"{found_before} reset"})
        except sqlite3.DatabaseError as exc:
            self.close()
            raise _refusal(db, exc) from None
        except BaseException:
            self.close()
            raise

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: committed (and synced, with fsync on) if the body returns, else rolled back."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _claim(self, node: str) -> None:
        self.claim("node", node)

    def claim(self, what: str, value: str) -> None:
        """Record that this directory holds ``what`` = ``value``; ConfigError if it holds another."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (what,)).fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES (?, ?)", (what, value))
        elif row[0] != value:
            raise ConfigError(f"data directory belongs to {what} {row[0]!r}, not {value!r}",
                              file=str(self.path))

    def _checksum_all(self, fresh: bool) -> None:
        """Give every stored value its checksum, once: a new database at once, an older one in one step."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (FORMAT_KEY,)).fetchone()
        if row is not None:
            if row[0] != FORMAT:
                raise ConfigError(f"data directory stores values as {row[0]!r}; this version reads "
                                  f"{FORMAT!r} (a newer version wrote it?)", file=str(self.path / DB_NAME))
            return
        with self._transaction():
            if not fresh:
                rows = self._db.execute("SELECT key, value FROM durable").fetchall()
                self._db.executemany("UPDATE durable SET value = ? WHERE key = ?",
                                     [(_sealed(key, bytes(blob)), key) for key, blob in rows])
            self._db.execute("INSERT INTO meta VALUES (?, ?)", (FORMAT_KEY, FORMAT))

    def load(self) -> dict[str, Any]:
        """Return every durable key and value that was committed (the map for ``Start``).

        Every value's checksum (over key and value) is checked; a damaged
        database is one :class:`CorruptValue` naming the file and every bad
        key (up to ``MAX_NAMED``, then how many more).
        """
        db = self.path / DB_NAME
        durable: dict[str, Any] = {}
        bad: list[str] = []
        try:
            for key, blob in self._db.execute("SELECT key, value FROM durable ORDER BY key"):
                if type(key) is not str or type(blob) is not bytes:  # a flipped type bit in the record
                    bad.append(f"key {key!r}: stored as {type(key).__name__} -> {type(blob).__name__}, "
                               f"not text -> blob")
                    continue
                try:
                    durable[key] = loads(_opened(key, blob))
                except CorruptValue as exc:
                    bad.append(f"key {key!r}: {exc}")
        except sqlite3.DatabaseError as exc:
            raise _refusal(db, exc) from None
        if bad:
            more = f" (and {len(bad) - MAX_NAMED} more)" if len(bad) > MAX_NAMED else ""
            raise CorruptValue(f"{db}: {len(bad)} damaged value(s): {'; '.join(bad[:MAX_NAMED])}{more}")
        return durable

    def commit(self, writes: Iterable[Write]) -> None:
        """Apply ``writes`` in order as one atomic transaction and sync it before returning.

        Values are encoded before the transaction opens, so a value that cannot
        be stored raises LocalProtocolError and leaves the database untouched.
        """
        final: dict[str, bytes | None] = {}
        count = 0
        for write in writes:  # later writes of a key win, as if applied in order
            final.pop(write.key, None)
            final[write.key] = None if write.value is None else _sealed(write.key, dumps(write.value))
            count += 1
        if not count:
            return
        puts = [(k, v) for k, v in final.items() if v is not None]
        deletes = [(k,) for k, v in final.items() if v is None]
        start = time.perf_counter()
        with self._transaction():
            if puts:
                self._db.executemany("INSERT OR REPLACE INTO durable (key, value) VALUES (?, ?)", puts)
            if deletes:
                self._db.executemany("DELETE FROM durable WHERE key = ?", deletes)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (COMMITS_KEY, str(self._commits + 1)))
        self._commits += 1
        _write_watermark(self._watermark_fd, self._commits)  # after the sync: never ahead of the database
        self.stats.sync_seconds += time.perf_counter() - start
        self.stats.commits += 1
        self.stats.writes += count
        self.stats.max_batch = max(self.stats.max_batch, count)

    def mark_emptied(self, batches: int) -> None:
        """Record that this (fresh) directory counts as emptied, as if a watermark had said ``batches``
        (at least 1): its database was set aside as damaged, and what it acknowledged is unknown."""
        self.emptied = max(batches, 1)
        self.set_meta({EMPTIED_KEY: f"{self.emptied} reset"})

    def meta(self) -> dict[str, str]:
        """Every ``meta`` row: what this directory holds and remembers (node, backend, app, identity)."""
        return {str(k): str(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, rows: dict[str, str]) -> None:
        """Write ``rows`` into ``meta`` as one synced transaction."""
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(rows.items()))

    def probe(self) -> None:
        """Commit (and sync) one small write, to learn whether the disk takes writes again."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (str(time.time()),))

    def close(self) -> None:
        """Close the database and release the directory lock (idempotent)."""
        db = getattr(self, "_db", None)
        try:
            if db is not None:
                self._db = None  # type: ignore[assignment]
                db.close()
        finally:
            for name in ("_watermark_fd", "_lock_fd"):
                fd = getattr(self, name, None)
                if fd is not None:
                    setattr(self, name, None)
                    os.close(fd)

    def __enter__(self) -> "Storage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_watermark(fd: int) -> int | None:
    """The count in a watermark file, or None if it is empty or unreadable (a torn or flipped write)."""
    record = os.pread(fd, 12, 0)
    if len(record) != 12 or zlib.crc32(record[:8]).to_bytes(4, "big") != record[8:]:
        return None
    return int.from_bytes(record[:8], "big")


def _write_watermark(fd: int, commits: int) -> None:
    """Record ``commits`` (not synced: after a power loss it may lag the database, never lead it)."""
    count = commits.to_bytes(8, "big")
    try:
        os.pwrite(fd, count + zlib.crc32(count).to_bytes(4, "big"), 0)
    except OSError:
        pass  # only a check: the database itself holds the data


def _sealed(key: str, payload: bytes) -> bytes:
    """``payload`` as stored under ``key``: a CRC-32 of key and payload, then the payload."""
    return zlib.crc32(payload, zlib.crc32(key.encode())).to_bytes(4, "big") + payload


def _opened(key: str, stored: bytes) -> bytes:
    """The payload of a value stored by :func:`_sealed` under ``key``, or CorruptValue."""
    payload = stored[4:]
    if len(stored) < 4 or zlib.crc32(payload, zlib.crc32(key.encode())).to_bytes(4, "big") != stored[:4]:
        raise CorruptValue("checksum mismatch (the stored bytes changed since they were written)")
    return payload


def _refusal(db: Path, exc: sqlite3.DatabaseError) -> Exception:
    """One clear error for what SQLite raised opening or reading ``db``: damage, or a disk condition."""
    text = str(exc)
    if any(condition in text for condition in DISK_CONDITIONS):
        return DiskUnavailable(f"cannot use the database: {text}", file=str(db))
    return CorruptValue(f"{db}: the database is damaged ({text}); restore the directory from a backup "
                        f"(emptied, the node would rejoin without the entries and votes it acknowledged)")


def set_aside(data_dir: str | Path, reason: str) -> Path:
    """Move the database files of ``data_dir`` into a new ``damaged-<UTC time>`` directory in it, with a
    ``REASON`` file saying why; return that directory.  What is left counts as emptied (``COMMITS`` stays)."""
    path = Path(data_dir)
    lock = lock_directory(path)  # never move a database another process serves
    try:
        return _move_aside(path, reason)
    finally:
        os.close(lock)


def _move_aside(path: Path, reason: str) -> Path:
    """:func:`set_aside`, with the directory locked."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path / f"{DAMAGED_PREFIX}{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = path / f"{DAMAGED_PREFIX}{stamp}-{n}"
    aside.mkdir(mode=PRIVATE_DIR)
    for name in (f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", DB_NAME):  # the database last:
        if (path / name).exists():  # (moved without its log, the copy kept aside would be incomplete)
            os.replace(path / name, aside / name)
    fd = private_file(aside / "REASON")
    try:
        os.write(fd, (reason + "\n").encode())
    finally:
        os.close(fd)
    return aside


def open_storage(data_dir: str | Path, node: str, *, fsync: bool = True,
                 emptied_ok: bool = False) -> tuple[Storage, dict[str, Any]]:
    """Open ``node``'s storage in ``data_dir`` and return it with the recovered durable map (``emptied_ok``:
    a database that is gone, beside a watermark of acknowledged batches, counts as an emptied directory)."""
    storage = Storage(data_dir, node, fsync=fsync, emptied_ok=emptied_ok)
    try:
        return storage, storage.load()
    except BaseException:
        storage.close()
        raise
