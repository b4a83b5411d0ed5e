"""Issue 22, deliverable 6: well-typed hostile peer messages never crash, wedge or mislead a core.

Each core takes a few thousand messages from :mod:`smr.hostile` -- boundary
values (0, -1, 2**63 - 1, -2**63), indexes far beyond or behind its log,
epochs far ahead, odd and huge strings, unknown or its own node id, commands
the state machine refuses, snapshots that do not restore or claim the wrong
index -- mixed with real messages of the run, replayed or with a few fields
replaced, in a 3-node in-process cluster under client load.  No input may
raise out of a core, take a step longer than a few seconds, make an output a
real node could not encode or store, break a safety invariant (no plausible
lie is sent: see :func:`smr.hostile.lie`), or leave the cluster unable to
commit a write afterwards.  A failure prints every distinct signature with
the command that replays it.
"""

from __future__ import annotations

import copy

import attrs
import pytest

from smr import wire
from smr.errors import LocalProtocolError, RemoteProtocolError
from smr.hostile import (HostileGenerator, View, fuzz_core, impossible, lie, out_of_range_variants, sample_run,
                         sample_traffic, view_of)
from smr.commands import put
from smr.replica import ClientRequest, Receive

BACKENDS = ["raft", "raft-pv-cq", "multipaxos"]
VIEW = View("n1", ("n1", "n2", "n3"), epoch=3, commit=40, last=42, leader="n2", role="follower")


@pytest.mark.parametrize("backend", BACKENDS)
def test_cores_survive_hostile_messages(backend: str) -> None:
    report = fuzz_core(backend, 2500, seed=1, step_timeout=2.0)
    assert report.delivered > 2000, report.lines()
    assert report.ok, "\n".join(report.lines())


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_out_of_range_value_the_generator_calls_impossible_is_refused(backend: str) -> None:
    """Put one value of a real message out of range, at any depth (a chosen value's ballot, a snapshot's
    offset): when the generator calls the result impossible, the receiving core, in the state the run
    left it, refuses it.  A core that took it would let the insider's "impossible" messages through as
    lies (the multi-Paxos insider run of seed 1 lost a write to chosen values carrying a ballot)."""
    net, samples = sample_run(backend, 1)
    refused, missed = 0, []
    for src, dst, message in samples.all():
        try:
            copy.deepcopy(net.cores[dst]).step(Receive(src, message))
        except RemoteProtocolError:
            continue  # the real message is refused in this state already: its variants show nothing
        for path, variant in out_of_range_variants(message):
            if impossible(variant, src, view_of(net.cores[dst], net.ids)) is None:
                continue
            core = copy.deepcopy(net.cores[dst])
            try:
                core.step(Receive(src, variant))
            except RemoteProtocolError as exc:
                if ": impossible " in str(exc):
                    refused += 1
                    continue
            missed.append(f"{type(message).__name__}.{path} from {src} to {dst}: {variant!r}"[:300])
    assert refused > 100  # (about 180 variants per backend at seed 1: the run's messages are not a handful)
    assert not missed, "\n".join(missed)


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_the_generator_is_deterministic(backend: str) -> None:
    def messages() -> list[str]:
        gen = HostileGenerator(backend, 7, sample_traffic(backend, 7, rounds=120))
        return [gen.next(i, "n1", VIEW).describe() for i in range(300)]

    assert messages() == messages()


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_hostile_messages_are_well_typed(backend: str) -> None:
    """Almost every message encodes; what decodes is what was sent (or a RemoteProtocolError, never a crash)."""
    gen = HostileGenerator(backend, 3, sample_traffic(backend, 3, rounds=120))
    encoded = 0
    for i in range(500):
        hostile = gen.next(i, "n1", VIEW)
        try:
            body = wire.encode(hostile.message)
        except LocalProtocolError:
            continue
        encoded += 1
        try:
            decoded = wire.decode(body)
        except RemoteProtocolError:
            continue
        assert decoded == hostile.message, hostile.describe()
    assert encoded >= 475


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
def test_no_plausible_lie_is_sent(backend: str) -> None:
    """Without ``lies``, a forged vote, acknowledgement or log content always carries an impossible value."""
    gen = HostileGenerator(backend, 5, sample_traffic(backend, 5, rounds=120), live=True)
    kinds = set()
    for i in range(500):
        hostile = gen.next(i, "n1", VIEW)
        kinds.add(type(hostile.message).__name__)
        if hostile.how.startswith("foreign"):
            continue  # another backend's message or a durable record: no core of this backend acts on it
        assert lie(hostile.message, hostile.src, VIEW) is None, hostile.describe()
    assert len(kinds) >= 6, kinds
    assert gen.made["lie refused"] > 0


def test_impossible_values_are_named() -> None:
    from raft.messages import AppendEntriesReply, RequestVote

    assert impossible(RequestVote(2 ** 62, 0, 0), "n2", VIEW) == "term=4611686018427387904 out of range"
    assert impossible(RequestVote(4, 0, 0), "n9", VIEW) == "sender 'n9' is not another member"
    assert "beyond the log" in (impossible(AppendEntriesReply(3, True, 43), "n2", VIEW) or "")
    assert impossible(AppendEntriesReply(3, True, 42), "n2", VIEW) is None


def test_a_chosen_value_with_a_ballot_is_impossible_in_any_round() -> None:
    """Only an accepted value names the ballot it was accepted in: a chosen one with any ballot at all is
    impossible (the core refuses it as such), not a lie."""
    from multipaxos.messages import Catchup, SlotValue
    from synod.ballot import Ballot

    request = ClientRequest("c1", 1, put("k", "v"))
    for ballot in (Ballot(1, "n2"), Ballot(2 ** 62, "n2")):
        catchup = Catchup(Ballot(3, "n2"), (SlotValue(41, request, ballot),))
        assert impossible(catchup, "n2", VIEW) is not None and lie(catchup, "n2", VIEW) is None
    honest = Catchup(Ballot(3, "n2"), (SlotValue(41, request),))
    assert impossible(honest, "n2", VIEW) is None and lie(honest, "n2", VIEW) is not None


def test_a_multipaxos_follower_status_epoch_is_not_its_promise() -> None:
    """A Nack raises a follower's status epoch above the round it promised, so only the promise says what it drops.

    The live insider once judged from a follower's status epoch (the highest
    round it had seen) that an Accept below it would be refused, sent it --
    a forged Accept the acceptor took -- and acknowledged writes were lost.
    """
    from multipaxos import Accept, MultiPaxosCore, Nack
    from smr.commands import put
    from smr.hostile import epoch_floor, view_of
    from smr.replica import ClientRequest, Receive
    from smr.state_machines import KVStore
    from smr.testing import Network
    from synod.ballot import Ballot

    net = Network(MultiPaxosCore, 3, {}, 0, KVStore)
    net.step("n3", Receive("n2", Nack(Ballot(1, "n3"), Ballot(50, "n2"))))
    core = net.cores["n3"]
    status = core.status()
    assert status.role == "follower" and status.epoch == 50 and core.acceptor.promised is None
    forged = Accept(Ballot(10, "n2"), 1, (ClientRequest("c9", 1, put("k", "forged")),), 0)
    view = view_of(core, ("n1", "n2", "n3"))
    assert view.floor == 0 and epoch_floor("multipaxos", "follower", status.epoch) == 0
    assert lie(forged, "n2", view) is not None  # judged by the epoch, it passed as one the acceptor drops
    assert lie(forged, "n2", attrs.evolve(view, floor=status.epoch)) is None
    net.step("n3", Receive("n2", forged))
    assert core.acceptor.accepted[1][1] == forged.values[0]  # and the acceptor took it
    assert epoch_floor("raft", "follower", 7) == 7 and epoch_floor("multipaxos", "leader", 7) == 7
