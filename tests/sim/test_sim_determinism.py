"""The simulator's promise: one seed decides everything."""

from __future__ import annotations

import shlex

import pytest

from smr.cli import main
from smr.sim import ClientConfig, FaultEvent, NetworkConfig, SimConfig, simulate

CONFIG = SimConfig(
    backend="coordinator", nodes=5, duration_ms=600,
    network=NetworkConfig(loss=0.05, duplicate=0.05, reorder=0.2),
    clients=ClientConfig(count=4, workload="kv"), clock_skew=0.2,
    faults=(FaultEvent(200, "crash", node="n2"), FaultEvent(300, "partition_halves"),
            FaultEvent(400, "heal"), FaultEvent(450, "restart", node="n2")))


def test_same_seed_gives_a_byte_identical_trace() -> None:
    first = simulate(CONFIG, 42)
    second = simulate(CONFIG, 42)
    assert len(first.trace) > 100
    assert "\n".join(first.trace).encode() == "\n".join(second.trace).encode()
    assert first.history == second.history
    assert first.counters.to_json() == second.counters.to_json()


def test_a_different_seed_gives_a_different_trace() -> None:
    assert simulate(CONFIG, 42).trace != simulate(CONFIG, 43).trace


def test_swarm_settings_come_from_the_seed() -> None:
    swarm = SimConfig(nodes=3, duration_ms=300, swarm=True)
    notes = {simulate(swarm, seed).swarm for seed in range(8)}
    assert len(notes) > 1, "every seed drew the same fault settings"
    assert simulate(swarm, 5).trace == simulate(swarm, 5).trace


def test_replay_command_names_the_seed() -> None:
    result = simulate(SimConfig(nodes=3, duration_ms=50, swarm=True), 77)
    assert result.replay.startswith("smr sim ") and result.replay.endswith("--seed 77")


def test_the_printed_replay_command_reproduces_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    """A programmatic config (options, faults, clients) replays exactly from its printed command."""
    result = simulate(CONFIG, 8)
    command = result.replay
    assert command.startswith("smr sim --config ")
    argv = shlex.split(command)[1:] + ["--trace", "-"]
    assert main(argv) == 0
    printed = capsys.readouterr().out.rstrip("\n").split("\n")
    assert printed == list(result.trace)


def test_backend_options_reach_the_replay() -> None:
    config = SimConfig(backend="raft", nodes=3, duration_ms=50, backend_options={"pre_vote": True})
    assert '"pre_vote":true' in simulate(config, 1).replay
