"""Every protocol message is an authenticated envelope; malformed or misdirected messages are rejected with a
message naming the cause, and a node answers them with an error instead of acting on them."""

import os

import pytest

import mpclr
from mpclr.errors import MessageError, ProtocolError
from mpclr.network import InProcessNetwork
from mpclr.roles.node import Session
from mpclr.wire import KIND_REQUEST, Identity, decode_body, encode_body, open_message, peek, seal_message


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
    fed = mpclr.Federation(manifest="exploration", hospitals=2, network=net)
    net.target = "decrypt.share"
    a = fed.hospitals[0].encrypt([1.0, 2.0])
    with pytest.raises(ProtocolError, match="tampered"):
        fed.decrypt(a)
    fed.close()


def test_nodes_refuse_messages_from_another_session():
    fed1 = mpclr.Federation(manifest="exploration", hospitals=2)
    fed2 = mpclr.Federation(manifest="exploration", hospitals=2)
    raw = fed1.server._seal(KIND_REQUEST, "gkg.share", "hospital-1", {"galois_elt": 3})
    reply = fed2.hospitals[0].handle(raw)
    with pytest.raises(ProtocolError, match="another session"):
        fed2.server._reply_fields("hospital-1", "gkg.share", reply)
    fed1.close()
    fed2.close()


def test_steps_only_from_the_right_role():
    fed = mpclr.Federation(manifest="exploration", hospitals=2)
    with pytest.raises(ProtocolError, match="only taken from the session's server"):
        fed.researcher.call("hospital-1", "gkg.share", galois_elt=3)
    with pytest.raises(ProtocolError, match="does not answer"):
        fed.server.call("hospital-1", "no.such.step")
    fed.close()


def test_session_roster_is_immutable():
    s = Session(b"x" * 16, b"y" * 16, {"a": b"k"}, ("a",), 1, "a", "a")
    with pytest.raises(TypeError):
        s.roster["b"] = b"k"


# --- encrypted bodies: what only the recipient may read (decryption and key-switch shares) ------------
def make_encrypted(alice, session, params, seq=1, fields=None):
    return seal_message(
        alice, KIND_REQUEST, "test.secret", session, params, "alice", "bob", seq,
        fields if fields is not None else {"share": SECRET}, BOB["id"].public_bytes, encrypt=True,
    )


SECRET = bytes(range(256)) * 8  # 2 KB a relay must not see


def test_encrypted_round_trip_hides_the_body(pair):
    alice, _, session, params, roster = pair
    raw = make_encrypted(alice, session, params)
    assert peek(raw).encrypted and not peek(make(alice, session, params)).encrypted
    assert SECRET[:16] not in raw and SECRET[1000:1016] not in raw  # no plaintext window in transit
    msg = open_(raw, session, params, roster)
    assert msg.encrypted and bytes(msg.fields["share"]) == SECRET


def test_encrypted_nonces_differ(pair):
    """Sealing the same body twice (a retried reply after a restored keystore) gives unrelated bytes."""
    alice, _, session, params, _ = pair
    a, b = make_encrypted(alice, session, params), make_encrypted(alice, session, params)
    assert a != b and len(a) == len(b)


def test_encrypted_tampered(pair):
    alice, _, session, params, roster = pair
    raw = make_encrypted(alice, session, params)
    seq_at = len(b"MPCLR") + 3 + len(b"\x0btest.secret") + 32 + len(b"\x05alice") + len(b"\x03bob")
    assert raw[seq_at : seq_at + 8] == (1).to_bytes(8, "little")
    for pos in (len(raw) - 100, len(raw) - 1, seq_at):  # the body, the tag, the header's sequence number
        bad = bytearray(raw)
        bad[pos] ^= 1
        with pytest.raises(MessageError, match="encrypted body failed authentication \\(tampered"):
            open_(bytes(bad), session, params, roster)
    plain = bytearray(raw)
    plain[7] = 0  # clear the encrypted flag: the AEAD tag is not a Poly1305 tag of the bytes
    with pytest.raises(MessageError, match="tampered or forged"):
        open_(bytes(plain), session, params, roster)


def test_encrypted_for_someone_else(pair):
    """Sealed for bob: carol cannot read it, even with the header rewritten to name her."""
    alice, _, session, params, roster = pair
    carol = Identity()
    roster = {**roster, "carol": carol.public_bytes}
    raw = make_encrypted(alice, session, params)
    for_carol = raw.replace(b"\x03bob", b"\x05carol", 1)
    with pytest.raises(MessageError, match="encrypted body failed authentication"):
        open_message(for_carol, identity=carol, session=session, params=params, roster=roster, recipient="carol",
                     seen={})
    with pytest.raises(MessageError, match="addressed to 'bob'"):
        open_message(raw, identity=carol, session=session, params=params, roster=roster, recipient="carol", seen={})


class RecordingNetwork(InProcessNetwork):
    """Keeps what a relay sees: every reply's bytes, by message type."""

    def __init__(self):
        super().__init__()
        self.replies = {}

    def _deliver(self, recipient, message):
        from mpclr.wire import peek

        reply = super()._deliver(recipient, message)
        self.replies.setdefault(peek(message).type, []).append(reply)
        return reply


def test_the_relay_sees_no_share():
    """Decryption and key-switch shares travel encrypted for the researcher: the bytes on the wire hold
    no window of the share, and the researcher still reads it."""
    net = RecordingNetwork()
    fed = mpclr.Federation(hospitals=2, network=net, manifest="exploration")
    a = fed.hospitals[0].encrypt([1.0, 2.0])
    fed.decrypt(a)
    fed.receive(a)
    r = fed.researcher
    for step in ("decrypt.share", "pcks.share"):
        assert len(net.replies[step]) == 2
        for raw in net.replies[step]:
            assert peek(raw).encrypted, step
            msg = open_message(raw, identity=r.identity, session=fed.session.id, params=fed.session.params,
                               roster=fed.session.roster, recipient=r.name, seen={})
            share = bytes(msg.fields["share"])
            assert len(share) > 10_000
            assert all(share[i : i + 16] not in raw for i in range(0, len(share) - 16, 997)), step
    for step in ("refresh.share", "rlk.round2", "cpk.reveal"):  # what the server combines is for the server
        assert not any(peek(raw).encrypted for raw in net.replies.get(step, [])), step
    fed.close()


class ReplyTamperingNetwork(InProcessNetwork):
    """Flips one byte of every reply of a chosen type on its way back."""

    target = None

    def _deliver(self, recipient, message):
        from mpclr.wire import peek

        reply = super()._deliver(recipient, message)
        if self.target and peek(message).type == self.target:
            reply = bytearray(reply)
            reply[len(reply) // 2] ^= 0x40
            reply = bytes(reply)
        return reply


def test_researcher_refuses_a_tampered_encrypted_share():
    net = ReplyTamperingNetwork()
    fed = mpclr.Federation(hospitals=2, network=net, manifest="exploration")
    a = fed.hospitals[0].encrypt([1.0, 2.0])
    net.target = "decrypt.share"
    with pytest.raises(MessageError, match="encrypted body failed authentication"):
        fed.decrypt(a)
    fed.close()
