"""A random schedule for a ``smr.testing.Network`` with held syncs: the write-in-parallel tests of both cores."""

from __future__ import annotations

import random
from typing import Any

from smr.commands import put


def run_random_schedule(net: Any, rng: random.Random, steps: int = 3000) -> None:
    """``steps`` random moves: deliver a message, sync a node, tick one, ask the leader for a put,
    crash a node (while all three run), or restart the crashed ones."""
    seq = 0
    for _ in range(steps):
        roll = rng.random()
        live = [n for n in net.ids if n in net.cores]
        if roll < 0.25 and net.in_flight:
            net.deliver(rng.randrange(len(net.in_flight)))
        elif roll < 0.45 and live:
            net.sync(rng.choice(live), 1)
        elif roll < 0.65 and live:
            net.tick(rng.choice(live))
        elif roll < 0.85:
            leader = net.leader()
            if leader is not None:
                seq += 1
                net.request(leader, put("x", str(seq)), "c1", seq)
        elif roll < 0.87 and len(live) == 3:
            net.crash(rng.choice(live))
        else:
            for node in net.ids:
                if node not in net.cores:
                    net.start(node)
