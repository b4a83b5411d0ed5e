"""Figures of one simulated run: throughput, latency, cost per command, availability."""

from __future__ import annotations

from typing import Any

import attrs

from .history import Outcome
from .stats import percentile as percentile
from .sim.engine import SimResult


@attrs.frozen
class RunSummary:
    """The comparable figures of one run (times in simulated milliseconds)."""

    backend: str
    seed: int
    ok: int
    failed: int
    unknown: int
    throughput: float
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    latency_max: float | None
    messages_per_command: float | None
    bytes_per_command: float | None
    leader_changes: int
    unavailability_ms: tuple[float, ...]
    violations: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the summary as plain JSON data."""
        return attrs.asdict(self, recurse=True)


def summarize(result: SimResult, fault_times: tuple[float, ...] = ()) -> RunSummary:
    """Compute the figures of ``result``; ``fault_times`` are when faults struck."""
    warmup = result.config.clients.warmup_ms
    ops = [op for op in result.history if op.invoke >= warmup]
    done = [op for op in ops if op.outcome is Outcome.OK]
    latencies = [op.end - op.invoke for op in done]
    seconds = max(result.config.duration_ms - warmup, 1e-9) / 1000.0
    peer_messages = sum(n for name, n in result.counters.sent.items()
                        if name not in ("ClientRequest", "Reply"))
    peer_bytes = sum(n for name, n in result.counters.bytes_sent.items()
                     if name not in ("ClientRequest", "Reply"))
    commits = len(result.committed)
    unavailable = []
    for t in fault_times:
        # Available again once an operation invoked after the fault completes
        # (operations already in flight at the fault say nothing about recovery).
        after = min((op.end for op in done if op.invoke >= t), default=None)
        unavailable.append(round((after if after is not None else result.end_time) - t, 3))
    return RunSummary(
        backend=result.config.backend, seed=result.seed, ok=len(done),
        failed=sum(op.outcome is Outcome.FAIL for op in ops),
        unknown=sum(op.outcome is Outcome.UNKNOWN for op in ops),
        throughput=round(len(done) / seconds, 3),
        latency_p50=percentile(latencies, 0.50), latency_p95=percentile(latencies, 0.95),
        latency_p99=percentile(latencies, 0.99), latency_max=max(latencies) if latencies else None,
        messages_per_command=round(peer_messages / commits, 3) if commits else None,
        bytes_per_command=round(peer_bytes / commits, 1) if commits and result.config.count_bytes else None,
        leader_changes=result.leader_changes, unavailability_ms=tuple(unavailable),
        violations=result.violations)
