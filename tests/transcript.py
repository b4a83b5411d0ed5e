"""Golden interaction transcripts: a tiny script language that drives sans-IO cores and prints
every batch they produce, one readable line per item (after etcd raft's ``testdata/*.txt``).

A script is a sequence of commands; after each command the file holds the
expected output, datadriven style::

    # comments and blank lines are kept as they are
    campaign n1
    ----
    n1 tick
      n1 => candidate term=1
      n1 persist raft/hard = HardState term=1 vote=n1
      n1 -> n2 RequestVote term=1 last=0/0

The output of a command ends at the first blank line.  Unindented lines are
events (a delivered message, a tick, a client request, a restart, a node's
own writes becoming durable: ``n1 synced term=2 index=3``), the indented lines
under one are what that input made the node do: a role or epoch change
(``=>``), durable writes (``persist`` / ``delete``), messages that may leave
before those writes are durable (``-> ... (eager)``, a leader's replication),
messages (``->``), committed entries (``commit``), client replies (``reply``)
and messages it rejected as remote errors (``rejects``).  Unless the cluster
holds syncs, the network syncs every batch at once, so a batch's ``synced``
step follows it directly.

Commands (nodes are ``n1`` .. ``nN``):

* ``nodes N [backend=raft] [seed=0] [hold_syncs=true] [option=value ...]`` -- a
  fresh cluster; options go to every core (``true``/``false``/integers are
  parsed); with ``hold_syncs=true`` each node's batches wait for ``sync``
  (only their eager messages leave at once);
* ``sync n1|all [count]`` -- make a node's waiting batches durable, oldest first,
  releasing their messages and stepping their ``synced`` inputs;
* ``campaign n1`` -- tick ``n1`` until its election timeout fires (no delivery);
  a node already campaigning campaigns again;
* ``tick n1|all [count]`` -- give ticks, without delivering anything;
* ``deliver [filter]`` -- with no filter, deliver messages in order until none
  is in flight; with a filter, deliver once each in-flight message matching it;
* ``drop [filter]`` / ``duplicate [filter]`` -- lose / copy matching in-flight messages;
* ``inflight`` -- list the messages in flight;
* ``propose n1 OP [KEY] [ARG ...] [client=c1] [seq=N]`` -- a client request to
  ``n1`` (``seq`` counts per client unless given);
* ``crash n1`` / ``restart n1`` -- lose volatile state / boot from durable state;
* ``cut n1 n2`` / ``isolate n1`` / ``partition n1 n2 | n3 n4 n5`` / ``heal``;
* ``disk n1 term=T [vote=nK] log=1,1,4`` -- (Raft) replace ``n1``'s durable
  state with that term, vote and a log of entries of those terms, and reboot it;
* ``status`` -- every node's role, epoch, leader belief and commit index;
* ``logs`` -- every node's durable log, crashed nodes included.

A filter is an optional route ``src->dst`` (either side may be ``*``) and
words, each of which must equal one token of the message's rendering (tokens
are split at spaces, brackets and commas), e.g. ``drop n1->* AppendEntries 3/3``.

The cluster is :class:`smr.testing.Network`, driven only through its public
surface; each core is wrapped so every ``step`` is recorded.  The backend's
invariants run after every step; a violation ends the script with an
``INVARIANT VIOLATED`` line (a golden transcript must never contain one).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from smr.commands import NOOP, Command
from smr.errors import RemoteProtocolError
from smr.replica import (ClientRequest, Input, Ready, ReplicaConfig, ReplicaStatus, Receive, Reply,
                         ReplyStatus, Start, Synced, Tick, get_backend)
from smr.testing import Network
from synod.ballot import Ballot

from multipaxos import ACCEPTOR_PREFIX, SNAPSHOT_KEY as MP_SNAPSHOT_KEY
from multipaxos.messages import Accept, Accepted, SlotValue, Snapshot
from raft import AppendEntries, AppendEntriesReply, Entry, HardState, RequestVote, RequestVoteReply
from raft.messages import HARD_KEY, LOG_PREFIX, SnapshotRecord, log_key

SEPARATOR = "----"
VIOLATION = "INVARIANT VIOLATED"
#: How each backend names its epoch in status lines.
EPOCH_NAMES = {"raft": "term", "multipaxos": "round"}
CAMPAIGN_LIMIT = 10_000


# ====================================================================== rendering
def fmt_request(request: ClientRequest) -> str:
    """A log value: ``noop``, or ``c1#3 put x '1'`` (a command without a session has no prefix)."""
    if not request.client_id:
        return "noop" if request.command == NOOP else str(request.command)
    return f"{request.client_id}#{request.seq} {request.command}"


def _entries(first: int, entries: Sequence[Entry]) -> str:
    return "[" + ", ".join(f"{first + k}/{e.term} {fmt_request(e.request)}"
                           for k, e in enumerate(entries)) + "]"


def _slot_value(sv: SlotValue) -> str:
    ballot = f"{sv.ballot} " if sv.ballot is not None else ""
    return f"{sv.slot}:{ballot}{fmt_request(sv.value)}"


def _request_vote(m: RequestVote) -> str:
    flags = (" pre-vote" if m.pre_vote else "") + (" transfer" if m.transfer else "")
    return f"RequestVote term={m.term} last={m.last_log_index}/{m.last_log_term}{flags}"


def _request_vote_reply(m: RequestVoteReply) -> str:
    verdict = "granted" if m.granted else "rejected"
    return f"RequestVoteReply term={m.term} {verdict}" + (" pre-vote" if m.pre_vote else "")


def _append_entries(m: AppendEntries) -> str:
    entries = f" entries={_entries(m.prev_index + 1, m.entries)}" if m.entries else ""
    return f"AppendEntries term={m.term} prev={m.prev_index}/{m.prev_term} commit={m.commit}{entries}"


def _append_entries_reply(m: AppendEntriesReply) -> str:
    if m.success:
        return f"AppendEntriesReply term={m.term} ok index={m.index}"
    hint = f" hint={m.conflict_index}/{m.conflict_term}" if m.conflict_index else ""
    return f"AppendEntriesReply term={m.term} reject index={m.index}{hint}"


def _accept(m: Accept) -> str:
    last = m.first_slot + len(m.values) - 1
    values = ", ".join(fmt_request(v) for v in m.values)
    return f"Accept ballot={m.ballot} slots={m.first_slot}..{last} values=[{values}] commit={m.commit}"


def _accepted(m: Accepted) -> str:
    return f"Accepted ballot={m.ballot} slots={m.first_slot}..{m.first_slot + m.count - 1}"


_CUSTOM: dict[type, Callable[[Any], str]] = {
    RequestVote: _request_vote,
    RequestVoteReply: _request_vote_reply,
    AppendEntries: _append_entries,
    AppendEntriesReply: _append_entries_reply,
    Accept: _accept,
    Accepted: _accepted,
    HardState: lambda h: f"HardState term={h.term} vote={h.vote or '-'}",
    Entry: lambda e: f"Entry term={e.term} {fmt_request(e.request)}",
    SnapshotRecord: lambda s: f"Snapshot last={s.index}/{s.term} size={len(s.data)}",
    Snapshot: lambda s: f"Snapshot last={s.last_slot} size={len(s.data)}",
    SlotValue: _slot_value,
    ClientRequest: fmt_request,
    Command: str,
    Ballot: str,
}


def fmt(value: Any) -> str:
    """One value on one line: custom forms for the protocols' messages, else ``Name field=value``.

    The generic form leaves out attrs fields that hold their default, so
    flags that are off do not clutter the transcript.
    """
    custom = _CUSTOM.get(type(value))
    if custom is not None:
        return custom(value)
    if attrs.has(type(value)):
        parts = [type(value).__name__]
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            default = field.default
            factory = getattr(default, "factory", None)  # an attrs.Factory default
            if callable(factory) and not getattr(default, "takes_self", False):
                default = factory()
            if default is not attrs.NOTHING and item == default:
                continue
            parts.append(f"{field.name}={fmt(item)}")
        return " ".join(parts)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt(value[k])}" for k in sorted(value)) + "}"
    return str(value)


def fmt_write(key: str, value: Any) -> str:
    """A durable write, with multi-Paxos's JSON-shaped acceptor records decoded for reading."""
    if key == ACCEPTOR_PREFIX + "promised":
        value = Ballot.from_json(value)
    elif key.startswith(ACCEPTOR_PREFIX + "slot/") and value is not None:
        value = f"{Ballot.from_json(value[0])} {fmt(value[1])}"
    elif key == MP_SNAPSHOT_KEY and isinstance(value, dict):
        value = Snapshot(int(value["last_slot"]), str(value["data"]))
    return f"persist {key} = {fmt(value)}"


def fmt_reply(reply: Reply) -> str:
    """A client reply: status, then the result (ok) or the leader hint (redirect)."""
    text = f"reply {reply.client_id}#{reply.seq} {reply.status}"
    if reply.status == ReplyStatus.OK:
        text += f" result={reply.result!r}"
    elif reply.status == ReplyStatus.REDIRECT:
        text += f" leader={reply.leader or '-'}"
    return text


def fmt_route(src: str, dst: str, message: Any) -> str:
    """A message on the wire: ``n1 -> n2 RequestVote ...``."""
    return f"{src} -> {dst} {fmt(message)}"


# ====================================================================== recording
@attrs.frozen
class StepRecord:
    """One ``step`` of one core: its input, its status before and after, and what came out."""

    node: str
    event: Input
    before: ReplicaStatus
    after: ReplicaStatus
    ready: Ready | None
    rejected: bool = False


class RecordedCore:
    """A core whose every ``step`` is reported to ``sink``; everything else reads through."""

    def __init__(self, core: Any, sink: Callable[[StepRecord], None]) -> None:
        self._core = core
        self._sink = sink

    def step(self, event: Input) -> Ready:
        """Step the wrapped core and report the step (a remote error is reported, then re-raised)."""
        core = self._core
        before = core.status()
        try:
            ready = core.step(event)
        except RemoteProtocolError:
            self._sink(StepRecord(before.node, event, before, core.status(), None, rejected=True))
            raise
        self._sink(StepRecord(before.node, event, before, core.status(), ready))
        return ready

    def status(self) -> ReplicaStatus:
        """The wrapped core's status."""
        status: ReplicaStatus = self._core.status()
        return status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


# ====================================================================== filters
_TOKENS = re.compile(r"[^\s\[\],]+")


def tokens(text: str) -> set[str]:
    """The tokens a filter word can match: split at spaces, brackets and commas."""
    return set(_TOKENS.findall(text))


def message_filter(words: Sequence[str]) -> Callable[[str, str, Any], bool]:
    """A predicate over (src, dst, message) from a route ``a->b`` (``*`` for any) and tokens."""
    src = dst = "*"
    needed: list[str] = []
    for word in words:
        if "->" in word:
            src, dst = word.split("->", 1)
        else:
            needed.append(word)

    def match(s: str, d: str, message: Any) -> bool:
        if src not in ("*", s) or dst not in ("*", d):
            return False
        have = tokens(fmt(message))
        return all(w in have for w in needed)

    return match


def parse_value(text: str) -> Any:
    """``true``/``false`` as booleans, integers as ints, anything else as the string."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def split_options(words: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Split ``key=value`` words from the plain ones (routes ``a->b`` stay plain)."""
    plain: list[str] = []
    options: dict[str, str] = {}
    for word in words:
        if "=" in word and "->" not in word:
            key, value = word.split("=", 1)
            options[key] = value
        else:
            plain.append(word)
    return plain, options


class TranscriptError(Exception):
    """A script is malformed (an unknown command, a missing argument)."""


# ====================================================================== interpreter
class Interpreter:
    """Runs commands against one in-memory cluster and renders what the cores did.

    Args:
        overrides: options merged over every ``nodes`` command's own (e.g. a mutant switch).
    """

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.net: Network | None = None
        self.nodes: tuple[str, ...] = ()
        self.backend = ""
        self.records: list[StepRecord] = []
        self.seqs: dict[str, int] = {}
        self.violated = False

    # ------------------------------------------------------------ plumbing
    @property
    def cluster(self) -> Network:
        """The cluster built by the last ``nodes`` command."""
        if self.net is None:
            raise TranscriptError("no cluster yet: start the script with `nodes N`")
        return self.net

    def _record(self, record: StepRecord) -> None:
        self.records.append(record)

    def _drain(self, out: list[str]) -> None:
        """Render the steps recorded since the last drain into ``out`` (a delivery always shows)."""
        records, self.records = self.records, []
        for record in records:
            items = self._items(record)
            if items or isinstance(record.event, Receive) or (isinstance(record.event, Synced)
                                                              and self.cluster.hold_syncs):
                out.append(self._header(record))
                out.extend("  " + item for item in items)

    def _header(self, record: StepRecord) -> str:
        event = record.event
        if isinstance(event, Receive):
            return fmt_route(event.src, record.node, event.message)
        if isinstance(event, Tick):
            return f"{record.node} tick"
        if isinstance(event, ClientRequest):
            return f"client {event.client_id}#{event.seq} -> {record.node} {event.command}"
        if isinstance(event, Start):
            return f"{record.node} start"
        if isinstance(event, Synced):
            return f"{record.node} synced {EPOCH_NAMES.get(self.backend, 'epoch')}={event.epoch} index={event.index}"
        return f"{record.node} {fmt(event)}"

    def _items(self, record: StepRecord) -> list[str]:
        node, before, after = record.node, record.before, record.after
        items: list[str] = []
        if (str(before.role), before.epoch) != (str(after.role), after.epoch):
            items.append(f"{node} => {after.role} {self._epoch(after)}")
        if record.rejected:
            message = record.event.message if isinstance(record.event, Receive) else record.event
            items.append(f"{node} rejects {type(message).__name__} (remote error)")
        ready = record.ready
        if ready is None:
            return items
        for write in ready.persist:
            items.append(f"{node} delete {write.key}" if write.value is None
                         else f"{node} {fmt_write(write.key, write.value)}")
        for send in ready.eager:
            items.append(fmt_route(node, send.dst, send.message) + " (eager)")
        for send in ready.messages:
            items.append(fmt_route(node, send.dst, send.message))
        for committed in ready.committed:
            items.append(f"{node} commit {committed.index} {fmt(committed.entry)}")
        for reply in ready.replies:
            items.append(f"{node} {fmt_reply(reply)}")
        return items

    def _epoch(self, status: ReplicaStatus) -> str:
        return f"{EPOCH_NAMES.get(self.backend, 'epoch')}={status.epoch}"

    def _node(self, name: str) -> str:
        if name not in self.nodes:
            raise TranscriptError(f"unknown node {name!r}; nodes: {' '.join(self.nodes)}")
        return name

    def _live(self, name: str) -> str:
        node = self._node(name)
        if node not in self.cluster.cores:
            raise TranscriptError(f"{node} is down")
        return node

    # ------------------------------------------------------------ running
    def run(self, command: str) -> list[str]:
        """Run one command line and return its output lines (a violation ends the output)."""
        if self.violated:
            return ["(not run: an invariant was violated above)"]
        words = command.split()
        handler = getattr(self, f"cmd_{words[0]}", None) if words else None
        if handler is None:
            raise TranscriptError(f"unknown command {command!r}")
        out: list[str] = []
        try:
            handler(words[1:], out)
        except AssertionError as exc:
            self._drain(out)
            out.append(f"{VIOLATION}: {exc}")
            self.violated = True
        self._drain(out)
        return out

    # ------------------------------------------------------------ commands
    def cmd_nodes(self, args: list[str], out: list[str]) -> None:
        """``nodes N [backend=raft] [seed=0] [option=value ...]``: a fresh cluster."""
        plain, options = split_options(args)
        if len(plain) != 1:
            raise TranscriptError("usage: nodes N [backend=NAME] [seed=S] [option=value ...]")
        backend = get_backend(options.pop("backend", "raft"))
        seed = int(options.pop("seed", "0"))
        hold_syncs = parse_value(options.pop("hold_syncs", "false")) is True
        merged = {**backend.options, **{k: parse_value(v) for k, v in options.items()}, **self.overrides}
        factory = backend.factory

        def recorded(config: ReplicaConfig) -> RecordedCore:
            return RecordedCore(factory(config), self._record)

        size = int(plain[0])
        self.nodes = tuple(f"n{i}" for i in range(1, size + 1))
        self.backend = backend.name.split("-", 1)[0]
        self.seqs = {}
        self.records = []
        invariants = backend.invariants() if backend.invariants is not None else None
        self.net = Network(recorded, size, merged, seed, invariants=invariants, hold_syncs=hold_syncs)

    def cmd_campaign(self, args: list[str], out: list[str]) -> None:
        """``campaign n1``: tick a non-leader until its election timeout fires (no delivery).

        The timeout has fired at the first tick that changes the node's role
        or epoch or makes it send anything (a campaign that was already under
        way starts again).
        """
        node = self._live(args[0])
        net = self.cluster
        if net.cores[node].status().is_leader:
            raise TranscriptError(f"campaign: {node} leads already")
        for _ in range(CAMPAIGN_LIMIT):
            net.tick(node)
            records = list(self.records)
            self._drain(out)
            if any(r.ready or (str(r.before.role), r.before.epoch) != (str(r.after.role), r.after.epoch)
                   for r in records):
                return
        raise TranscriptError(f"{node} did not campaign within {CAMPAIGN_LIMIT} ticks")

    def cmd_tick(self, args: list[str], out: list[str]) -> None:
        """``tick n1|all [count]``: ticks without delivery (all: every live node, per round)."""
        targets = self.nodes if args[0] == "all" else (self._node(args[0]),)
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            for node in targets:
                self.cluster.tick(node)
                self._drain(out)

    def cmd_deliver(self, args: list[str], out: list[str]) -> None:
        """``deliver [filter]``: everything until quiet, or each matching message in flight once."""
        net = self.cluster
        if not args:
            limit = 100_000
            while net.in_flight:
                limit -= 1
                if limit < 0:
                    raise TranscriptError("no quiescence after 100000 messages")
                self._deliver(0, out)
            return
        match = message_filter(args)
        chosen = [m for m in net.in_flight if match(*m)]
        for m in chosen:
            self._deliver(next(i for i, x in enumerate(net.in_flight) if x is m), out)

    def _deliver(self, i: int, out: list[str]) -> None:
        net = self.cluster
        src, dst, message = net.in_flight[i]
        line = fmt_route(src, dst, message)
        down = dst not in net.cores
        if not net.deliver(i):
            out.append(f"{line}  (lost: {dst} is down)" if down else f"{line}  (lost: link cut)")
        self._drain(out)

    def _matching(self, args: list[str]) -> list[int]:
        match = message_filter(args)
        return [i for i, m in enumerate(self.cluster.in_flight) if match(*m)]

    def cmd_drop(self, args: list[str], out: list[str]) -> None:
        """``drop [filter]``: lose every in-flight message matching the filter (all without one)."""
        net = self.cluster
        indexes = self._matching(args)
        lines = [fmt_route(*net.in_flight[i]) for i in indexes]
        for i in reversed(indexes):
            net.drop(i)
        out.extend(f"{line}  (dropped)" for line in lines)

    def cmd_duplicate(self, args: list[str], out: list[str]) -> None:
        """``duplicate [filter]``: put a copy of each matching message at the end of the queue."""
        for i in self._matching(args):
            self.cluster.duplicate(i)
            src, dst, message = self.cluster.in_flight[i]
            out.append(f"{fmt_route(src, dst, message)}  (duplicated)")

    def cmd_inflight(self, args: list[str], out: list[str]) -> None:
        """``inflight``: the messages in flight, in delivery order."""
        out.extend(fmt_route(*m) for m in self.cluster.in_flight)

    def cmd_propose(self, args: list[str], out: list[str]) -> None:
        """``propose n1 OP [KEY] [ARG ...] [client=c1] [seq=N]``: a client request to ``n1``."""
        plain, options = split_options(args)
        if len(plain) < 2:
            raise TranscriptError("usage: propose NODE OP [KEY] [ARG ...] [client=C] [seq=N]")
        node = self._live(plain[0])
        client = options.get("client", "c1")
        seq = int(options["seq"]) if "seq" in options else self.seqs.get(client, 0) + 1
        self.seqs[client] = max(seq, self.seqs.get(client, 0))
        key = plain[2] if len(plain) > 2 else ""
        command = Command(plain[1], key, tuple(plain[3:]))
        self.cluster.step(node, ClientRequest(client, seq, command))

    def cmd_sync(self, args: list[str], out: list[str]) -> None:
        """``sync n1|all [count]``: make the node's waiting batches durable (all, or the oldest ``count``)."""
        if not args:
            raise TranscriptError("usage: sync n1|all [count]")
        nodes = [n for n in self.nodes if n in self.cluster.cores] if args[0] == "all" else [self._live(args[0])]
        count = int(args[1]) if len(args) > 1 else None
        for node in nodes:
            self.cluster.sync(node, count)
            self._drain(out)

    def cmd_crash(self, args: list[str], out: list[str]) -> None:
        """``crash n1``: its volatile state is gone; its durable state stays."""
        self.cluster.crash(self._node(args[0]))

    def cmd_restart(self, args: list[str], out: list[str]) -> None:
        """``restart n1``: boot it again from durable state (crashing it first if it runs)."""
        self.cluster.restart(self._node(args[0]))

    def cmd_cut(self, args: list[str], out: list[str]) -> None:
        """``cut n1 n2``: cut the link between two nodes, both ways."""
        self.cluster.cut(self._node(args[0]), self._node(args[1]))

    def cmd_isolate(self, args: list[str], out: list[str]) -> None:
        """``isolate n1``: cut every link of a node."""
        self.cluster.isolate(self._node(args[0]))

    def cmd_partition(self, args: list[str], out: list[str]) -> None:
        """``partition n1 n2 | n3 n4``: cut every link between the groups."""
        groups: list[list[str]] = [[]]
        for word in args:
            if word == "|":
                groups.append([])
            else:
                groups[-1].append(self._node(word))
        self.cluster.partition(*groups)

    def cmd_heal(self, args: list[str], out: list[str]) -> None:
        """``heal``: restore every link."""
        self.cluster.recover()

    def cmd_disk(self, args: list[str], out: list[str]) -> None:
        """``disk n1 term=T [vote=nK] log=1,1,4``: replace a Raft node's durable state and reboot it.

        Entry ``i`` of term ``t`` carries ``put x 'i.t'`` without a client
        session, so every node seeded with an (index, term) holds the same entry.
        """
        plain, options = split_options(args)
        node = self._node(plain[0])
        if self.backend != "raft":
            raise TranscriptError("disk seeds Raft durable state only")
        terms = [int(t) for t in options.get("log", "").split(",") if t]
        durable: dict[str, Any] = {HARD_KEY: HardState(int(options.get("term", max(terms, default=0))),
                                                        options.get("vote"))}
        for index, term in enumerate(terms, start=1):
            durable[log_key(index)] = Entry(term, ClientRequest("", 0, Command("put", "x",
                                                                               (f"{index}.{term}",))))
        net = self.cluster
        if node in net.cores:
            net.crash(node)
        net.durable[node] = durable
        net.restart(node)

    def cmd_status(self, args: list[str], out: list[str]) -> None:
        """``status``: role, epoch, leader belief and commit index of every node."""
        for node in self.nodes:
            core = self.cluster.cores.get(node)
            if core is None:
                out.append(f"{node} down")
                continue
            s = core.status()
            out.append(f"{node} {s.role} {self._epoch(s)} leader={s.leader or '-'} commit={s.commit_index}")

    def cmd_logs(self, args: list[str], out: list[str]) -> None:
        """``logs``: every node's durable log (Raft: term, vote and entry terms; multi-Paxos: promise
        and accepted slots), crashed nodes included."""
        for node in self.nodes:
            durable = self.cluster.durable[node]
            state = "" if node in self.cluster.cores else " (down)"
            if self.backend == "raft":
                hard = durable.get(HARD_KEY, HardState(0))
                terms = " ".join(str(durable[k].term) for k in sorted(durable) if k.startswith(LOG_PREFIX))
                out.append(f"{node}{state} term={hard.term} vote={hard.vote or '-'} log: {terms}")
            elif self.backend == "multipaxos":
                promised = durable.get(ACCEPTOR_PREFIX + "promised")
                slot_prefix = ACCEPTOR_PREFIX + "slot/"
                slots = [f"{int(k[len(slot_prefix):])}:{Ballot.from_json(v[0])} {fmt(v[1])}"
                         for k, v in sorted(durable.items()) if k.startswith(slot_prefix)]
                ballot = Ballot.from_json(promised) if promised is not None else "-"
                out.append(f"{node}{state} promised={ballot} accepted: " + (" | ".join(slots) or "-"))
            else:
                out.append(f"{node}{state} " + " ".join(f"{k}={fmt(durable[k])}" for k in sorted(durable)))


# ====================================================================== files
@attrs.define
class Block:
    """One command of a script: the comments and blank lines before it, and its expected output."""

    before: list[str]
    command: str
    expected: list[str] | None


def parse(text: str) -> tuple[list[Block], list[str]]:
    """Split a script into blocks and the trailing comment lines after the last command."""
    lines = text.splitlines()
    blocks: list[Block] = []
    before: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            before.append(line)
            continue
        expected: list[str] | None = None
        if i < len(lines) and lines[i] == SEPARATOR:
            i += 1
            expected = []
            while i < len(lines) and lines[i].strip():
                expected.append(lines[i])
                i += 1
            i += 1  # the blank line that ends the output
        elif i < len(lines) and not lines[i].strip():
            i += 1  # a command not run yet: its blank line becomes the one after its output
        blocks.append(Block(before, line.strip(), expected))
        before = []
    return blocks, before


def render(blocks: Sequence[Block], outputs: Sequence[list[str]], tail: Sequence[str]) -> str:
    """Write a script back with the given outputs after its commands."""
    lines: list[str] = []
    for k, (block, output) in enumerate(zip(blocks, outputs)):
        lines.extend(block.before)
        lines.append(block.command)
        lines.append(SEPARATOR)
        lines.extend(output)
        if k < len(blocks) - 1 or tail:
            lines.append("")
    lines.extend(tail)
    return "\n".join(lines) + "\n"


@attrs.frozen
class Result:
    """What a script produced: every block's output, the whole rewritten text, and the verdict."""

    blocks: list[Block]
    outputs: list[list[str]]
    text: str
    violated: bool


def run_script(text: str, overrides: Mapping[str, Any] | None = None) -> Result:
    """Run every command of a script; return the actual outputs and the script rewritten with them."""
    blocks, tail = parse(text)
    interpreter = Interpreter(overrides)
    outputs = [interpreter.run(block.command) for block in blocks]
    return Result(blocks, outputs, render(blocks, outputs, tail), interpreter.violated)


def check_file(path: Path, rewrite: bool = False) -> None:
    """Run a transcript file; if its recorded outputs differ, rewrite it (if asked) or fail with a diff."""
    text = path.read_text()
    result = run_script(text)
    if result.violated:
        bad = next(line for out in result.outputs for line in out if line.startswith(VIOLATION))
        raise AssertionError(f"{path.name}: {bad}")
    if result.text == text:
        return
    if rewrite:
        path.write_text(result.text)
        return
    diff = "".join(difflib.unified_diff(text.splitlines(keepends=True), result.text.splitlines(keepends=True),
                                        str(path), "actual"))
    raise AssertionError(f"{path.name} differs from its recorded output (rerun with "
                         f"--rewrite-transcripts or SMR_REWRITE_TRANSCRIPTS=1 if the change is "
                         f"intended):\n{diff}")
