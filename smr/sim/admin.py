"""The simulator's admin client: membership changes from the fault schedule, one at a time.

A membership change is a client request like any other (``membership_command``
through the log, smr.membership), so the admin client behaves as the sim's
clients do -- it sends to the node it believes leads, follows redirects,
retries a timed-out request to the next node under the same sequence number
(its session makes the change exactly-once), and carries on under a new
session after ``SessionExpired`` -- with three differences:

* it never gives up on a timeout (a change must finish once the cluster heals);
  a change the cluster *refuses* (an ``error`` answer) is asked again under a
  new sequence number after a short back-off: for ever if the error says to
  retry (the change before it is not committed yet, a joint configuration is
  still being left), else up to :data:`MAX_REFUSALS` times;
* its requests are not part of the checked client history, so the
  linearizability of the workload is judged exactly as without it;
* it waits until each change has *finished* before it starts the next:
  the leader's committed configuration shows the change whole (an added node
  promoted to voter, a joint configuration left) and a removed node has been
  stopped.  The simulator looks at the leader's core for this, as it does to
  pick the leader a ``crash_leader`` fault crashes.

``add_node`` and the replaces start the new replica first, with an empty disk
and ``ReplicaConfig(peers=<the running nodes>, initial_voters=<the run's
initial nodes>)``.  A removed node is stopped for good (it never restarts)
once its own core reports ``retired``, or once the change removing it is
committed and no member of the new configuration needs it any more: each is
up and its configuration in effect no longer names it (a Raft follower may
never learn that its own removal committed; a multi-Paxos replica keeps the
old configuration for alpha more slots).

Every change is kept as a :class:`ChangeRecord`: when it was asked for,
started, answered and finished, and the peer messages and bytes the whole
cluster sent meanwhile (what ``smr compare`` reports for it).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..commands import Command
from ..history import Operation, Outcome
from ..machine import CommandError, SessionExpired
from ..membership import Membership, membership_command
from ..replica import ClientRequest, Reply, ReplyStatus
from .config import FaultEvent

if TYPE_CHECKING:
    from .engine import Simulation

#: The admin client's session id (a sim client is c1, o1, ...; a node n1, ...).
ADMIN = "admin"
#: How many refusals of one change the admin client takes before it gives the change up.
MAX_REFUSALS = 10
#: Messages that are client traffic, not the protocol's (left out of a change's cost).
CLIENT_MESSAGES = ("ClientRequest", "Reply")


@attrs.frozen
class ChangeRecord:
    """One membership change of a run: what was asked, when it ran, how it ended, what it cost.

    ``outcome`` is ``done``, ``refused: <why>``, ``skipped: <why>`` or
    ``pending`` (unfinished when the run ended).  ``messages`` and ``bytes``
    count every peer message sent while it ran (client traffic left out).
    """

    action: str
    change: str
    requested_at: float
    started_at: float | None
    answered_at: float | None
    finished_at: float | None
    outcome: str
    attempts: int
    messages: int
    bytes: int

    @property
    def done(self) -> bool:
        """True if the change finished."""
        return self.outcome == "done"

    @property
    def duration_ms(self) -> float | None:
        """From start to finish, if it finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {**attrs.asdict(self), "duration_ms": self.duration_ms}


@attrs.define
class _Change:
    """The change the admin client is working on."""

    fault: FaultEvent
    requested_at: float
    command: Command | None = None
    change: str = ""
    started_at: float | None = None
    answered_at: float | None = None
    #: The node the change takes out (stopped once it is out), and the one it starts.
    leaving: str | None = None
    joining: str | None = None
    #: The node it adds is a removed id coming back empty: started once the add is committed.
    rejoin: bool = False
    attempts: int = 0
    refusals: int = 0
    messages: int = 0
    bytes: int = 0


def peer_traffic(sim: "Simulation") -> tuple[int, int]:
    """Peer messages and bytes sent so far in ``sim`` (client requests and replies left out)."""
    counters = sim.counters
    messages = sum(n for name, n in counters.sent.items() if name not in CLIENT_MESSAGES)
    sent_bytes = sum(n for name, n in counters.bytes_sent.items() if name not in CLIENT_MESSAGES)
    return messages, sent_bytes


class AdminClient:
    """Carries out a run's membership changes in order (see the module docstring)."""

    def __init__(self, sim: "Simulation", client_id: str = ADMIN) -> None:
        self.sim = sim
        self.rng = random.Random(f"{sim.seed}/{client_id}")
        self.id = client_id
        #: Every session id this client used (replies to any of them are its own).
        self.ids = {client_id}
        self.seq = 0
        self.acked = 0
        self.queue: deque[tuple[FaultEvent, float, bool]] = deque()
        self.current: _Change | None = None
        self.records: list[ChangeRecord] = []
        self.token = 0
        self.leader: str | None = None
        self.target = 0
        self.redirects = 0
        #: What the pending timer is for: "timeout" (try the next node) or "resend" (ask the same one again).
        self.timer_kind = "timeout"

    # ------------------------------------------------------------ schedule
    def request(self, fault: FaultEvent, rejoin: bool = False) -> None:
        """The schedule asks for ``fault``'s change: start it now, or after those before it.  ``rejoin``: an
        add_node of a removed id, whose new node starts once the add is committed (smr.sim.disk)."""
        self.queue.append((fault, self.sim.now, rejoin))
        if self.current is None:
            self._start_next()

    def rejoin(self, node: str) -> None:
        """Bring ``node``, found damaged, back empty: remove its id, then add it again (``smr serve
        --rejoin-empty``); a rejoin of it still in progress is given up (the node is down again)."""
        change = self.current
        if change is not None and change.joining == node:
            self._end(f"skipped: {node} stays out again before it was added back")
        now = self.sim.now
        self.request(FaultEvent(now, "remove_node", node=node))
        self.request(FaultEvent(now, "add_node", node=node), rejoin=True)

    def finish(self) -> tuple[ChangeRecord, ...]:
        """Every change of the run, those unfinished or never started as ``pending``."""
        out = list(self.records)
        if self.current is not None:
            out.append(self._record(self.current, "pending", finished=False))
        out += [ChangeRecord(f.action, _asked(f), at, None, None, None, "pending", 0, 0, 0) for f, at, _ in self.queue]
        return tuple(out)

    def _start_next(self) -> None:
        while self.current is None and self.queue:
            fault, at, rejoin = self.queue.popleft()
            self.current = _Change(fault, at, rejoin=rejoin)
            self._begin()

    def _begin(self) -> None:
        """Resolve the current change against the cluster as it is now, start its new node, send it."""
        sim, change = self.sim, self.current
        assert change is not None
        fault = change.fault
        running = set(sim.node_ids)
        leaving: str | None
        if fault.action in ("remove_leader", "replace_leader", "remove_follower"):
            leader = sim.current_leader()
            if leader is None:  # wait for one
                self._timer(sim.config.tick_ms)
                return
            leaving = leader if fault.action != "remove_follower" else \
                self.rng.choice([n for n in self._voters() if n != leader] or [leader])
        elif fault.action in ("remove_node", "replace_node"):
            leaving = fault.node or self._pick_voter()
        else:
            leaving = None
        joining = fault.node if fault.action == "add_node" else fault.new
        if leaving is not None and leaving not in running:
            return self._skip(f"{leaving} is not running")
        if joining is not None and joining in sim.nodes and not (change.rejoin and sim.nodes[joining].gone):
            return self._skip(f"{joining} already exists")
        if fault.action in ("remove_node", "remove_leader", "remove_follower") and len(self._voters()) <= 1:
            return self._skip("it would remove the last voter")
        if fault.action == "add_node":
            command = membership_command("add", joining, "")
        elif joining is not None:
            command = membership_command("replace", leaving, joining, "")
        else:
            command = membership_command("remove", leaving)
        change.command, change.leaving, change.joining = command, leaving, joining
        change.change = " ".join(str(x) for x in (command.key, *command.args) if x != "")
        change.started_at = sim.now
        change.messages, change.bytes = peer_traffic(sim)
        sim.log(f"admin START {change.change} ({fault.action})")
        if joining is not None and not change.rejoin:
            sim.start_node(joining)
        self._new_request()

    def _pick_voter(self) -> str | None:
        voters = self._voters()
        return self.rng.choice(voters) if voters else None

    def _voters(self) -> list[str]:
        """The running voters of the committed configuration the leader holds (all running nodes if unknown)."""
        applied = self._applied()
        running = self.sim.node_ids
        if applied is None:
            return list(running)
        return [n for n in running if applied.votes_in(n)]

    # ------------------------------------------------------------- requests
    def _new_request(self) -> None:
        self.seq += 1
        self.redirects = 0
        self._send()

    def _send(self) -> None:
        sim, change = self.sim, self.current
        assert change is not None and change.command is not None
        change.attempts += 1
        nodes = sim.node_ids
        target = self.leader if self.leader is not None else nodes[self.target % len(nodes)]
        sim.send(self.id, target, ClientRequest(self.id, self.seq, change.command, self.acked))
        self._timer(sim.config.clients.timeout_ms)

    def _timer(self, delay: float, kind: str = "timeout") -> None:
        self.token += 1
        self.timer_kind = kind
        self.sim.admin_timer(self.sim.now + delay, self.token, self)

    def on_timer(self, token: int) -> None:
        """A timer set by this client went off (stale ones are ignored)."""
        change = self.current
        if token != self.token or change is None:
            return
        if change.command is None:
            self._begin()  # still waiting for a leader to act on
        elif change.answered_at is None:
            if self.timer_kind == "timeout":
                self.leader = None  # no answer: try the next node with the same request
                self.target += 1
            self._send()
        else:
            self._settle()

    def on_reply(self, reply: Reply) -> None:
        """An answer to one of this client's requests."""
        change = self.current
        if change is None or change.command is None or change.answered_at is not None or reply.seq != self.seq:
            return  # a late answer to an attempt already answered
        sim = self.sim
        status = reply.status
        if status == ReplyStatus.ERROR and isinstance(CommandError.from_result(reply.result), SessionExpired):
            self.id, self.acked = f"{self.id}'", 0  # a new session; the change's outcome is checked below
            self.ids.add(self.id)
            sim.log(f"admin SESSION EXPIRED -> {self.id}")
            self._new_request()
        elif status == ReplyStatus.OK:
            self.acked = self.seq
            change.answered_at = sim.now
            sim.log(f"admin OK {change.change} -> {reply.result!r}")
            self._settle()
        elif status in (ReplyStatus.ERROR, ReplyStatus.FAIL):
            if status == ReplyStatus.ERROR:
                self.acked = self.seq
            error = CommandError.from_result(reply.result) if status == ReplyStatus.ERROR else None
            retry = error is not None and "retry" in error.message  # another change is in flight: ask again
            if not retry and (self._finished(change) or self._underway(change)):
                # an earlier attempt did it (e.g. before a session expired), or it is under way: a retry
                # whose first attempt committed is refused ("n4 is already a member") while the learner
                # it added catches up to be promoted
                change.answered_at = sim.now
                sim.log(f"admin UNDERWAY {change.change} -> {reply.result!r}")
                self._settle()
                return
            if not retry:  # "... not committed yet; retry" is not counted
                change.refusals += 1
            sim.log(f"admin REFUSED {change.change} ({change.refusals}) -> {reply.result!r}")
            if change.refusals >= MAX_REFUSALS:
                why = CommandError.from_result(reply.result) if status == ReplyStatus.ERROR else "failed"
                if change.joining is not None:
                    sim.stop_node(change.joining, "its change was refused")
                self._end(f"refused: {why}")
                return
            self.seq += 1  # the refusal is that sequence number's answer for good: ask anew
            self.redirects = 0
            self._timer(5 * sim.config.tick_ms, "resend")
        else:  # a redirect
            self.redirects += 1
            if reply.leader is not None and reply.leader != self.leader and reply.leader in sim.node_ids \
                    and self.redirects <= 3 * len(sim.node_ids):
                self.leader = reply.leader
                self._send()
            else:
                self.leader = None  # no useful hint: back off briefly, then try the next node
                self.target += 1
                self._timer(min(sim.config.clients.timeout_ms, 5 * sim.config.tick_ms), "resend")

    # ------------------------------------------------------------ finishing
    def _applied(self) -> Membership | None:
        """The committed configuration of the node that leads now, if any."""
        leader = self.sim.current_leader()
        core = self.sim.nodes[leader].core if leader is not None else None
        applier = getattr(core, "applier", None)
        return getattr(applier, "membership", None)

    def _finished(self, change: _Change) -> bool:
        """True once the leader's committed configuration shows the whole change."""
        applied = self._applied()
        if applied is None or applied.joint:
            return False
        if change.joining is not None and (change.joining not in applied.voters
                                           or change.joining in dict(applied.joining)):
            return False
        return change.leaving is None or change.leaving not in applied.members

    def _underway(self, change: _Change) -> bool:
        """True once the leader's committed configuration has the node ``change`` adds (as learner or voter)."""
        applied = self._applied()
        return applied is not None and change.joining is not None and change.joining in applied.members

    def _let_go(self, leaving: str) -> bool:
        """True once no member of the leader's committed configuration needs ``leaving`` any more: every one
        is up and its configuration in effect (``core.membership``, which a multi-Paxos replica switches
        only alpha slots after the change) no longer names it."""
        applied = self._applied()
        if applied is None:
            return False
        for member in applied.members:
            node = self.sim.nodes.get(member)
            if node is None or node.gone or node.out is not None:
                continue  # (a node that stays out needs nothing from anyone: it comes back empty)
            in_effect = getattr(node.core, "membership", None) if node.alive else None
            if not isinstance(in_effect, Membership) or leaving in in_effect.members:
                return False
        return True

    def _settle(self) -> None:
        """After the answer: wait until the change is whole and the node it removes is stopped."""
        sim, change = self.sim, self.current
        assert change is not None
        if change.rejoin and change.joining is not None and sim.nodes[change.joining].gone:
            # The add is committed: the node starts empty, and its core waits until it has applied the
            # log at least that far (past its removal and its add) before it votes or accepts.
            after, epoch = sim.rejoin_point()
            sim.start_node(change.joining, rejoin_after=after, rejoin_epoch=epoch)
        if self._finished(change):
            leaving = change.leaving
            if change.fault.keep:  # the removed node runs on (a disruptive server): stopped only if it retires
                self._end("done")
                return
            if leaving is not None and not sim.nodes[leaving].gone and self._let_go(leaving):
                sim.stop_node(leaving, "removed from the configuration")
            if leaving is None or sim.nodes[leaving].gone:
                self._end("done")
                return
        self._timer(sim.config.tick_ms)

    def _skip(self, why: str) -> None:
        change = self.current
        assert change is not None
        self.sim.log(f"admin SKIP {_asked(change.fault)}: {why}")
        self._end(f"skipped: {why}")

    def _end(self, outcome: str) -> None:
        change = self.current
        assert change is not None
        self.records.append(self._record(change, outcome, finished=outcome == "done"))
        if outcome == "done":
            self.sim.log(f"admin DONE {change.change}")
        self.current = None
        self.leader = self.leader if self.leader in self.sim.node_ids else None
        self.token += 1
        self._start_next()

    def _record(self, change: _Change, outcome: str, finished: bool) -> ChangeRecord:
        messages = sent_bytes = 0
        if change.started_at is not None:
            now_messages, now_bytes = peer_traffic(self.sim)
            messages, sent_bytes = now_messages - change.messages, now_bytes - change.bytes
        return ChangeRecord(change.fault.action, change.change or _asked(change.fault), change.requested_at,
                            change.started_at, change.answered_at, self.sim.now if finished else None, outcome,
                            change.attempts, messages, sent_bytes)


def _asked(fault: FaultEvent) -> str:
    """The change as the schedule asked for it (``replace_node n2 n5``)."""
    return " ".join(str(x) for x in (fault.action, fault.node, fault.new) if x is not None)


def longest_gap(history: Sequence[Operation], start: float, end: float) -> float:
    """The longest stretch with no client operation completing OK, from ``start`` until the first one to
    complete after ``end`` (or the last completion, if none does)."""
    done = sorted(op.end for op in history if op.outcome is Outcome.OK and op.end > start)
    times = [start, *(t for t in done if t <= end)]
    after = [t for t in done if t > end]
    if after:
        times.append(after[0])
    return round(max((b - a for a, b in zip(times, times[1:])), default=0.0), 3)


def change_figures(changes: Sequence[ChangeRecord], history: Sequence[Operation],
                   end_ms: float) -> tuple[dict[str, Any], ...]:
    """Per started change: when it started and finished (None if it had not), how long it took, the longest
    gap in OK client operations while it ran, and the peer messages and bytes sent meanwhile (what
    ``smr compare`` reports and draws)."""
    out = []
    for c in changes:
        if c.started_at is None:
            continue
        finish = c.finished_at if c.finished_at is not None else end_ms
        out.append({"action": c.action, "change": c.change, "outcome": c.outcome, "duration_ms": c.duration_ms,
                    "started_ms": c.started_at, "finished_ms": c.finished_at,
                    "unavailable_ms": longest_gap(history, c.started_at, finish),
                    "messages": c.messages, "bytes": c.bytes})
    return tuple(out)


def supports_membership(backend: str) -> bool:
    """True if ``backend``'s cores keep a membership they change through the log (smr.log_core.LogCore)."""
    from ..log_core import LogCore
    from ..replica import ReplicaConfig, get_backend
    from ..state_machines import make_state_machine

    found = get_backend(backend)
    core = found.factory(ReplicaConfig("n1", ("n2", "n3"), random.Random(0), lambda: make_state_machine("kv"),
                                       dict(found.options)))
    return isinstance(core, LogCore)
