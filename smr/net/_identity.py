"""Node identity: an emptied data directory never rejoins as if it had never promised anything.

A node that votes or accepts with an empty directory has forgotten every vote,
promise and entry it acknowledged -- the classic way to lose committed
entries in Raft and Paxos alike.  So every data directory holds an
*incarnation* (random, written at its first start) and, once the node has
joined its cluster, the incarnations of its peers.  Each peer connection
opens with an :class:`Identity` frame saying who is dialling.

* A node that has joined refuses a peer whose incarnation is not the one it
  remembers (that peer's directory was emptied or replaced): the connection
  is closed and counted, so nothing that node says reaches the core.
* A node with a fresh directory joins only when it knows the cluster is new
  -- every peer says it is fresh too -- or when a peer that has joined
  remembers this very incarnation (it was admitted, then restarted before it
  wrote so down).  If a joined peer remembers another incarnation, this
  directory was emptied: the node stays out (running, answering
  ``smr status``, voting and accepting nothing) and says so.
* A directory from before incarnations existed, holding data, counts as
  joined and learns the incarnations of peers that have joined too on first
  contact (a fresh peer it has no record of is refused).

* A node *added at run time* (not one of the cluster's original voters:
  ``ClusterConfig.added``) starts from a fresh directory by design.  It does
  not wait for a new cluster: it joins when a member that has joined dials
  it (the cluster's leader does, once the change that adds it is in the
  log) and has no record of this id, or remembers this very incarnation; if
  that member remembers *another* incarnation, this id was here before with
  another directory, and the node stays out as any emptied node does.  Its
  core is a joiner (``ReplicaConfig.joining``): it votes only once the log
  makes it a voter.
* Joined nodes tell each other the incarnations they remember (``members``
  in every :class:`Identity`), so a node learns an added node's incarnation
  even if that node never dialled it.
* An emptied node brought back under its id (``smr serve --rejoin-empty``,
  :mod:`smr.net._rejoin`) has the cluster remove the id, then add it again,
  and joins as an added node that knows which incarnations it replaces
  (``replaces`` in :func:`admission`: those its peers remembered before the
  removal was committed).  It tells every peer it dials that they are
  *forgotten* (tombstones, :attr:`Identity.forgotten`); a joined node that
  remembers a tombstoned incarnation forgets it (:meth:`Membership.heed`),
  keeps the tombstone, passes it on and never learns that incarnation again
  from a peer that has not heard yet -- but only once its own log shows that
  id removed (``removed``): a peer that merely says so, with the cluster's
  credentials, cannot make members forget a live node and let an impostor in
  under its id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

from smr import wire

#: ``meta`` keys in a node's storage.
INCARNATION_KEY, JOINED_KEY, MEMBERS_KEY, FORGOTTEN_KEY = "incarnation", "joined", "members", "forgotten"

#: What :func:`admission` decides for a node with a fresh directory.
WAIT, JOIN, STAY_OUT = "wait", "join", "stay out"
#: An emptied directory among new peers: it stays out, but a joined member dialling in later may let it rejoin.
HOLD = "hold"


@wire.message
@attrs.frozen
class Identity:
    """The first frame on a peer connection: who dials, and what it remembers of the cluster."""

    node: str
    incarnation: str
    joined: bool
    members: dict[str, str] = attrs.field(factory=dict)
    #: Incarnations the dialler knows were removed by a committed change, by node (tombstones).
    forgotten: dict[str, list[str]] = attrs.field(factory=dict)
    #: The dialler has not joined, and its directory was found emptied (it had acknowledged writes): the
    #: cluster it belongs to is not new, whatever else it says.
    emptied: bool = False


@attrs.define
class Membership:
    """This node's incarnation, whether it has joined, the peers' incarnations it remembers, and those it
    forgot because the cluster removed them (``forgotten``: node -> incarnations, oldest first)."""

    node: str
    incarnation: str
    joined: bool
    members: dict[str, str]
    forgotten: dict[str, list[str]] = attrs.field(factory=dict)
    #: Not joined, and the directory was found emptied (storage's ``emptied``; not stored with the rows).
    emptied: bool = False

    @classmethod
    def load(cls, node: str, meta: Mapping[str, str], has_data: bool) -> tuple["Membership", bool]:
        """Read it from ``meta`` (a storage's meta rows); True if it is new and must be written."""
        incarnation = meta.get(INCARNATION_KEY)
        if incarnation is None:  # a fresh directory, or one from before incarnations (with data: joined)
            return cls(node, secrets.token_hex(8), has_data, {}), True
        members = json.loads(meta.get(MEMBERS_KEY, "{}"))
        forgotten = json.loads(meta.get(FORGOTTEN_KEY, "{}"))
        return cls(node, incarnation, meta.get(JOINED_KEY) == "1", dict(members),
                   {n: list(incs) for n, incs in forgotten.items()}), False

    def rows(self) -> dict[str, str]:
        """The meta rows that record it."""
        return {INCARNATION_KEY: self.incarnation, JOINED_KEY: "1" if self.joined else "0",
                MEMBERS_KEY: json.dumps(self.members, sort_keys=True),
                FORGOTTEN_KEY: json.dumps(self.forgotten, sort_keys=True)}

    def identity(self) -> Identity:
        """What this node says first on every connection it dials."""
        return Identity(self.node, self.incarnation, self.joined, dict(self.members),
                        {n: list(incs) for n, incs in self.forgotten.items()}, self.emptied and not self.joined)

    def refuses(self, peer: Identity) -> str | None:
        """Why a joined node refuses ``peer`` (None: it is the incarnation remembered, or a new one learned)."""
        known = self.members.get(peer.node)
        if not self.joined or known == peer.incarnation:
            return None
        if peer.incarnation in self.forgotten.get(peer.node, ()):
            return (f"{peer.node}'s incarnation {peer.incarnation} was removed from the cluster (its id was "
                    f"added again for another data directory)")
        if known is None:  # a directory from before incarnations, or a rejoined node's: learn joined peers
            return None if peer.joined else (
                f"{peer.node} comes with a fresh data directory and this node has no record of it joining: "
                f"it would vote and accept as if it had never promised anything")
        return (f"{peer.node}'s data directory is not the one that joined (incarnation {peer.incarnation}, "
                f"remembered {known}): it was emptied or replaced")

    def learn(self, peer: Identity) -> bool:
        """Remember ``peer``'s incarnation, and those it remembers, where this joined node has none; True if
        that changed anything.  (Nothing is learned from a peer that has not joined; nothing ever replaces
        a record; at most MAX_REMEMBERED records are kept.)"""
        if not self.joined or not peer.joined:
            return False
        changed = False
        gossip = sorted(peer.members.items()) if len(peer.members) <= MAX_REMEMBERED else []  # else: not sane
        for node, incarnation in ((peer.node, peer.incarnation), *gossip):
            if (node == self.node or node in self.members or len(self.members) >= MAX_REMEMBERED
                    or not _plausible(node, incarnation) or incarnation in self.forgotten.get(node, ())):
                continue
            self.members[node] = incarnation
            changed = True
        return changed

    def heed(self, peer: Identity, removed: Callable[[str], bool]) -> bool:
        """Forget what joined ``peer`` reports forgotten (the cluster removed those incarnations) and keep
        those tombstones -- for the ids ``removed`` says this node's own log removed; True if that changed
        anything.  Call it before :meth:`refuses`: a node that rejoined reports the incarnation it replaces."""
        if not self.joined or not peer.joined or _tombstones(peer.forgotten) > MAX_REMEMBERED:
            return False
        changed = False
        for node, incarnations in sorted(peer.forgotten.items()):
            for incarnation in incarnations:
                if node == self.node or not _plausible(node, incarnation) \
                        or incarnation in self.forgotten.get(node, ()) or not removed(node):
                    continue
                if self.members.get(node) == incarnation:
                    self.forget(node)
                else:
                    self.remember_forgotten(node, [incarnation])
                changed = True
        return changed

    def forget(self, node: str) -> bool:
        """Drop the record of ``node`` (a committed change removed that incarnation: a later node under its
        id is a new one) and keep its incarnation as a tombstone; True if there was a record."""
        incarnation = self.members.pop(node, None)
        if incarnation is None:
            return False
        self.remember_forgotten(node, [incarnation])
        return True

    def remember_forgotten(self, node: str, incarnations: list[str]) -> None:
        """Keep ``incarnations`` of ``node`` as tombstones (the oldest go beyond MAX_REMEMBERED in all)."""
        kept = self.forgotten.setdefault(node, [])
        kept.extend(i for i in incarnations if i not in kept)
        while _tombstones(self.forgotten) > MAX_REMEMBERED:
            oldest = next(iter(self.forgotten))
            self.forgotten[oldest].pop(0)
            if not self.forgotten[oldest]:
                del self.forgotten[oldest]


#: The most peer incarnations a node remembers (a configuration holds at most 64 members; removed ones
#: are forgotten), and the longest id and incarnation it keeps.
MAX_REMEMBERED = 256
MAX_ID_CHARS = 64


def _tombstones(forgotten: Mapping[str, list[str]]) -> int:
    """How many incarnations ``forgotten`` holds."""
    return sum(len(incarnations) for incarnations in forgotten.values())


def _plausible(node: Any, incarnation: Any) -> bool:
    """True for a node id and incarnation of a sane shape (a joined peer's record of a third node)."""
    return (isinstance(node, str) and isinstance(incarnation, str) and 0 < len(node) <= MAX_ID_CHARS
            and 0 < len(incarnation) <= MAX_ID_CHARS)


#: How an emptied node is brought back, as its refusals say.
REMEDY = ("restore the directory from a backup, or restart this node with --rejoin-empty (it then has the "
          "cluster remove its id and add it again, and catches up before it votes)")


def admission(me: Membership, peers: tuple[str, ...], heard: Mapping[str, Identity],
              added: bool = False, replaces: Collection[str] = ()) -> tuple[str, str]:
    """For a node whose directory is fresh: WAIT, JOIN, STAY_OUT or HOLD, and why, from the peers heard so far.

    ``added``: this node was added at run time (it is not one of the cluster's
    original voters), so it never waits for a new cluster: a joined member
    with no record of it (the one adding it) lets it join.  ``replaces``: the
    incarnations of this id the cluster has removed since this directory was
    made (a rejoining node's, :mod:`smr.net._rejoin`): a member that still
    remembers one of them counts as having no record.  A directory known
    emptied (``me.emptied``: its watermark outlived its database) never
    starts a new cluster: it stays out even when every peer is new (HOLD),
    rather than forget what it acknowledged.
    """
    if added:
        return _admission_added(me, heard, replaces)
    emptied = me.emptied
    for peer in heard.values():
        if peer.joined:
            remembered = peer.members.get(me.node)
            if remembered == me.incarnation and emptied:
                return HOLD, (f"this node's data directory was emptied, and {peer.node} joined a cluster with "
                              f"the incarnation it started afresh with: that cluster began after the data was "
                              f"lost, without what it acknowledged; {REMEDY}")
            if remembered == me.incarnation:
                return JOIN, f"{peer.node} remembers this incarnation: it joined before"
            return STAY_OUT, (f"this node's data directory is empty, but {peer.node} has joined the cluster and "
                              f"remembers this node as incarnation {remembered}: it would vote and accept as if it "
                              f"had never promised anything; {REMEDY}")
    lost = sorted(peer.node for peer in heard.values() if peer.emptied)
    if lost and not emptied:
        return HOLD, (f"{', '.join(lost)} found {'its' if len(lost) == 1 else 'their'} data directory emptied: "
                      f"the cluster is not new, and a new one would lose everything it acknowledged; this node "
                      f"(whose directory is fresh) waits for a member that kept its data -- or restore the "
                      f"directories from a backup")
    missing = [p for p in peers if p not in heard]
    if missing:
        return WAIT, f"a new cluster starts once every node has said it is new too (waiting for {', '.join(missing)})"
    if emptied:
        return HOLD, ("this node's data directory was emptied (its COMMITS file says it acknowledged writes), "
                      "and no peer has joined a cluster: a new cluster would lose everything it acknowledged; "
                      "it rejoins once a member that kept its data answers -- or restore the directories "
                      "from a backup")
    return JOIN, "every node is new: a new cluster"


def members_of(heard: Mapping[str, Identity]) -> dict[str, Any]:
    """The incarnations to remember after joining, from the identities heard."""
    return {node: peer.incarnation for node, peer in sorted(heard.items())}


def _admission_added(me: Membership, heard: Mapping[str, Identity], replaces: Collection[str]) -> tuple[str, str]:
    """:func:`admission` for a node added at run time (or added again: ``replaces``)."""
    joined = [peer for peer in heard.values() if peer.joined]
    for peer in joined:
        remembered = peer.members.get(me.node)
        if remembered is not None and remembered != me.incarnation and remembered not in replaces:
            return STAY_OUT, (f"this node's data directory is empty, but {peer.node} remembers this node as "
                              f"incarnation {remembered}: it was in the cluster before with another directory and "
                              f"would vote and accept as if it had never promised anything; {REMEDY}")
    for peer in joined:
        if peer.members.get(me.node) == me.incarnation:
            return JOIN, f"{peer.node} remembers this incarnation: it joined before"
    if joined:
        first = joined[0]
        if first.members.get(me.node) in replaces:
            return JOIN, f"{first.node} dialled it, remembering only an incarnation it replaces: it is added again"
        return JOIN, f"{first.node} dialled it, with no record of this node: it is being added"
    return WAIT, "a node added at run time joins once a member of the cluster dials it (once it is added)"


def remembered_instead(me: Membership, heard: Mapping[str, Identity]) -> list[str]:
    """The incarnations of this node other than its own that the joined peers heard remember, in order
    (for a fresh directory: those it replaces, once the cluster has removed them)."""
    found: list[str] = []
    for peer in heard.values():
        remembered = peer.members.get(me.node) if peer.joined else None
        if remembered is not None and remembered != me.incarnation and remembered not in found \
                and _plausible(me.node, remembered):
            found.append(remembered)
    return found
