"""The largest put and a multi-megabyte state reach a follower restarted with no state, over TCP, under load.

The short version of ``smr catchup`` (the full size, 50 MB, is a command): a
follower of a 3-process cluster is SIGKILLed before it holds any app state;
the other two acknowledge one put of the largest value the request limit
allows and grow the state past several snapshot chunks; once restarted the
follower must apply everything the leader had, while no node's term moves, no
frame is refused as oversized and the clients' history stays linearizable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from smr.net._catchup import catchup


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_largest_put_and_a_large_state_reach_a_restarted_follower(tmp_path: Path, backend: str) -> None:
    # Elections after 1-2 s of silence rather than the default 0.5-1 s: a test machine running other
    # work can hold a process that long; the full-size command keeps the defaults.
    patient = {"election_ticks_min": 100, "election_ticks_max": 200}
    report = trio.run(catchup, tmp_path, backend, 2.0, None, 2, 1, patient)
    text = "\n".join(report["lines"])
    assert report["verdict"] == "ok", text
    assert report["largest_put_bytes"] > 4_000_000, text
    assert report["catch_up_s"] is not None and not report["epochs_moved"], text
    assert report["counts"]["ok"] > 0, text
