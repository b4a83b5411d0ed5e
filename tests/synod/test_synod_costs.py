"""Paxos synod costs: 4 one-way delays from a cold start, 2 with a pre-established leader."""

from __future__ import annotations

from synod import measure_costs


def test_paxos_decides_in_four_delays_cold_and_two_warm() -> None:
    costs = measure_costs(nodes=5, latency_ms=1.0)
    assert costs.cold.delays == 4  # prepare, promise, accept, accepted
    assert costs.warm.delays == 2  # accept, accepted
    assert costs.cold.messages_total == {"Prepare": 5, "Promise": 5, "Accept": 5, "Accepted": 25}
    assert costs.warm.messages_total == {"Accept": 5, "Accepted": 25}
    assert "4 one-way delays" in costs.format()


def test_delays_do_not_depend_on_latency_or_size() -> None:
    costs = measure_costs(nodes=3, latency_ms=2.5)
    assert (costs.cold.delays, costs.warm.delays) == (4, 2)
