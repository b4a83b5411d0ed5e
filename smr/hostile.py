"""Hostile but well-typed peer messages for any replicated-log backend, and a runner that feeds them to cores.

Issue 22's insider: someone holding the cluster's peer credential sends
messages that decode fine -- every field has its declared type and fits the
codec -- but whose values no correct peer would send: ``0``, ``-1``,
``2**63 - 1``, ``-2**63``, indexes far beyond or behind the receiver's log,
terms and ballots far ahead, empty, huge and odd strings, unknown node ids and
the receiver's own id, command arguments nested to the codec's limit,
snapshots claiming indexes older or newer than the log whose data is not JSON
(or JSON nested 100,000 deep), commands with an operation the state machine
does not have.  Mixed with them are real messages captured from the same run,
replayed unchanged or with a few fields replaced, so that many get past a
core's first checks.

:class:`HostileGenerator` walks the attrs fields of every message class the
backend registered with :mod:`smr.wire` (``typing.get_type_hints``), so a
message added or reshaped later is fuzzed without a change here.  All of its
randomness comes from one seed: message ``i`` of a run is drawn from
``random.Random(f"{seed}/{i}")`` and what the generator has seen so far.

**Lies.**  A peer holding the credential can also *lie*: send a message that
is possible -- a vote granted, an acknowledgement, entries or a snapshot in
the current term -- but false.  No crash-fault-tolerant protocol survives
that (it is the Byzantine model), so by default (``lies=False``) the
generator never sends a plausible lie: a forged vote, acknowledgement,
promise, log content or commit index is sent only when it also carries an
impossible value (:func:`impossible`) -- the value a core must check, and
drop the whole message for.  Exact replays of real messages are not lies
(a network may duplicate and delay).  ``lies=True`` lifts the guard; the
safety violations that follow are then expected, and reported apart.

:func:`fuzz_core` is the direct runner: a 3-node in-process cluster
(:class:`smr.testing.Network`) elects a leader and commits client writes, then
hostile messages are interleaved with its normal traffic, each through the
wire codec first (a message the decoder refuses never reaches the core, as
over TCP).  Every exception a core raises (a crash: the node is restarted
from its durable state), every output a real node could not encode or store
(it would die), every step that takes too long (a wedge), every safety
violation (the backend's invariants and the commit ledger) is reported once
per signature, with the message, the receiver's state and the command that
replays it.  At the end the cluster must still commit a write (liveness)::

    python -m smr.hostile --backend raft --messages 3000 --seed 1
    python -m smr.hostile --backend raft --messages 3000 --seed 1 --show 1234   # replay one
"""

from __future__ import annotations

import argparse
import re
import base64
import json
import os
import random
import reprlib
import signal
import sys
import time
import traceback
import types
import typing
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import attrs

from . import wire
from .commands import NOOP, REGISTER_SESSION, Command
from .errors import LocalProtocolError, RemoteProtocolError
from .replica import TICK, ClientRequest, Ready, Receive, ReplyStatus, get_backend
from .sessions import Applier, same_command
from .state_machines import KVStore
from .testing import Network
from .values import MAX_DEPTH

#: Values at or beyond this (or below 0) in a protocol field are impossible (smr.bounds' MAX_EPOCH/MAX_INDEX).
IMPOSSIBLE_FROM = 2 ** 62
#: The frame limit a message must fit (the TCP runtime's default ``max_frame_bytes``).
FRAME_LIMIT = 4 * 1024 * 1024

_INT_BOUNDS = (0, 1, -1, 2, -2, -2 ** 63, 2 ** 63 - 1, 2 ** 64 - 1, 2 ** 62, 2 ** 62 - 1, 2 ** 62 + 1,
               2 ** 31 - 1, 2 ** 32, 10 ** 18)
#: Fields whose ints are terms or ballot rounds (compared with the receiver's epoch).
_EPOCH_FIELDS = frozenset({"term", "prev_term", "last_log_term", "conflict_term", "epoch", "round"})
#: Fields whose ints are log positions or counts (compared with the receiver's log).
_INDEX_FIELDS = frozenset({"index", "prev_index", "commit", "last_log_index", "conflict_index", "slot",
                           "first_slot", "from_slot", "last_slot", "count", "offset", "last_index",
                           "last_included", "size", "total", "length", "received", "applied", "part", "parts",
                           "next", "match"})
#: Fields that name a node.
_NODE_FIELDS = frozenset({"vote", "node", "leader", "src", "dst", "voted_for", "id", "sender"})
#: Fields holding snapshot text.
_DATA_FIELDS = frozenset({"data", "chunk"})
#: Classes whose instances only ever make a receiver campaign, step down or resend: never a lie.
HARMLESS = frozenset({"RequestVote", "TimeoutNow", "Prepare", "Nack", "CatchupRequest", "InstallSnapshotReply",
                      "SnapshotRequest", "Behind",
                      "HardState", "Entry", "SnapshotRecord"})  # durable records: no core takes one from a peer
#: Multi-Paxos classes an acceptor refuses below its promise (others, e.g. Catchup, carry facts in any ballot).
_BALLOT_CHECKED = frozenset({"Accept", "Heartbeat"})
#: Classes a proposer receives for its own ballot (a forged one for the receiver's ballot is a lie).
_FOR_PROPOSER = frozenset({"Promise", "PromisePart", "Accepted"})
_KV_OPS = ("put", "get", "cas", "delete")
_OPS = (*_KV_OPS, *_KV_OPS, "noop", REGISTER_SESSION.op, "bogus", "", "__init__", "_private", "apply",
        "snapshot", "restore", "x" * 10_000, "get ", "PUT", "é")


# ====================================================================== what the generator knows
@attrs.frozen
class View:
    """What the generator knows of a receiver: its id, the members, its epoch, commit and last index.

    ``last_max`` bounds the receiver's real last index from above when
    ``last`` is only an estimate (a live node's status report): an
    acknowledgement beyond it is impossible.  ``floor`` bounds from below the
    epoch under which the receiver refuses epoch-checked messages (Raft: its
    term; multi-Paxos: the round it promised); only a message below the floor
    is known to be dropped (see :func:`epoch_floor`).
    """

    node: str
    members: tuple[str, ...]
    epoch: int = 0
    commit: int = 0
    last: int = 0
    leader: str | None = None
    role: str = ""
    last_max: int | None = None
    floor: int = 0

    @property
    def last_bound(self) -> int:
        """No correct peer acknowledges an index beyond this."""
        return self.last if self.last_max is None else self.last_max


@attrs.frozen
class Hostile:
    """Hostile message number ``index``: ``message`` from ``src`` to ``dst``; ``how`` says how it was made."""

    index: int
    src: str
    dst: str
    message: Any
    how: str

    def describe(self) -> str:
        """One line: index, route, how it was made, and the message (shortened)."""
        return f"#{self.index} {self.src}->{self.dst} [{self.how}] {short_repr(self.message)}"


class Samples:
    """Real messages seen in a run, the latest few per (destination, class): material for replays and mutations."""

    def __init__(self, per_kind: int = 8) -> None:
        self.per_kind = per_kind
        self._by: dict[tuple[str, str], deque[tuple[str, Any]]] = {}
        self._kinds: dict[str, list[str]] = {}

    def add(self, src: str, dst: str, message: Any) -> None:
        """Remember ``message``, sent from ``src`` to ``dst``."""
        key = (dst, type(message).__name__)
        got = self._by.get(key)
        if got is None:
            got = self._by[key] = deque(maxlen=self.per_kind)
            self._kinds.setdefault(dst, []).append(key[1])
        got.append((src, message))

    def pick(self, rng: random.Random, dst: str) -> tuple[str, Any] | None:
        """A real (src, message) sent to ``dst`` (any class, then any of its latest), or None."""
        kinds = self._kinds.get(dst)
        if not kinds:
            return None
        return rng.choice(self._by[(dst, rng.choice(kinds))])

    def all(self) -> Iterator[tuple[str, str, Any]]:
        """Every remembered (src, dst, message), oldest first within each (destination, class)."""
        for (dst, _), got in self._by.items():
            for src, message in got:
                yield src, dst, message

    def clear(self) -> None:
        """Forget every sample (a new cluster: an old one's messages would not be replays there)."""
        self._by.clear()
        self._kinds.clear()

    def __len__(self) -> int:
        return sum(len(v) for v in self._by.values())


# ====================================================================== helpers
_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 400
_REPR.maxlevel = 5
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = 6


def short_repr(obj: Any, limit: int = 700) -> str:
    """``repr(obj)`` cut to about ``limit`` characters (long strings and deep values elided in the middle)."""
    try:
        text = _attrs_repr(obj, 0)
    except RecursionError:
        text = f"<{type(obj).__name__} nested too deeply to show>"
    if len(text) > limit:
        text = text[:limit - 40] + f"...<{len(text) - limit + 40} chars>..." + text[-30:]
    return text


def _attrs_repr(obj: Any, depth: int) -> str:
    if depth > 8:
        return "..."
    if attrs.has(type(obj)):
        parts = ", ".join(f"{f.name}={_attrs_repr(getattr(obj, f.name), depth + 1)}"
                          for f in attrs.fields(type(obj)))
        return f"{type(obj).__name__}({parts})"
    if isinstance(obj, tuple) and obj and attrs.has(type(obj[0])):
        inner = ", ".join(_attrs_repr(x, depth + 1) for x in obj[:4])
        return f"({inner}{', ...+%d' % (len(obj) - 4) if len(obj) > 4 else ''})"
    if isinstance(obj, str) and len(obj) > 80:
        return repr(obj[:40]) + f"...<{len(obj)} chars>"
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > 2 ** 70:
        return f"<int of {len(str(abs(obj)))} digits>"
    return _REPR.repr(obj)


_HINTS: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every init field of attrs class ``cls`` (by attribute name)."""
    hints = _HINTS.get(cls)
    if hints is None:
        try:
            resolved = typing.get_type_hints(cls)
        except Exception:  # an annotation that does not resolve: every such field is fuzzed as Any
            resolved = {}
        hints = _HINTS[cls] = {f.name: resolved.get(f.name, Any) for f in attrs.fields(cls) if f.init}
    return hints


def messages_of(backend: str) -> list[type]:
    """The wire message classes of ``backend``'s package (loading it registers them), sorted by name."""
    get_backend(backend)
    root = _package_of(backend)
    return [cls for name, cls in sorted(wire.registered_messages().items()) if name.split(".")[0] == root]


def _package_of(backend: str) -> str:
    factory = get_backend(backend).factory
    return getattr(factory, "__module__", "smr").split(".")[0]


def _restores(data: str) -> bool:
    """True if ``data`` is a snapshot a KVStore replica would restore."""
    try:
        Applier(KVStore).restore(data.encode())
    except Exception:
        return False
    return True


def _real_snapshot() -> str:
    applier = Applier(KVStore)
    for i in range(3):
        applier.apply(ClientRequest(f"c{i}", 1, Command("put", f"k{i}", (str(i),))))
    return applier.snapshot().decode()


_SNAPSHOT = _real_snapshot()


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def _snapshot_variants() -> list[str]:
    real = json.loads(_SNAPSHOT)
    missing = {k: v for k, v in real.items() if k != "machine"}
    garbage = {**real, "machine": base64.b64encode(b"\xff\xfe not json").decode()}
    deep_machine = {**real, "machine": base64.b64encode(_deep_json(100_000).encode()).decode()}
    bad_sessions = {**real, "sessions": [["c", "x", 1, None, 0, 0]]}
    bad_applied = {**real, "applied": -1}
    huge_applied = {**real, "applied": 2 ** 64 + 1}
    return ["", "not json", "{", "null", "[]", "{}", "NaN", '"machine"', _deep_json(100_000),
            "[" * 100_000, '{"machine": ' * 5000, "1" * 5000, '{"applied": ' + "9" * 5000 + "}",
            json.dumps(missing), json.dumps(garbage), json.dumps(deep_machine), json.dumps(bad_sessions),
            json.dumps(bad_applied), json.dumps(huge_applied), _SNAPSHOT + " ", _SNAPSHOT]


_SNAPSHOTS = _snapshot_variants()


# ====================================================================== impossible values and lies
def _bounded(owner: Any, name: str) -> bool:
    """True if field ``name`` of ``owner`` is an epoch (term, ballot round) or a log position or count.

    Those are the ints a core bounds (smr.bounds: MAX_EPOCH, MAX_INDEX); a
    heartbeat ``round`` is only echoed, so no value of it is impossible.
    """
    if name == "round":
        return type(owner).__name__ == "Ballot"
    return name in _EPOCH_FIELDS or name in _INDEX_FIELDS


def _ints(obj: Any, in_command: bool = False, depth: int = 0) -> Iterator[tuple[str, int]]:
    """(field name, value) of every bounded int (:func:`_bounded`) of a message, outside client requests."""
    if depth > 12:
        return
    if attrs.has(type(obj)):
        command = in_command or isinstance(obj, (ClientRequest, Command))
        for f in attrs.fields(type(obj)):
            value = getattr(obj, f.name)
            if type(value) is int and not command and _bounded(obj, f.name):
                yield f.name, value
            elif attrs.has(type(value)) or isinstance(value, tuple):
                yield from _ints(value, command, depth + 1)
    elif isinstance(obj, tuple):
        for item in obj[:64]:
            if attrs.has(type(item)) or isinstance(item, tuple):
                yield from _ints(item, in_command, depth + 1)


def _walk(obj: Any, depth: int = 0) -> Iterator[Any]:
    """Every attrs value inside ``obj`` (itself included), outside client commands' arguments."""
    if depth > 12:
        return
    if attrs.has(type(obj)):
        yield obj
        if isinstance(obj, Command):
            return
        for f in attrs.fields(type(obj)):
            value = getattr(obj, f.name)
            if attrs.has(type(value)) or isinstance(value, tuple):
                yield from _walk(value, depth + 1)
    elif isinstance(obj, tuple):
        for item in obj[:64]:
            yield from _walk(item, depth + 1)


_MACHINE = KVStore()
#: Arguments (besides the key) each KVStore operation takes, for machines without ``refusal``.
_ARITY = {"put": 1, "get": 0, "cas": 2, "delete": 0, NOOP.op: 0, REGISTER_SESSION.op: 0}


def _refused(command: Command) -> str | None:
    """Why a leader would never have proposed ``command`` (the state machine refuses it), or None."""
    if command.op == REGISTER_SESSION.op:
        return None if not command.args else f"{command.op} with arguments"
    refusal = getattr(_MACHINE, "refusal", None)
    if refusal is not None:
        refused = refusal(command)
        return None if refused is None else f"command {command.op[:40]!r} refused: {str(refused)[:80]}"
    if command.op not in _ARITY:
        return f"command op {command.op[:40]!r} unknown"
    if len(command.args) != _ARITY[command.op]:
        return f"{command.op} with {len(command.args)} arguments"
    return None


def _whole(part: Any, holder: Any) -> bool:
    """True unless ``holder`` marks ``part`` as one chunk of a longer snapshot (checked once reassembled)."""
    return getattr(holder, "offset", 0) == 0 and getattr(holder, "done", True) is True


def impossible(message: Any, src: str, view: View) -> str | None:
    """Why no correct peer could have sent ``message`` from ``src`` to ``view.node`` (None: it could have).

    The rules a core can check before acting on a message (issue 22, deliverable 1):

    * ``src`` is not another member of the cluster;
    * a term, ballot round, index, slot, offset or count below 0, or at or
      beyond :data:`IMPOSSIBLE_FROM` (2**62) (a heartbeat round is not bounded);
    * a ballot that names a node outside the cluster, or, on a message only a
      proposer sends (Prepare, Accept, Heartbeat, Catchup), not its sender;
    * an acknowledgement beyond the receiver's log (an index it never sent);
    * a Raft AppendEntries whose previous or entry terms exceed its own term;
    * a multi-Paxos chosen value that carries a ballot (only an accepted one does);
    * snapshot text that does not restore;
    * a log entry whose command the state machine does not have, or with the
      wrong number of arguments (a command without a client id, or a client's
      no-op, is legal: the simulator's scripted commands and a client's barrier).
    """
    members = set(view.members)
    if src not in members or src == view.node:
        return f"sender {src!r} is not another member"
    for name, value in _ints(message):
        if value < 0 or value >= IMPOSSIBLE_FROM:
            return f"{name}={value} out of range"
    name = type(message).__name__
    ballot = getattr(message, "ballot", None)
    if ballot is not None and hasattr(ballot, "node"):
        if ballot.node not in members:
            return f"ballot of unknown node {ballot.node!r}"
        if name in ("Prepare", "Accept", "Heartbeat", "Catchup") and ballot.node != src:
            return f"{name} ballot {ballot.node!r} is not its sender {src!r}"
    if name == "AppendEntriesReply" and getattr(message, "success", False) and message.index > view.last_bound:
        return f"acknowledges index {message.index} beyond the log's {view.last_bound}"
    if name == "Accepted":
        top = message.first_slot + message.count - 1
        if top > view.last_bound or message.first_slot < 1 or message.count < 1:
            return f"acknowledges slots {message.first_slot}..{top} beyond the log's {view.last_bound}"
    term = getattr(message, "term", None)
    if name == "AppendEntries" and type(term) is int:
        if message.prev_term > term or any(e.term > term or e.term < message.prev_term for e in message.entries):
            return "entry terms beyond the message's term"
    if any(getattr(value, "ballot", None) is not None for value in getattr(message, "chosen", ()) or ()):
        return "a chosen value carries a ballot"
    for node_field in ("vote", "leader"):
        named = getattr(message, node_field, None)
        if isinstance(named, str) and named not in members:
            return f"{node_field} {named[:40]!r} is not a member"
    for part in _walk(message):
        for f in _DATA_FIELDS:
            data = getattr(part, f, None)
            if isinstance(data, str) and not isinstance(part, (ClientRequest, Command)) and \
                    _whole(part, part) and _whole(part, message) and not _restores(data):
                return f"{type(part).__name__}.{f} does not restore"
        if isinstance(part, ClientRequest):
            refused = _refused(part.command)
            if refused is not None:
                return refused
    return None


def lie(message: Any, src: str, view: View) -> str | None:
    """Why ``message`` (not a replay) would be a plausible lie to ``view.node`` (None: it is harmless or impossible).

    A lie grants a vote, acknowledges entries, promises, carries log content
    or a snapshot, or advances a commit index, in an epoch the receiver would
    act on, with no impossible value to give it away.
    """
    name = type(message).__name__
    if name in HARMLESS or impossible(message, src, view) is not None:
        return None
    term = getattr(message, "term", None)
    ballot = getattr(message, "ballot", None)
    epoch = term if type(term) is int else getattr(ballot, "round", None)
    if not _whole(message, message):
        return None  # one chunk of a snapshot: garbage makes the whole fail to restore (checked then)
    if type(epoch) is int and epoch < view.floor and name not in _FOR_PROPOSER and \
            (type(term) is int or name in _BALLOT_CHECKED):
        return None  # a past term (Raft's central check drops it) or a ballot below the acceptor's promise
    if name in ("RequestVoteReply",):
        return "a granted vote" if message.granted else None
    if name == "AppendEntriesReply":
        return "an acknowledgement" if message.success else None
    if name in _FOR_PROPOSER:
        if ballot is not None and getattr(ballot, "node", None) != view.node:
            return None  # for another proposer's ballot: ignored
        return f"a {name} for the receiver's own ballot"
    if type(term) is int or name in _BALLOT_CHECKED:
        return f"a {name} in a current or future epoch"
    return f"a {name}, which its receiver takes in any ballot"


# ====================================================================== the generator

class HostileGenerator:
    """Draws hostile, well-typed peer messages for one backend from a seed (see the module docstring).

    Args:
        backend: a registered replicated-log backend (``raft``, ``multipaxos``, ...).
        seed: message ``i`` is drawn from ``random.Random(f"{seed}/{i}")``.
        samples: real messages of the run (replayed and mutated); none: every message is forged.
        lies: send plausible lies too (see :func:`lie`).
        live: every sample is foreign to the receiver (no replay is real), and the
            sender is always another member (a TCP node refuses any other hello).
    """

    def __init__(self, backend: str, seed: int, samples: Samples | None = None, *, lies: bool = False,
                 live: bool = False) -> None:
        self.backend = backend
        self.seed = seed
        self.samples = samples if samples is not None else Samples()
        self.lies = lies
        self.live = live
        self.classes = messages_of(backend)
        # The durable records and another backend's messages: the wrong type on the right connection.
        self.foreign = [cls for name, cls in sorted(wire.registered_messages().items())
                        if cls not in self.classes and name.split(".")[0] in ("raft", "multipaxos")]
        self.rng = random.Random(seed)
        self.view = View("n1", ("n1", "n2", "n3"))
        #: How the messages drawn so far were made ("replay", "mutate", "forge", "foreign"), and lies refused.
        self.made: Counter[str] = Counter()

    # ------------------------------------------------------------ one message
    def next(self, index: int, dst: str, view: View) -> Hostile:
        """Hostile message number ``index`` for receiver ``dst`` in state ``view``."""
        self.rng = random.Random(f"{self.seed}/{index}")
        self.view = view
        for _ in range(40):
            src = self._src(view)
            sample = self.samples.pick(self.rng, dst)
            r = self.rng.random()
            if sample is not None and r < 0.1:
                src, message = sample
                how = "replay"
                real = not self.live
            elif sample is not None and r < 0.72:
                src = sample[0] if self.rng.random() < 0.8 or self.live else src
                message, how = self._mutate(sample[1])
                real = False
            elif r < 0.97 or not self.foreign:
                cls = self.rng.choice(self.classes)
                message, how = self._build(cls), f"forge {cls.__name__}"
                real = False
            else:
                cls = self.rng.choice(self.foreign)
                message, how = self._build(cls), f"foreign {cls.__name__}"
                real = True  # no core acts on another backend's message or a durable record
            if self.live and src not in view.members or (self.live and src == dst):
                src = self.rng.choice([m for m in view.members if m != dst])
            if not real and not self.lies:
                why = lie(message, src, view)
                if why is not None:
                    self.made["lie refused"] += 1
                    continue
            self.made[how.split()[0]] += 1
            return Hostile(index, src, dst, message, how)
        self.made["fallback"] += 1  # forty lies in a row: send something harmless
        cls = next((c for c in self.classes if c.__name__ in HARMLESS), self.classes[0])
        src = self.rng.choice([m for m in view.members if m != dst])
        return Hostile(index, src, dst, self._build(cls), f"forge {cls.__name__} (fallback)")

    def _src(self, view: View) -> str:
        peers = [m for m in view.members if m != view.node]
        r = self.rng.random()
        if self.live or r < 0.85:
            return self.rng.choice(peers)
        if r < 0.92:
            return view.node  # the receiver's own id
        return self.rng.choice(["n9", "", "n0", "N1", "n1 ", "9" * 5000, "x" * 1000, "é"])

    # ------------------------------------------------------------ values by type
    def fill(self, tp: Any, name: str, depth: int = 0) -> Any:
        """A hostile value of type ``tp`` for a field called ``name``."""
        rng = self.rng
        origin = typing.get_origin(tp)
        if tp is Any or tp is object:
            return self.value(depth)
        if origin is Union or origin is types.UnionType:
            options = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(options) < len(typing.get_args(tp)) and rng.random() < 0.3:
                return None
            return self.fill(rng.choice(options), name, depth)
        if tp is bool:
            return rng.random() < 0.5
        if tp is int:
            return self.integer(name)
        if tp is str:
            return self.string(name)
        if tp is float:
            return rng.choice([0.0, -0.0, 1e308, -1e308, 5e-324, 0.1, 2.0 ** 63])
        if tp is bytes:
            return rng.choice([b"", b"\x00", bytes(range(256)), b"x" * 100_000])
        if tp is type(None):
            return None
        if origin is tuple or origin is list:
            args = typing.get_args(tp)
            if len(args) == 2 and args[1] is Ellipsis or origin is list:
                n = self.length(name)
                distinct = [self.fill(args[0] if args else Any, name, depth + 1) for _ in range(min(n, 4))]
                items = [distinct[i % len(distinct)] for i in range(n)] if distinct else []
            else:
                items = [self.fill(a, name, depth + 1) for a in args]
            return tuple(items) if origin is tuple else items
        if origin is dict or origin is Mapping or tp is dict:
            args = typing.get_args(tp) or (str, Any)
            return {self.fill(args[0], name, depth + 1): self.fill(args[1], name, depth + 1)
                    for _ in range(self.length(name))}
        if tp is Command:
            return self.command()
        if isinstance(tp, type) and attrs.has(tp):
            return self._build(tp, depth + 1)
        return self.value(depth)

    def integer(self, name: str) -> int:
        """A hostile int for field ``name``: a 64-bit boundary, or near/far from the receiver's state."""
        return min(max(self._integer(name), -2 ** 63), 2 ** 64 - 1)  # what the codec carries

    def _integer(self, name: str) -> int:
        rng, v = self.rng, self.view
        if rng.random() < 0.4:
            return rng.choice(_INT_BOUNDS)
        if name in _EPOCH_FIELDS:
            return max(0, rng.choice([v.epoch, v.epoch + 1, v.epoch - 1, v.epoch + 2, v.epoch + rng.randint(3, 1000),
                                      v.epoch + 10 ** 6, v.epoch + 10 ** 12, 0, 1]))
        if name in _INDEX_FIELDS or name in ("seq", "acked"):
            return max(0, rng.choice([v.last, v.last + 1, v.last + 2, v.last + rng.randint(3, 100), v.last + 10 ** 6,
                                      v.last + 10 ** 9, v.commit, v.commit - 1, v.commit - rng.randint(1, 50),
                                      v.commit // 2, 0, 1]))
        return rng.choice([0, 1, rng.randint(0, 1000), 10 ** 6, 10 ** 12, v.epoch, v.last])

    def string(self, name: str) -> str:
        """A hostile str for field ``name``: member ids, unknown ids, empty, huge or odd text."""
        rng, v = self.rng, self.view
        ids = [*v.members, v.node, v.node, "n9", "n0", "", "N1", "n1 ", "9" * 5000, "n" + "9" * 5000, "-1"]
        if name in _NODE_FIELDS:
            return rng.choice(ids)
        if name in _DATA_FIELDS:
            return rng.choice(_SNAPSHOTS)
        if name == "op":
            return rng.choice(_OPS)
        pool = [*ids, "k0", "k1", "a", " ", "\x00", "\n", "é" * 10, "\U0001f4a5", "$bytes", "null",
                "smr.register_session", "s1.0123456789ab", "x" * 1000, "x" * 100_000, "\u202e" + "x"]
        return rng.choice(pool)

    def length(self, name: str) -> int:
        """How many items a hostile tuple, list or dict gets."""
        return self.rng.choice([0, 0, 1, 1, 1, 2, 3, 5, 16, 64, 300])

    def value(self, depth: int = 0) -> Any:
        """A hostile command argument or result (within the codec's limits: 64-bit ints, nesting < 64)."""
        rng = self.rng
        r = rng.random()
        if r < 0.5 or depth > 3:
            return rng.choice([None, True, False, 0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1, 1.5, -0.0, 1e308,
                               "", "x", "x" * 100_000, "\x00", "é", b"", b"\xff" * 1000, "$bytes", "9" * 5000])
        if r < 0.7:
            inner: Any = rng.choice([None, 1, "x", [], {}])
            for _ in range(rng.choice([10, MAX_DEPTH - 2, MAX_DEPTH - 1])):
                inner = [inner] if rng.random() < 0.7 else {"k": inner}
            return inner
        if r < 0.8:
            return [self.value(depth + 1) for _ in range(rng.choice([0, 1, 3]))]
        if r < 0.85:
            return [rng.choice([0, "x", None, 2 ** 64 - 1])] * rng.choice([100, 1000])
        return {rng.choice(["", "$bytes", "$tuple", "$map", "$dict", "k", "\x00", "x" * 1000]): self.value(depth + 1)
                for _ in range(rng.choice([0, 1, 3]))}

    def command(self) -> Command:
        """A hostile command: unknown or reserved ops, odd keys, arguments of the wrong number or shape."""
        rng = self.rng
        for _ in range(10):
            op = rng.choice(_OPS)
            key = rng.choice(["k0", "k1", "", "x" * 100_000, "\x00", "é", "$map", "9" * 5000])
            n = rng.choice([0, 1, 1, 2, 3, 50])
            try:
                return Command(op, key, tuple(self.value() for _ in range(n)))
            except (TypeError, ValueError):
                continue
        return Command("bogus")

    # ------------------------------------------------------------ whole messages
    def _build(self, cls: type, depth: int = 0) -> Any:
        """An instance of attrs class ``cls`` with every field hostile."""
        for _ in range(10):
            kwargs = {name: self.fill(tp, name, depth) for name, tp in field_types(cls).items()}
            try:
                return cls(**kwargs)
            except (TypeError, ValueError):
                continue
        return cls(**{name: self._default(tp) for name, tp in field_types(cls).items()})

    def _default(self, tp: Any) -> Any:
        """The plainest value of type ``tp`` (when ten hostile tries fail the class's validators)."""
        origin = typing.get_origin(tp)
        if origin is Union or origin is types.UnionType:
            return None if type(None) in typing.get_args(tp) else self._default(typing.get_args(tp)[0])
        if tp in (int, float):
            return tp(0)
        if tp is bool:
            return False
        if tp is str:
            return ""
        if origin is tuple:
            return ()
        if tp is Command:
            return NOOP
        if isinstance(tp, type) and attrs.has(tp):
            return tp(**{n: self._default(t) for n, t in field_types(tp).items()})
        return None

    def _mutate(self, message: Any) -> tuple[Any, str]:
        """``message`` with one to three of its fields (at any depth) replaced by hostile values."""
        paths = list(_paths(message))
        if not paths:
            return message, "replay (nothing to mutate)"
        changed = []
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            path, tp, name = self.rng.choice(paths)
            value = self.fill(tp, name)
            try:
                message = _replace(message, path, value)
            except (TypeError, ValueError, IndexError, AttributeError):
                continue
            changed.append(f"{_path_text(path)}={_attrs_repr(value, 6)[:60]}")
            paths = list(_paths(message))
            if not paths:
                break
        return message, "mutate " + ", ".join(changed)


Path_ = tuple[Union[str, int], ...]


def _paths(obj: Any, prefix: Path_ = (), depth: int = 0) -> Iterator[tuple[Path_, Any, str]]:
    """(path, type, field name) of every field inside ``obj``, subtrees included (tuples: a few items)."""
    if depth > 6 or not attrs.has(type(obj)):
        return
    for name, tp in field_types(type(obj)).items():
        path = (*prefix, name)
        yield path, tp, name
        value = getattr(obj, name)
        if attrs.has(type(value)) and not isinstance(value, Command):
            yield from _paths(value, path, depth + 1)
        elif isinstance(value, tuple) and value and typing.get_origin(tp) is tuple:
            args = typing.get_args(tp)
            element = args[0] if args else Any
            for i in sorted({0, len(value) - 1}):
                yield (*path, i), element, name
                if attrs.has(type(value[i])) and not isinstance(value[i], Command):
                    yield from _paths(value[i], (*path, i), depth + 1)


def _replace(obj: Any, path: Path_, value: Any) -> Any:
    """``obj`` with the part at ``path`` replaced by ``value`` (frozen values rebuilt along the way)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(obj)
        items[head] = _replace(items[head], rest, value)
        return tuple(items)
    return attrs.evolve(obj, **{head: _replace(getattr(obj, head), rest, value)})


def _path_text(path: Path_) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


# ====================================================================== the direct runner
class StepTimeout(Exception):
    """A single step of a core ran longer than the runner allows (a wedge, or an unbounded loop)."""


class Unencodable(Exception):
    """A core produced a message or a durable write that a real node could not encode (it would die)."""


@attrs.define
class Finding:
    """One distinct failure: its signature, how often it happened, and the first occurrence in detail."""

    kind: str  # "crash", "wedge", "memory", "unencodable", "safety", "restart", "liveness"
    signature: str
    count: int
    first: int  # the hostile message index at (or after) which it first happened
    message: str
    state: str
    error: str
    replay: str

    def to_json(self) -> dict[str, Any]:
        """The finding as JSON data."""
        return attrs.asdict(self)


@attrs.define
class FuzzReport:
    """What :func:`fuzz_core` found."""

    backend: str
    seed: int
    messages: int
    lies: bool
    findings: dict[str, Finding] = attrs.field(factory=dict)
    refused_at_decode: int = 0
    rejected: int = 0  # by the core: RemoteProtocolError
    delivered: int = 0
    made: dict[str, int] = attrs.field(factory=dict)
    live: bool = True
    #: The backend options of each cluster the run built (a failure that breaks one starts the next).
    options: list[dict[str, Any]] = attrs.field(factory=list)
    seconds: float = 0.0
    committed: int = 0

    @property
    def ok(self) -> bool:
        """True if nothing failed: no crash, wedge, unencodable output or lost liveness (and no safety
        violation unless lies were sent on purpose)."""
        return not any(f.kind != "safety" or not self.lies for f in self.findings.values())

    def lines(self) -> list[str]:
        """A human report, one finding per paragraph."""
        out = [f"hostile {self.backend}: {self.messages} messages, seed {self.seed}{', lies' if self.lies else ''}: "
               f"{self.delivered} reached a core, {self.refused_at_decode} refused by the decoder, "
               f"{self.rejected} rejected by the core (RemoteProtocolError); {self.committed} client writes "
               f"committed; {self.seconds:.1f} s",
               "  made: " + ", ".join(f"{k} {v}" for k, v in sorted(self.made.items())),
               f"  clusters: {len(self.options)} (options of the first: {self.options[0] if self.options else {}})"]
        for f in sorted(self.findings.values(), key=lambda f: (-f.count, f.signature)):
            out += [f"{f.kind.upper()} x{f.count}: {f.signature}",
                    f"    first at message {f.first}: {f.message}",
                    f"    receiver: {f.state}",
                    f"    error: {f.error}",
                    f"    replay: {f.replay}"]
        out.append("verdict: " + ("ok" if self.ok else f"{len(self.findings)} distinct failures"))
        return out

    def to_json(self) -> dict[str, Any]:
        """The report as JSON data."""
        data = attrs.asdict(self)
        data["ok"] = self.ok
        return data


def epoch_floor(backend: str, role: str, epoch: int) -> int:
    """A lower bound, from a status report, on the epoch below which the receiver refuses epoch-checked messages.

    Raft's status epoch is its current term, and its central check drops any
    message of an older term.  A multi-Paxos leader or candidate has promised
    its own ballot; a follower's status epoch is the ballot it follows or the
    highest round it has seen (a Nack raises it), neither of which bounds the
    round it promised (a follower that only heard a leader's heartbeats
    promised less), so nothing is known: 0.
    """
    if backend == "raft" or role in ("leader", "candidate"):
        return epoch
    return 0


def view_of(core: Any, members: Sequence[str]) -> View:
    """The generator's view of an in-process core (its status, its last log index or slot, its exact floor)."""
    st = core.status()
    log = getattr(core, "log", None)
    last = getattr(log, "last_index", None)
    if not isinstance(last, int):
        last = max(st.commit_index, getattr(core, "max_accepted", 0), getattr(core, "next_slot", 1) - 1)
    floor = st.epoch
    acceptor = getattr(core, "acceptor", None)
    if acceptor is not None:  # multi-Paxos: the round it promised (its status epoch may be above it)
        floor = acceptor.promised.round if acceptor.promised is not None else 0
    return View(st.node, tuple(members), st.epoch, st.commit_index, last, st.leader, str(st.role), floor=floor)


def describe_core(core: Any) -> str:
    """The receiver's state in one line: role, epoch, leader, commit and last index."""
    try:
        st = core.status()
        view = view_of(core, ())
        return f"{st.node} {st.role} epoch={st.epoch} leader={st.leader} commit={st.commit_index} last={view.last}"
    except Exception as exc:  # noqa: BLE001  (a core broken by the failure being reported)
        return f"<state unavailable: {type(exc).__name__}>"


def _check_outputs(ready: Ready) -> None:
    """Raise Unencodable if a real node could not send or store something in ``ready``."""
    from .net._values import dumps  # the TCP runtime's durable encoding

    for send in (*ready.eager, *ready.messages):
        try:
            body = wire.encode(send.message)
        except LocalProtocolError as exc:
            raise Unencodable(f"{type(send.message).__name__} to a peer: {exc}") from None
        if len(body) > FRAME_LIMIT:
            raise Unencodable(f"a {len(body)}-byte {type(send.message).__name__} exceeds the frame limit")
    for write in ready.persist:
        if write.value is None:
            continue
        try:
            dumps(write.value)
        except (LocalProtocolError, ValueError, TypeError, OverflowError) as exc:
            raise Unencodable(f"durable {_normalise(write.key)}: {exc}") from None


class ForgedCommit(AssertionError):
    """A replica committed a log value that no client sent: hostile content reached a state machine."""


class _FuzzNetwork(Network[Any]):
    """The test network, recording real traffic as samples and checking every output is encodable."""

    def __init__(self, factory: Callable[..., Any], options: Mapping[str, Any], seed: int, samples: Samples,
                 invariants: Callable[[Mapping[str, Any]], None] | None,
                 submitted: dict[tuple[str, int], Command]) -> None:
        self.samples = samples
        self.record = True
        #: Every client request the run's traffic sent, by (client, seq): nothing else may ever be committed.
        self.submitted = submitted
        super().__init__(factory, 3, options, seed, KVStore, invariants, invariants is not None)

    def _handle(self, node: str, ready: Ready) -> None:
        _check_outputs(ready)
        for write in ready.persist:
            for request in _requests_in(write.value):
                if not self._sent(request):
                    raise ForgedCommit(f"{node} wrote {_normalise(write.key)} holding a request no client sent: "
                                       f"{short_repr(request, 300)}")
        super()._handle(node, ready)

    def _sent(self, request: ClientRequest) -> bool:
        """True if ``request`` is a leader's no-op or a request the run's clients sent (stamps aside)."""
        if not request.client_id:
            return request.command == NOOP
        sent = self.submitted.get((request.client_id, request.seq))
        return sent is not None and same_command(sent, request.command)

    def _release(self, node: str, ready: Ready) -> None:
        for c in ready.committed:
            request = c.entry if isinstance(c.entry, ClientRequest) else getattr(c.entry, "request", None)
            if isinstance(request, ClientRequest) and not self._sent(request):
                raise ForgedCommit(f"{node} committed at index {c.index} a request no client sent: "
                                   f"{short_repr(request, 300)}")
        super()._release(node, ready)

    def deliver(self, i: int = 0) -> bool:
        """Deliver in-flight message ``i``, remembering it as a real sample."""
        src, dst, msg = self.in_flight[i]
        if self.record:
            self.samples.add(src, dst, msg)
        return super().deliver(i)


def _requests_in(value: Any, depth: int = 0) -> Iterator[ClientRequest]:
    """Every client request inside a durable value (log entries, accepted values), a few levels deep."""
    if isinstance(value, ClientRequest):
        yield value
    elif depth < 4:
        if attrs.has(type(value)) and not isinstance(value, Command):
            for f in attrs.fields(type(value)):
                yield from _requests_in(getattr(value, f.name), depth + 1)
        elif isinstance(value, (tuple, list)):
            for item in value[:256]:
                yield from _requests_in(item, depth + 1)
        elif isinstance(value, dict):
            for item in list(value.values())[:256]:
                yield from _requests_in(item, depth + 1)


class MemoryBlowup(Exception):
    """A single step made the process grow by more than the runner allows (a hostile value sized an allocation)."""


#: How much one step may grow the process (resident memory) before it counts as exhausting the node.
STEP_MEMORY_BYTES = 512 * 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident memory in bytes (None where /proc is not available)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class _Alarm:
    """Raise StepTimeout after ``seconds``, or MemoryBlowup once the process grew by ``memory`` bytes, in the
    main thread (a SIGALRM every 50 ms; a no-op where unavailable)."""

    def __init__(self, seconds: float, memory: int = STEP_MEMORY_BYTES) -> None:
        self.seconds = seconds
        self.memory = memory
        self.usable = hasattr(signal, "setitimer") and seconds > 0

    def __enter__(self) -> None:
        if self.usable:
            try:
                self._old = signal.signal(signal.SIGALRM, self._fire)
            except ValueError:  # not the main thread
                self.usable = False
                return
            self._deadline = time.monotonic() + self.seconds
            start = resident_bytes()
            self._ceiling = None if start is None else start + self.memory
            signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)

    def __exit__(self, *exc: object) -> None:
        if self.usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old)

    def _fire(self, signum: int, frame: Any) -> None:
        if time.monotonic() > self._deadline:
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise StepTimeout(f"one step ran longer than {self.seconds:g} s")
        if self._ceiling is not None:
            now = resident_bytes()
            if now is not None and now > self._ceiling:
                signal.setitimer(signal.ITIMER_REAL, 0)
                raise MemoryBlowup(f"one step grew the process by over {self.memory >> 20} MiB "
                                   f"(to {now >> 20} MiB)")


_PROJECT = ("/smr/", "/raft/", "/multipaxos/", "/synod/", "/workloads/")


def _where(exc: BaseException) -> str:
    """The innermost frame of project code in ``exc``'s traceback (not this module's), as file:function:line."""
    frames = traceback.extract_tb(exc.__traceback__)
    best = None
    for fr in frames:
        path = fr.filename.replace("\\", "/")
        if any(p in path for p in _PROJECT) and not path.endswith(("smr/hostile.py", "smr/testing.py")):
            best = fr
    if best is None and frames:
        best = frames[-1]
    if best is None:
        return "?"
    path = best.filename.replace("\\", "/")
    for p in _PROJECT:
        if p in path:
            path = p.strip("/") + "/" + path.split(p, 1)[1]
            break
    return f"{path}:{best.name}:{best.lineno}"


def _entered(exc: BaseException) -> str:
    """The outermost protocol function ``exc`` passed through (where a long step spent its time), as file:function."""
    skip = ("smr/hostile.py", "smr/testing.py", "smr/driver.py", "smr/log_core.py")
    for fr in traceback.extract_tb(exc.__traceback__):
        path = fr.filename.replace("\\", "/")
        if any(p in path for p in _PROJECT) and not path.endswith(skip) and fr.name not in ("step", "_on_message"):
            for p in _PROJECT:
                if p in path:
                    return p.strip("/") + "/" + path.split(p, 1)[1] + ":" + fr.name
    return _where(exc)


def _normalise(text: str) -> str:
    """``text`` with numbers and node ids made generic, so one bug has one signature."""
    return re.sub(r"\bn\d+\b", "nX", re.sub(r"\d{2,}", "N", text))[:120]


def _cut(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit - 20] + f"...<{len(text)} chars>"


DEFAULT_OPTIONS: dict[str, Any] = {"snapshot_every": 16}
#: The client write that must commit after the hostile phase.
LIVENESS_WRITE = ClientRequest("liveness", 1, Command("put", "liveness", ("ok",)))
#: Traffic rounds (each a tick of every node) without an answered client write that count as a lost cluster.
STALL_ROUNDS = 300


def swarm_options(backend: str, rng: random.Random) -> dict[str, Any]:
    """Backend options drawn from ``rng`` (swarm testing: each cluster of a run gets its own mix)."""
    options: dict[str, Any] = {"snapshot_every": rng.choice([0, 8, 16, 64]), "max_batch": rng.choice([4, 64])}
    if _package_of(backend) == "raft":
        options["read_mode"] = rng.choice(["log", "read_index"])
        options["leadership_transfer"] = rng.random() < 0.5
        if backend == "raft":
            options["pre_vote"] = options["check_quorum"] = rng.random() < 0.3
    return options


def fuzz_core(backend: str, messages: int, seed: int = 1, *, lies: bool = False, show: int | None = None,
              options: Mapping[str, Any] | None = None, traffic_every: int = 3, step_timeout: float = 5.0,
              out: Callable[[str], None] | None = None) -> FuzzReport:
    """Feed ``messages`` hostile messages to the cores of a 3-node in-process ``backend`` cluster under load.

    Args:
        backend: a replicated-log backend name.
        messages: how many hostile messages to send.
        seed: decides everything (the cluster's timers, the traffic, every message).
        lies: send plausible lies too (safety violations are then expected; see :func:`lie`).
        show: replay the run up to hostile message ``show``, print it in full and stop there.
        options: backend options, over the ones each cluster draws from the seed (:func:`swarm_options`).
        traffic_every: a round of normal traffic (ticks, a client write, deliveries) per this many messages.
        step_timeout: seconds one step may take before it counts as a wedge.
        out: where ``show`` prints (default: stdout).
    """
    return _CoreFuzz(backend, messages, seed, lies, show, options, traffic_every, step_timeout,
                     out or print).run()


class _CoreFuzz:
    """One run of :func:`fuzz_core`: the cluster, its traffic, the generator and the findings."""

    def __init__(self, backend: str, messages: int, seed: int, lies: bool, show: int | None,
                 options: Mapping[str, Any] | None, traffic_every: int, step_timeout: float,
                 out: Callable[[str], None]) -> None:
        self.spec = get_backend(backend)
        self.backend = backend
        self.asked = dict(options or {})
        self.options: dict[str, Any] = {}
        self.messages, self.seed, self.show, self.out = messages, seed, show, out
        self.traffic_every, self.step_timeout = max(1, traffic_every), step_timeout
        self.report = FuzzReport(backend, seed, messages, lies)
        self.samples = Samples()
        self.gen = HostileGenerator(backend, seed, self.samples, lies=lies)
        self.rng = random.Random(f"{seed}/traffic")
        self.life = 0
        self.seq = 0
        self.submitted: dict[tuple[str, int], Command] = {("liveness", 1): LIVENESS_WRITE.command}
        self.seen_replies = 0
        self.stalled = 0  # traffic rounds since a client write was last answered
        self.stepping = "?"  # the node the current action is stepping
        #: The latest hostile messages each node took: the suspects when normal traffic fails later.
        self.recent: dict[str, deque[str]] = {}
        self.replay = (f"python -m smr.hostile --backend {backend} --messages {messages} --seed {seed}"
                       + (" --lies" if lies else ""))
        self.net = self._fresh()

    # ------------------------------------------------------------ the cluster
    def _fresh(self) -> _FuzzNetwork:
        """A new 3-node cluster (its own seed per life), warmed up: a leader and committed writes."""
        self.life += 1
        self.samples.clear()
        swarm = swarm_options(self.backend, random.Random(f"{self.seed}/options/{self.life}"))
        self.options = {**self.spec.options, **swarm, **self.asked}
        self.report.options.append(dict(self.options))
        invariants = self.spec.invariants() if self.spec.invariants is not None else None
        self.net = _FuzzNetwork(self.spec.factory, self.options, self.seed * 1000 + self.life, self.samples,
                                invariants, self.submitted)
        self.seen_replies = 0
        self.stalled = 0
        self.recent = {}
        for _ in range(400):
            self._traffic_round()
            leader = self.net.leader()
            if leader is not None and self.net.status(leader).commit_index >= 20:
                break
        return self.net

    def _step(self, node: str, event: Any) -> None:
        self.stepping = node
        self.net.step(node, event)

    def _traffic_round(self) -> None:
        """One round of a healthy cluster's life: a tick for every node, a client write, every delivery."""
        net = self.net
        for node in net.ids:
            if node in net.cores:
                self._step(node, TICK)
        leader = net.leader()
        if leader is not None:
            self.seq += 1
            command = Command("put", f"k{self.rng.randrange(5)}", (self.seq,))
            self.submitted[(f"c{self.seq % 4}", self.seq)] = command
            self._step(leader, ClientRequest(f"c{self.seq % 4}", self.seq, command))
        for _ in range(2000):
            if not net.in_flight:
                break
            self.stepping = net.in_flight[0][1]
            net.deliver(0)
        fresh = net.replies[self.seen_replies:]
        self.seen_replies = len(net.replies)
        done = sum(1 for r in fresh if r.status == ReplyStatus.OK and r.client_id.startswith("c"))
        self.report.committed += done
        self.stalled = 0 if done else self.stalled + 1

    # ------------------------------------------------------------ failures
    def _finding(self, kind: str, signature: str, at: int, message: str, state: str, error: str) -> None:
        key = f"{kind}: {signature}"
        found = self.report.findings.get(key)
        if found is not None:
            found.count += 1
            return
        replay = self.replay if at >= self.messages else f"{self.replay} --show {max(at, 0)}"
        self.report.findings[key] = Finding(kind, signature, 1, at, message, state, error, replay)

    def _guarded(self, action: Callable[[], Any], at: int, what: str, message: str) -> bool:
        """Run ``action``; on failure record it, restart the node that failed (or the cluster); False then."""
        self.stepping = "?"
        before = {n: describe_core(c) for n, c in self.net.cores.items()}
        try:
            with _Alarm(self.step_timeout):
                action()
            return True
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001  (every failure of a core is what we are here to find)
            node = self.stepping
            kind, rebuild = _classify(exc)
            signature = f"{type(exc).__name__} at {_where(exc)} <- {what}"
            if kind in ("wedge", "memory"):
                limit = f"{self.step_timeout:g} s" if kind == "wedge" else f"{STEP_MEMORY_BYTES >> 20} MiB"
                signature = f"a step over {limit} in {_entered(exc)} <- {what}"
            elif isinstance(exc, ForgedCommit):
                verb = "committed" if " committed at index " in str(exc) else "written durably"
                signature = f"a value no client sent was {verb} <- {what}"
            elif kind == "safety":
                signature = f"{str(exc).split(':')[0][:60]} <- {what}"
            elif kind == "unencodable":
                signature = f"{_normalise(str(exc))} <- {what}"
            if not message.startswith("#"):  # a failure in normal traffic: name the suspects
                message += "; latest hostile messages it took: " + (
                    " | ".join(self.recent.get(node, ())) or "none")
            self._finding(kind, signature, at, message, before.get(node, f"{node} (no state)"),
                          f"{type(exc).__name__}: {_cut(str(exc))}")
            if self.show is not None and at == self.show:
                self.out("".join(traceback.format_exception(exc)))
            if rebuild or node not in self.net.ids:
                self._fresh()
            else:
                self._restart(node, at)
            return False

    def _restart(self, node: str, at: int) -> None:
        """Restart the node that failed from its durable state, as a real node's supervisor would."""
        try:
            with _Alarm(self.step_timeout):
                self.net.restart(node)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001
            self._finding("restart", f"{type(exc).__name__} at {_where(exc)} <- Start from durable state", at,
                          f"(restart of {node} after a failure)", f"{node}: {len(self.net.durable[node])} durable keys",
                          f"{type(exc).__name__}: {_cut(str(exc))}")
            self._fresh()

    # ------------------------------------------------------------ the run
    def run(self) -> FuzzReport:
        """Send every hostile message, interleaved with normal traffic; then check liveness."""
        started = time.monotonic()
        report, gen, show = self.report, self.gen, self.show
        for i in range(self.messages):
            if i % self.traffic_every == 0:
                self._guarded(self._traffic_round, i - 1, "normal traffic after hostile input",
                              f"(normal traffic after hostile message {i - 1})")
                if self.stalled >= STALL_ROUNDS:
                    self._stalled(i - 1)
            net = self.net
            live = [n for n in net.ids if n in net.cores]
            leader = net.leader()
            dst = leader if leader is not None and self.rng.random() < 0.5 else self.rng.choice(live)
            core = net.cores[dst]
            view = view_of(core, net.ids)
            hostile = gen.next(i, dst, view)
            try:
                body = wire.encode(hostile.message)
            except LocalProtocolError:
                body = b""
                gen.made["unencodable (skipped)"] += 1
            if len(body) > FRAME_LIMIT:
                body = b""
                gen.made["oversized (skipped)"] += 1
            if not body:
                if show == i:
                    self.out(f"message {i} was not sent (it cannot be encoded in a frame):\n  {hostile.describe()}")
                    break
                continue
            try:
                decoded = wire.decode(body)
            except (RemoteProtocolError, RecursionError):
                report.refused_at_decode += 1
                if show == i:
                    self.out(f"message {i} is refused by the decoder:\n  {hostile.describe()}")
                    break
                continue
            report.delivered += 1
            self.recent.setdefault(dst, deque(maxlen=3)).append(hostile.describe()[:300])
            if show == i:
                self.out(f"replaying {report.backend} seed {self.seed} up to hostile message {i}:\n"
                         f"  {hostile.describe()}\n  receiver before: {describe_core(core)}")
            net.record = False
            driver = net.drivers[dst]
            rejected_before = driver.remote_errors
            ok = self._guarded(lambda: self._step(dst, Receive(hostile.src, decoded)), i,
                               f"{type(decoded).__name__} to {view.role}", hostile.describe())
            self.net.record = True
            if ok and driver.remote_errors > rejected_before:
                report.rejected += 1
                if show == i:
                    self.out(f"  rejected by the core: {driver.last_reject}")
            if show == i:
                after = self.net.cores.get(dst)
                self.out(f"  receiver after: {describe_core(after) if after is not None else 'down'}; "
                         f"{'ok' if ok else 'FAILED (see above)'}")
                break
        if show is None:
            self._liveness()
        report.made = dict(gen.made)
        report.seconds = time.monotonic() - started
        return report

    def _stalled(self, at: int) -> None:
        """No client write was answered for STALL_ROUNDS rounds: record it (naming the suspects) and start over."""
        cores = self.net.cores
        top = max((c.status().epoch for c in cores.values()), default=0)
        bound = "at or beyond 2**62 - 1" if top >= IMPOSSIBLE_FROM - 1 else "below 2**62 - 1"
        suspects = " || ".join(f"{n}: " + " | ".join(d) for n, d in sorted(self.recent.items()))
        self._finding("liveness", f"no client write answered in {STALL_ROUNDS} rounds; highest epoch {bound}", at,
                      f"(normal traffic after hostile message {at}); latest hostile messages: {suspects}",
                      "; ".join(describe_core(c) for c in cores.values()), f"highest epoch {top}")
        self._fresh()

    def _liveness(self) -> None:
        """After the hostile phase, the cluster must still commit a client write within 600 healthy rounds."""
        net = self.net
        before = max((net.status(n).commit_index for n in net.cores), default=0)
        marker = LIVENESS_WRITE
        for _ in range(600):
            net = self.net
            if not self._guarded(self._traffic_round, self.messages, "normal traffic after hostile input",
                                 "(healthy traffic after the hostile phase)"):
                continue
            leader = self.net.leader()
            if leader is not None and not self._guarded(lambda: self._step(leader, marker), self.messages,
                                                        "normal traffic after hostile input",
                                                        "(the liveness write)"):
                continue
            if any(r.client_id == "liveness" and r.status == ReplyStatus.OK for r in self.net.replies):
                return
        self.report.live = False
        states = "; ".join(describe_core(c) for c in self.net.cores.values())
        after = max((self.net.status(n).commit_index for n in self.net.cores), default=0)
        self._finding("liveness", "no client write committed in 600 healthy rounds after the hostile phase",
                      self.messages, "(healthy traffic after the hostile phase)", states,
                      f"highest commit index {before} -> {after}")


def _classify(exc: BaseException) -> tuple[str, bool]:
    """The kind of a failure, and whether the whole cluster must be rebuilt after it."""
    if isinstance(exc, StepTimeout):
        return "wedge", True
    if isinstance(exc, MemoryBlowup):
        return "memory", True
    if isinstance(exc, ForgedCommit):
        return "safety", True
    if isinstance(exc, Unencodable):
        return "unencodable", True  # a real node would die now and again after every restart
    if isinstance(exc, AssertionError):
        where = _where(exc)
        if "invariants" in where or "driver.py:record" in where:
            return "safety", True
    return "crash", False


# ====================================================================== samples for a live run
def sample_run(backend: str, seed: int, rounds: int = 300,
               options: Mapping[str, Any] | None = None) -> tuple[Network[Any], Samples]:
    """A short in-process run of ``backend`` under client load, one follower catching up from a snapshot
    on the way: its cluster (still running) and the real messages it carried."""
    run = _CoreFuzz(backend, 0, seed, False, None, {**DEFAULT_OPTIONS, **(options or {})}, 1, 0.0, print)
    for _ in range(rounds):
        run._traffic_round()
    # A follower that falls behind a compacted log gets a snapshot: make one happen.
    net = run.net
    leader = net.leader()
    if leader is not None:
        lagging = next(n for n in net.ids if n != leader)
        net.crash(lagging)
        for _ in range(60):
            run._traffic_round()
        net.start(lagging)
        for _ in range(30):
            run._traffic_round()
    return net, run.samples


def sample_traffic(backend: str, seed: int, rounds: int = 300, options: Mapping[str, Any] | None = None) -> Samples:
    """Real messages of a short in-process run of ``backend`` (for generators that cannot see the traffic)."""
    return sample_run(backend, seed, rounds, options)[1]


def out_of_range_variants(message: Any) -> Iterator[tuple[str, Any]]:
    """(path, copy) for each way to put one value of ``message`` out of range, at any depth outside commands.

    Each bounded int (:func:`_bounded`: an epoch, position or count) set to
    -1 and to :data:`IMPOSSIBLE_FROM`, and each absent ballot filled with one
    of those rounds: what :func:`impossible` calls impossible, so what a core
    must refuse before acting on it (a core that does not lets the
    generator's "impossible" messages through as lies).
    """
    ballot: Any = type(getattr(message, "ballot", None))  # the protocol's ballot class (NoneType: it has none)
    for path, tp, name in _paths(message):
        if isinstance(path[-1], int):
            continue  # (a tuple item: its fields are paths of their own)
        owner = message
        for step in path[:-1]:
            owner = owner[step] if isinstance(step, int) else getattr(owner, step)
        value = getattr(owner, name)
        if value is None and hasattr(ballot, "round") and ballot in typing.get_args(tp):
            bad: list[Any] = [ballot(-1, "n1"), ballot(IMPOSSIBLE_FROM, "n1")]
        elif type(value) is int and _bounded(owner, name):
            bad = [-1, IMPOSSIBLE_FROM]
        else:
            continue
        for replacement in bad:
            yield _path_text(path), _replace(message, path, replacement)


# ====================================================================== command line
def main(argv: list[str] | None = None) -> int:
    """``python -m smr.hostile``: fuzz one backend's cores in process; exit 1 on any failure."""
    parser = argparse.ArgumentParser(prog="python -m smr.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="raft")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lies", action="store_true", help="send plausible lies too (Byzantine: safety may break)")
    parser.add_argument("--show", type=int, default=None, metavar="I", help="replay up to message I and show it")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args(argv)
    report = fuzz_core(args.backend, args.messages, args.seed, lies=args.lies, show=args.show)
    if args.show is not None:
        return 0
    for line in report.lines():
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
