"""Run many election trials, in parallel processes, with seeds derived from one base seed.

Trial ``i`` of range ``low-high`` gets the seed
``int(sha256(f"{base}/{low}-{high}/{i}")[:15 hex digits])`` whatever the
backend, so every backend meets the same seeds, and results come back in task
order, so the report is the same whatever the number of processes.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from .election import ElectionSetup, ElectionTrial, run_trial


def trial_seed(base_seed: int, low_ms: int, high_ms: int, index: int) -> int:
    """The seed of trial ``index`` of range ``low_ms-high_ms`` (stable across runs and machines)."""
    digest = hashlib.sha256(f"{base_seed}/{low_ms}-{high_ms}/{index}".encode()).hexdigest()
    return int(digest[:15], 16)


def _run_task(task: tuple[ElectionSetup, int]) -> ElectionTrial:
    return run_trial(*task)


def run_campaign(setups: Sequence[ElectionSetup], trials: int, base_seed: int = 1, jobs: int = 1,
                 progress: bool = False) -> list[ElectionTrial]:
    """Run ``trials`` trials of every setup; ``jobs`` processes; results in (setup, trial) order.

    ``progress`` shows a tqdm bar on stderr when stderr is a terminal.
    """
    if trials < 1:
        raise ValueError("need at least one trial per range")
    tasks = [(setup, trial_seed(base_seed, setup.low_ms, setup.high_ms, i))
             for setup in setups for i in range(trials)]
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="election trials", unit="trial", file=sys.stderr,
               disable=None if progress else True, leave=False)
    results: list[ElectionTrial] = []
    try:
        if jobs > 1:
            chunk = max(1, min(16, len(tasks) // (jobs * 16)))
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for result in pool.map(_run_task, tasks, chunksize=chunk):
                    results.append(result)
                    bar.update()
        else:
            for task in tasks:
                results.append(_run_task(task))
                bar.update()
    finally:
        bar.close()
    return results
