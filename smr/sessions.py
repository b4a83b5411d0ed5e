"""Exactly-once application of client commands, with bounded sessions that expire deterministically.

Every backend applies committed log entries through an :class:`Applier`.  It
keeps, per client, the last sequence number applied and its outcome, so a
retried request (same client id and sequence number) that was committed twice
is applied once and answered with the first outcome.  Clients keep one
request outstanding at a time, so one slot per client is enough (Raft thesis,
section 6.3).

Sessions are opened through the log: a :data:`~smr.commands.REGISTER_SESSION`
entry is answered with a session id the cluster assigns (``s`` and the
number of entries applied before it, so every replica assigns the same one
and no id is ever handed out twice).  With ``registered_sessions`` on (real
cluster files turn it on) a request under any other id is refused
``SessionExpired``; off (the simulator's clients name their own sessions),
an unknown id opens a session on its first request.

A session remembers the command it ran last (a snapshot keeps its digest), so
a sequence number reused for a *different* command is refused
``SequenceReused`` (never answered with the other command's outcome), and one
that goes backwards is refused ``StaleRequest`` -- both explicit errors,
neither runs anything.

The table is bounded, and every replica trims it identically because it
trims only on what the log says (thesis 6.3):

* **time** -- each entry carries ``time``, the leader's clock when it
  appended it; the applier's log time is the largest stamp applied so far,
  and a session idle for ``session_timeout_ms`` of log time is dropped;
* **size** -- beyond ``max_sessions`` the least recently used session goes.

A request carries ``acked``, the highest sequence number its client has had
answered.  A request whose client has no session but has been answered
before must belong to a session that was dropped: it is refused with
``SessionExpired`` rather than risk running a retried command twice.  A
client that was never answered (its first request was applied, the answer
lost, and the session dropped before the retry) is recognised by the ids of
the last ``max_sessions`` sessions dropped, kept without their results; a
retry that comes back later than that is the one case a bounded table
cannot tell from a new client (server-assigned sessions close it).

An exception inside a command is an outcome like any other (``error``),
the same on every replica -- never a crash of the replica.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Callable, Union

import attrs
import msgspec

from .commands import NOOP, REGISTER_SESSION, Command
from .errors import LocalProtocolError
from .machine import CommandError, SessionExpired, StateMachine, describe_exception
from .membership import GET_MEMBERSHIP, MEMBERSHIP_OP, Membership, MembershipError, changed
from .membership import node_id
from .membership import refusal as membership_refusal
from .replica import ClientRequest, Reply, ReplyStatus
from .values import CorruptValue, Value, canonical, from_json, to_json

#: The most removed nodes an Applier remembers (``Applier.left``).
MAX_LEFT = 1024

#: The log entry a leader commits to open its term or fill a gap.
NOOP_ENTRY = ClientRequest("", 0, NOOP)

#: What applying one entry gave: a reply status (``ok`` or ``error``) and the result.
Outcome = tuple[str, Value]

_DIGEST_ENCODER = msgspec.msgpack.Encoder()


def command_digest(command: Command) -> int:
    """A 56-bit digest of ``command``, the same in every process (it tells two commands apart)."""
    data = _DIGEST_ENCODER.encode((command.op, command.key, command.args))
    return int.from_bytes(hashlib.blake2b(data, digest_size=7).digest(), "big")


#: One session: last seq, its status and result, log time of last use, and its command (the command
#: itself while it is in memory -- compared without encoding -- or its digest once restored).
Session = tuple[int, str, Value, int, Union[Command, int]]

#: The digest a new session's seq 0 holds: no command matches it, so a request numbered 0 is refused.
OPENED = -1
#: The digest of a session restored from a snapshot written before digests were kept: any command matches.
UNKNOWN = 0


def reply_to(request: ClientRequest, status: str, result: Value = None, leader: str | None = None) -> Reply:
    """The answer to ``request``, naming its command by digest (a client takes only its own command's)."""
    return Reply(request.client_id, request.seq, status, result, leader, command_digest(request.command))


def same_command(a: Command, b: Command) -> bool:
    """True if ``a`` and ``b`` are the same command, value types included (``==`` takes 1 for True)."""
    return a is b or (a == b and command_digest(a) == command_digest(b))


def _refusal(kind: str, message: str) -> Outcome:
    return ReplyStatus.ERROR, CommandError(kind, message).to_result()


def _bool(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if type(value) is not bool:
        raise LocalProtocolError(f"session option {attribute.name} must be true or false, got {value!r}")


def int_at_least(low: int, what: str = "session option") -> Callable[[Any, attrs.Attribute, Any], None]:
    """An attrs validator: an int (not a bool) of at least ``low``; the error names ``what`` the field is."""
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise LocalProtocolError(f"{what} {attribute.name} must be an int >= {low}, got {value!r}")
    return check


@attrs.frozen
class SessionLimits:
    """How many client sessions a replica keeps, and for how long an idle one lives (log time)."""

    max_sessions: int = attrs.field(default=4096, validator=int_at_least(1))
    session_timeout_ms: int = attrs.field(default=600_000, validator=int_at_least(1))
    #: Refuse requests under ids the log never registered (real clusters); off, a new id opens a session.
    registered_sessions: bool = attrs.field(default=False, validator=_bool)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "SessionLimits":
        """Pick this class's settings out of a backend's options mapping."""
        return cls(**{a.name: options[a.name] for a in attrs.fields(cls) if a.name in options})


#: The option names :class:`SessionLimits` reads (every log backend accepts them).
SESSION_OPTIONS = frozenset(a.name for a in attrs.fields(SessionLimits))


#: Exceptions that belong to the node, not to the command that happened to be running.
NODE_LOCAL = (KeyboardInterrupt, MemoryError)


def run_command(machine: StateMachine, command: Any) -> Outcome:
    """Apply ``command`` to ``machine``; anything it raises becomes an ``error`` outcome, never a crash.

    BaseException is caught too: a ``SystemExit`` a command raises is its
    outcome, the same on every replica, not a reason for all of them to stop
    at once.  ``KeyboardInterrupt`` and ``MemoryError`` are this node's own
    condition (a signal, its memory), so they propagate.
    """
    try:
        result = machine.apply(command)
    except CommandError as exc:
        return ReplyStatus.ERROR, exc.to_result()
    except NODE_LOCAL:
        raise  # this node's own condition (a Ctrl-C, its memory), not the command's outcome
    except BaseException as exc:  # the user's method raised: part of the replicated outcome
        return ReplyStatus.ERROR, CommandError(type(exc).__name__, describe_exception(exc)).to_result()
    kind = type(result)
    if result is None or kind is bool or (isinstance(result, str) and kind is str and result.isascii()):
        return ReplyStatus.OK, result  # the common case, nothing to check
    try:
        return ReplyStatus.OK, canonical(result, f"result of {command.op}")
    except BaseException as exc:  # not a value (or a value whose repr raises)
        return ReplyStatus.ERROR, CommandError("BadResult", describe_exception(exc)).to_result()


class ExecutionWatch:
    """Reports a client request run twice on one state machine: the exactly-once check the simulator and
    the test network switch on (``LogCore.watch_executions``).

    It keeps its own record -- the highest seq each client has had run
    since the state was built or restored -- apart from the session table,
    so a session check that lets a retry through is caught however it
    fails.  Sequence numbers only grow within a session, so running a seq
    at or below that record is a second run of some request -- except for
    a client the table has forgotten altogether (see the module docstring:
    the one case a bounded table of client-named sessions cannot tell), whose
    record goes with it.
    """

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report
        self.highest: dict[str, int] = {}

    def running(self, client: str, seq: int, command: Command) -> None:
        """``client``'s request ``seq`` is about to run: report it if one at or past that seq already ran."""
        before = self.highest.get(client, 0)
        if seq <= before:
            self.report(f"exactly-once: client {client}'s request {seq} ({command.op}) runs again -- its "
                        f"session already ran request {before}")
        self.highest[client] = max(before, seq)

    def forget(self, client: str) -> None:
        """The table forgot ``client`` altogether (dropped, then out of ``recently_dropped``): a client-named
        session's unanswered retry may then run again -- the one gap of a bounded table -- so no record."""
        self.highest.pop(client, None)

    def restored(self, sessions: Mapping[str, Session]) -> None:
        """The state was replaced by a snapshot's: what ran is what its session table says."""
        self.highest = {client: session[0] for client, session in sessions.items()}


class Applier:
    """A state machine plus the client session table that makes commands exactly-once."""

    def __init__(self, factory: Callable[[], StateMachine], limits: SessionLimits | None = None,
                 membership: Membership | None = None, joint_consensus: bool = False) -> None:
        self.machine = factory()
        self.limits = limits or SessionLimits()
        #: The configuration applied so far (smr.membership); None where the runtime has no membership.
        self.membership = membership
        #: Changes of more than one voter go through a joint configuration (Raft) or take effect whole.
        self.joint_consensus = joint_consensus
        #: The nodes applied changes removed, most recent last (at most MAX_LEFT): how a node that joined
        #: and left again knows it left (``LogCore.retired``).
        self.left: dict[str, None] = {}
        #: client id -> (last seq, status, result, log time of last use, its command -- or, restored
        #: from a snapshot, the command's digest); oldest use first.
        self.sessions: dict[str, Session] = {}
        self.applied = 0
        self.time_ms = 0
        #: Sessions dropped so far (idle too long, or the least recently used beyond the bound).
        self.dropped = 0
        #: The ids of the most recently dropped sessions (at most max_sessions), oldest first.
        self.recently_dropped: dict[str, None] = {}
        #: Reports a request run twice (the simulator and test network set it; None: unchecked).
        self.watch: ExecutionWatch | None = None

    def apply(self, entry: ClientRequest) -> Outcome:
        """Apply ``entry`` unless that (client, seq) was applied before; return its outcome."""
        self.applied += 1
        if entry.time > self.time_ms:
            self.time_ms = entry.time
            self._expire()
        self.machine._smr_time_ms = self.time_ms
        client = entry.client_id
        if not client:
            return self._run(entry.command)
        if entry.command.op == REGISTER_SESSION.op:
            return self._register(client)
        last = self.sessions.pop(client, None)
        if last is not None:
            self.sessions[client] = (*last[:3], self.time_ms, last[4])
            if self._ran_before(entry.seq, last):
                return self._answered(client, entry, last)
        elif self.limits.registered_sessions or entry.acked > 0 or client in self.recently_dropped:
            return ReplyStatus.ERROR, SessionExpired(
                f"client {client} has no session (it expired, was evicted or was never registered): request "
                f"{entry.seq} was not run now, an earlier attempt may have; the client carries on under a new "
                f"session").to_result()
        if self.watch is not None:
            self.watch.running(client, entry.seq, entry.command)
        status, result = self._run(entry.command)
        self.sessions[client] = (entry.seq, status, result, self.time_ms, entry.command)
        self._bound()
        return status, result

    def _run(self, command: Command) -> Outcome:
        """Run one command: a membership change on the configuration, anything else on the state machine."""
        if command.op != MEMBERSHIP_OP:
            return run_command(self.machine, command)
        if command == GET_MEMBERSHIP:
            return self.query(command)
        if self.membership is None:
            return _refusal("MembershipError", "this runtime has no membership to change")
        try:
            before, self.membership = self.membership, changed(self.membership, command, self.joint_consensus)
        except MembershipError as exc:
            return ReplyStatus.ERROR, exc.to_result()
        for node in sorted(set(before.members) - set(self.membership.members)):  # (not hash order)
            self.left.pop(node, None)
            self.left[node] = None
            if len(self.left) > MAX_LEFT:
                del self.left[next(iter(self.left))]
        return ReplyStatus.OK, self.membership.as_value()

    def _register(self, nonce: str) -> Outcome:
        """Open a session under an id no replica ever assigned before; answer that id.

        The id is the entry's position plus a digest of the registering
        client's random nonce: the same on every replica, and not guessable
        by another client.
        """
        client = f"s{self.applied}.{hashlib.blake2b(nonce.encode(), digest_size=6).hexdigest()}"
        self.sessions[client] = (0, ReplyStatus.OK, None, self.time_ms, OPENED)
        self._bound()
        return ReplyStatus.OK, client

    def _ran_before(self, seq: int, last: Session) -> bool:
        """True if the session (its ``last`` request) has reached ``seq``: that request is answered from
        the table, never run (again).  The exactly-once rule; ``RetryRunsAgain`` breaks it."""
        return seq <= last[0]

    @staticmethod
    def _answered(client: str, request: ClientRequest, last: Session) -> Outcome:
        """The answer to a request whose seq this session has reached: its outcome, or why not."""
        if request.seq < last[0]:
            return _refusal("StaleRequest", f"session {client} has moved past seq {request.seq} (it is at "
                                            f"{last[0]}); this request was not run now")
        held = last[4]
        if isinstance(held, int):  # restored from a snapshot: only the digest is known
            same = held == UNKNOWN or command_digest(request.command) == held
        else:
            same = same_command(request.command, held)
        if not same:
            return _refusal("SequenceReused", f"session {client} ran another command as seq {request.seq}; "
                                              f"this one ({request.command.op}) was not run")
        return last[1], last[2]

    def _bound(self) -> None:
        """Drop the least recently used sessions beyond ``max_sessions``."""
        while len(self.sessions) > self.limits.max_sessions:
            self._drop(next(iter(self.sessions)))

    def _drop(self, client: str) -> None:
        """Forget ``client``'s session, remembering only its id for a while."""
        del self.sessions[client]
        self.dropped += 1
        self.recently_dropped[client] = None
        if len(self.recently_dropped) > self.limits.max_sessions:
            forgotten = next(iter(self.recently_dropped))
            del self.recently_dropped[forgotten]
            if self.watch is not None:  # its retry may now run again: the one case the docstring allows
                self.watch.forget(forgotten)

    def _expire(self) -> None:
        horizon = self.time_ms - self.limits.session_timeout_ms
        while self.sessions:
            oldest = next(iter(self.sessions))
            if self.sessions[oldest][3] >= horizon:
                break
            self._drop(oldest)

    def query(self, command: Any) -> Outcome:
        """Answer a read-only command from the current state (no log entry, no session)."""
        if command == GET_MEMBERSHIP:
            if self.membership is None:
                return _refusal("MembershipError", "this runtime has no membership")
            return ReplyStatus.OK, self.membership.as_value()
        return run_command(self.machine, command)

    def refusal(self, request: ClientRequest) -> CommandError | None:
        """Why ``request`` cannot run here, or None: the state machine's refusal, or a malformed session opening."""
        command = request.command
        if command.op == MEMBERSHIP_OP:
            return membership_refusal(command)
        if command.op != REGISTER_SESSION.op:
            return self.machine.refusal(command)
        if command.key or command.args or not request.client_id:
            return CommandError("BadArguments", f"{command.op} takes no key or arguments and needs a client id")
        return None

    def lookup(self, request: ClientRequest) -> tuple[bool, str, Value]:
        """Return (True, status, result) if ``request`` has an answer now, without the log.

        That is: its (client, seq) ran this very command (the first outcome
        again), or the session's seq has reached it under another command
        (``SequenceReused``) or moved past it (``StaleRequest``), or the state
        machine refuses the command outright (``UnknownCommand``,
        ``BadArguments``: see :meth:`smr.machine.StateMachine.refusal`).
        """
        last = self.sessions.get(request.client_id)
        if last is None or not self._ran_before(request.seq, last) or not request.client_id:
            refused = self.refusal(request)
            if refused is not None:  # bound to fail: answered now, never proposed
                return True, ReplyStatus.ERROR, refused.to_result()
            return False, ReplyStatus.OK, None
        status, result = self._answered(request.client_id, request, last)
        return True, status, result

    def snapshot(self) -> bytes:
        """Return state machine and sessions as one canonical blob (session order kept)."""
        sessions = [[k, s, st, to_json(r), t, c if isinstance(c, int) else command_digest(c)]
                    for k, (s, st, r, t, c) in self.sessions.items()]
        return json.dumps({"machine": base64.b64encode(self.machine.snapshot()).decode("ascii"),
                           "sessions": sessions, "applied": self.applied, "time_ms": self.time_ms,
                           "dropped": self.dropped, "recently_dropped": list(self.recently_dropped),
                           **({} if self.membership is None else {"membership": self.membership.as_value(),
                                                                  "left": list(self.left)})},
                          sort_keys=True, separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        """Replace state machine and sessions with those of a snapshot (CorruptValue if malformed)."""
        try:
            obj = json.loads(data, parse_constant=_no_constant)
            machine = base64.b64decode(obj["machine"], validate=True)
            sessions: dict[str, Session] = {
                _str(row[0]): (_int(row[1]), _str(row[2]), from_json(row[3]), _int(row[4]),
                               _int(row[5]) if len(row) > 5 else UNKNOWN) for row in obj["sessions"]}
            applied, time_ms, dropped = _int(obj["applied"]), _int(obj["time_ms"]), _int(obj["dropped"])
            recently_dropped = dict.fromkeys(_str(k) for k in obj["recently_dropped"])
            membership = Membership.from_value(obj["membership"]) if "membership" in obj else self.membership
            left_ids = obj.get("left", [])
            if not isinstance(left_ids, list):
                raise TypeError("left must be a list")
            left = dict.fromkeys(node_id(_str(n), "left") for n in left_ids[-MAX_LEFT:])
        except (ValueError, TypeError, LookupError, AttributeError, binascii.Error, UnicodeDecodeError,
                RecursionError) as exc:  # (LookupError: a key or a row's field missing)
            raise CorruptValue(f"session snapshot is malformed: {type(exc).__name__}: {exc}") from None
        try:
            self.machine.restore(machine)
        except NODE_LOCAL:
            raise
        except BaseException as exc:  # the machine's own restore refused the bytes
            raise CorruptValue(f"{self.machine.name} snapshot does not restore: {type(exc).__name__}: "
                               f"{describe_exception(exc)}") from None
        self.sessions, self.applied, self.time_ms, self.dropped = sessions, applied, time_ms, dropped
        self.recently_dropped = recently_dropped
        self.membership, self.left = membership, left
        self.machine._smr_time_ms = time_ms
        if self.watch is not None:
            self.watch.restored(sessions)


def _no_constant(name: str) -> Any:
    """JSON's NaN and Infinity are not in a snapshot this code wrote."""
    raise ValueError(f"{name} in a snapshot")


def _int(value: Any) -> int:
    """An int field of a snapshot, checked (no bools, no floats)."""
    if type(value) is not int:
        raise TypeError(f"expected an int, got {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    """A str field of a snapshot, checked."""
    if type(value) is not str:
        raise TypeError(f"expected a str, got {type(value).__name__}")
    return value


class RetryRunsAgain(Applier):
    """BROKEN (the ``mutant_retry_runs_again`` of both backends): a retry of a session's latest request
    is taken for a new one, so it is proposed and run again -- the session check off by one."""

    def _ran_before(self, seq: int, last: Session) -> bool:
        """Only requests before the latest count as run."""
        return seq < last[0]
