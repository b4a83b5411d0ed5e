"""The driver every runtime wraps around a core (smr.driver): the contract it enforces, and the shared rules.

Like etcd raft's ``rawnode_test.go``: the wrapper is tested on its own, with a
tiny scripted core, then once on real cores through the runtimes that use it.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

import attrs
import pytest

from smr.commands import put
from smr.driver import CommitLedger, Driver, apply_writes, current_leader
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.net._messages import StatusReport
from smr.replica import (EMPTY, TICK, ClientRequest, Committed, Ready, ReplicaConfig, ReplicaStatus,
                         Receive, Role, Send, Start, Write)
from smr.state_machines import WriteOnceMap


class ScriptedCore:
    """A core that answers each input with whatever the test scripted next, and reports a settable status."""

    backend: ClassVar[str] = "scripted"

    def __init__(self, node: str = "n1") -> None:
        self.node = node
        self.role: str = Role.FOLLOWER
        self.epoch = 0
        self.outputs: list[Ready | Exception] = []
        self.inputs: list[Any] = []

    def step(self, event: Any) -> Ready:
        """Record ``event``; return (or raise) the next scripted output, else the empty batch."""
        self.inputs.append(event)
        out = self.outputs.pop(0) if self.outputs else EMPTY
        if isinstance(out, Exception):
            raise out
        return out

    def status(self) -> ReplicaStatus:
        """The scripted role and epoch."""
        return ReplicaStatus(self.node, self.role, self.epoch, None, 0)


SOMETHING = Ready(messages=(Send("n2", "hello"),))


def started(core: ScriptedCore | None = None) -> Driver[ScriptedCore]:
    """A driver around ``core`` that has had its Start."""
    driver = Driver(core or ScriptedCore(), "n1")
    driver.step(Start())
    return driver


# ------------------------------------------------------------ the contract
def test_the_first_input_must_be_start() -> None:
    core = ScriptedCore()
    driver = Driver(core, "n1")
    with pytest.raises(LocalProtocolError, match=r"n1: ScriptedCore must get Start first, not Tick\(\)"):
        driver.step(TICK)
    assert core.inputs == []  # the core never saw it
    driver.step(Start({"k": 1}))
    driver.step(TICK)
    assert core.inputs == [Start({"k": 1}), TICK]


def test_start_is_given_once_per_incarnation() -> None:
    driver = started()
    with pytest.raises(LocalProtocolError, match=r"n1: Start given twice to one incarnation of ScriptedCore"):
        driver.step(Start())
    assert driver.core.inputs == [Start()]


def test_an_input_of_unknown_type_is_a_local_error_naming_node_core_and_input() -> None:
    driver = started()
    with pytest.raises(LocalProtocolError, match=r"n1: ScriptedCore cannot step 'junk' \(it takes Start, then "
                                                 r"ClientRequest, Receive, Synced, Tick\)"):
        driver.step("junk")
    assert driver.core.inputs == [Start()]


def test_a_core_declares_its_own_local_inputs() -> None:
    from synod.core import Propose
    from synod.paxos import Campaign, PaxosSynod

    config = ReplicaConfig("n1", ("n2", "n3"), random.Random(0), WriteOnceMap, {})
    driver = Driver(PaxosSynod(config))
    driver.step(Start())
    assert driver.step(Campaign())  # phase 1 starts: Prepares go out
    driver.step(Propose("red"))
    with pytest.raises(LocalProtocolError, match="cannot step"):
        driver.step(put("x", "1"))  # a bare command, not a ClientRequest
    assert driver.node == "n1"  # read from the core's status when not given


def test_the_node_is_named_in_errors_even_when_not_given() -> None:
    driver = Driver(ScriptedCore("n7"))
    with pytest.raises(LocalProtocolError, match="^n7: "):
        driver.step(TICK)


# ------------------------------------------------------------ remote errors
def test_a_remote_error_is_counted_kept_and_hooked_and_the_step_returns_the_empty_batch() -> None:
    seen: list[tuple[str, str]] = []
    core = ScriptedCore()
    driver = Driver(core, "n1", on_reject=lambda node, exc: seen.append((node, str(exc))))
    driver.step(Start())
    core.outputs = [RemoteProtocolError("garbage from n9"), SOMETHING, RemoteProtocolError("more garbage")]
    assert driver.step(Receive("n9", "x")) is EMPTY and driver.rejected
    assert driver.step(TICK) == SOMETHING and not driver.rejected
    assert driver.step(Receive("n9", "y")) is EMPTY and driver.rejected
    assert driver.remote_errors == 2
    assert driver.last_reject == "more garbage"
    assert seen == [("n1", "garbage from n9"), ("n1", "more garbage")]


def test_a_local_error_from_the_core_is_not_swallowed() -> None:
    core = ScriptedCore()
    driver = started(core)
    core.outputs = [LocalProtocolError("misuse")]
    with pytest.raises(LocalProtocolError, match="misuse"):
        driver.step(TICK)
    assert driver.remote_errors == 0


# ------------------------------------------------------------ role changes
def test_becoming_leader_is_reported_once_per_epoch_after_a_non_empty_batch() -> None:
    core = ScriptedCore()
    driver = started(core)
    core.role, core.epoch = Role.LEADER, 1
    driver.step(TICK)  # nothing said yet: not looked at
    assert driver.became_leader is None
    core.outputs = [SOMETHING, SOMETHING]
    driver.step(TICK)
    assert driver.became_leader == 1 and driver.leader_changes == 1
    driver.step(TICK)
    assert driver.became_leader is None and driver.leader_changes == 1  # same epoch: no change
    core.epoch = 2
    core.outputs = [SOMETHING]
    driver.step(TICK)
    assert driver.became_leader == 2 and driver.leader_changes == 2
    core.role = Role.FOLLOWER
    core.outputs = [SOMETHING]
    driver.step(TICK)
    assert driver.became_leader is None and driver.last_status is not None
    assert driver.last_status.role == Role.FOLLOWER
    core.role = Role.LEADER  # leads again in the same epoch after stepping down: a new leadership
    core.outputs = [SOMETHING]
    driver.step(TICK)
    assert driver.became_leader == 2 and driver.leader_changes == 3


def test_the_coordinator_counts_as_a_leader() -> None:
    core = ScriptedCore()
    core.role = Role.COORDINATOR
    core.outputs = [SOMETHING]
    driver = Driver(core, "n1")
    driver.step(Start())
    assert driver.became_leader == 0


def test_a_real_raft_election_is_one_leader_change() -> None:
    from raft.testing import Network

    net = Network(3)
    net.elect("n1")
    assert net.drivers["n1"].leader_changes == 1
    assert [net.drivers[n].leader_changes for n in ("n2", "n3")] == [0, 0]
    assert net.leader() == "n1"


# ------------------------------------------------------------ writes
def test_apply_writes_sets_overwrites_and_deletes_in_order() -> None:
    durable: dict[str, Any] = {"a": 0, "gone": 1}
    apply_writes(durable, [Write("a", 1), Write("b", 2), Write("a", 3), Write("gone", None),
                           Write("never-there", None), Write("b", None), Write("b", 4)])
    assert durable == {"a": 3, "b": 4}
    apply_writes(durable, ())
    assert durable == {"a": 3, "b": 4}


# ------------------------------------------------------------ who leads
def status(node: str, role: str, epoch: int) -> ReplicaStatus:
    """A status line for ``node``."""
    return ReplicaStatus(node, role, epoch, None, 0)


def test_the_leader_is_the_leading_claim_with_the_highest_epoch() -> None:
    assert current_leader([]) is None
    assert current_leader([status("n1", Role.FOLLOWER, 5), status("n2", Role.CANDIDATE, 6)]) is None
    assert current_leader([status("n1", Role.LEADER, 2), status("n2", Role.LEADER, 3),
                           status("n3", Role.FOLLOWER, 4)]) == "n2"
    assert current_leader([status("n1", Role.LEADER, 3), status("n2", Role.LEADER, 3)]) == "n1"  # first wins


def test_the_coordinator_leads_and_so_do_plain_role_strings() -> None:
    assert current_leader([status("n1", Role.REPLICA, 0), status("n3", Role.COORDINATOR, 0)]) == "n3"
    assert current_leader([status("n1", "leader", 1)]) == "n1"  # a role as its string value


def test_the_tcp_status_reports_use_the_same_rule() -> None:
    reports = [StatusReport("n1", "raft", "follower", 4, "n2", 0, 1.0),
               StatusReport("n2", "raft", "leader", 4, "n2", 0, 1.0),
               StatusReport("n3", "raft", "leader", 3, "n3", 0, 1.0)]
    assert current_leader(reports) == "n2"


# ------------------------------------------------------------ the commit ledger
ENTRY = ClientRequest("c1", 1, put("x", "1"))
OTHER = ClientRequest("c1", 2, put("x", "2"))


def test_the_ledger_keeps_one_canonical_history() -> None:
    ledger = CommitLedger()
    ledger.record("n1", Committed(1, ENTRY))
    ledger.record("n2", Committed(1, ENTRY))
    ledger.record("n1", Committed(2, OTHER))
    assert ledger.entries == {1: ENTRY, 2: OTHER}
    assert ledger.last("n1") == 2 and ledger.last("n3") == 0
    with pytest.raises(AssertionError, match=r"state machine safety: n3 committed .* at index 2, but .* was "
                                             r"committed there before"):
        ledger.record("n3", Committed(2, ENTRY))


def test_a_node_commits_in_order_within_an_incarnation() -> None:
    ledger = CommitLedger()
    ledger.record("n1", Committed(1, ENTRY))
    with pytest.raises(AssertionError, match="n1 committed index 1 after index 1"):
        ledger.record("n1", Committed(1, ENTRY))
    ledger.boot("n1")  # a restart re-applies from its snapshot
    ledger.record("n1", Committed(1, ENTRY))


def test_the_ledger_raises_the_runtimes_own_error() -> None:
    @attrs.define
    class Unsafe(Exception):
        message: str

    ledger = CommitLedger(Unsafe)
    ledger.record("n1", Committed(3, ENTRY))
    with pytest.raises(Unsafe):
        ledger.record("n1", Committed(2, ENTRY))


# ------------------------------------------------------------ the runtimes use it
def test_the_test_network_drops_a_rejected_input_and_records_it() -> None:
    from raft import RaftCore
    from smr.testing import Network

    net = Network(RaftCore, 3, seed=1)
    before = len(net.in_flight)
    assert net.step("n1", Receive("n9", "hello")) == Ready()
    assert len(net.remote_errors) == 1 and "unexpected str from n9" in net.remote_errors[0]
    assert net.drivers["n1"].remote_errors == 1 and len(net.in_flight) == before


def test_the_simulator_counts_leader_changes_from_the_driver() -> None:
    from smr.sim import SimConfig, simulate

    result = simulate(SimConfig(backend="raft", duration_ms=2000), seed=3)
    leads = [line for line in result.trace if " LEADER epoch=" in line]
    assert result.leader_changes == len(leads) >= 1


def test_the_live_cluster_steps_cores_through_drivers() -> None:
    import trio

    from smr.live import open_local_cluster

    async def main() -> None:
        async with open_local_cluster(backend="coordinator", n=3, tick_ms=1.0) as cluster:
            await cluster.submit(put("x", "1"))
            assert cluster.leader() == "n3"
            driver = cluster.nodes["n1"].driver
            assert driver is not None and driver.started
            with pytest.raises(LocalProtocolError, match="Start given twice"):
                driver.step(Start())

    trio.run(main)
