"""Campaigns of many independent tasks: on any executor, streamed, stoppable, with progress.

Every long command (``smr fuzz``, ``smr compare``, ``smr experiment``,
``smr conformance``) hands its tasks to :func:`stream`, which keeps a bounded
number of them in flight on a :class:`concurrent.futures.Executor` and yields
each result as it is ready, so the caller folds results into its report and
the parent's memory does not grow with the number of tasks.

Where tasks run is a :class:`Workers`: ``--jobs N`` local processes (one
means in this process), or ``--scheduler tcp://HOST:PORT``, a running Dask
distributed scheduler (the optional ``dask`` extra).  :func:`stop_on_signals`
turns Ctrl-C and SIGTERM into a :class:`StopRequest`: no more tasks are
handed out, those in flight get a bounded wait, and the command writes what
it has and exits non-zero; local worker processes are terminated, never left
behind.  :class:`SeedSet` records which seeds a report covers, as ranges.
"""

from __future__ import annotations

import argparse
import bisect
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import attrs

from .errors import LocalProtocolError

T = TypeVar("T")
R = TypeVar("R")

#: Tasks kept in flight per worker: enough to hide the hand-off, few enough to stop quickly.
IN_FLIGHT_PER_WORKER = 4
#: How long a stopped campaign waits for the tasks already in flight.
STOP_GRACE_S = 5.0
#: How often progress is printed when stderr is not a terminal.
PROGRESS_EVERY_S = 10.0
DASK_MISSING = "--scheduler needs Dask distributed: pip install 'smr-compare[dask]' (or pip install distributed)"


# ------------------------------------------------------------------ executors
class InlineExecutor(Executor):
    """An executor that runs each task in the calling thread when it is submitted (``--jobs 1``)."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        """Run ``fn(*args, **kwargs)`` now and return its finished future."""
        future: Future[R] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: B036 -- the future carries it to the caller
            future.set_exception(exc)
        return future


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_count(executor: Executor) -> int:
    """How many tasks ``executor`` runs at once (a guess of 2 for an executor that does not say)."""
    if isinstance(executor, InlineExecutor):
        return 1
    if isinstance(executor, ProcessPoolExecutor):
        return int(getattr(executor, "_max_workers", 2))
    client = getattr(executor, "_client", None)  # distributed.cfexecutor.ClientExecutor
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return int(getattr(executor, "_max_workers", 2))


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what ``pool`` has not started and end its worker processes now, waiting for them to go."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


@attrs.frozen
class Workers:
    """Where a campaign's tasks run: a Dask scheduler's address, or this many local processes."""

    jobs: int = 1
    scheduler: str | None = None

    def describe(self) -> str:
        """Where the tasks run, for a person."""
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        return f"{self.jobs} process(es)"

    def to_json(self) -> dict[str, Any]:
        """The workers as plain JSON data."""
        return {"jobs": self.jobs, "scheduler": self.scheduler}

    @contextmanager
    def executor(self, stop: StopRequest | None = None) -> Iterator[Executor]:
        """An executor on these workers; local worker processes end with the block (at once if stopped)."""
        if self.scheduler:
            with dask_executor(self.scheduler) as executor:
                yield executor
            return
        if self.jobs <= 1:
            yield InlineExecutor()
            return
        pool = ProcessPoolExecutor(max_workers=self.jobs, initializer=_ignore_sigint)
        clean = False
        try:
            yield pool
            clean = True
        finally:
            if clean and not stop:
                pool.shutdown(wait=True, cancel_futures=True)
            else:
                terminate_workers(pool)


@contextmanager
def dask_executor(address: str) -> Iterator[Executor]:
    """A ``concurrent.futures`` executor on the Dask distributed scheduler at ``address``."""
    try:
        from distributed import Client
    except ImportError:
        raise LocalProtocolError(DASK_MISSING) from None
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except OSError as exc:
        raise LocalProtocolError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        try:
            theirs = client.run(provenance)
        except Exception as exc:  # a worker that cannot run the check cannot run a campaign's tasks either
            raise LocalProtocolError(f"the Dask workers at {address} cannot run this package: {exc}") from None
        foreign = foreign_workers(theirs, provenance())
        if foreign:
            raise LocalProtocolError(f"Dask workers at {address} run other code than this command (install the "
                                     f"same version on every machine): {'; '.join(foreign)}")
        executor = client.get_executor(pure=False)
        try:
            yield executor
        finally:
            executor.shutdown(wait=False)  # cancels the tasks not yet finished
    finally:
        client.close()


def foreign_workers(theirs: Mapping[str, Mapping[str, Any]], ours: Mapping[str, Any]) -> list[str]:
    """The workers whose :func:`provenance` differs from ``ours`` in version, or in git commit when both know one."""
    foreign = []
    for worker, prov in sorted(theirs.items()):
        version, commit = prov.get("version"), prov.get("commit")
        if version != ours["version"]:
            foreign.append(f"{worker} has version {version}, this command {ours['version']}")
        elif commit and ours["commit"] and commit != ours["commit"]:
            foreign.append(f"{worker} has commit {commit}, this command {ours['commit']}")
    return foreign


def add_worker_arguments(parser: argparse.ArgumentParser, default_jobs: int = 1) -> None:
    """Add ``--jobs``, ``--scheduler`` and ``--quiet`` to a campaign command's parser."""
    from .arguments import positive_int

    parser.add_argument("--jobs", type=positive_int, default=default_jobs,
                        help="local processes to spread the tasks over")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="run the tasks on this Dask distributed scheduler's workers instead "
                             "(needs the dask extra)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def workers_from(args: argparse.Namespace) -> Workers:
    """The :class:`Workers` named by a command's ``--jobs`` and ``--scheduler``."""
    if args.jobs < 1:
        raise LocalProtocolError("--jobs must be at least 1")
    return Workers(jobs=args.jobs, scheduler=args.scheduler)


# ------------------------------------------------------------------ stopping
class StopRequest:
    """Set when a campaign should stop handing out tasks (by a signal, or by the program)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        """Ask the campaign to stop, saying why (the first reason given is kept)."""
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()


@contextmanager
def stop_on_signals(signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM)
                    ) -> Iterator[StopRequest]:
    """A :class:`StopRequest` that ``signals`` set while the block runs (the main thread only)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handle) for s in signals}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def exit_code_for(reason: str | None) -> int:
    """The exit code of a command stopped for ``reason`` (128 + the signal's number, as shells do)."""
    try:
        return 128 + int(signal.Signals[reason or ""])
    except KeyError:
        return 1


# ------------------------------------------------------------------ streaming
def stream(executor: Executor, fn: Callable[[T], R], tasks: Iterable[T], stop: StopRequest | None = None,
           in_flight: int | None = None, grace_s: float = STOP_GRACE_S
           ) -> Generator[tuple[T, R], None, None]:
    """Yield ``(task, fn(task))`` in task order, with at most ``in_flight`` tasks submitted at once.

    Tasks are drawn from ``tasks`` only as room frees up, so neither the tasks
    nor the results pile up.  Once ``stop`` is set no task is handed out, the
    queued ones are cancelled, the running ones that finish within ``grace_s``
    are yielded (in any order) and the rest are cancelled.
    """
    limit = in_flight or IN_FLIGHT_PER_WORKER * worker_count(executor)
    stop = stop if stop is not None else StopRequest()
    pending: deque[tuple[T, Future[R]]] = deque()
    todo = iter(tasks)
    exhausted = False
    try:
        while True:
            while not exhausted and not stop and len(pending) < limit:
                try:
                    task = next(todo)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((task, executor.submit(fn, task)))
            if not pending or stop:
                break
            task, future = pending[0]
            try:
                result = future.result(timeout=0.2)  # wake up now and then to notice a stop
            except FutureTimeout:
                continue
            pending.popleft()
            yield task, result
        if pending:
            # The oldest tasks, one per worker, are the ones running: wait for those, drop the queued rest.
            for _, future in list(pending)[worker_count(executor):]:
                future.cancel()
            finished, _ = wait([f for _, f in pending if not f.cancelled()], timeout=grace_s)
            for task, future in list(pending):
                if future in finished and not future.cancelled() and future.exception() is None:
                    yield task, future.result()
    finally:
        for _, future in pending:
            future.cancel()


# ------------------------------------------------------------------ progress
class Progress:
    """Progress of one long command on stderr: a bar on a terminal, a line now and then otherwise."""

    def __init__(self, label: str, total: int, unit: str, quiet: bool = False,
                 every_s: float = PROGRESS_EVERY_S) -> None:
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.done = 0
        self.note = ""
        self._started = self._printed = time.monotonic()
        self._quiet = quiet
        self._bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False,
                             dynamic_ncols=True)

    def advance(self, count: int = 1, note: str = "") -> None:
        """Count ``count`` more tasks done; ``note`` (e.g. "2 failed") is shown beside the count."""
        self.done += count
        self.note = note or self.note
        if self._bar is not None:
            self._bar.update(count)
            if note:
                self._bar.set_postfix_str(note, refresh=False)
        elif not self._quiet and time.monotonic() - self._printed >= self.every_s:
            self._line()

    def _line(self, final: bool = False) -> None:
        self._printed = time.monotonic()
        wall = self._printed - self._started
        rate = self.done / wall if wall > 0 else 0.0
        note = f", {self.note}" if self.note else ""
        tail = f"done in {wall:.1f} s" if final else f"{wall:.0f} s"
        print(f"{self.label}: {self.done}/{self.total} {self.unit}s{note}, {rate:.2f} {self.unit}s/s, {tail}",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        """End the display (one last line when stderr is not a terminal)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self._quiet:
            self._line(final=True)
        self._quiet = True


# ------------------------------------------------------------------ seed sets
class SeedSet:
    """A set of integer seeds kept as sorted, disjoint, inclusive ranges (small for runs of seeds)."""

    def __init__(self, ranges: Iterable[Sequence[int]] = ()) -> None:
        self._lows: list[int] = []
        self._highs: list[int] = []
        for low, high in ranges:
            self.add_range(int(low), int(high))

    def add(self, seed: int) -> None:
        """Add one seed."""
        self.add_range(seed, seed)

    def add_range(self, low: int, high: int) -> None:
        """Add every seed from ``low`` to ``high`` inclusive."""
        if high < low:
            return
        i = bisect.bisect_left(self._highs, low - 1)  # first range that ends at low-1 or later
        j = i
        while j < len(self._lows) and self._lows[j] <= high + 1:
            low, high = min(low, self._lows[j]), max(high, self._highs[j])
            j += 1
        self._lows[i:j] = [low]
        self._highs[i:j] = [high]

    def __contains__(self, seed: object) -> bool:
        if not isinstance(seed, int):
            return False
        i = bisect.bisect_left(self._highs, seed)
        return i < len(self._lows) and self._lows[i] <= seed

    def __len__(self) -> int:
        return sum(h - l + 1 for l, h in zip(self._lows, self._highs))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeedSet) and self.ranges() == other.ranges()

    def ranges(self) -> list[list[int]]:
        """The ranges as ``[low, high]`` pairs (inclusive), lowest first."""
        return [[l, h] for l, h in zip(self._lows, self._highs)]

    def overlap(self, other: SeedSet) -> SeedSet:
        """The seeds in both sets."""
        both = SeedSet()
        for low, high in self.ranges():
            for olow, ohigh in other.ranges():
                both.add_range(max(low, olow), min(high, ohigh))
        return both

    def missing(self, first: int, count: int) -> Iterator[int]:
        """The seeds from ``first`` (``count`` of them) not in the set, lowest first, drawn lazily."""
        seed, end = first, first + count
        i = bisect.bisect_left(self._highs, first)
        while seed < end:
            if i < len(self._lows) and self._lows[i] <= seed:
                seed = self._highs[i] + 1
                i += 1
                continue
            stop = min(end, self._lows[i]) if i < len(self._lows) else end
            yield from range(seed, stop)
            seed = stop

    def describe(self) -> str:
        """The ranges for a person, e.g. ``1-500, 601-700``."""
        return ", ".join(f"{l}" if l == h else f"{l}-{h}" for l, h in zip(self._lows, self._highs)) or "none"


# ------------------------------------------------------------------ provenance
def git_commit(where: Path | None = None) -> str | None:
    """The git commit of the source tree holding this package (``+dirty`` if changed), or None."""
    where = where or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def provenance() -> dict[str, Any]:
    """What produced a result: the package version, the git commit when there is one, Python."""
    from . import __version__

    return {"version": __version__, "commit": git_commit(),
            "python": ".".join(map(str, sys.version_info[:3]))}
