"""``smr bench messages``: peer messages per committed command in steady state, against the optimum.

A leader that ships a batch of ``b`` commands sends one message to each of
the ``N - 1`` followers and gets one acknowledgement back from each: ``2(N-1)``
messages per batch, so ``2(N-1)/b`` per command is the least a leader-based
protocol can spend.  This benchmark runs a 5-node cluster with closed-loop KV
clients, lets it warm up (election, pipelines filling), then counts over a
measurement window:

* **counted**: every message one replica sends to another -- command-carrying
  messages (Raft ``AppendEntries`` with entries, multi-Paxos ``Accept``),
  their acknowledgements, heartbeats (Raft ``AppendEntries`` without entries,
  multi-Paxos ``Heartbeat``) and their replies, re-sends, votes, catch-up
  traffic -- whatever the backend sends;
* **not counted**: client requests and replies (the same for every protocol,
  and not part of replication);
* **commands**: log positions first committed during the window (in steady
  state every one is a client command);
* ``b``: commands per command-carrying message, counting a command once per
  follower: the (follower, position) pairs shipped for the first time divided
  by the messages that shipped at least one of them.  A message that only
  re-ships positions its follower was already sent is a *re-send*, not a
  batch.  The optimum is ``2(N-1)/b``; the ratio is measured over optimum.

Measured messages split exactly into two per first send (the message and one
acknowledgement) plus the ``overhead``, reported per command: heartbeats,
acknowledgements beyond one per command-carrying message (Raft answers every
heartbeat), re-sends with their acknowledgements, and anything else (votes,
catch-up).  ``rejections`` counts refused appends (Raft's
``AppendEntriesReply`` with ``success=False``, multi-Paxos's ``Nack``), the
usual trigger of re-sends.  Nothing is tuned away: the figures are what the
backend sends with its default options (10 ms ticks) on the simulator's
default network (one-way delays uniform in 0.5-1.5 ms, drawn per message, so
back-to-back messages to one follower can overtake each other), unless
``latency`` says otherwise.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from ..sim import ClientConfig, NetworkConfig, SimConfig
from ..sim.latency import Latency
from .scripted import ScriptedSimulation

#: The backends compared when none is named.
MESSAGE_BACKENDS = ("raft", "multipaxos")
_ACKS = frozenset({"AppendEntriesReply", "Accepted"})


def carried_positions(message: Any) -> range | None:
    """The log positions a command-carrying message ships, or None if it carries no command.

    Raft's ``AppendEntries`` carries ``entries`` after ``prev_index``; multi-Paxos's
    ``Accept`` carries ``values`` from ``first_slot``.
    """
    entries = getattr(message, "entries", None)
    if entries:
        start = getattr(message, "prev_index", 0) + 1
        return range(start, start + len(entries))
    values = getattr(message, "values", None)
    if values:
        start = getattr(message, "first_slot", 0)
        return range(start, start + len(values))
    return None


def is_heartbeat(message: Any) -> bool:
    """True for a pure heartbeat: Raft's empty ``AppendEntries`` or multi-Paxos's ``Heartbeat``."""
    name = type(message).__name__
    return name == "Heartbeat" or (name == "AppendEntries" and not getattr(message, "entries", ()))


@attrs.frozen
class MessageCount:
    """Steady-state peer messages of one backend, with the optimum and where the excess goes.

    ``carrying`` messages shipped ``carried`` (follower, position) pairs, of
    which ``new_pairs`` were new to their follower, in ``first_sends``
    messages; the rest of the carrying messages are re-sends.
    """

    backend: str
    nodes: int
    clients: int
    latency: str
    warmup_ms: float
    window_ms: float
    commands: int
    peer_messages: int
    per_type: dict[str, int]
    carrying: int
    carried: int
    first_sends: int
    new_pairs: int
    heartbeats: int
    acks: int
    rejections: int

    @property
    def per_command(self) -> float:
        """Peer messages per committed command."""
        return self.peer_messages / self.commands

    @property
    def batch(self) -> float:
        """b: commands per command-carrying message, each command counted once per follower."""
        return self.new_pairs / self.first_sends

    @property
    def optimum(self) -> float:
        """2(N-1)/b: one message out and one acknowledgement back per follower per batch."""
        return 2 * (self.nodes - 1) / self.batch

    @property
    def ratio(self) -> float:
        """Measured messages per command over the optimum (target: at most 1.05)."""
        return self.per_command / self.optimum

    @property
    def resends(self) -> int:
        """Command-carrying messages that shipped nothing new to their follower."""
        return self.carrying - self.first_sends

    @property
    def overhead(self) -> dict[str, float]:
        """Messages per command beyond two per first send, by cause (they sum exactly)."""
        other = self.peer_messages - self.carrying - self.acks - self.heartbeats
        return {
            "heartbeats": self.heartbeats / self.commands,
            "heartbeat_replies": (self.acks - self.carrying) / self.commands,
            "resends_and_acks": 2 * self.resends / self.commands,
            "other": other / self.commands,
        }

    def to_json(self) -> dict[str, Any]:
        """Return the counts and the derived figures as plain JSON data."""
        doc = attrs.asdict(self)
        doc.update(per_command=round(self.per_command, 4), batch=round(self.batch, 4),
                   optimum=round(self.optimum, 4), ratio=round(self.ratio, 4), resends=self.resends,
                   overhead={k: round(v, 4) for k, v in self.overhead.items()})
        return doc


class _Tally:
    """Counts the peer messages sent after the warm-up."""

    def __init__(self, warmup_ms: float) -> None:
        self.warmup_ms = warmup_ms
        self.per_type: Counter[str] = Counter()
        self.carrying = self.carried = self.first_sends = self.new_pairs = 0
        self.heartbeats = self.acks = self.rejections = 0
        self.shipped_up_to: dict[str, int] = {}
        self.commits_at_start = 0

    def on_send(self, sim: ScriptedSimulation, src: str, dst: str, message: Any) -> None:
        """Classify one message (client traffic and warm-up traffic are not counted)."""
        if src not in sim.nodes or dst not in sim.nodes:
            return
        positions = carried_positions(message)
        new = 0
        if positions is not None:
            shipped = self.shipped_up_to.get(dst, 0)
            new = max(0, positions.stop - 1 - max(positions.start - 1, shipped))
            self.shipped_up_to[dst] = max(shipped, positions.stop - 1)
        if sim.now < self.warmup_ms:
            return
        name = type(message).__name__
        self.per_type[name] += 1
        if positions is not None:
            self.carrying += 1
            self.carried += len(positions)
            if new:
                self.first_sends += 1
                self.new_pairs += new
        elif is_heartbeat(message):
            self.heartbeats += 1
        elif name in _ACKS:
            self.acks += 1
            self.rejections += getattr(message, "success", True) is False
        elif name == "Nack":
            self.rejections += 1


def count_messages(backend: str, clients: int = 10, nodes: int = 5, warmup_ms: float = 1000.0,
                   window_ms: float = 3000.0, seed: int = 1, latency: Latency | None = None,
                   fifo: bool = True) -> MessageCount:
    """Run ``backend`` fault-free and count its peer messages per committed command after the warm-up."""
    if clients < 1:
        raise ValueError("the message benchmark needs at least one client")
    network = NetworkConfig(fifo=fifo) if latency is None else NetworkConfig(latency=latency, fifo=fifo)
    config = SimConfig(backend=backend, nodes=nodes, duration_ms=warmup_ms + window_ms, network=network,
                       clients=ClientConfig(count=clients, workload="kv", warmup_ms=warmup_ms),
                       trace=False, count_bytes=False, name=f"messages-{backend}")
    tally = _Tally(warmup_ms)
    sim = ScriptedSimulation(config, seed, on_send=tally.on_send)

    def start(sim: ScriptedSimulation) -> None:
        tally.commits_at_start = len(sim.committed)

    sim.call_at(warmup_ms, start)
    result = sim.run()
    if result.violations:
        raise RuntimeError(f"{backend}: {result.violations[0]} (replay: {result.replay})")
    commands = len(result.committed) - tally.commits_at_start
    if commands <= 0 or tally.first_sends == 0:
        raise RuntimeError(f"{backend}: nothing was committed after the warm-up")
    return MessageCount(
        backend=backend, nodes=nodes, clients=clients, latency=network.latency.describe(),
        warmup_ms=warmup_ms, window_ms=window_ms, commands=commands,
        peer_messages=sum(tally.per_type.values()), per_type=dict(sorted(tally.per_type.items())),
        carrying=tally.carrying, carried=tally.carried, first_sends=tally.first_sends,
        new_pairs=tally.new_pairs, heartbeats=tally.heartbeats, acks=tally.acks,
        rejections=tally.rejections)
