"""The measuring parts of ``smr bench sim`` count what they claim to count (speed itself is never asserted)."""

from __future__ import annotations

import pytest

from smr.bench import ECHO_BACKEND, _echo_backend, cores_alone_rate, cores_cpu_per_op, sim_rate
from smr.replica import backend_names


def test_cores_alone_counts_two_deliveries_direct_and_four_forwarded() -> None:
    """With 5 nodes round-robin, 1 request in 5 hits the coordinator (request + reply), 4 are forwarded (4 each)."""
    figures = cores_alone_rate(ops=100)
    assert figures["ops"] == 100
    assert figures["deliveries"] == 20 * 2 + 80 * 4


def test_echo_floor_runs_in_the_simulator_but_is_never_a_compared_backend() -> None:
    """The echo backend answers every request, and registering it keeps it out of comparisons."""
    name = _echo_backend()
    assert name == ECHO_BACKEND
    figures = sim_rate(200.0, trace=False, count_bytes=False, backend=name)
    assert figures["deliveries"] > 100  # ten clients, each request answered in a few ms
    assert ECHO_BACKEND not in backend_names(replicated_log_only=True)


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_cores_cpu_per_op_commits_every_put_on_every_replica(backend: str) -> None:
    """The cores-alone floor elects a leader, commits each put everywhere, and reports CPU per put."""
    assert cores_cpu_per_op(backend, batch=16, ops=160) > 0


def test_cores_cpu_per_op_refuses_a_run_that_did_not_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leader that never commits (a broken core) makes the figure an error, not a number."""
    from raft._core import RaftCore

    monkeypatch.setattr(RaftCore, "_may_commit", lambda self, index: False)
    with pytest.raises(RuntimeError, match="committed only"):
        cores_cpu_per_op("raft", batch=4, ops=8)
