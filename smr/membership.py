"""Cluster membership: who votes, who only learns, and how a change is written in the log.

Both backends keep their configuration as a :class:`Membership` and change it
through log entries whose command has op :data:`MEMBERSHIP_OP`; what differs
is *when* a change takes effect, which is the protocols' business:

* **Raft** (thesis ch. 4) uses the latest configuration in its log, committed
  or not, and rolls it back if that entry is overwritten.  A change of more
  than one voter goes through a joint configuration (``outgoing`` holds the
  old voters; every quorum needs a majority of both), which the leader leaves
  with a :data:`LEAVE_JOINT` entry once the joint one is committed.
* **Multi-Paxos** (Lamport, Malkhi and Zhou, "Reconfiguring a State
  Machine") makes the configuration part of the replicated state: the
  configuration of slot *i* is the one applied after slot *i - alpha*, so
  any change takes effect whole, alpha slots later, with no joint phase.

Either way the configuration that results from an entry is a pure function
of the configuration before it and the entry's command (:func:`changed`), so
every replica that holds the same log prefix computes the same one, and a
change that does not fit (adding a member twice, removing the last voter)
is an ``error`` outcome on every replica alike, never a divergence.

The commands (``Command(MEMBERSHIP_OP, kind, args)``):

========================  ======================================================
``add (node, address)``   a new voter: it joins as a learner and the leader
                          promotes it once it has caught up (thesis 4.2.1)
``add_learner (node,      a learner that stays one: it receives the log,
address)``                never votes, never counts toward a quorum
``promote (node,)``       a learner becomes a voter (the leader proposes it for
                          a caught-up ``add``/``replace``; a client may too)
``remove (node,)``        a voter or learner leaves
``replace (old, new,      ``new`` joins as a learner; once caught up it takes
address)``                ``old``'s place in one change (joint in Raft)
``set (voters, learners)``  any configuration at once (etcd's ConfChangeV2)
``leave_joint ()``        end a joint configuration (a Raft leader proposes it)
``get ()``                read the applied membership (a query, never logged)
========================  ======================================================

Addresses ("host:port") are carried for runtimes that dial their peers (the
TCP runtime); cores never look at them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import attrs

from .commands import Command
from .machine import CommandError
from .quorum import VoteResult, committed_index, majority, vote_result

#: The op of every membership command (not an identifier: no app method can have this name).
MEMBERSHIP_OP = "smr.membership"
#: The kinds of change, and how many arguments each takes.
CHANGE_ARITY: Mapping[str, int] = {"add": 2, "add_learner": 2, "promote": 1, "remove": 1, "replace": 3,
                                   "set": 2, "leave_joint": 0, "get": 0}
#: The longest node id and address a change may name (longer ones are refused as malformed).
MAX_NODE_ID = 64
MAX_ADDRESS = 256
#: The most members a configuration may hold.
MAX_MEMBERS = 64


def membership_command(kind: str, *args: Any) -> Command:
    """The command that asks for change ``kind`` with ``args`` (see the module docstring's table)."""
    return Command(MEMBERSHIP_OP, kind, tuple(args))


#: The entry a Raft leader appends to leave a committed joint configuration.
LEAVE_JOINT = membership_command("leave_joint")
#: The query that reads the applied membership.
GET_MEMBERSHIP = membership_command("get")


def is_membership(command: Command) -> bool:
    """True if ``command`` is a membership command (a change or the ``get`` query)."""
    return command.op == MEMBERSHIP_OP


def is_change(command: Command) -> bool:
    """True if ``command`` is a membership *change* (it goes through the log)."""
    return command.op == MEMBERSHIP_OP and command.key != "get"


def _sorted(nodes: Collection[str]) -> tuple[str, ...]:
    return tuple(sorted(set(nodes)))


@attrs.frozen
class Membership:
    """One configuration: the voters, the learners, and (Raft, while joint) the outgoing voters.

    ``joining`` lists the learners the leader is to promote once they have
    caught up, each with the voter it replaces ("" for none); ``addresses``
    maps the nodes added at run time to where they listen.
    """

    voters: tuple[str, ...]
    learners: tuple[str, ...] = ()
    outgoing: tuple[str, ...] = ()
    joining: tuple[tuple[str, str], ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, voters: Collection[str]) -> "Membership":
        """The plain configuration of ``voters`` (a cluster's initial one)."""
        return cls(_sorted(voters))

    # ------------------------------------------------------------------ who
    @property
    def members(self) -> tuple[str, ...]:
        """Every node the configuration names (voters, outgoing voters and learners), sorted."""
        return _sorted((*self.voters, *self.outgoing, *self.learners))

    @property
    def joint(self) -> bool:
        """True while a joint configuration holds (quorums need majorities of old and new voters)."""
        return bool(self.outgoing)

    def votes_in(self, node: str) -> bool:
        """True if ``node`` votes and counts toward quorums (in the new or, while joint, the old voters)."""
        return node in self.voters or node in self.outgoing

    def address_of(self, node: str) -> str | None:
        """Where ``node`` listens, if it was added with an address."""
        return dict(self.addresses).get(node)

    # --------------------------------------------------------------- quorums
    def is_quorum(self, nodes: Collection[str]) -> bool:
        """True if ``nodes`` hold a majority of the voters (and, while joint, of the outgoing voters too)."""
        present = set(nodes)
        if len(present & set(self.voters)) < majority(len(self.voters)):
            return False
        return not self.outgoing or len(present & set(self.outgoing)) >= majority(len(self.outgoing))

    def committed(self, matches: Mapping[str, int]) -> int:
        """The highest index a quorum holds, given each node's match index (nodes missing count 0)."""
        index = committed_index([matches.get(n, 0) for n in self.voters])
        if self.outgoing:
            index = min(index, committed_index([matches.get(n, 0) for n in self.outgoing]))
        return index

    def election(self, votes: Mapping[str, bool]) -> VoteResult:
        """An election's state from ``votes`` (node -> granted): won in every voter set, or lost in one."""
        results = [vote_result({n: g for n, g in votes.items() if n in group}, len(group))
                   for group in (self.voters, self.outgoing) if group]
        if VoteResult.LOST in results:
            return VoteResult.LOST
        if all(r is VoteResult.WON for r in results):
            return VoteResult.WON
        return VoteResult.PENDING

    def as_value(self) -> dict[str, Any]:
        """The membership as a plain value (what a ``get`` or a change answers, and snapshots keep)."""
        return {"voters": list(self.voters), "learners": list(self.learners), "outgoing": list(self.outgoing),
                "joining": [list(j) for j in self.joining], "addresses": {n: a for n, a in self.addresses}}

    @classmethod
    def from_value(cls, value: Any) -> "Membership":
        """Rebuild a membership from :meth:`as_value`'s form (ValueError/TypeError if malformed)."""
        if not isinstance(value, dict):
            raise TypeError(f"a membership is a dict, got {type(value).__name__}")
        voters, learners, outgoing = (_names(value.get(k, []), k) for k in ("voters", "learners", "outgoing"))
        joining = value.get("joining", [])
        addresses = value.get("addresses", {})
        if not isinstance(joining, list) or not all(isinstance(j, list) and len(j) == 2 for j in joining):
            raise TypeError("membership joining must be a list of [learner, replaces] pairs")
        if not isinstance(addresses, dict):
            raise TypeError("membership addresses must be a dict")
        if not voters:
            raise ValueError("a membership needs at least one voter")
        if set(voters) & set(learners):
            raise ValueError("a membership names a node both voter and learner")
        if len(joining) > MAX_MEMBERS or len(addresses) > MAX_MEMBERS:
            raise ValueError(f"a membership holds at most {MAX_MEMBERS} joining nodes and addresses")
        pairs = tuple((node_id(a, "joining"), node_id(b, "joining", empty=True)) for a, b in joining)
        if not {a for a, _ in pairs} <= set(learners):
            raise ValueError("a membership's joining nodes must be learners")
        return cls(voters, learners, outgoing, pairs,
                   tuple(sorted((node_id(n, "addresses"), _address(a)) for n, a in addresses.items())))


def node_id(value: Any, field: str, empty: bool = False) -> str:
    """A node id read from a file, a snapshot or a command, checked (ValueError naming ``field`` if not)."""
    if not isinstance(value, str) or len(value) > MAX_NODE_ID or (not value and not empty):
        raise ValueError(f"membership {field}: a node id is a non-empty str of at most {MAX_NODE_ID} "
                         f"characters, got {value!r:.80}")
    return value


def _names(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or len(value) > MAX_MEMBERS:
        raise ValueError(f"membership {field}: a list of at most {MAX_MEMBERS} node ids, got {value!r:.80}")
    return _sorted([node_id(v, field) for v in value])


def _address(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_ADDRESS:
        raise ValueError(f"an address is a str of at most {MAX_ADDRESS} characters, got {value!r:.80}")
    return value


def malformed(command: Command) -> str | None:
    """Why a membership command could never apply (an unknown kind, arguments of the wrong shape), or None."""
    arity = CHANGE_ARITY.get(command.key)
    if arity is None:
        return f"{MEMBERSHIP_OP} has no change {command.key!r} (it has: {', '.join(sorted(CHANGE_ARITY))})"
    if len(command.args) != arity:
        return f"{MEMBERSHIP_OP} {command.key} takes {arity} argument(s), got {len(command.args)}"
    try:
        if command.key in ("add", "add_learner"):
            node_id(command.args[0], "node")
            _address(command.args[1])
        elif command.key in ("promote", "remove"):
            node_id(command.args[0], "node")
        elif command.key == "replace":
            node_id(command.args[0], "old")
            node_id(command.args[1], "new")
            _address(command.args[2])
        elif command.key == "set":
            if not _names(command.args[0], "voters"):
                return f"{MEMBERSHIP_OP} set needs at least one voter"
            _names(command.args[1], "learners")
    except ValueError as exc:
        return str(exc)
    return None


def refusal(command: Command) -> CommandError | None:
    """The error a malformed membership command gets at once (``BadArguments``), or None."""
    why = malformed(command)
    return None if why is None else CommandError("BadArguments", why)


class MembershipError(CommandError):
    """A membership change that does not fit the configuration it would apply to."""

    def __init__(self, message: str) -> None:
        super().__init__("MembershipError", message)


def changed(current: Membership, command: Command, joint_consensus: bool) -> Membership:
    """The configuration ``command`` makes of ``current``; MembershipError if it does not fit.

    With ``joint_consensus`` (Raft), a change of more than one voter enters a
    joint configuration; without it (multi-Paxos, whose alpha window switches
    whole) it takes effect directly.  ``command`` must not be malformed.
    """
    kind, args = command.key, command.args
    if current.joint and kind != "leave_joint":
        raise MembershipError(f"a joint configuration (old voters {', '.join(current.outgoing)}) is still being "
                              f"left; retry once it is")
    members = set(current.members)
    addresses = dict(current.addresses)
    if kind in ("add", "add_learner", "replace"):
        node, address = (args[1], args[2]) if kind == "replace" else (args[0], args[1])
        if node in members:
            raise MembershipError(f"{node} is already a member")
        if len(members) >= MAX_MEMBERS:
            raise MembershipError(f"a configuration holds at most {MAX_MEMBERS} members")
        replaces = ""
        if kind == "replace":
            replaces = str(args[0])
            if replaces not in current.voters:
                raise MembershipError(f"{replaces} is not a voter, so it cannot be replaced")
        if address:
            addresses[str(node)] = str(address)
        joining = current.joining if kind == "add_learner" else (*current.joining, (str(node), replaces))
        return attrs.evolve(current, learners=_sorted((*current.learners, str(node))), joining=tuple(joining),
                            addresses=tuple(sorted(addresses.items())))
    if kind == "promote":
        node = str(args[0])
        if node not in current.learners:
            raise MembershipError(f"{node} is not a learner, so it cannot be promoted")
        replaces = dict(current.joining).get(node, "")
        voters = {*current.voters, node} - {replaces}
        return _to(current, voters, set(current.learners) - {node}, joint_consensus,
                   joining=tuple(j for j in current.joining if j[0] != node))
    if kind == "remove":
        node = str(args[0])
        if node in current.learners:
            addresses.pop(node, None)
            return attrs.evolve(current, learners=_sorted(set(current.learners) - {node}),
                                joining=tuple(j for j in current.joining if j[0] != node and j[1] != node),
                                addresses=tuple(sorted(addresses.items())))
        if node not in current.voters:
            raise MembershipError(f"{node} is not a member")
        if len(current.voters) == 1:
            raise MembershipError(f"{node} is the last voter; add another before removing it")
        return _to(current, set(current.voters) - {node}, set(current.learners), joint_consensus,
                   joining=tuple(j for j in current.joining if j[1] != node))
    if kind == "set":
        voters, learners = set(_names(args[0], "voters")), set(_names(args[1], "learners"))
        if voters & learners:
            raise MembershipError(f"{', '.join(sorted(voters & learners))} cannot be both voter and learner")
        if len(voters | learners) > MAX_MEMBERS:
            raise MembershipError(f"a configuration holds at most {MAX_MEMBERS} members")
        return _to(current, voters, learners, joint_consensus,
                   joining=tuple(j for j in current.joining if j[0] in learners))
    if kind == "leave_joint":
        if not current.joint:
            raise MembershipError("no joint configuration to leave")
        return attrs.evolve(current, outgoing=())
    raise MembershipError(f"{MEMBERSHIP_OP} {kind} is not a change")


def _to(current: Membership, voters: set[str], learners: set[str], joint_consensus: bool,
        joining: tuple[tuple[str, str], ...]) -> Membership:
    """``current`` with new voters and learners: joint if more than one voter changes and joint consensus is on."""
    if not voters:
        raise MembershipError("a configuration needs at least one voter")
    old = set(current.voters)
    outgoing = current.voters if joint_consensus and len(old ^ voters) > 1 else ()
    kept = {n: a for n, a in current.addresses if n in voters | learners | set(outgoing)}
    return Membership(_sorted(voters), _sorted(learners), outgoing, joining, tuple(sorted(kept.items())))


def fold(current: Membership, commands: Collection[Command], joint_consensus: bool) -> Membership:
    """The configuration after applying ``commands`` in order to ``current`` (changes that do not fit are skipped)."""
    for command in commands:
        if is_change(command):
            try:
                current = changed(current, command, joint_consensus)
            except MembershipError:
                pass  # applied, it is an error outcome and changes nothing
    return current
