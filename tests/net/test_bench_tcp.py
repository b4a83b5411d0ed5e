"""``smr bench tcp``'s machinery (never its speed): the sweep runs, and the acceptance lines judge figures right."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from smr.net._bench import _best_baseline, acceptance, embedded_sweep
from smr.net._sweep import fdatasync_ms, loopback_rtt_ms, process_cpu_seconds


def _system(name: str, mode: str, storage: str, rates: dict[int, float], p50: float = 1.0) -> dict[str, Any]:
    return {"system": name, "mode": mode, "storage": storage,
            "rows": [{"load": load, "throughput": rate, "p50_ms": p50} for load, rate in rates.items()]}


def test_the_baseline_is_pysyncobjs_best_setting_at_each_load() -> None:
    on = {**_system("pysyncobj", "embedded", "no sync", {1: 10, 1024: 9000}), "config": "appendEntriesUseBatch=True"}
    off = {**_system("pysyncobj", "embedded", "no sync", {1: 800, 1024: 2000}), "config": "appendEntriesUseBatch=False"}
    best = _best_baseline([on, off])
    assert (best[1]["throughput"], best[1]["config"]) == (800, "appendEntriesUseBatch=False")
    assert (best[1024]["throughput"], best[1024]["config"]) == (9000, "appendEntriesUseBatch=True")


def test_acceptance_lines_hold_only_when_every_load_clears_its_bar() -> None:
    best = _best_baseline([{**_system("pysyncobj", "embedded", "no sync", {1: 1000, 16: 1000, 64: 1000}),
                            "config": "x"}])
    floor = {"loopback_rtt_ms": 0.1, "fdatasync_ms": 1.0}
    fast = _system("raft", "embedded", "no sync", {1: 100, 16: 2000, 64: 2500})  # load 1 is not judged
    slow = _system("raft", "embedded", "no sync", {1: 9999, 16: 2000, 64: 1900})
    durable = _system("raft", "embedded", "fsync", {1: 500, 16: 1000, 64: 1000}, p50=1.7)
    served = _system("raft", "client-server", "no sync", {1: 1, 16: 1, 64: 1000})
    checks = acceptance([fast, slow, durable, served], best, floor)
    assert [holds for _, holds in checks] == [True, False, True, False, True]  # p50 1.7 > 1.5 x 1.1 = 1.65
    assert "(min 1.90x)" in checks[1][0] and "1.65 ms" in checks[3][0]


def test_the_floor_and_cpu_readings_are_real_measurements(tmp_path: Path) -> None:
    assert 0 < loopback_rtt_ms(count=50) < 1000
    assert 0 < fdatasync_ms(tmp_path, count=5) < 10_000
    import os
    assert process_cpu_seconds(os.getpid()) > 0
    assert process_cpu_seconds(2 ** 22 + 12345) != process_cpu_seconds(2 ** 22 + 12345)  # NaN: no such process


def test_an_embedded_sweep_runs_end_to_end(tmp_path: Path) -> None:
    args = argparse.Namespace(loads="1,4", seconds=0.3, value_size=10, max_ops=10_000, backend_options=None)
    rows = embedded_sweep(tmp_path / "raft", "raft", fsync=False, args=args)
    assert [r["load"] for r in rows] == [1, 4]
    assert rows[-1]["epochs"][0] == rows[-1]["epochs"][1]  # one leader throughout
    assert set(rows[-1]["counters"]) == {"n1", "n2", "n3"}
    for row in rows:
        assert row["ok"] > 0 and row["errors"] == 0 and row["p50_ms"] > 0
        assert set(row["cpu_us_per_op"]) == {"leader", *(n for n in ("n1", "n2", "n3") if n in row["cpu_us_per_op"])}
        assert len(row["cpu_us_per_op"]) == 3
