"""Multi-Paxos safety invariants, checked by the simulator after every step.

* **One value per slot**: no two different values are each accepted by a
  majority of acceptors (in any ballots) for the same slot.
* **Chosen values stick**: a value a majority accepted equals what any replica
  applied at that slot, and no leader proposes anything else there in a
  higher ballot than the one it was chosen in.

With a changing membership a majority is counted among the voters of the
slot's configuration only (the one applied after slot - alpha; learners and
nodes of other configurations never count), as a live replica that applied
that far and still keeps that part of its configuration history knows it; a
slot whose configuration no live replica knows is checked for agreement of
applied values only.  Without any change, the first voters count.

Only live replicas are visible, so the majority test is a lower bound on what
was chosen; the simulator separately checks that every replica applies the
same value at every slot, across crashes and restarts.  To stay cheap the
check looks at the most recent ``WINDOW`` slots above the lowest applied slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from smr.quorum import majority
from smr.replica import Role

WINDOW = 64


def _fingerprint(core: Any) -> tuple[Any, ...]:
    """What of ``core`` the check reads, as numbers and identities that change with it.

    The first item is the core's identity, the second its applied slot, the
    third what moves the whole window (role, ballot, snapshot, configuration
    history, replaced containers); the rest change with single slots.
    """
    history = core.history
    return (id(core), core.applied,
            (core.role, core.ballot, core.snapshot_slot, id(core.acceptor), id(core.log), id(core.proposals),
             id(history), len(history), id(history[0]), id(history[-1])),
            core.acceptor.changes, len(core.log), core.next_slot, core.max_accepted, len(core.proposals))


def _window(live: Sequence[Any]) -> range:
    """The slots :func:`check_invariants` looks at: the newest ``WINDOW`` above the lowest applied one."""
    low = min(c.applied for c in live)
    high = max(max(c.next_slot, c.max_accepted + 1) for c in live)
    return range(max(low + 1, high - WINDOW), high)


def _entries(core: Any, window: range) -> list[tuple[Any, Any, Any]]:
    """Per slot of ``window``, what ``core`` holds there: (accepted pair, applied value, proposal)."""
    accepted, log, proposals = core.acceptor.accepted, core.log, core.proposals
    return [(accepted.get(slot), log.get(slot), proposals.get(slot)) for slot in window]


_NOTHING = (None, None, None)


class MultiPaxosInvariants:
    """:func:`check_invariants` for one run, re-checking only the slots a step could have changed.

    Every input of the check is summarised per core by :func:`_fingerprint`.
    A step changes one core: when that change can move the whole window (a new
    role or ballot, a snapshot, a configuration, a core that started or
    stopped) every slot is checked; otherwise only the slots where the core's
    accepted value, applied value or proposal differs from the last call's,
    plus those whose configuration its newly applied slots decide.  Between
    calls the verdict of an unchanged slot cannot change, because nothing it
    reads did.  The cores are held so their ids are not reused while remembered.
    """

    def __init__(self) -> None:
        self._cores: tuple[Any, ...] = ()
        self._passed: tuple[tuple[Any, ...], ...] | None = None
        self._entries: list[tuple[int, list[tuple[Any, Any, Any]]]] = []  # per core: (first slot, entries)

    def __call__(self, cores: Mapping[str, Any]) -> None:
        """Raise AssertionError naming the property if a multi-Paxos invariant is broken."""
        live = tuple(c for c in cores.values() if hasattr(c, "acceptor"))
        prints = tuple(_fingerprint(c) for c in live)
        passed, self._passed = self._passed, None
        if prints == passed or not live:
            self._passed = prints
            return
        window = _window(live)
        dirty = None if passed is None or len(passed) != len(prints) else self._dirty(live, passed, prints, window)
        if dirty is None:
            check_invariants(cores)
            self._entries = [(window.start, _entries(c, window)) for c in live]
        else:
            check_invariants(cores, sorted(slot for slot in dirty if slot in window))
        self._cores, self._passed = live, prints

    def _dirty(self, live: tuple[Any, ...], passed: tuple[tuple[Any, ...], ...], prints: tuple[tuple[Any, ...], ...],
               window: range) -> set[int] | None:
        """The slots the changed cores could have changed, or None when every slot needs checking."""
        alpha = live[0].alpha
        dirty: set[int] = set()
        for i, (old, new) in enumerate(zip(passed, prints)):
            if old == new:
                continue
            if old[0] != new[0] or old[2] != new[2]:
                return None  # another core, role, ballot, snapshot or configuration: the whole window
            if old[1] != new[1]:  # newly applied slots, and the slots whose configuration they decide
                dirty.update(range(old[1] + 1, new[1] + 1))
                dirty.update(range(old[1] + 1 + alpha, new[1] + 1 + alpha))
            first, before = self._entries[i]
            after = _entries(live[i], window)
            if first != window.start:  # the window moved: line the remembered slots up with it
                shift = window.start - first
                if shift < 0:
                    return None
                before = before[shift:]
            if before != after:  # (compares identities first: cheap when most slots are as they were)
                dirty.update(slot for slot, was, now in zip(window, before, after) if was != now)
                dirty.update(window[len(before):len(after)])  # slots it had not seen: checked once
            self._entries[i] = (window.start, after)
        return dirty


def check_invariants(cores: Mapping[str, Any], slots: Iterable[int] | None = None) -> None:
    """Raise AssertionError naming the property if a multi-Paxos invariant is broken.

    ``slots`` limits the check to those slots (ascending, within the window); by default it is the whole window.
    """
    live = [c for c in cores.values() if hasattr(c, "acceptor")]
    if not live:
        return
    alpha = live[0].alpha
    static = all(len(c.history) == 1 and c.history[0][1] == c.initial_membership for c in live)
    # no change anywhere: the first voters vote, as before reconfiguration existed
    first = live[0].initial_membership.voters
    voters: Any = frozenset(first)
    quorum = majority(len(first))
    # who knows the configuration applied after slot b: a replica with since <= b <= applied (a history
    # restarted from a snapshot at slot s starts at 0 but holds from s + 1 - alpha on)
    knowers = sorted(((max(c.history[0][0], c.snapshot_slot + 1 - alpha if c.snapshot_slot else 0), c.applied, c)
                      for c in live), key=lambda k: -k[1])
    accepted_maps = [c.acceptor.accepted for c in live]
    nodes = [c.node for c in live]
    logs = [c.log for c in live]
    leaders = [c for c in live if c.role == Role.LEADER and c.proposals]
    last_config = None  # the configuration voters and quorum were computed for
    # This runs after every simulated step, so it is written for speed: (ballot, value) pairs are
    # compared as tuples, which tests identity before calling the attrs __eq__ of their items.
    for slot in (_window(live) if slots is None else slots):
        if not static:
            base = slot - alpha
            knower = next((c for since, applied, c in knowers if since <= base <= applied or base <= 0 == since),
                          None)
            if knower is None:
                voters, quorum = frozenset(), 0  # its configuration is not known to any live replica
                last_config = None
            else:
                config = knower._applied_config(base)
                if config is not last_config:
                    last_config = config
                    voters, quorum = frozenset(config.voters), majority(len(config.voters))
        chosen_pairs: list[tuple[Any, Any]] = []
        accepted = [m[slot] for node, m in zip(nodes, accepted_maps) if slot in m and node in voters]
        if quorum and len(accepted) >= quorum:
            votes: list[list[Any]] = []  # [(ballot, value), count]; a handful per slot
            for pair in accepted:
                for vote in votes:
                    if vote[0] == pair:
                        vote[1] += 1
                        break
                else:
                    votes.append([pair, 1])
            chosen_pairs = [pair for pair, n in votes if n >= quorum]
        chosen = [v for _, v in chosen_pairs]
        if len(chosen) > 1 and any(v != chosen[0] for v in chosen):
            raise AssertionError(f"one value per slot: slot {slot} has different values each "
                                 f"accepted by a majority: {chosen}")
        applied = [log[slot] for log in logs if slot in log]
        if len(applied) > 1 and any(v is not applied[0] and v != applied[0] for v in applied):
            raise AssertionError(f"agreement: replicas applied different values at slot {slot}")
        if chosen and applied and chosen[0] is not applied[0] and chosen[0] != applied[0]:
            raise AssertionError(f"chosen values stick: slot {slot} was chosen as {chosen[0]!r} "
                                 f"but applied as {applied[0]!r}")
        if chosen_pairs and leaders:
            # Paxos's invariant: once v is chosen in ballot b, every proposal in a
            # higher ballot is v.  (A deposed leader may still hold an older proposal.)
            chosen_in, value = chosen_pairs[0] if len(chosen_pairs) == 1 else min(chosen_pairs, key=lambda bv: bv[0])
            for core in leaders:
                proposal = core.proposals.get(slot)
                if proposal is not None and proposal.value is not value and proposal.value != value \
                        and proposal.ballot > chosen_in:
                    raise AssertionError(f"chosen values stick: leader {core.node} proposes "
                                         f"{proposal.value!r} at slot {slot} in ballot {proposal.ballot}, "
                                         f"where {value!r} was chosen in ballot {chosen_in}")
