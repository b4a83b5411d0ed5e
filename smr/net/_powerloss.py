"""Power loss for real nodes: run ``smr serve`` over files that lose everything not synced at a cut.

**What it models.**  A power cut loses every byte a process wrote to a file
since that file's last successful ``fsync``/``fdatasync`` -- as LazyFS (the FUSE
file system Jepsen uses) does when its page cache is cleared, with the harshest
choice of what the disk had written back: nothing.  Each file returns exactly
to its content at its last sync.  Creating, renaming and unlinking a file count
as durable at once: like LazyFS's page cache, this models file *contents*, not
directory entries (SQLite syncs its directory after creating a journal anyway).

**How.**  Our own small C library (``_powerloss_shim.c``, compiled here with
gcc into a cache directory) is preloaded (``LD_PRELOAD``) into the node's
process.  It interposes the libc calls SQLite and CPython write files with --
``open``/``open64``/``openat``/``openat64``/``creat``, ``write``, ``pwrite``,
``pwrite64``, ``writev``, the ``pwritev`` family, ``ftruncate``/``truncate``,
``fallocate``, ``copy_file_range``/``sendfile``, ``fsync``, ``fdatasync``,
``close``, ``dup``/``dup2``/``dup3``, ``rename``/``renameat``/``renameat2``,
``unlink``/``unlinkat`` -- for regular files under one directory (the node's
data directory).  Before each write or truncate it appends an undo record (the
range, the file's size before, the bytes it overwrites or cuts off) to that
file's log in a directory *outside* the data directory; a successful sync of
the file empties its log.  A cut (:func:`revert_unsynced`, once the process is
SIGKILLed) applies every log newest record first and deletes SQLite's ``-shm``
file (shared memory written through ``mmap``, which the shim cannot see; SQLite
rebuilds it from the write-ahead log).  Checked by ``tests/net/test_power_loss.py``:
SQLite in this Python writes through ``pwrite64`` and syncs through
``fdatasync``, both interposed; a process's unsynced writes are gone after a
cut and its synced ones stay.

**What it does not model.**  Partial write-back (some unsynced pages reaching
the disk, others not: a torn write) -- the cut always loses *all* of them,
which is the worst case for durability of acknowledged writes, not for
SQLite's own recovery; writes through ``mmap``, stdio's internal calls and raw
``syscall()``; ``sync()``/``syncfs()`` (nothing is made durable by them here,
which is harsher than real); a lying disk that acknowledges a flush it has not
done.  The undo logs describe one process's view: two processes writing one
file would interleave correctly only under the shim's per-process lock.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import struct
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import attrs

from smr.errors import LocalProtocolError

#: Environment variables the shim reads: the tracked directory and where its undo logs go.
ROOT_VARIABLE, UNDO_VARIABLE = "SMR_POWERLOSS_ROOT", "SMR_POWERLOSS_UNDO"
#: The file in the undo directory where the shim says what it failed to record.
ERRORS_NAME = "ERRORS"
SHIM_SOURCE = "_powerloss_shim.c"
COMPILE_FLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-U_FORTIFY_SOURCE")
LINK_FLAGS = ("-ldl", "-lpthread")
#: One undo record's header: magic, offset, the file's size before, how many old bytes follow.
RECORD = struct.Struct("=4sQQQ")
MAGIC = b"SMRU"
UNDO_SUFFIX = ".undo"


class PowerLossError(LocalProtocolError):
    """The power-loss layer cannot be built here, or it could not record a change (a cut is untrustworthy)."""


def compiler() -> str:
    """The C compiler the shim is built with: ``$CC``, else ``gcc``."""
    return os.environ.get("CC") or "gcc"


def cache_directory() -> Path:
    """Where built shims are kept: ``$XDG_CACHE_HOME/smr`` (default ``~/.cache/smr``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "smr"


def shim_library() -> Path:
    """The shim as a shared library, compiled on first use (and after any change to its source)."""
    if not platform.system() == "Linux":
        raise PowerLossError(f"power-loss mode preloads a library into glibc processes: Linux only, "
                             f"not {platform.system()}")
    source = resources.files("smr.net").joinpath(SHIM_SOURCE).read_bytes()
    key = hashlib.sha256(source + repr((COMPILE_FLAGS, LINK_FLAGS, platform.machine())).encode()).hexdigest()[:16]
    directory = cache_directory()
    library = directory / f"powerloss-{key}.so"
    if library.exists():
        return library
    cc = compiler()
    if shutil.which(cc) is None:
        raise PowerLossError(f"power-loss mode compiles a small C library at run time and needs a C compiler: "
                             f"{cc!r} was not found on PATH (install gcc, e.g. 'apt-get install gcc', or set CC)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PowerLossError(f"cannot make the cache directory {directory}: {exc.strerror} "
                             f"(set XDG_CACHE_HOME to a writable directory)") from None
    if any(c.isspace() or c == ":" for c in str(library)):
        raise PowerLossError(f"{library}: LD_PRELOAD cannot name a path with spaces or colons; "
                             f"set XDG_CACHE_HOME to another directory")
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        written = Path(scratch) / SHIM_SOURCE
        written.write_bytes(source)
        built = Path(scratch) / "shim.so"
        done = subprocess.run([cc, *COMPILE_FLAGS, "-o", str(built), str(written), *LINK_FLAGS],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise PowerLossError(f"{cc} could not build the power-loss shim:\n{done.stderr.strip()}")
        os.replace(built, library)  # atomic: a concurrent builder's copy is the same bytes
    return library


def shim_environment(data_dir: str | Path, undo_dir: str | Path) -> dict[str, str]:
    """The environment variables that run a process over ``data_dir`` with its undo logs in ``undo_dir``."""
    root, undo = Path(os.path.realpath(data_dir)), Path(os.path.realpath(undo_dir))
    if undo == root or root in undo.parents:
        raise PowerLossError(f"the undo logs ({undo}) must lie outside the data directory ({root})")
    undo.mkdir(mode=0o700, parents=True, exist_ok=True)
    preload = " ".join(p for p in (str(shim_library()), os.environ.get("LD_PRELOAD", "")) if p)
    return {"LD_PRELOAD": preload, ROOT_VARIABLE: str(root), UNDO_VARIABLE: str(undo)}


@attrs.frozen
class Reverted:
    """What one cut took back from one data directory."""

    #: Writes and truncates undone, by file (path below the data directory); ``-shm`` files not counted.
    undone: dict[str, int] = attrs.field(factory=dict)
    #: Bytes restored or cut off.
    bytes: int = 0

    @property
    def records(self) -> int:
        """Writes and truncates undone in all."""
        return sum(self.undone.values())

    def describe(self) -> str:
        """One phrase: what the cut took back, by file."""
        if not self.undone:
            return "nothing unsynced"
        return "undid " + ", ".join(f"{n} write(s) to {name}" for name, n in sorted(self.undone.items())) \
            + f" ({self.bytes:,} bytes)"


def _decoded(name: str) -> str:
    """The path below the root that an undo log's name stands for (``%XX`` escapes, as the shim writes them)."""
    out, i = bytearray(), 0
    raw = name.encode()
    while i < len(raw):
        if raw[i:i + 1] == b"%":
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", errors="surrogateescape")


def _records(log: Path) -> list[tuple[int, int, bytes]]:
    """The whole records of an undo log as (offset, size before, old bytes); a torn last one is dropped
    (the process died writing it, before the change it describes)."""
    data = log.read_bytes()
    records, at = [], 0
    while at + RECORD.size <= len(data):
        magic, offset, size_before, old_len = RECORD.unpack_from(data, at)
        if magic != MAGIC:
            raise PowerLossError(f"{log}: not an undo record at byte {at}")
        if at + RECORD.size + old_len > len(data):
            break
        records.append((offset, size_before, data[at + RECORD.size:at + RECORD.size + old_len]))
        at += RECORD.size + old_len
    return records


def revert_unsynced(data_dir: str | Path, undo_dir: str | Path) -> Reverted:
    """Return every file under ``data_dir`` to its content at its last sync; the process must be dead.

    Applies the undo logs in ``undo_dir`` (newest record first), deletes
    them and SQLite's ``-shm`` files.  PowerLossError if the shim said it
    could not record some change (the cut would not be faithful).
    """
    root, undo = Path(os.path.realpath(data_dir)), Path(undo_dir)
    errors = undo / ERRORS_NAME
    if errors.exists():
        raise PowerLossError(f"the power-loss shim could not record every change under {root}:\n"
                             f"{errors.read_text(errors='replace').strip()}")
    undone: dict[str, int] = {}
    restored = 0
    for log in sorted(undo.glob(f"*{UNDO_SUFFIX}")):
        records = _records(log)
        name = _decoded(log.name[:-len(UNDO_SUFFIX)])
        if records and not name.endswith("-shm"):  # shared memory: deleted whole below
            try:
                fd = os.open(root / name, os.O_RDWR)
            except FileNotFoundError:
                fd = -1  # unlinked or renamed away since: nothing of it left to revert
            if fd >= 0:
                try:
                    size = os.fstat(fd).st_size
                    for offset, size_before, old in reversed(records):
                        if old:
                            os.pwrite(fd, old, offset)
                        os.ftruncate(fd, size_before)
                        restored += len(old)
                    restored += max(0, size - os.fstat(fd).st_size)
                finally:
                    os.close(fd)
                undone[name] = len(records)
        log.unlink()
    for shm in root.rglob("*-shm"):
        shm.unlink()
    return Reverted(undone, restored)
