"""Byte-bounded replication on both backends: capped batches, snapshots in chunks, promises in parts.

With bounds far below the state's size (256 bytes), every catch-up of a
lagging replica goes through the chunked paths: Raft's InstallSnapshot in
chunks answered by InstallSnapshotReply, multi-Paxos's SnapshotChunk pulled by
SnapshotRequest, its Promise split into PromiseParts or refused with Behind.
Swarm faults (loss, duplication, reordering, crashes, partitions) hit them
all; the simulator checks the invariants after every step, the history is
checked for linearizability, and each run must serve clients after the heal.
"""

from __future__ import annotations

from collections import Counter

import pytest

from smr.bounds import ChunkBuffer, MessageBounds, chunk_of, request_bytes, take_within
from smr.checker import check, make_model
from multipaxos import PromisePart
from smr.commands import get, put
from smr.errors import LocalProtocolError
from smr.history import Outcome
from smr.registry import get_backend
from smr.replica import ClientRequest
from smr.sim import ClientConfig, SimConfig, simulate
from smr.state_machines import KVStore
from smr.testing import Network

TINY = {"max_batch_bytes": 256, "snapshot_chunk_bytes": 256, "snapshot_every": 3, "max_batch": 8}
DURATION_MS = 2000.0
HEAL_AT = 0.6 * DURATION_MS
#: The messages only a transfer larger than one message uses, per backend.
CHUNKED = {"raft": ("InstallSnapshotReply",),
           "multipaxos": ("SnapshotChunk", "SnapshotRequest", "PromisePart", "Behind")}


def test_take_within_keeps_at_least_one_and_stays_under_the_budget() -> None:
    """A batch holds as many requests as fit in the budget, and always the first one."""
    small = [ClientRequest("c", i, put("k", "v" * 10)) for i in range(10)]
    each = request_bytes(small[0])
    assert take_within(small, each * 3) == 3
    assert take_within(small, each * 3 - 1) == 2
    huge = [ClientRequest("c", 1, put("k", "x" * 10_000)), *small]
    assert take_within(huge, 100) == 1
    assert request_bytes(ClientRequest("c", 1, put("k", "é" * 100))) >= len(("é" * 100).encode())


def test_chunk_buffer_takes_chunks_only_in_order_and_resumes() -> None:
    """A chunk is taken only where the last one ended; a restart from offset 0 starts over."""
    data = "abcdefghij" * 30
    buf = ChunkBuffer(limit=10_000)
    part, done = chunk_of(data, 0, 100)
    assert buf.add((5, 1), 0, part) and not done
    assert not buf.add((5, 1), 200, data[200:300])      # a gap: refused, resume from 100
    assert buf.received_of((5, 1)) == 100 and buf.received_of((6, 1)) == 0
    for offset in (100, 200):
        part, done = chunk_of(data, offset, 100)
        assert buf.add((5, 1), offset, part)
    assert done and buf.take() == data and buf.received == 0
    small = ChunkBuffer(limit=150)
    assert small.add((1, 1), 0, data[:100]) and not small.add((1, 1), 100, data[100:200])
    assert small.received == 0  # beyond the limit: the transfer is abandoned


def test_bounds_are_options_of_every_log_backend() -> None:
    """The bounds are checked like any option: a bound below 256 bytes is refused."""
    assert MessageBounds.from_options({"max_batch_bytes": 4096}).max_batch_bytes == 4096
    with pytest.raises(LocalProtocolError):
        MessageBounds.from_options({"snapshot_chunk_bytes": 10})


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_swarm_with_tiny_bounds_is_safe_linearizable_and_live(backend: str) -> None:
    """12 swarm seeds per backend with 256-byte bounds: safe on every step, linearizable, live after the
    heal, and the chunked transfer paths were used.

    Reference: Raft thesis 5.3 (snapshots in chunks); Paxos Made Simple, section 3
    """
    failures, sent = [], Counter[str]()
    model = make_model("kv")
    for seed in range(12):
        config = SimConfig(backend=backend, nodes=5, swarm=True, duration_ms=DURATION_MS, trace=False,
                           count_bytes=False, backend_options=dict(TINY),
                           clients=ClientConfig(count=4, workload="kv", timeout_ms=100))
        result = simulate(config, seed)
        sent.update(result.counters.sent)
        if result.violations:
            failures.append(f"seed={seed} violation: {result.violations[0]}\n  replay: {result.replay}")
        elif check(list(result.history), model).status.value != "linearizable":
            failures.append(f"seed={seed} not linearizable\n  replay: {result.replay}")
        elif not any(op.outcome is Outcome.OK and op.invoke >= HEAL_AT for op in result.history):
            failures.append(f"seed={seed} nothing served after the heal\n  replay: {result.replay}")
    assert not failures, "\n".join(failures)
    for name in CHUNKED[backend]:
        assert sent[name] > 0, f"no {name} sent in 12 seeds: the chunked path was not exercised ({dict(sent)})"


def test_a_promise_in_parts_counts_only_once_every_part_is_here() -> None:
    """An acceptor whose accepted values exceed the bound promises in parts; the candidate leads only
    with all of them, and then re-proposes every accepted value (none is lost to a no-op).

    Reference: Paxos Made Simple, section 2.2 (phase 1 must report every accepted value)
    """
    registered = get_backend("multipaxos")
    net = Network(registered.factory, 3, {**registered.options, "max_batch_bytes": 256}, 0, KVStore,
                  registered.invariants())
    net.elect("n3")
    net.isolate("n1")  # n1 hears none of it: n2 alone holds the values
    for seq in range(1, 21):
        net.request("n3", put(f"k{seq}", "v" * 60), "c1", seq)
    net.settle()
    net.crash("n3")
    net.recover()
    net.campaign("n1")
    for _ in range(len(net.in_flight)):
        net.deliver()  # n1's Prepares reach n2 (n3 is down); n2 answers in parts
    parts = net.take(kind=PromisePart, dst="n1")
    assert len(parts) > 1, "the promise fits in one message: the test needs more accepted values"
    net.inject(parts[:1])
    net.stabilize()
    assert not net.status("n1").is_leader, "a leader elected on part of a promise"
    net.inject(parts[1:])
    net.settle()
    assert net.status("n1").is_leader
    net.tick_all(10)
    machine = getattr(net.cores["n1"], "applier").machine
    assert [machine.apply(get(f"k{seq}")) for seq in range(1, 21)] == ["v" * 60] * 20
