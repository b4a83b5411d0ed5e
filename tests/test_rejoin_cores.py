"""An emptied node rejoining under its old id (``ReplicaConfig.rejoin_after``, ``smr serve --rejoin-empty``).

Both backends, in the in-memory :class:`smr.testing.Network` (invariants and
the commit ledger checked after every step).  A node whose disk was emptied
has forgotten every vote, promise and entry it acknowledged; booted as a
voter at once, its empty answers let a stale candidate win and lose a
committed write (the first test shows the invariants catch exactly that).
Booted as a rejoining core it campaigns, votes, promises and accepts nothing
until it has applied the log past its own removal; removed, added again and
caught up, it votes like any member.
"""

from __future__ import annotations

from typing import Any

import pytest

from smr.commands import get, put
from smr.membership import membership_command
from smr.replica import ReplyStatus
from smr.testing import Network

from multipaxos import MultiPaxosCore, MultiPaxosInvariants
from raft import RaftCore, RaftInvariants

BACKENDS: dict[str, tuple[Any, Any]] = {"raft": (RaftCore, RaftInvariants),
                                        "multipaxos": (MultiPaxosCore, MultiPaxosInvariants)}
_SEQ = [0]


def _network(backend: str) -> Network[Any]:
    """Three nodes of ``backend`` (alpha 4 for multi-Paxos), n1 elected."""
    factory, invariants = BACKENDS[backend]
    net: Network[Any] = Network(factory, 3, {"alpha": 4} if backend == "multipaxos" else {},
                                invariants=invariants())
    net.elect("n1")
    return net


def _ask(net: Network[Any], node: str, command: Any) -> tuple[str, Any]:
    """Send ``command`` to ``node`` under a new sequence number, settle; the last answer's (status, result)."""
    _SEQ[0] += 1
    net.request(node, command, client="c1", seq=_SEQ[0])
    net.settle()
    replies = net.replies_to("c1", _SEQ[0])
    assert replies, f"no answer to {command}"
    return replies[-1].status, replies[-1].result


def _run(net: Network[Any], ticks: int) -> None:
    """Tick every live node ``ticks`` times, settling after each round."""
    for _ in range(ticks):
        net.tick_all(1)
        net.settle()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rejoining", [False, True], ids=["voter-at-once", "rejoining"])
def test_an_emptied_node_answers_nobody_until_readmitted_else_a_committed_write_is_lost(
        backend: str, rejoining: bool) -> None:
    """n1 and n2 commit k=v while n3 is cut off; n2's disk is emptied and n1 crashes.  Booted as a voter
    at once (the broken variant), n2's empty vote or promise elects n3, which never heard of k=v: the
    invariants fail.  Booted as a rejoining core, n2 answers nothing, so no leader can lose the write."""
    net = _network(backend)
    net.isolate("n3")
    assert _ask(net, "n1", put("k", "v"))[0] == ReplyStatus.OK
    committed = net.status("n1").commit_index
    net.crash("n1")
    net.wipe("n2", rejoin_after=committed if rejoining else 0)
    net.recover()
    if not rejoining:
        with pytest.raises(AssertionError):
            _run(net, 60)
            _ask(net, net.leader() or "n3", put("k", "w"))  # multi-Paxos: the lost slot is chosen anew
        return
    _run(net, 60)
    assert net.leader() is None and net.status("n3").epoch > 0  # n3 campaigned, and nobody helped it win
    net.restart("n1")
    _run(net, 60)
    assert net.leader() in ("n1", "n3")
    for i in range(4):  # past the write (and, for multi-Paxos, the alpha slots after it)
        assert _ask(net, net.leader() or "n1", put(f"later{i}", "v"))[0] == ReplyStatus.OK
    _run(net, 20)
    assert net.cores["n2"].readmitted  # caught up past the write, it votes again
    assert _ask(net, net.leader() or "n1", get("k")) == (ReplyStatus.OK, "v")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_emptied_node_removed_and_added_again_catches_up_is_promoted_and_votes(backend: str) -> None:
    """The whole rejoin in the cores: n2, down, is removed; its disk is emptied; booted as a rejoining core
    it is added again, caught up from nothing (not promoted on what its lost incarnation had acknowledged),
    promoted, readmitted, and then elects a leader with n3 once n1 has crashed."""
    net = _network(backend)
    for i in range(6):
        assert _ask(net, "n1", put(f"k{i}", "v"))[0] == ReplyStatus.OK
    net.crash("n2")
    assert _ask(net, "n1", membership_command("remove", "n2"))[0] == ReplyStatus.OK
    net.wipe("n2", rejoin_after=net.status("n1").commit_index)
    leader: Any = net.cores["n1"]
    assert not net.cores["n2"].readmitted and not net.cores["n2"].retired
    _SEQ[0] += 1
    net.request("n1", membership_command("add", "n2", ""), client="c1", seq=_SEQ[0])
    for _ in range(200):  # the add enters the log; the leader knows nothing of the new n2 yet
        if "n2" in leader.applier.membership.members:
            break
        net.deliver(0)
    if backend == "raft":
        assert leader.progress["n2"].match == 0
    else:
        assert "n2" not in leader.peer_applied
    net.settle()
    _run(net, 40)
    assert "n2" in leader.applier.membership.voters
    n2 = net.cores["n2"]
    assert n2.readmitted and not n2.retired
    assert n2.applier.machine.snapshot() == leader.applier.machine.snapshot()
    net.crash("n1")
    _run(net, 80)
    assert net.leader() in ("n2", "n3")
    assert _ask(net, net.leader() or "n2", get("k5")) == (ReplyStatus.OK, "v")


@pytest.mark.parametrize("floor", [False, True], ids=["term-0", "rejoin-epoch"])
def test_a_rejoining_raft_node_acknowledges_nothing_for_a_leader_older_than_its_re_adding(floor: bool) -> None:
    """n1 wins term 1 (without check_quorum) and is cut off before anyone hears from it, holding k=stale;
    n2 and n3 elect n2 and commit k=real; n3's disk is emptied and it boots as a rejoining core that only
    n1 reaches.  Started at term 0 (the broken variant), n3 takes n1's stale appends and acknowledges
    them, so n1 counts it as the lost incarnation and commits k=stale where n2 committed k=real: the
    commit ledger fails.  Started at the epoch of a node whose commit index is past its re-adding
    (``rejoin_epoch``), it refuses them, n1 steps down, and k=real stands."""
    net: Network[Any] = Network(RaftCore, 3, {"check_quorum": False, "pre_vote": False},
                                invariants=RaftInvariants())
    net.campaign("n1")
    while not net.status("n1").is_leader:
        net.deliver(0)
    net.isolate("n1")  # its first appends die on the cut links: it never hears an acknowledgement
    _SEQ[0] += 1
    net.request("n1", put("k", "stale"), client="c1", seq=_SEQ[0])
    net.settle()
    net.elect("n2")
    assert _ask(net, "n2", put("k", "real"))[0] == ReplyStatus.OK
    point = net.status("n2")
    net.wipe("n3", rejoin_after=point.commit_index, rejoin_epoch=point.epoch if floor else 0)
    net.recover()
    net.isolate("n2")  # n3 hears only the stale leader

    def stale_leader_beats() -> None:
        for _ in range(20):
            net.tick("n1")
            net.settle()

    if not floor:
        with pytest.raises(AssertionError, match="state machine safety"):
            stale_leader_beats()
        return
    stale_leader_beats()
    assert not net.status("n1").is_leader and net.status("n1").epoch >= point.epoch
    assert net.status("n3").commit_index == 0  # it took nothing from the stale leader
    net.recover()
    _run(net, 60)
    assert _ask(net, net.leader() or "n2", get("k")) == (ReplyStatus.OK, "real")
