"""The measuring parts of ``smr bench sim`` count what they claim to count (speed itself is never asserted)."""

from __future__ import annotations

from smr.bench import ECHO_BACKEND, _echo_backend, cores_alone_rate, sim_rate
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
