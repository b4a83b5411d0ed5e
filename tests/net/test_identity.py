"""The admission rules of smr.net._identity, one by one (the end-to-end cases are in test_wiped_nodes.py)."""

from __future__ import annotations

from smr import commands as c
from smr.net._identity import JOIN, STAY_OUT, WAIT, Identity, Membership, admission
from smr.replica import ClientRequest
from smr.sessions import Applier
from smr.state_machines import KVStore

PEERS = ("n2", "n3")


def _fresh(node: str = "n1") -> Membership:
    return Membership.load(node, {}, has_data=False)[0]


def test_a_fresh_node_waits_for_every_peer_then_joins_a_new_cluster() -> None:
    me = _fresh()
    heard = {"n2": Identity("n2", "b", False)}
    assert admission(me, PEERS, heard)[0] == WAIT
    heard["n3"] = Identity("n3", "c", False)
    assert admission(me, PEERS, heard)[0] == JOIN


def test_a_fresh_node_stays_out_if_a_joined_peer_remembers_another_incarnation_and_joins_if_its_own() -> None:
    me = _fresh()
    stranger = {"n2": Identity("n2", "b", True, {"n1": "someone-else", "n3": "c"})}
    assert admission(me, PEERS, stranger)[0] == STAY_OUT
    known = {"n2": Identity("n2", "b", True, {"n1": me.incarnation, "n3": "c"})}
    assert admission(me, PEERS, known)[0] == JOIN


def test_a_joined_node_refuses_an_emptied_peer_and_a_legacy_node_learns_only_joined_peers() -> None:
    joined = Membership("n1", "a", True, {"n2": "b", "n3": "c"})
    assert joined.refuses(Identity("n2", "b", True)) is None
    assert "emptied or replaced" in (joined.refuses(Identity("n2", "b2", False)) or "")
    legacy, new = Membership.load("n1", {}, has_data=True)  # a directory from before incarnations
    assert new and legacy.joined and legacy.members == {}
    assert legacy.refuses(Identity("n2", "b", True)) is None and legacy.learn(Identity("n2", "b", True))
    fresh_peer = Identity("n3", "c", False)  # a fresh directory it has no record of: never learned
    assert legacy.refuses(fresh_peer) is not None and not legacy.learn(fresh_peer)
    assert legacy.members == {"n2": "b"}
    assert legacy.refuses(Identity("n2", "b-emptied", False)) is not None


def test_the_same_seq_with_an_equal_but_differently_typed_value_is_another_command() -> None:
    """1 == True in Python, but put k 1 and put k True are different commands: refused, not answered."""
    applier = Applier(KVStore)
    assert applier.apply(ClientRequest("c1", 1, c.put("k", 1)))[0] == "ok"
    done, status, result = applier.lookup(ClientRequest("c1", 1, c.put("k", True)))
    assert done and status == "error" and result["error"] == "SequenceReused"
    assert applier.apply(ClientRequest("c1", 1, c.put("k", True)))[0] == "error"
    assert applier.machine.apply(c.get("k")) == 1
