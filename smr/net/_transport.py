"""Framed, authenticated connections over trio streams (optionally inside TLS): the I/O around
:mod:`smr.net._frames`, and the decoding of verified frame bodies into messages.

TLS, where the cluster file asks for it (``tls:``), wraps the TCP stream
before the hello: it gives confidentiality; the frames keep their HMACs, so
integrity and authentication still come from the keys.  A node presents its
certificate and asks (but does not require) the connecting side for one; a
connection that says it is a peer must have presented one the cluster's CA
signed.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from smr import wire
from smr.errors import ConfigError, LocalProtocolError, RemoteProtocolError

from ._config import ClusterConfig
from ._frames import (AUTH_FAILED, BUSY, Credentials, FrameDecoder, FrameError, Hello, Session, acceptor_hello,
                      check_acceptor_hello, check_connector_hello, connector_hello, refusal, refusal_reason)

RECEIVE_CHUNK = 65536
#: Most frames a writer task sends in one write.
SEND_BATCH = 256
#: The largest hello accepted: before authentication nobody gets to announce megabytes.
HELLO_MAX_BYTES = 1024
#: Longest a node spends telling a connection it is refused (the words are a few dozen bytes).
REFUSAL_SEND_S = 1.0


class AuthenticationError(ConfigError):
    """A node refused our credentials (wrong secret or client key, a role they do not give) or the TLS
    handshake failed (a certificate the other side does not trust): retrying cannot help."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        super().__init__(message, file=file, field=field)
        self.message = message


class IdleConnection(Exception):
    """Nothing arrived on a connection for its idle timeout."""


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` if the handshake was refused (not merely cut short), else None."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    if isinstance(cause, ssl.SSLError) and not isinstance(
            cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)):
        return cause
    return None


def _tls_words(failure: ssl.SSLError) -> str:
    """What a failed TLS handshake says, in words a person can act on."""
    if isinstance(failure, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {failure.verify_message}"
    return str(failure.reason or failure).lower().replace("_", " ")


def decode_message(body: bytes) -> Any:
    """Decode an authenticated frame body into a message, or raise FrameError("malformed")."""
    try:
        return wire.decode(body)
    except RemoteProtocolError as exc:
        raise FrameError("malformed", str(exc)) from None
    except RecursionError:  # JSON nested deeper than Python's stack: garbage, not a crash
        raise FrameError("malformed", "nested too deeply") from None


class FramedConnection:
    """One authenticated connection: ``send`` sealed bodies, ``receive`` verified ones.

    ``frame_timeout``: seconds a frame may take from its first byte to its
    last (FrameError "truncated" after); ``idle_timeout``: seconds to wait
    for the first byte of the next frame (IdleConnection after).
    """

    def __init__(self, stream: trio.abc.Stream, decoder: FrameDecoder, *, frame_timeout: float = math.inf,
                 idle_timeout: float = math.inf) -> None:
        self.stream = stream
        self.decoder = decoder
        self.session: Session | None = None
        self.frame_timeout = frame_timeout
        self.idle_timeout = idle_timeout
        self._frame_started: float | None = None  # trio time we first waited for the rest of a frame

    async def receive_frame(self) -> tuple[bytes, bytes] | None:
        """Return the next raw (tag, body), None at a clean end of stream; FrameError otherwise."""
        while True:
            got = self.decoder.next_frame()
            if got is not None:
                self._frame_started = None
                return got
            if self.decoder.buffered:
                if self._frame_started is None:
                    self._frame_started = trio.current_time()
                deadline = self._frame_started + self.frame_timeout
            else:
                deadline = trio.current_time() + self.idle_timeout if self.idle_timeout < math.inf else math.inf
            if deadline == math.inf:
                data = await self.stream.receive_some(RECEIVE_CHUNK)
            else:
                with trio.move_on_at(deadline) as scope:
                    data = await self.stream.receive_some(RECEIVE_CHUNK)
                if scope.cancelled_caught:
                    if self.decoder.buffered:
                        raise FrameError("truncated", f"a frame not complete {self.frame_timeout:g} s after it "
                                                      f"began ({self.decoder.buffered} bytes of it held)")
                    raise IdleConnection(f"nothing received for {self.idle_timeout:g} s")
            if not data:
                self.decoder.end_of_stream()
                return None
            self.decoder.feed(data)

    async def receive(self) -> bytes | None:
        """Return the next verified body, None at a clean end of stream; FrameError otherwise."""
        if self.session is None:
            raise LocalProtocolError("receive() before the hello exchange")
        got = await self.receive_frame()
        return None if got is None else self.session.open(*got)

    async def send(self, bodies: Sequence[bytes]) -> None:
        """Seal and send ``bodies`` as consecutive frames in one write."""
        if self.session is None:
            raise LocalProtocolError("send() before the hello exchange")
        await self.stream.send_all(b"".join(self.session.seal(b) for b in bodies))

    async def aclose(self) -> None:
        """Close the connection."""
        await self.stream.aclose()


#: Room a batch frame keeps for its own envelope beside its members' encodings.
BATCH_OVERHEAD_BYTES = 64


def pack(items: Sequence[Any], sizes: Sequence[int], budget: int,
         batch: Callable[[tuple[Any, ...]], Any]) -> list[Any]:
    """The messages that carry ``items`` (of encoded ``sizes``) in frames of at most ``budget`` bytes.

    Consecutive items that fit together become one ``batch(run)``; a run of
    one stays itself, and so does an item bigger than the budget (its own
    frame checks its size).
    """
    messages: list[Any] = []
    run: list[Any] = []
    used = BATCH_OVERHEAD_BYTES

    def close_run() -> None:
        if run:
            messages.append(run[0] if len(run) == 1 else batch(tuple(run)))
            run.clear()

    for item, size in zip(items, sizes):
        if run and used + size + 8 > budget:
            close_run()
            used = BATCH_OVERHEAD_BYTES
        run.append(item)
        used += size + 8  # a member's own header in the batch
    close_run()
    return messages


async def next_batch(queue: trio.MemoryReceiveChannel[Any], limit: int = SEND_BATCH) -> list[Any]:
    """Wait for the next body in ``queue`` and return it with every one already queued (at most ``limit``).

    Raises EndOfChannel once the queue is closed and empty.
    """
    bodies = [await queue.receive()]
    while len(bodies) < limit:
        try:
            bodies.append(queue.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return bodies


# ------------------------------------------------------------------ TLS
@attrs.frozen
class NodeTls:
    """A node's TLS contexts: ``server`` for the connections it accepts, ``dial`` for those to its peers."""

    server: ssl.SSLContext
    dial: ssl.SSLContext


def _context(config: ClusterConfig, purpose: int, cert: tuple[str, str, str] | None) -> ssl.SSLContext:
    """A TLS context trusting the cluster's CA, presenting ``cert`` = (cert, key, field) if given."""
    tls = config.tls
    assert tls is not None, "only called for a cluster with TLS"
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    where = "tls.ca"
    try:
        ctx.load_verify_locations(cafile=str(config.path(tls.ca)))
        if cert is not None:
            where = cert[2]
            ctx.load_cert_chain(str(config.path(cert[0])), str(config.path(cert[1])))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS file: {exc}", file=config.source, field=where) from None
    return ctx


def client_tls(config: ClusterConfig) -> ssl.SSLContext | None:
    """The TLS context a client dials with (it checks the node's certificate), or None without TLS."""
    return None if config.tls is None else _context(config, ssl.PROTOCOL_TLS_CLIENT, None)


def node_tls(config: ClusterConfig, node: str) -> NodeTls | None:
    """Node ``node``'s TLS contexts, or None without TLS; ConfigError if it has no certificate."""
    tls = config.tls
    if tls is None:
        return None
    me = config.address(node)
    where = config.field_of(node)
    if me.cert is not None and me.key is not None:
        cert = (me.cert, me.key, f"{where}.cert")
    elif tls.cert is not None and tls.key is not None:
        cert = (tls.cert, tls.key, "tls.cert")
    else:
        raise ConfigError(f"node {node} has no TLS certificate: give {where}.cert and .key, or tls.cert "
                          f"and tls.key", file=config.source, field=where)
    server = _context(config, ssl.PROTOCOL_TLS_SERVER, cert)
    server.verify_mode = ssl.CERT_OPTIONAL  # clients need none; a peer must show one (checked after its hello)
    return NodeTls(server, _context(config, ssl.PROTOCOL_TLS_CLIENT, cert))


def has_verified_certificate(stream: trio.abc.Stream) -> bool:
    """True if ``stream`` is TLS and the other side presented a certificate our CA signed."""
    return isinstance(stream, trio.SSLStream) and bool(stream.getpeercert())


# ------------------------------------------------------------ handshakes
async def connect(host: str, port: int, key: bytes, role: str, my_id: str, max_frame_bytes: int, *,
                  tls: ssl.SSLContext | None = None) -> tuple[FramedConnection, Hello]:
    """Open a connection to ``host:port`` and run the hello exchange as ``role`` with that role's ``key``.

    Raises OSError if the connection fails or the node is at its connection
    limit (ConnectionRefusedError), AuthenticationError if the node refuses
    the key or a TLS handshake fails, and FrameError if the answer does not
    verify.
    """
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    try:
        if tls is not None:
            stream = trio.SSLStream(stream, tls, server_hostname=host, https_compatible=True)
        conn = FramedConnection(stream, FrameDecoder(min(HELLO_MAX_BYTES, max_frame_bytes)))
        data, mine = connector_hello(key, role, my_id)
        try:
            await stream.send_all(data)  # the TLS handshake, if any, runs here
            got = await conn.receive_frame()  # and a refused client certificate shows here (TLS 1.3)
        except trio.BrokenResourceError as exc:
            failure = _tls_failure(exc)
            if failure is None:
                raise
            raise AuthenticationError(f"the TLS handshake with {host}:{port} failed: {_tls_words(failure)} "
                                      f"(do both sides use TLS, and trust each other's CA?)", field="tls") from None
        if got is None:
            raise FrameError("truncated", "connection closed during the hello exchange")
        why = refusal_reason(*got)
        if why == BUSY:
            raise ConnectionRefusedError(f"{host}:{port} has too many connections")
        if why is not None:
            raise AuthenticationError(f"{host}:{port} refused this {role}'s credentials ({why}): the cluster "
                                      f"secret or client_secret, or the TLS settings, differ from the node's",
                                      field="secret")
        theirs = check_acceptor_hello(key, mine, *got)
        conn.decoder.max_frame_bytes = max_frame_bytes
        conn.session = Session(key, mine, theirs, is_connector=True)
        return conn, theirs
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


async def send_refusal(stream: trio.abc.Stream, why: str) -> None:
    """Tell the other side of ``stream`` it is refused (best effort, briefly); the caller closes it."""
    with trio.move_on_after(REFUSAL_SEND_S):
        try:
            await stream.send_all(refusal(why))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def receive_hello(stream: trio.abc.Stream, credentials: Credentials, max_frame_bytes: int, *,
                        tls: ssl.SSLContext | None = None) -> tuple[FramedConnection, Hello]:
    """As the accepting side, run TLS (if ``tls``) and read and verify the connector's hello.

    On failure the connector is sent a refusal and FrameError raised; the
    caller then answers with :func:`answer_hello` or refuses with
    :func:`send_refusal`.  The returned connection's ``stream`` is the TLS
    stream, if any.
    """
    transport = stream
    if tls is not None:
        stream = trio.SSLStream(stream, tls, server_side=True, https_compatible=True)
    conn = FramedConnection(stream, FrameDecoder(min(HELLO_MAX_BYTES, max_frame_bytes)))
    try:
        got = await conn.receive_frame()  # the TLS handshake, if any, runs here
        if got is None:
            raise FrameError("truncated", "connection closed before the hello")
        return conn, check_connector_hello(credentials, *got)
    except trio.BrokenResourceError as exc:
        failure = _tls_failure(exc)
        if failure is None:
            raise
        await send_refusal(transport, AUTH_FAILED)  # in clear: a connector without TLS reads it
        raise FrameError("unauthenticated", f"TLS handshake failed: {_tls_words(failure)}") from None
    except FrameError:
        await send_refusal(stream, AUTH_FAILED)
        raise


async def answer_hello(conn: FramedConnection, credentials: Credentials, my_id: str, theirs: Hello,
                       max_frame_bytes: int) -> None:
    """Answer the verified hello ``theirs`` and start the session (frames up to ``max_frame_bytes`` from now)."""
    key = credentials.key(theirs.role)
    assert key is not None, "a verified hello's role has a key"
    data, mine = acceptor_hello(key, my_id, theirs)
    await conn.stream.send_all(data)
    conn.decoder.max_frame_bytes = max_frame_bytes
    conn.session = Session(key, theirs, mine, is_connector=False)


async def accept(stream: trio.abc.Stream, credentials: Credentials, my_id: str, max_frame_bytes: int, *,
                 tls: ssl.SSLContext | None = None) -> tuple[FramedConnection, Hello]:
    """Run the hello exchange as the accepting side of ``stream``; FrameError if it fails."""
    conn, theirs = await receive_hello(stream, credentials, max_frame_bytes, tls=tls)
    await answer_hello(conn, credentials, my_id, theirs, max_frame_bytes)
    return conn, theirs
