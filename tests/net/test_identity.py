"""The admission rules of smr.net._identity, one by one (the end-to-end cases are in test_wiped_nodes.py)."""

from __future__ import annotations

from smr import commands as c
from smr.net._identity import HOLD, JOIN, STAY_OUT, WAIT, Identity, Membership, admission
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


def test_an_emptied_node_never_starts_a_new_cluster_but_rejoins_past_a_joined_peer() -> None:
    """Its directory known emptied (--rejoin-empty, the watermark outlived the database): every peer new
    is no reason to start afresh -- it holds -- while a joined peer remembering its old incarnation sends
    it the usual way (stay out, or with the flag, rejoin)."""
    me = _fresh()
    all_new = {"n2": Identity("n2", "b", False), "n3": Identity("n3", "c", False)}
    assert admission(me, PEERS, all_new)[0] == JOIN
    me.emptied = True
    verdict, why = admission(me, PEERS, all_new)
    assert verdict == HOLD and "would lose everything it acknowledged" in why
    assert admission(me, PEERS, {"n2": all_new["n2"]})[0] == WAIT
    member = {**all_new, "n2": Identity("n2", "b", True, {"n1": "old", "n3": "c"})}
    assert admission(me, PEERS, member)[0] == STAY_OUT


def test_a_fresh_node_never_starts_a_cluster_with_emptied_peers_nor_do_they_join_it() -> None:
    """n1 and n2 lost their databases (COMMITS kept: emptied, they hold); n3's whole directory is gone (it
    cannot tell).  The emptied peers say so in their identity, so n3 holds too instead of starting a new,
    empty cluster with them; and an emptied node never joins one that remembers its fresh incarnation."""
    n1, n2 = _fresh("n1"), _fresh("n2")
    n1.emptied = n2.emptied = True
    n3 = _fresh("n3")
    assert n1.identity().emptied and not n3.identity().emptied
    heard = {"n1": n1.identity(), "n2": n2.identity()}
    verdict, why = admission(n3, ("n1", "n2"), heard)
    assert verdict == HOLD and "n1, n2 found their data directory emptied" in why
    joined_n3 = Identity("n3", n3.incarnation, True, {"n1": n1.incarnation, "n2": n2.incarnation})
    assert admission(n1, ("n2", "n3"), {"n3": joined_n3})[0] == HOLD
    assert admission(_fresh("n1"), ("n2", "n3"), {"n3": Identity("n3", "c", True, {})})[0] == STAY_OUT


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


def test_a_node_added_again_joins_past_members_that_remember_only_the_incarnation_it_replaces() -> None:
    """--rejoin-empty: once its id was removed and added again, a member still remembering the replaced
    incarnation counts as having no record; one remembering any other incarnation keeps it out."""
    me = _fresh("n2")
    stale = {"n1": Identity("n1", "a", True, {"n2": "old", "n3": "c"})}
    assert admission(me, ("n1", "n3"), stale, added=True)[0] == STAY_OUT
    assert admission(me, ("n1", "n3"), stale, added=True, replaces=("old",))[0] == JOIN
    other = {"n1": Identity("n1", "a", True, {"n2": "someone-else"})}
    assert admission(me, ("n1", "n3"), other, added=True, replaces=("old",))[0] == STAY_OUT
    assert "--rejoin-empty" in admission(me, ("n1", "n3"), stale)[1]  # the refusal says how to come back


def REMOVED(node: str) -> bool:
    """Every id counts as removed by the log (the tombstone tests below are about the rest)."""
    return True


def test_a_tombstone_for_an_id_the_log_never_removed_is_ignored() -> None:
    """A peer with the cluster's credentials cannot make a member forget a live node's incarnation (and then
    admit an impostor under its id): the member's own log must have removed that id (review finding)."""
    member = Membership("n1", "a", True, {"n2": "b", "n3": "c"})
    impostor = Identity("n3", "evil", True, {}, {"n3": ["c"]})
    assert not member.heed(impostor, lambda node: False)
    assert member.members["n3"] == "c" and member.refuses(impostor) is not None


def test_a_member_forgets_a_replaced_incarnation_it_hears_of_and_never_learns_it_again() -> None:
    """A rejoined node reports the incarnation it replaced: members that remember it forget it (and then let
    the new one in), keep the tombstone, pass it on, and a peer that has not heard yet cannot teach it back."""
    member = Membership("n1", "a", True, {"n2": "old", "n3": "c"})
    rejoined = Identity("n2", "new", True, {"n1": "a", "n3": "c"}, {"n2": ["old"]})
    assert member.refuses(rejoined) is not None  # without the tombstone: another directory, refused
    assert member.heed(rejoined, REMOVED) and member.refuses(rejoined) is None and member.learn(rejoined)
    assert member.members == {"n2": "new", "n3": "c"} and member.identity().forgotten == {"n2": ["old"]}
    lagging = Membership("n3", "c", True, {"n1": "a"})
    assert lagging.learn(Identity("n1", "a", True, {"n2": "old"}, {})) and lagging.members["n2"] == "old"
    fresh_member = Membership("n4", "d", True, {})  # no record of n2: it keeps the tombstone all the same
    assert fresh_member.heed(rejoined, REMOVED) and not fresh_member.heed(rejoined, REMOVED)
    assert fresh_member.learn(Identity("n3", "c", True, {"n2": "old"})) and "n2" not in fresh_member.members
    assert "was removed" in (member.refuses(Identity("n2", "old", True)) or "")  # the old one, if it comes back
    assert not Membership("n5", "e", False, {"n2": "old"}).heed(rejoined, REMOVED)  # only a joined node forgets
    assert not member.heed(Identity("n3", "c", False, {}, {"n3": ["c"]}), REMOVED)  # and only what a joined peer says
    rows = Membership.load("n1", member.rows(), has_data=True)[0]
    assert rows.forgotten == {"n2": ["old"]} and rows.members == member.members
