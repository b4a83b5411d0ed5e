"""A user's state machine in every runtime: the same values refused, the same errors, the cluster keeps serving.

Also runs every script in ``examples/`` (the bank over a TCP cluster started by
``smr cluster up --app``, on both backends) and checks the README's line count.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from app_fixtures import Ledger
from test_apps import BAD_VALUES

import smr
from smr.commands import Command
from smr.machine import CommandError
from smr.net import open_local_tcp_cluster, open_tcp_client

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LOG_BACKENDS = ("raft", "multipaxos")
#: A value every runtime must hand back exactly as the simulator's commands hold it.
ROUND_TRIP = {"n": [1, -(2 ** 63), 2 ** 64 - 1, 2.5, None, True], "b": b"\x00\xff", "t": ("x", 1), "$k": {}}


def _type_error(call: Any) -> str:
    with pytest.raises(TypeError) as caught:
        call()
    return str(caught.value)


async def _errors_and_round_trip(ledger: Any) -> dict[str, Any]:
    """What a runtime answers: refusals at the call site, error replies, and a data-model round trip."""
    found: dict[str, Any] = {}
    for i, (value, _) in enumerate(BAD_VALUES):
        with pytest.raises(TypeError) as caught:
            await ledger.echo(value)
        found[f"bad{i}"] = str(caught.value)
    with pytest.raises(TypeError) as wrong:
        await ledger.credit("a")
    found["arity"] = str(wrong.value)
    with pytest.raises(AttributeError) as unknown:
        await ledger.nope()
    found["unknown"] = str(unknown.value)
    await ledger.credit("a", 3)
    with pytest.raises(CommandError) as raised:
        await ledger.debit("a", 5)
    found["raised"] = (raised.value.kind, raised.value.message)
    with pytest.raises(CommandError) as raw:
        await ledger.submit(Command("nope", "", (1,)))
    found["raw"] = (raw.value.kind, raw.value.message)
    found["serving"] = await ledger.credit("a", 1)
    found["attempts"] = await ledger.attempts()
    found["echo"] = await ledger.echo(ROUND_TRIP)
    return found


def _expected() -> dict[str, Any]:
    """The same calls judged without any cluster: what the simulator's commands and a bare Ledger give."""
    build = smr.commands_for(Ledger)
    found: dict[str, Any] = {f"bad{i}": _type_error(lambda v=value: build.echo(v))
                             for i, (value, _) in enumerate(BAD_VALUES)}
    found["arity"] = _type_error(lambda: build.credit("a"))
    with pytest.raises(AttributeError) as unknown:
        build.nope
    found["unknown"] = str(unknown.value)
    found.update(raised=("ValueError", "a holds 3, cannot pay 5"),
                 raw=("UnknownCommand", "Ledger has no command or query 'nope' (it has: attempts, balance, "
                                        "blob, credit, debit, echo)"),
                 serving=4, attempts=3, echo=build.echo(ROUND_TRIP).args[0])
    return found


@pytest.mark.parametrize("backend", LOG_BACKENDS)
async def test_the_local_cluster_refuses_and_answers_exactly_as_the_simulator_would(backend: str) -> None:
    async with smr.open_local_cluster(Ledger, backend=backend) as cluster:
        found = await _errors_and_round_trip(cluster.client(Ledger))
        assert found == _expected()
        leader = cluster.leader()
        assert leader is not None and all(node.alive for node in cluster.nodes.values())


@pytest.mark.parametrize("backend", LOG_BACKENDS)
async def test_the_tcp_cluster_refuses_and_answers_exactly_as_the_simulator_would(backend: str, tmp_path: Path) -> None:
    async with open_local_tcp_cluster(tmp_path, backend=backend, state_machine=Ledger) as cluster:
        async with open_tcp_client(cluster.cluster_file) as client:
            assert await _errors_and_round_trip(client.client(Ledger)) == _expected()
            with pytest.raises(CommandError, match="BadResult: the answer is larger than max_frame_bytes"):
                await client.client(Ledger).blob(cluster.config.max_frame_bytes)
            reports = await client.statuses(timeout=5.0)  # a busy CI machine can be slow to answer
            assert all(r is not None and r.app.endswith(("app_fixtures:Ledger", "app_fixtures.py:Ledger"))
                       for r in reports.values())
            sessions = [r.sessions for r in reports.values() if r is not None]
            assert all(s["max"] == 4096 and 1 <= s["open"] <= 4096 for s in sessions), sessions
        assert all(cluster.alive(node) for node in cluster.node_ids)

        def blocking() -> Any:
            with smr.connect(cluster.cluster_file, Ledger) as ledger:
                with pytest.raises(CommandError, match="cannot pay 100"):
                    ledger.debit("a", 100)
                return ledger.credit("a", 1)

        assert await trio.to_thread.run_sync(blocking) == 5


def test_a_client_of_the_wrong_app_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with smr.open_local_cluster("kv", backend="raft") as cluster:
            with pytest.raises(smr.ConfigError, match="this cluster runs kv, not Ledger"):
                cluster.client(Ledger)

    trio.run(main)


# ------------------------------------------------------------------ examples
def _run(args: list[str], cwd: Path, timeout: float = 120.0) -> str:
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_the_bank_example_runs_on_a_cluster_started_by_smr_cluster_up_app(backend: str, tmp_path: Path) -> None:
    up = subprocess.Popen([sys.executable, "-m", "smr", "cluster", "up", "--app", "examples/bank.py:Bank",
                           "--backend", backend, "--dir", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert up.stdout is not None
        lines = []
        for line in up.stdout:
            lines.append(line)
            if "Ctrl-C stops it" in line or up.poll() is not None:
                break
        assert "app: Bank (balance, deposit, transfer)" in "".join(lines), lines
        out = _run(["examples/bank.py", str(tmp_path / "cluster.yaml")], ROOT)
        assert out.strip() == "alice 70 bob 30"
        call = subprocess.run([sys.executable, "-m", "smr", "call", "transfer", "bob", "carol", "1000",
                               "--cluster", str(tmp_path / "cluster.yaml")], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert call.returncode == 1 and "Bank.transfer raised ValueError: bob cannot pay 1000" in call.stderr
        assert _run(["-m", "smr", "call", "balance", "bob", "--cluster", str(tmp_path / "cluster.yaml")],
                    ROOT).strip() == "30"
    finally:
        os.killpg(up.pid, signal.SIGINT)
        up.communicate(timeout=30)


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_the_embedded_bank_runs_as_three_programs_on_a_file_from_smr_cluster_init(backend: str,
                                                                                  tmp_path: Path) -> None:
    _run(["-m", "smr", "cluster", "init", "--dir", str(tmp_path), "--backend", backend,
          "--app", "examples/bank.py:Bank"], ROOT)
    programs = [subprocess.Popen([sys.executable, "embedded_bank.py", str(tmp_path / "cluster.yaml"), node],
                                 cwd=EXAMPLES, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for node in ("n1", "n2", "n3")]
    outputs = [p.communicate(timeout=60)[0] for p in programs]
    for node, program, out in zip(("n1", "n2", "n3"), programs, outputs):
        assert program.returncode == 0, out
        assert out.strip() == f"{node} {{'n1': 10, 'n2': 10, 'n3': 10}}", out
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["n1", "n2", "n3"]  # beside the file


def test_the_bank_runs_unchanged_in_the_simulator_and_in_process_on_both_backends() -> None:
    out = _run(["bank_everywhere.py"], EXAMPLES, timeout=300)
    for backend in LOG_BACKENDS:
        assert re.search(rf"{backend} +simulated: \d+ calls, \d+ raised in Bank, replicas agree: True", out), out
        assert re.search(rf"{backend} +in-process: alice 70, bob 30", out), out
        assert re.search(rf"{backend} +in-process: the cluster refused: ValueError: bob cannot pay 1000", out), out


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_the_lock_service_example_hands_the_lock_on_when_a_lease_runs_out(backend: str) -> None:
    out = _run(["locks.py", backend], EXAMPLES)
    assert sorted(out.splitlines()[:2]) == ["worker-1 took the lock", "worker-2 took the lock"]
    assert f"{backend}: worker-3 took the lock after the crashed worker's lease ran out" in out


def test_the_readme_counts_the_bank_and_its_pysyncobj_twin_truthfully() -> None:
    ours = sum(1 for line in (EXAMPLES / "bank.py").read_text().splitlines() if line.strip())
    theirs = sum(1 for line in (ROOT / "docs/comparison/bank_pysyncobj.py").read_text().splitlines()
                 if line.strip())
    assert ours <= theirs
    readme = (ROOT / "README.md").read_text()
    assert f"examples/bank.py` is {ours} non-blank lines" in readme
    assert f"PySyncObj twin is {theirs}" in readme
