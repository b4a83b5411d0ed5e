"""``smr bitflip``: flip one random bit in a stopped node's files, many times; nothing damaged may load.

A 3-node loopback cluster takes some puts and is stopped (SIGTERM: each node
closes its database cleanly).  One node's data directory is the template;
its durable map is what the node would recover.  Each trial copies the
template, flips one uniformly random bit of one of its files (weighted by
size), and opens the copy as the node would (:func:`open_storage`).  The
trial ends one of three ways:

* **refused** -- the node would not start: a checksum mismatch, SQLite's own
  check, or a claim (node, backend, app) that no longer reads right;
* **unchanged** -- it loads exactly the template's durable map (the bit was
  in free space, padding or a field SQLite rewrites);
* **served** -- it loads a *different* map: damaged state the node would serve.

Only the last is a failure.  Every trial prints its seed and the command
that replays it when it fails.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from smr import commands as c
from smr.errors import ConfigError

from ._client import open_tcp_client
from ._launcher import open_local_tcp_cluster
from ._storage import LOCK_NAME, open_storage
from ._values import CorruptValue

#: Outcomes of one trial.
REFUSED, UNCHANGED, SERVED = "refused", "unchanged", "served"


async def make_template(directory: Path, backend: str, puts: int) -> Path:
    """Run a cluster in ``directory``, make ``puts`` puts, stop it cleanly; return n1's data directory."""
    async with open_local_tcp_cluster(directory, backend=backend, fsync=False) as cluster:
        async with open_tcp_client(cluster.cluster_file, prefix="bitflip") as client:
            for i in range(puts):
                await client.submit(c.put(f"k{i % 50}", f"value {i} " + "x" * (i % 40)))
    return directory / "n1"


def flip_one_bit(directory: Path, rng: random.Random) -> tuple[str, int]:
    """Flip one random bit of one file in ``directory`` (chosen by size); return (file name, bit)."""
    files = sorted((p for p in directory.iterdir() if p.is_file() and p.name != LOCK_NAME),
                   key=lambda p: p.name)
    sizes = [p.stat().st_size for p in files]
    target = rng.choices(files, weights=sizes)[0]
    data = bytearray(target.read_bytes())
    bit = rng.randrange(len(data) * 8)
    data[bit // 8] ^= 1 << (bit % 8)
    target.write_bytes(bytes(data))
    return target.name, bit


def trial(template: Path, expected: dict[str, Any], node: str, seed: int) -> tuple[str, str]:
    """One flip on a copy of ``template``: (outcome, what happened)."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="smr-bitflip-") as tmp:
        copy = Path(tmp) / node
        shutil.copytree(template, copy)
        name, bit = flip_one_bit(copy, rng)
        where = f"{name} bit {bit} (byte {bit // 8})"
        try:
            storage, durable = open_storage(copy, node, fsync=False)
        except (CorruptValue, ConfigError) as exc:
            return REFUSED, f"{where}: {exc}"
        except Exception as exc:  # refused, but with a traceback rather than one clear line
            return REFUSED, f"{where}: no clear message: {type(exc).__name__}: {exc}"
        storage.close()
        if durable == expected:
            return UNCHANGED, where
        changed = sorted(k for k in {*durable, *expected} if durable.get(k) != expected.get(k))
        return SERVED, f"{where}: loads with {len(changed)} key(s) changed, e.g. {changed[:3]}"


def bitflip(directory: Path, backend: str, trials: int, seed: int, puts: int = 300) -> dict[str, Any]:
    """Make the template in ``directory``, run ``trials`` flips; return counts and the served cases."""
    template = trio.run(make_template, directory, backend, puts)
    storage, expected = open_storage(template, "n1", fsync=False)
    storage.close()
    outcomes: Counter[str] = Counter()
    served: list[str] = []
    reasons: Counter[str] = Counter()
    for i in range(trials):
        outcome, what = trial(template, expected, "n1", seed + i)
        outcomes[outcome] += 1
        if outcome == SERVED:
            served.append(f"seed {seed + i}: {what}")
        elif outcome == REFUSED:
            reasons[_reason(what)] += 1
    return {"backend": backend, "trials": trials, "seed": seed, "keys": len(expected),
            "outcomes": {k: outcomes[k] for k in (REFUSED, UNCHANGED, SERVED)}, "refused_by": dict(reasons),
            "served": served}


def _reason(what: str) -> str:
    """A short class for a refusal's message (for the summary)."""
    for needle, label in (("no clear message", "a traceback (no clear message)"),
                          ("checksum mismatch", "value checksum"), ("not text -> blob", "column type"), ("SQLite finds", "SQLite quick_check"),
                          ("database is damaged", "SQLite read error"), ("belongs to", "directory claim"),
                          ("stores values as", "format marker")):
        if needle in what:
            return label
    return "other"
