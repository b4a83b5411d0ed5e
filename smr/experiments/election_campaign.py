"""Run many election trials, in parallel processes, with seeds derived from one base seed.

Trial ``i`` of range ``low-high`` gets the seed
``int(sha256(f"{base}/{low}-{high}/{i}")[:15 hex digits])`` whatever the
backend, so every backend meets the same seeds, and results come back in task
order, so the report is the same whatever executor runs the trials (local
processes, or a Dask cluster's workers; see :mod:`smr.campaign`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor

from ..campaign import Progress, StopRequest, Workers, stream
from .election import ElectionSetup, ElectionTrial, run_trial


def trial_seed(base_seed: int, low_ms: int, high_ms: int, index: int) -> int:
    """The seed of trial ``index`` of range ``low_ms-high_ms`` (stable across runs and machines)."""
    digest = hashlib.sha256(f"{base_seed}/{low_ms}-{high_ms}/{index}".encode()).hexdigest()
    return int(digest[:15], 16)


def _run_task(task: tuple[ElectionSetup, int]) -> ElectionTrial:
    return run_trial(*task)


def run_campaign(setups: Sequence[ElectionSetup], trials: int, base_seed: int = 1, jobs: int = 1,
                 progress: bool = False, *, executor: Executor | None = None,
                 stop: StopRequest | None = None) -> list[ElectionTrial]:
    """Run ``trials`` trials of every setup on ``executor`` (else ``jobs`` processes), in (setup, trial) order.

    ``progress`` reports on stderr.  When ``stop`` is set no more trials
    start, and the list holds the trials that finished.
    """
    if trials < 1:
        raise ValueError("need at least one trial per range")
    tasks = ((setup, trial_seed(base_seed, setup.low_ms, setup.high_ms, i))
             for setup in setups for i in range(trials))
    bar = Progress("election trials", len(setups) * trials, "trial", quiet=not progress)
    results: list[ElectionTrial] = []
    owned = Workers(jobs=jobs).executor(stop) if executor is None else contextlib.nullcontext(executor)
    try:
        with owned as pool, contextlib.closing(stream(pool, _run_task, tasks, stop)) as finished:
            for _, result in finished:
                results.append(result)
                bar.advance()
    finally:
        bar.close()
    return results
