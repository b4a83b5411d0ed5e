"""Issue 22, acceptance line 1 (the short run): an insider holding the peer key cannot hurt a live cluster.

``smr insider`` connects to every node of a 3-node loopback cluster as one
of its peers (the peer key and the peer's real identity) and sends hostile,
well-typed messages (:mod:`smr.hostile`) while clients run a KV workload and
a writer records unique acknowledged writes.  No node may exit, every
acknowledged write must be read back, and the history must be linearizable.
The full acceptance run is ``smr insider --backend B --messages 100000``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smr.net._insider import insider


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
async def test_insider_cannot_hurt_a_live_cluster(tmp_path: Path, backend: str) -> None:
    report = await insider(tmp_path / "cluster", backend, 2000, seed=1, clients=3)
    text = "\n".join(report["lines"])
    assert report["messages"] >= 1900, text
    assert report["exits"] == [] and report["exhausted"] == [], text
    assert report["lost"] == [] and report["unread"] == [], text
    assert report["verdict"] == "linearizable", text
    assert report["ok"], text
