"""Separate credentials and TLS (issue 22, deliverable 3): a client's key cannot speak as a replica; a
wrong secret or certificate is an authentication error at once; with TLS a recording of the wire
holds no value in clear."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from raft.messages import RequestVote
from smr import commands as c
from smr import wire
from smr.errors import ConfigError
from smr.net import (Node, load_cluster, open_local_tcp_cluster, open_node, open_tcp_client, parse_cluster,
                     write_cluster_file)
from smr.net._config import TlsFiles
from smr.net._frames import (AUTH_FAILED, Credentials, FrameDecoder, FrameError, Session, check_acceptor_hello,
                             check_connector_hello, connector_hello, refusal)
from smr.net._launcher import client_file, make_certificates
from smr.net._transport import AuthenticationError, client_tls, connect

CLUSTER_SECRET = b"the-cluster-secret-0123456789"


def _hello_frame(data: bytes) -> tuple[bytes, bytes]:
    dec = FrameDecoder(4096)
    dec.feed(data)
    got = dec.next_frame()
    assert got is not None
    return got


def test_the_role_is_bound_into_the_key_a_client_key_cannot_verify_as_a_peer() -> None:
    node = Credentials.from_secret(CLUSTER_SECRET)
    client = Credentials(node.client)  # what a client file gives: the client key alone
    assert node.peer is not None and len({node.client, node.peer, CLUSTER_SECRET}) == 3
    assert client.key("peer") is None and "peer" not in repr(client).replace("no peer key", "")
    assert node.client.hex() not in repr(node)  # keys never show in a repr
    # The client key used as a peer's, or as if it were the cluster secret: neither verifies as a peer.
    for forged in (client.client, Credentials.from_secret(client.client).peer):
        assert forged is not None
        with pytest.raises(FrameError) as info:
            check_connector_hello(node, *_hello_frame(connector_hello(forged, "peer", "n2")[0]))
        assert info.value.reason == "unauthenticated"
    # The same key as a client: accepted, as a client only.
    hello = check_connector_hello(node, *_hello_frame(connector_hello(client.client, "client", "c")[0]))
    assert hello.role == "client"
    assert refusal(AUTH_FAILED).endswith(b"authentication failed")  # one fixed answer, whatever was wrong


async def _pipelined_peer_attack(host: str, port: int, key: bytes, vote: RequestVote) -> bytes:
    """Claim to be peer n2 with ``key`` and send a RequestVote right behind the hello, without waiting."""
    stream = await trio.open_tcp_stream(host, port)
    data, mine = connector_hello(key, "peer", "n2")
    fake = Session(key, mine, mine, is_connector=True)  # the best a holder of ``key`` can seal with
    received = b""
    async with stream:
        await stream.send_all(data + fake.seal(wire.encode(vote)))
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


async def _vote_on_a_client_connection(host: str, port: int, key: bytes, vote: RequestVote) -> bool:
    """Open a (legitimate) client connection and send a RequestVote on it; True once the node closes it."""
    conn, _ = await connect(host, port, key, "client", "attacker", 1 << 20)
    async with conn.stream:
        await conn.send([wire.encode(vote)])
        with trio.fail_after(5):
            return await conn.receive() is None


async def test_a_client_credential_cannot_send_a_single_accepted_peer_message(tmp_path: Path) -> None:
    """Acceptance (issue 22): holding only the client key (the cluster's client file), a RequestVote for
    term +1000 -- as "peer n2" with the client key, as a peer with keys derived from it, pipelined behind
    the hello, or on a client connection -- reaches no core: every refusal is counted, no node's term
    moves anywhere near it.  A wrong secret is an AuthenticationError within one round trip."""
    with trio.fail_after(60):
        async with open_local_tcp_cluster(tmp_path, nodes=3, backend="raft") as cluster:
            only_client = load_cluster(cluster.client_file)
            assert only_client.secret is None and only_client.client_secret is not None
            with pytest.raises(ConfigError, match="needs the cluster secret"):
                only_client.credentials()  # a node cannot run on it
            key = only_client.client_credentials().client
            async with open_tcp_client(cluster.client_file) as client:  # the client file serves clients
                assert await client.submit(c.put("x", "1")) is None
                before = {n: r for n, r in (await client.statuses(timeout=5.0)).items() if r is not None}
            assert len(before) == 3
            vote = RequestVote(max(r.epoch for r in before.values()) + 1000, 10**6, 10**6)
            derived = Credentials.from_secret(key).peer
            assert derived is not None
            for node in cluster.config.nodes:
                with pytest.raises(AuthenticationError, match="authentication failed"):
                    await connect(node.host, node.port, key, "peer", "n2", 1 << 20)
                for forged in (key, derived):
                    assert await _pipelined_peer_attack(node.host, node.port, forged, vote) == refusal(AUTH_FAILED)
                assert await _vote_on_a_client_connection(node.host, node.port, key, vote)
            async with open_tcp_client(cluster.cluster_file) as client:
                await client.submit(c.put("x", "2"))  # the cluster serves on
                after = await client.statuses(timeout=5.0)
            for node, report in after.items():
                assert report is not None, node
                assert report.epoch < vote.term, (node, report.epoch)  # never adopted the vote's term
                assert report.refused["unauthenticated"] >= 3, (node, report.refused)
                assert report.refused["unexpected"] >= 1, (node, report.refused)
                assert report.counters.get("remote_errors", 0) == before[node].counters.get("remote_errors", 0)

            wrong = attrs.evolve(cluster.config, secret="not-the-cluster-secret-at-all")
            async with open_tcp_client(wrong) as client:
                with trio.fail_after(2):  # not 40 attempts of a 1 s timeout
                    with pytest.raises(AuthenticationError, match="refused this client's credentials"):
                        await client.submit(c.get("x"))
                with trio.fail_after(2), pytest.raises(AuthenticationError):
                    await client.statuses()  # one error, not a group of three


# ------------------------------------------------------------------ TLS
class RecordingStream(trio.abc.Stream):
    """A TCP stream that keeps a copy of every byte it sends and receives."""

    def __init__(self, inner: trio.abc.Stream, record: bytearray) -> None:
        self.inner = inner
        self.record = record

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.record += data
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self.inner.receive_some(max_bytes)
        self.record += data
        return bytes(data)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def _recorded_nodes(directory: Path, tls: bool, monkeypatch: pytest.MonkeyPatch,
                          record: bytearray) -> AsyncIterator[list[Node]]:
    """Three embedded nodes whose every dialled connection (peers' and clients') is recorded."""
    open_tcp = trio.open_tcp_stream

    async def recording(host: str, port: int) -> trio.abc.Stream:
        return RecordingStream(await open_tcp(host, port), record)

    monkeypatch.setattr(trio, "open_tcp_stream", recording)
    write_cluster_file(directory / "cluster.yaml", nodes=3, tick_ms=5, fsync=False, tls=tls)
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(open_node(directory / "cluster.yaml", f"n{i}"))
                 for i in (1, 2, 3)]
        await nodes[0].wait_for_leader()
        yield nodes


@pytest.mark.parametrize("tls", [True, False])
async def test_with_tls_a_recording_of_the_wire_holds_no_value_in_clear(tls: bool, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A TLS cluster serves puts from a client holding only the client file; every byte the nodes and the
    client exchanged (recorded as they dialled) holds neither the value nor a hello in clear.  Without
    TLS (the control) the same recording does hold the value."""
    canary = f"canary-{secrets.token_hex(8)}"
    record = bytearray()
    with trio.fail_after(30):
        async with _recorded_nodes(tmp_path, tls, monkeypatch, record):
            async with open_tcp_client(client_file(tmp_path / "cluster.yaml")) as client:
                for i in range(3):
                    assert await client.submit(c.put(f"k{i}", canary)) is None
                assert await client.submit(c.get("k2")) == canary
    assert len(record) > 1000
    assert (canary.encode() in record) is not tls
    assert (b'"role":"peer"' in record) is not tls


async def test_a_wrong_certificate_or_no_tls_is_an_authentication_error_at_once(tmp_path: Path) -> None:
    """Against a TLS node: a client trusting another CA, a client without TLS, and a "peer" that holds
    the peer key but shows no certificate are each refused at once with a clear error."""
    write_cluster_file(tmp_path / "cluster.yaml", nodes=2, tick_ms=5, fsync=False, tls=True)
    config = load_cluster(tmp_path / "cluster.yaml")
    make_certificates(tmp_path / "other", config.nodes)  # another CA, same names
    async with open_node(config, "n1") as node, open_node(config, "n2") as other:
        with trio.fail_after(10):
            await node.wait_for_leader()
            async with open_tcp_client(config) as client:
                assert await client.submit(c.put("x", "1")) is None
            other_ca = attrs.evolve(config, tls=TlsFiles(str(tmp_path / "other" / "ca.pem")))
            plain = attrs.evolve(config, tls=None, nodes=tuple(attrs.evolve(n, cert=None, key=None)
                                                              for n in config.nodes))
            for wrong, words in ((other_ca, "TLS handshake .* failed: certificate verify failed"),
                                 (plain, "refused this client's credentials")):
                async with open_tcp_client(wrong) as client:
                    with trio.fail_after(2), pytest.raises(AuthenticationError, match=words):
                        await client.submit(c.get("x"))
            address = config.nodes[0]
            peer_key = config.credentials().peer
            assert peer_key is not None
            with trio.fail_after(2), pytest.raises(AuthenticationError, match="authentication failed"):
                await connect(address.host, address.port, peer_key, "peer", "n2", 1 << 20, tls=client_tls(config))
            refused = Counter(node.status().refused) + Counter(other.status().refused)  # clients try either
            assert refused["unauthenticated"] >= 1 and refused["unexpected"] >= 1, refused


def test_client_files_and_tls_settings_are_checked(tmp_path: Path) -> None:
    config = write_cluster_file(tmp_path / "cluster.yaml", nodes=3, tls=True)
    clients = load_cluster(client_file(tmp_path / "cluster.yaml"))
    assert clients.tls == TlsFiles("tls/ca.pem") and all(n.cert is None for n in clients.nodes)
    assert clients.client_credentials() == Credentials(config.credentials().client)
    assert "secret:" not in client_file(tmp_path / "cluster.yaml").read_text().replace("client_secret:", "")
    text = (tmp_path / "cluster.yaml").read_text()
    for old, new, field in (
            ("tls:\n  ca: tls/ca.pem", "client_secret: " + "ab" * 32, "client_secret"),  # with a secret too
            ("  cert: tls/n2.pem\n", "", "nodes[1].cert"),  # a key without its certificate
            ("tls:\n  ca: tls/ca.pem", "", "nodes[0].cert")):  # certificates without the tls section
        assert old in text
        with pytest.raises(ConfigError) as info:
            parse_cluster(text.replace(old, new), "c.yaml")
        # one problem names its field; several are listed one a line, in file order
        assert info.value.field == field or f": {field}: " in str(info.value), str(info.value)
    assert clients.client_secret is not None
    client_text = client_file(tmp_path / "cluster.yaml").read_text()
    with pytest.raises(ConfigError, match="client_secret must be 64 hex digits"):
        parse_cluster(client_text.replace(clients.client_secret, "abc"), "c.yaml")
