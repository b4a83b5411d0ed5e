"""Frames on a TCP connection, sans-IO: length prefix, size bound, HMAC-SHA256 on every frame.

A frame is ``length (4 bytes, big-endian) | tag (32 bytes) | body``, where
``length`` counts tag and body and may not exceed the cluster's
``max_frame_bytes``.  Every frame is authenticated with the key of the
connecting side's *role*: a cluster secret gives two keys,
``peer_key = HMAC(secret, "smr-peer-key")`` and
``client_key = HMAC(secret, "smr-client-key")`` (:class:`Credentials`).  A node
holds both; a client may be given only the client key, which does not give the
peer key, so it cannot speak as a replica.

1. the connecting side sends a *hello* (its role, id and a fresh random
   nonce) tagged with ``HMAC(role_key, "smr-hello-c" | body)``; the accepting
   side checks it with the key of the role it claims;
2. the accepting side answers with its own hello and nonce, tagged with
   ``HMAC(role_key, "smr-hello-a" | connector nonce | body)`` -- or, if the
   hello does not verify, with a fixed, untagged :func:`refusal` (the same
   words whatever was wrong, so it tells a prober nothing) before it closes;
3. both derive a session key ``HMAC(role_key, "smr-session" | nonce_c | nonce_a)``
   and tag every later frame with ``HMAC(key, direction | sequence | body)``.

So a frame only verifies on the connection, in the direction and at the
position it was made for: a recorded frame replayed, reordered or spliced
into another connection fails like a forged one.  Any failure raises
:class:`FrameError`, whose ``reason`` (``oversized``, ``truncated``,
``unauthenticated``, ``malformed``) is what the node counts before it closes
the connection.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from typing import Any

import attrs

from smr.bounds import MessageBounds
from smr.errors import RemoteProtocolError

TAG_BYTES = 32
#: Room a client's request must leave in a frame for the replication message around it (AppendEntries, Accept).
ENVELOPE_BYTES = 4096


def request_limit(max_frame_bytes: int) -> int:
    """The largest client request body a cluster with ``max_frame_bytes`` can replicate."""
    return max_frame_bytes - TAG_BYTES - min(ENVELOPE_BYTES, max_frame_bytes // 4)


def frame_bounds(max_frame_bytes: int) -> dict[str, int]:
    """The core options that keep every replication message and snapshot chunk within one frame.

    Both bounds are at most the request limit, so a batch (estimated above
    its true size) plus the envelope around it never exceeds ``max_frame_bytes``.
    """
    limit = request_limit(max_frame_bytes)
    defaults = MessageBounds()
    return {"max_batch_bytes": min(defaults.max_batch_bytes, limit),
            "snapshot_chunk_bytes": min(defaults.snapshot_chunk_bytes, limit)}


HEADER = struct.Struct(">I")
NONCE_BYTES = 16
PROTOCOL_VERSION = 1
ROLES = ("peer", "client")

#: The reasons a frame is refused; a node keeps one counter per reason.
REASONS = ("oversized", "truncated", "unauthenticated", "malformed", "unexpected")


class FrameError(RemoteProtocolError):
    """A peer sent a frame that is refused; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason} frame: {message}")
        self.reason = reason


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.digest(key, b"".join(parts), hashlib.sha256)


@attrs.frozen(repr=False)
class Credentials:
    """The keys one side holds: the client key always; the peer key only where the cluster secret is.

    ``repr`` shows which keys are held, never the keys.
    """

    client: bytes
    peer: bytes | None = None

    @classmethod
    def from_secret(cls, secret: bytes) -> "Credentials":
        """Both keys of the cluster whose secret is ``secret`` (what a node holds)."""
        return cls(client_key(secret), _mac(secret, b"smr-peer-key"))

    def key(self, role: str) -> bytes | None:
        """The key that authenticates ``role`` ("peer" or "client"), or None if not held."""
        return self.client if role == "client" else self.peer if role == "peer" else None

    def __repr__(self) -> str:
        return f"Credentials(client, {'peer' if self.peer is not None else 'no peer key'})"


def client_key(secret: bytes) -> bytes:
    """The client key of the cluster whose secret is ``secret``: it authenticates clients only."""
    return _mac(secret, b"smr-client-key")


def frame(tag: bytes, body: bytes) -> bytes:
    """Return the wire bytes of one frame (no size check: the receiver enforces it)."""
    return HEADER.pack(len(tag) + len(body)) + tag + body


class FrameDecoder:
    """Splits a byte stream into (tag, body) frames, refusing any longer than ``max_frame_bytes``."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray) -> None:
        """Append bytes received from the connection."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes held of frames not complete yet."""
        return len(self._buf)

    def next_frame(self) -> tuple[bytes, bytes] | None:
        """Return the next complete frame, None if more bytes are needed, or raise FrameError."""
        if len(self._buf) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(self._buf)
        if length > self.max_frame_bytes:
            raise FrameError("oversized", f"{length} bytes announced, at most {self.max_frame_bytes} allowed")
        if length < TAG_BYTES:
            raise FrameError("malformed", f"{length} bytes cannot hold a {TAG_BYTES}-byte tag")
        end = HEADER.size + length
        if len(self._buf) < end:
            return None
        tag = bytes(self._buf[HEADER.size:HEADER.size + TAG_BYTES])
        body = bytes(self._buf[HEADER.size + TAG_BYTES:end])
        if end == len(self._buf):
            self._buf = bytearray()  # a big frame's room is given back, not kept while the connection idles
        else:
            del self._buf[:end]
        return tag, body

    def end_of_stream(self) -> None:
        """The peer closed the connection: raise FrameError if it stopped inside a frame."""
        if self._buf:
            raise FrameError("truncated", f"connection closed {len(self._buf)} bytes into a frame")


@attrs.frozen
class Hello:
    """The first frame of each side of a connection."""

    role: str
    id: str
    nonce: bytes


def _hello_body(role: str, node: str, nonce: bytes) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, "role": role, "id": node, "nonce": nonce.hex()},
                      sort_keys=True, separators=(",", ":")).encode()


def _parse_hello(body: bytes) -> Hello:
    try:
        obj: Any = json.loads(body)
        role, node, nonce = obj["role"], obj["id"], bytes.fromhex(obj["nonce"])
        version = obj["v"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FrameError("malformed", f"bad hello: {exc}") from None
    if version != PROTOCOL_VERSION or role not in ROLES or not isinstance(node, str) or len(nonce) != NONCE_BYTES:
        raise FrameError("malformed", "bad hello fields")
    return Hello(role, node, nonce)


def _claimed_role(body: bytes) -> str | None:
    """The role an unverified hello claims (to pick the key that must verify it), or None."""
    try:
        obj: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    role = obj.get("role") if isinstance(obj, dict) else None
    return role if role in ROLES else None


def connector_hello(key: bytes, role: str, node: str) -> tuple[bytes, Hello]:
    """Return the connecting side's hello frame, tagged with ``role``'s ``key``, and the Hello it announces."""
    nonce = os.urandom(NONCE_BYTES)
    body = _hello_body(role, node, nonce)
    return frame(_mac(key, b"smr-hello-c", body), body), Hello(role, node, nonce)


def check_connector_hello(credentials: Credentials, tag: bytes, body: bytes) -> Hello:
    """Verify a connector's hello with the key of the role it claims and parse it, or raise FrameError."""
    role = _claimed_role(body)
    key = credentials.key(role) if role is not None else None
    if key is None or not hmac.compare_digest(tag, _mac(key, b"smr-hello-c", body)):
        raise FrameError("unauthenticated", "hello does not verify with the key of the role it claims")
    return _parse_hello(body)


def acceptor_hello(key: bytes, node: str, connector: Hello) -> tuple[bytes, Hello]:
    """Return the accepting side's hello frame (bound to the connector's nonce, tagged with the
    connector's role key) and its Hello."""
    nonce = os.urandom(NONCE_BYTES)
    body = _hello_body("peer", node, nonce)
    return frame(_mac(key, b"smr-hello-a", connector.nonce, body), body), Hello("peer", node, nonce)


def check_acceptor_hello(key: bytes, connector: Hello, tag: bytes, body: bytes) -> Hello:
    """Verify and parse the acceptor's answer to our hello, or raise FrameError."""
    if not hmac.compare_digest(tag, _mac(key, b"smr-hello-a", connector.nonce, body)):
        raise FrameError("unauthenticated", "hello answer does not verify with our key")
    return _parse_hello(body)


#: An untagged answer to a hello, in place of the acceptor's: the same fixed words whatever was
#: wrong (no oracle); the connector knows at once, instead of waiting for an answer that never comes.
REFUSAL_TAG = bytes(TAG_BYTES)
_REFUSAL_PREFIX = b"smr-refused:"
#: The hello did not verify (wrong secret or key, a role the key does not give, a peer unknown here).
AUTH_FAILED = "authentication failed"
#: The node is at a connection limit: try again later or elsewhere.
BUSY = "too many connections"


def refusal(why: str) -> bytes:
    """The wire bytes of a refusal frame saying ``why`` (:data:`AUTH_FAILED` or :data:`BUSY`)."""
    return frame(REFUSAL_TAG, _REFUSAL_PREFIX + why.encode())


def refusal_reason(tag: bytes, body: bytes) -> str | None:
    """What a refusal frame says, or None if (tag, body) is not one."""
    if tag != REFUSAL_TAG or not body.startswith(_REFUSAL_PREFIX):
        return None
    why = body[len(_REFUSAL_PREFIX):].decode("ascii", "replace")
    return why if why in (AUTH_FAILED, BUSY) else AUTH_FAILED


class Session:
    """The authenticated state of one connection: seals outgoing and opens incoming frames in order."""

    def __init__(self, key: bytes, connector: Hello, acceptor: Hello, *, is_connector: bool) -> None:
        session_key = _mac(key, b"smr-session", connector.nonce, acceptor.nonce)
        self._mac = hmac.new(session_key, digestmod=hashlib.sha256)  # keyed once; copied per frame
        self._out_dir, self._in_dir = (b"c>a", b"a>c") if is_connector else (b"a>c", b"c>a")
        self._out_seq = 0
        self._in_seq = 0

    def _tag(self, direction: bytes, seq: int, body: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(direction + seq.to_bytes(8, "big"))
        mac.update(body)
        return mac.digest()

    def seal(self, body: bytes) -> bytes:
        """Return the frame carrying ``body`` as the next outgoing frame."""
        tag = self._tag(self._out_dir, self._out_seq, body)
        self._out_seq += 1
        return frame(tag, body)

    def open(self, tag: bytes, body: bytes) -> bytes:
        """Verify ``body`` as the next incoming frame and return it, or raise FrameError."""
        expected = self._tag(self._in_dir, self._in_seq, body)
        if not hmac.compare_digest(tag, expected):
            raise FrameError("unauthenticated", f"frame {self._in_seq} does not verify")
        self._in_seq += 1
        return body
