"""One converter serialises every message of every backend, and refuses garbage."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smr import wire
from smr.commands import Command
from smr.errors import RemoteProtocolError
from smr.registry import load_builtin_backends
from smr.replica import Reply
from smr.values import INT_MAX, INT_MIN

load_builtin_backends()  # imports every built-in backend, registering its messages

MESSAGES = sorted(wire.registered_messages().items())

# NaN never equals itself, so a round trip of it cannot compare equal; messages
# carry finite numbers (JSON has no NaN or infinity either).
st.register_type_strategy(float, st.floats(allow_nan=False, allow_infinity=False))
# msgpack carries 64-bit integers (every counter a core keeps fits).
st.register_type_strategy(int, st.integers(INT_MIN, 2 ** 63 - 1))

#: Any value a command may carry (smr.values): JSON plus bytes, nested.
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(INT_MIN, INT_MAX) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)
st.register_type_strategy(Command, st.builds(Command, st.text(max_size=8), st.text(max_size=4),
                                             st.lists(VALUES, max_size=3).map(tuple)))
st.register_type_strategy(Reply, st.builds(Reply, st.text(max_size=8), st.integers(0, 2 ** 40),
                                           st.sampled_from(["ok", "error", "redirect", "fail"]), VALUES,
                                           st.none() | st.text(max_size=4)))


def test_every_backend_registered_messages() -> None:
    names = {name.split(".")[0] for name, _ in MESSAGES}
    assert "smr" in names
    assert len(MESSAGES) >= 4


@pytest.mark.parametrize(("name", "cls"), MESSAGES, ids=[n for n, _ in MESSAGES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_message_round_trips_through_bytes(name: str, cls: type, data: st.DataObject) -> None:
    attrs.resolve_types(cls)
    msg = data.draw(st.builds(cls), label=name)
    encoded = wire.encode(msg)
    assert isinstance(encoded, bytes)
    assert wire.decode(encoded) == msg
    assert wire.encode(wire.decode(encoded)) == encoded  # canonical


@pytest.mark.parametrize("frame", [
    b"", b"not json", b"[]", b'{"t": "smr.Nope", "b": {}}', b'{"t": "smr.Reply", "b": {"seq": "x"}}',
    b'{"t": "smr.Reply"}', b'{"t": 3, "b": {}}', b"\xff\xfe",
])
def test_malformed_frames_are_remote_errors(frame: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        wire.decode(frame)
