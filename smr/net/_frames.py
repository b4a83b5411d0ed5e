"""Frames on a TCP connection, sans-IO: length prefix, size bound, HMAC-SHA256 on every frame.

A frame is ``length (4 bytes, big-endian) | tag (32 bytes) | body``, where
``length`` counts tag and body and may not exceed the cluster's
``max_frame_bytes``.  Every frame is authenticated:

1. the connecting side sends a *hello* (its role, id and a fresh random
   nonce) tagged with ``HMAC(secret, "smr-hello-c" | body)``;
2. the accepting side answers with its own hello and nonce, tagged with
   ``HMAC(secret, "smr-hello-a" | connector nonce | body)``;
3. both derive a session key ``HMAC(secret, "smr-session" | nonce_c | nonce_a)``
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

from smr.errors import RemoteProtocolError

TAG_BYTES = 32
#: Room a client's request must leave in a frame for the replication message around it (AppendEntries, Accept).
ENVELOPE_BYTES = 4096


def request_limit(max_frame_bytes: int) -> int:
    """The largest client request body a cluster with ``max_frame_bytes`` can replicate."""
    return max_frame_bytes - TAG_BYTES - min(ENVELOPE_BYTES, max_frame_bytes // 4)
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


def connector_hello(secret: bytes, role: str, node: str) -> tuple[bytes, Hello]:
    """Return the connecting side's hello frame and the Hello it announces."""
    nonce = os.urandom(NONCE_BYTES)
    body = _hello_body(role, node, nonce)
    return frame(_mac(secret, b"smr-hello-c", body), body), Hello(role, node, nonce)


def check_connector_hello(secret: bytes, tag: bytes, body: bytes) -> Hello:
    """Verify and parse a connector's hello, or raise FrameError."""
    if not hmac.compare_digest(tag, _mac(secret, b"smr-hello-c", body)):
        raise FrameError("unauthenticated", "hello does not verify with the cluster secret")
    return _parse_hello(body)


def acceptor_hello(secret: bytes, node: str, connector: Hello) -> tuple[bytes, Hello]:
    """Return the accepting side's hello frame (bound to the connector's nonce) and its Hello."""
    nonce = os.urandom(NONCE_BYTES)
    body = _hello_body("peer", node, nonce)
    return frame(_mac(secret, b"smr-hello-a", connector.nonce, body), body), Hello("peer", node, nonce)


def check_acceptor_hello(secret: bytes, connector: Hello, tag: bytes, body: bytes) -> Hello:
    """Verify and parse the acceptor's answer to our hello, or raise FrameError."""
    if not hmac.compare_digest(tag, _mac(secret, b"smr-hello-a", connector.nonce, body)):
        raise FrameError("unauthenticated", "hello answer does not verify with the cluster secret")
    return _parse_hello(body)


class Session:
    """The authenticated state of one connection: seals outgoing and opens incoming frames in order."""

    def __init__(self, secret: bytes, connector: Hello, acceptor: Hello, *, is_connector: bool) -> None:
        key = _mac(secret, b"smr-session", connector.nonce, acceptor.nonce)
        self._mac = hmac.new(key, digestmod=hashlib.sha256)  # keyed once; copied per frame
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
