"""Every protocol message is an authenticated envelope; malformed or misdirected messages are rejected with a
message naming the cause, and a node answers them with an error instead of acting on them."""

import os

import pytest

import mpclr
from mpclr.errors import MessageError, ProtocolError
from mpclr.network import InProcessNetwork
from mpclr.roles.node import Session
from mpclr.wire import KIND_REQUEST, Identity, decode_body, encode_body, open_message, seal_message


@pytest.fixture
def pair():
    """A sender and a receiver identity in one session."""
    alice, bob = Identity(), Identity()
    session = os.urandom(16)
    params = os.urandom(16)
    roster = {"alice": alice.public_bytes, "bob": bob.public_bytes}
    BOB["id"] = bob
    return alice, bob, session, params, roster


BOB = {}  # bob's identity, set by the fixture: messages are authenticated for their recipient


def make(alice, session, params, seq=1, recipient="bob", fields=None, sender="alice"):
    return seal_message(
        alice,
        KIND_REQUEST,
        "test.step",
        session,
        params,
        sender,
        recipient,
        seq,
        fields if fields is not None else {"x": 1, "blob": b"\x01" * 100},
        BOB["id"].public_bytes,
    )


def open_(raw, session, params, roster, seen=None):
    return open_message(
        raw,
        identity=BOB["id"],
        session=session,
        params=params,
        roster=roster,
        recipient="bob",
        seen={} if seen is None else seen,
    )


def test_round_trip(pair):
    alice, _, session, params, roster = pair
    msg = open_(make(alice, session, params), session, params, roster)
    assert msg.sender == "alice" and msg.fields["x"] == 1 and bytes(msg.fields["blob"]) == b"\x01" * 100


def test_body_codec_types():
    fields = {"a": [1, 2.5, "s", None, True], "b": {"c": b"xyz"}, "d": b""}
    out = decode_body(encode_body(fields))
    assert out["a"] == [1, 2.5, "s", None, True]
    assert bytes(out["b"]["c"]) == b"xyz" and bytes(out["d"]) == b""
    with pytest.raises(TypeError, match="cannot put"):
        encode_body({"x": object()})


def test_truncated(pair):
    alice, _, session, params, roster = pair
    raw = make(alice, session, params)
    for cut in (3, 40, len(raw) - 64, len(raw) - 1):
        with pytest.raises(MessageError, match="truncated|bad magic"):
            open_(raw[:cut], session, params, roster)


def test_tampered(pair):
    alice, _, session, params, roster = pair
    raw = bytearray(make(alice, session, params))
    raw[-80] ^= 1  # a byte of the body
    with pytest.raises(MessageError, match="tampered"):
        open_(bytes(raw), session, params, roster)


def test_replayed(pair):
    alice, _, session, params, roster = pair
    seen = {}
    raw = make(alice, session, params, seq=5)
    open_(raw, session, params, roster, seen)
    with pytest.raises(MessageError, match="replayed"):
        open_(raw, session, params, roster, seen)
    with pytest.raises(MessageError, match="replayed"):
        open_(make(alice, session, params, seq=4), session, params, roster, seen)


def test_other_session_and_parameters(pair):
    alice, _, session, params, roster = pair
    with pytest.raises(MessageError, match="another session"):
        open_(make(alice, os.urandom(16), params), session, params, roster)
    with pytest.raises(MessageError, match="another parameter set"):
        open_(make(alice, session, os.urandom(16)), session, params, roster)


def test_outsider_and_impostor(pair):
    alice, _, session, params, roster = pair
    mallory = Identity()
    with pytest.raises(MessageError, match="not a member"):
        open_(make(mallory, session, params, sender="mallory"), session, params, roster)
    with pytest.raises(MessageError, match="tampered or forged"):
        open_(make(mallory, session, params, sender="alice"), session, params, roster)


def test_misaddressed_and_foreign(pair):
    alice, _, session, params, roster = pair
    with pytest.raises(MessageError, match="addressed to"):
        open_(make(alice, session, params, recipient="carol"), session, params, roster)
    with pytest.raises(MessageError, match="not an mpclr message"):
        open_(b"GET / HTTP/1.1\r\n" * 10, session, params, roster)
    raw = bytearray(make(alice, session, params))
    raw[5] = 99  # version byte
    with pytest.raises(MessageError, match="version 99"):
        open_(bytes(raw), session, params, roster)


class TamperingNetwork(InProcessNetwork):
    """Flips one byte of every request of a chosen type in transit."""

    target = None

    def _deliver(self, recipient, message):
        from mpclr.wire import peek

        if self.target and peek(message).type == self.target:
            message = bytearray(message)
            message[len(message) // 2] ^= 0x40
            message = bytes(message)
        return super()._deliver(recipient, message)


def test_nodes_refuse_tampered_messages_end_to_end():
    net = TamperingNetwork()
    fed = mpclr.Federation(manifest="exploration", parties=2, network=net)
    net.target = "decrypt.share"
    a = fed.parties[0].encrypt([1.0, 2.0])
    with pytest.raises(ProtocolError, match="tampered"):
        fed.decrypt(a)
    fed.close()


def test_nodes_refuse_messages_from_another_session():
    fed1 = mpclr.Federation(manifest="exploration", parties=2)
    fed2 = mpclr.Federation(manifest="exploration", parties=2)
    raw = fed1.server._seal(KIND_REQUEST, "gkg.share", "hospital-1", {"galois_elt": 3})
    reply = fed2.parties[0].handle(raw)
    with pytest.raises(ProtocolError, match="another session"):
        fed2.server._reply_fields("hospital-1", "gkg.share", reply)
    fed1.close()
    fed2.close()


def test_steps_only_from_the_right_role():
    fed = mpclr.Federation(manifest="exploration", parties=2)
    with pytest.raises(ProtocolError, match="only taken from the session's server"):
        fed.researcher.call("hospital-1", "gkg.share", galois_elt=3)
    with pytest.raises(ProtocolError, match="does not answer"):
        fed.server.call("hospital-1", "no.such.step")
    fed.close()


def test_session_roster_is_immutable():
    s = Session(b"x" * 16, b"y" * 16, {"a": b"k"}, ("a",), 1, "a", "a")
    with pytest.raises(TypeError):
        s.roster["b"] = b"k"
