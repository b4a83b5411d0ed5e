"""An emptied node brings itself back under its own id: ``smr serve --rejoin-empty``.

A node whose data directory was emptied has forgotten every vote, promise
and entry it acknowledged, while its peers remember its old incarnation
(:mod:`smr.net._identity`): without the flag it stays out.  With it, the
node asks the cluster -- through the membership calls every client has,
with the cluster file's credentials -- to remove its id, and once that
removal is committed, to add the id again at this node's address; it then
joins as an added node (a joiner core that catches up as a learner and votes
once the leader promotes it).

**Why this is safe.**  The removal is committed before the re-add, so no
vote, promise or acknowledgement of the old incarnation counts in any
configuration after it; and the empty node votes, promises and accepts
nothing until it has applied the log past its re-adding, which follows its
removal (``ReplicaConfig.rejoin_after``, the cores' ``readmitted``), so every
configuration that counts it names it in an entry committed after its
removal, and what it says is its own (Raft: it holds the removal, so it
never votes for a candidate that lacks it; multi-Paxos: it has applied every
slot a configuration of the old incarnation governs, so its promises report
them chosen).  ``after`` and ``epoch`` are the commit index and epoch, read
from its own status, of the node that answered a linearizable membership read
made once the re-add was committed (that node has applied it; its uptime
shows it did not restart in between).  Raft starts its term at ``epoch``
(``ReplicaConfig.rejoin_epoch``): a stale leader of an older term, which never
saw the removal and still counts the lost incarnation, cannot have the new
one acknowledge its entries.  Waiting for the re-add, not just the removal, also keeps a
node that is catching up from seeing itself retired between the two.

**Restartable.**  The stage is written to the node's storage before the
step it names is taken, and every step is idempotent (the membership calls
judge a change by the configuration read back), so a node killed at any
point and restarted with the flag resumes: already removed, it adds itself;
already added, it joins.  Without the flag nothing moves.

=========  ===================================================================
``remove``  ask the cluster to remove this id
``add``     ask the cluster to add this id again at this node's address; then
            read ``after`` and ``epoch``
``added``   the add is committed: join when a member dials in (an added node
            that knows the incarnations it ``replaces``), rejoining core
=========  ===================================================================

A cluster that cannot commit a change (no quorum) is asked again with
back-off; the node says once why it waits, and ``smr status`` shows it
``rejoining`` until its core is readmitted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeGuard

import attrs
import trio

from smr.client import MembershipClient
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.machine import CommandError
from smr.membership import GET_MEMBERSHIP

if TYPE_CHECKING:  # it imports the server, which imports this module
    from ._client import TcpCluster

log = logging.getLogger("smr.net")

#: The stages, in order (see the module docstring), and the ``meta`` key that records the one reached.
REMOVE, ADD, ADDED = "remove", "add", "added"
STAGES = (REMOVE, ADD, ADDED)
REJOIN_KEY = "rejoin"
#: Seconds one attempt at a change may take, and the back-off between attempts (doubling up to the max).
ATTEMPT_S = 10.0
RETRY_MIN_S, RETRY_MAX_S = 0.5, 8.0


@attrs.frozen
class Rejoin:
    """How far this node's rejoin has come: its stage, the incarnations of its id it replaces, an index at
    or past its committed re-adding and an epoch at or past the one that committed it (0 until known)."""

    stage: str
    replaces: tuple[str, ...]
    after: int = 0
    epoch: int = 0

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> "Rejoin | None":
        """The rejoin a storage's meta rows record, or None (ValueError if the row is malformed)."""
        text = meta.get(REJOIN_KEY)
        if not text:
            return None
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(f"a malformed {REJOIN_KEY} record: {text[:200]!r}")
        stage, replaces, after, epoch = (value.get("stage"), value.get("replaces"), value.get("after"),
                                         value.get("epoch", 0))
        if stage not in STAGES or not isinstance(replaces, list) or not all(isinstance(r, str) for r in replaces) \
                or not _count(after) or not _count(epoch):
            raise ValueError(f"a malformed {REJOIN_KEY} record: {text[:200]!r}")
        return cls(stage, tuple(replaces), after, epoch)

    def rows(self) -> dict[str, str]:
        """The meta rows that record it."""
        return {REJOIN_KEY: json.dumps({"stage": self.stage, "replaces": list(self.replaces),
                                        "after": self.after, "epoch": self.epoch})}


def _count(value: object) -> TypeGuard[int]:
    """True for a non-negative int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Waiting:
    """Says once per stage why the rejoin waits (the cluster cannot commit the change, or refuses it)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._said: str | None = None

    def failed(self, stage: str, exc: Exception, retry_s: float) -> None:
        """Note that an attempt at ``stage`` failed with ``exc``; log it the first time."""
        if self._said == stage:
            return
        self._said = stage
        why = ("the cluster did not commit it in time -- no quorum? (a majority of the voters must be up)"
               if isinstance(exc, TimeoutError) else f"the cluster refused it: {exc}")
        log.warning("%s: rejoining: waiting to %s: %s; asking again (every %g s at most)", self.node,
                    "have its id removed" if stage == REMOVE else "be added again", why, retry_s)


async def rejoin(node: str, address: str, state: Rejoin, cluster: MembershipClient,
                 point_past: Callable[[], Awaitable[tuple[int, int]]],
                 save: Callable[[Rejoin], Awaitable[Rejoin]]) -> Rejoin:
    """Take the rejoin of ``node`` from ``state`` to the ``added`` stage, saving each stage before acting on
    it, retrying each change with back-off until the cluster commits it; return the final state.

    ``point_past`` returns an index at or past every entry the cluster has
    committed and an epoch at or past the one that committed it (called once
    the re-add is); ``save`` makes a stage durable and returns the state it
    recorded (it may hold more replaced incarnations, noted meanwhile).
    """
    waiting = Waiting(node)
    pause = RETRY_MIN_S
    while state.stage != ADDED:
        try:
            if state.stage == REMOVE:
                await cluster.remove_node(node, timeout=ATTEMPT_S)
                log.info("%s: rejoining: the cluster removed %s (committed): no vote, promise or acknowledgement "
                         "of its old incarnation counts any more", node, node)
                state = attrs.evolve(state, stage=ADD)
            else:
                await cluster.start_adding_node(node, address, timeout=ATTEMPT_S)
                after, epoch = await point_past()
                log.info("%s: rejoining: the cluster added %s again at %s (committed at or before index %d, "
                         "epoch %d); it joins as a learner once a member dials it, and votes once it has caught up "
                         "past there and been promoted", node, node, address, after, epoch)
                state = attrs.evolve(state, stage=ADDED, after=after, epoch=epoch)
            state = await save(state)
            pause = RETRY_MIN_S
        except (TimeoutError, CommandError, LocalProtocolError, RemoteProtocolError) as exc:
            # a refusal (FAIL), a peer's malformed answer: asked again after the back-off, like no quorum
            waiting.failed(state.stage, exc, RETRY_MAX_S)
            await trio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_S)
    return state


async def point_past(cluster: "TcpCluster") -> tuple[int, int]:
    """An index at or past every entry ``cluster`` committed before the call, and an epoch at or past the
    one that committed them.

    The node that answers a membership read through the log has applied
    everything committed before it; its commit index, read from its own
    status report, is at least that -- unless it restarted in between (its
    uptime then shows it, and the read is made again).  A node that knows an
    entry committed has heard from a leader of the epoch that committed it,
    or a later one, so its epoch is at least that one.
    """
    session = cluster.client()  # one session for every attempt: each new one costs the cluster a slot
    while True:
        started = trio.current_time()
        await session.submit(GET_MEMBERSHIP, timeout=1.0, attempts=max(1, int(ATTEMPT_S)))
        answered = session.answered_by
        report = None if answered is None else await cluster.status(answered, timeout=1.0)
        if report is not None and report.uptime_s >= trio.current_time() - started:
            return int(report.commit_index), int(report.epoch)
        await trio.sleep(RETRY_MIN_S)
