"""No false acknowledgement on a real cluster: shared sessions, reused and backward sequence numbers.

Issue 23's acceptance: 10,000 attempts of the three misuses against a local 3-process cluster per
backend, 0 acknowledgements of a command that was not applied.  Every command adds 1 to a counter
only its sender touches, so the counters say exactly what was applied.
"""

from __future__ import annotations

from collections import Counter as Tally
from pathlib import Path

import pytest
import trio

from smr import commands as c
from smr.machine import CommandError, SessionExpired
from smr.net import TcpClient, open_local_tcp_cluster, open_tcp_client

PAIRS, PAIR_ROUNDS = 8, 300  # two clients forced onto one session, same seq, different commands
SINGLES, SINGLE_ROUNDS = 8, 330  # one client: a seq reused for another command, then one gone back


@pytest.mark.parametrize("backend", ["raft", "multipaxos"])
async def test_ten_thousand_misuses_get_no_false_acknowledgement(backend: str, tmp_path: Path) -> None:
    acked: Tally[str] = Tally()  # counter key -> acknowledgements of an add to it
    unknown: Tally[str] = Tally()  # counter key -> calls whose outcome is unknown (timeouts)
    refusals: Tally[str] = Tally()  # error kind -> count
    attempts = 0

    async def call(client: TcpClient, key: str) -> None:
        try:
            await client.submit(c.add(1, key), timeout=2.0)
            acked[key] += 1
        except TimeoutError:
            unknown[key] += 1
        except CommandError as exc:
            refusals[exc.kind] += 1

    with trio.fail_after(240):
        async with open_local_tcp_cluster(tmp_path, backend=backend, state_machine="counter",
                                          fsync=False) as cluster:
            async with open_tcp_client(cluster.cluster_file) as one, open_tcp_client(cluster.cluster_file) as two:

                async def pair(p: int) -> None:
                    nonlocal attempts
                    first, second = one.client(), two.client()
                    await first.submit(c.add(0, "warm-up"))  # opens first's session
                    assert first.client_id is not None
                    second.session.opened(first.client_id)  # a second process holding the same session
                    second.session.seq = first.session.seq
                    for _ in range(PAIR_ROUNDS):
                        async with trio.open_nursery() as both:  # the same seq, two commands, at once
                            both.start_soon(call, first, f"pair{p}-first")
                            both.start_soon(call, second, f"pair{p}-second")
                        attempts += 2

                async def single(i: int) -> None:
                    nonlocal attempts
                    client = one.client()
                    for _ in range(SINGLE_ROUNDS):
                        await call(client, f"single{i}")  # an honest call: seq n
                        n = client.session.seq
                        client.session.seq = n - 1  # the next request reuses seq n for another command
                        await call(client, f"misused{i}")
                        client.session.seq = max(n - 3, 0)  # and this one goes back
                        await call(client, f"misused{i}")
                        client.session.seq = n
                        attempts += 2

                async with trio.open_nursery() as nursery:
                    for p in range(PAIRS):
                        nursery.start_soon(pair, p)
                    for i in range(SINGLES):
                        nursery.start_soon(single, i)

                reader = one.client()
                totals = {key: await reader.submit(c.read_counter(key))
                          for key in {*acked, *unknown, *(f"misused{i}" for i in range(SINGLES))}}

    assert attempts >= 10_000
    false_acks = {key: acked[key] - totals[key] for key in acked if acked[key] > totals[key]}
    assert false_acks == {}, f"acknowledged but never applied: {false_acks}"
    overrun = {key: totals[key] for key in totals if totals[key] > acked[key] + unknown[key]}
    assert overrun == {}, f"applied more often than asked: {overrun}"
    assert all(totals[f"misused{i}"] == 0 for i in range(SINGLES))  # no misuse ever ran
    # every misuse was refused explicitly: one of each pair's two calls per round, both misuses of a
    # single's round (the first round's "backwards" reuses seq 1 instead: SequenceReused, not stale)
    misuses = PAIRS * PAIR_ROUNDS + 2 * SINGLES * SINGLE_ROUNDS
    assert misuses - sum(unknown.values()) <= sum(refusals.values()) <= misuses, (refusals, unknown)
    assert refusals["StaleRequest"] >= SINGLES * (SINGLE_ROUNDS - 1) - sum(unknown.values())
    assert set(refusals) == {"SequenceReused", "StaleRequest"}, refusals


async def test_a_session_the_cluster_never_opened_is_refused_and_the_client_opens_a_new_one(
        tmp_path: Path) -> None:
    """An id nobody registered (or one that expired) is SessionExpired, never run; the same client's
    next call opens a fresh session through the log and is served.  (And the cluster's files are
    private: issue 23's 0700/0600.)"""
    with trio.fail_after(60):
        async with open_local_tcp_cluster(tmp_path, backend="raft", state_machine="counter",
                                          fsync=False) as cluster:
            async with open_tcp_client(cluster.cluster_file) as tcp:
                client = tcp.client()
                client.session.opened("made-up-by-the-client")
                with pytest.raises(SessionExpired):
                    await client.submit(c.add(5, "k"))
                assert client.client_id is None  # the next call opens one first
                assert await client.submit(c.add(1, "k")) == 1  # the refused add never ran
                assert client.client_id is not None and client.client_id != "made-up-by-the-client"
            # what the launcher made is private too: the cluster directory, node logs, data directories
            assert cluster.directory.stat().st_mode & 0o777 == 0o700
            for node in cluster.node_ids:
                assert cluster.log_file(node).stat().st_mode & 0o777 == 0o600
                assert cluster.data_dir(node).stat().st_mode & 0o777 == 0o700
