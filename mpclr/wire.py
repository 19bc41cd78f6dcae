"""Every protocol message is bytes in one envelope:

    "MPCLR" | u8 version | u8 kind | u8 flags | str type | 16B session | 16B parameter set | str sender
    | str recipient | u64 sequence | u64 body length | body | 16B tag

(str = u8 length + UTF-8.) The body is a record: u32 JSON length, JSON of small fields, then binary
blobs that the JSON references as {"$blob": index}. No pickle anywhere: a message cannot carry code.

Two body modes (flags bit 0):
- plain: the tag is Poly1305 over everything before it, under a one-time key of the link;
- encrypted (for what only the recipient may read: decryption and key-switch shares): the body is a
  12-byte nonce then the record encrypted with ChaCha20-Poly1305 under a key derived from the link key
  for this direction and sequence number; the tag is the AEAD's, over the header (associated data) and
  the body. The relay sees the header and the length only.

`open_message` rejects, with an error naming the cause: foreign or truncated bytes, an unsupported
version, another session, another parameter set, a sender outside the session's roster, a message
addressed to someone else, a bad authentication tag (tampered or forged), and a sequence number already seen
from that sender (replayed).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.poly1305 import Poly1305

from .errors import MessageError

MAGIC = b"MPCLR"
VERSION = 3  # 3: a flags byte and the encrypted body mode
KIND_REQUEST, KIND_REPLY, KIND_ERROR = 1, 2, 3
KIND_NAMES = {KIND_REQUEST: "request", KIND_REPLY: "reply", KIND_ERROR: "error"}
FLAG_ENCRYPTED = 1
TAG_BYTES = 16
NONCE_BYTES = 12

__all__ = [
    "Message",
    "seal_message",
    "open_message",
    "peek",
    "encode_body",
    "decode_body",
    "Identity",
    "seal_box",
    "statement",
    "verify_statement",
]


class Identity:
    """A node's long-term keys: X25519 both to derive a per-link key with every peer (each message
    carries a one-time Poly1305 tag under it) and to receive sealed boxes (data only the node may read
    even when the server relays it); Ed25519 as the hospital's identity key for out-of-band pinning. The
    private halves stay in the node; the roster holds `public_bytes` = Ed25519 public key (32 bytes) ||
    X25519 public key (32 bytes)."""

    __slots__ = ("_key", "_box", "public_bytes", "_links")

    def __init__(self):
        self._key = Ed25519PrivateKey.generate()
        self._box = X25519PrivateKey.generate()
        self.public_bytes = self._key.public_key().public_bytes_raw() + self._box.public_key().public_bytes_raw()
        self._links: dict[bytes, bytes] = {}

    def link_key(self, peer_public: bytes) -> bytes:
        """The key this node shares with one peer (X25519 + HKDF), from which every message between the
        two gets its own one-time MAC key. Only the two of them can compute it."""
        peer_box = bytes(peer_public)[32:64]
        key = self._links.get(peer_box)
        if key is None:
            shared = self._box.exchange(X25519PublicKey.from_public_bytes(peer_box))
            own = self.public_bytes[32:]
            info = b"mpclr/link/v1" + min(own, peer_box) + max(own, peer_box)
            key = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared)
            self._links[peer_box] = key
        return key

    def sign_statement(self, session: bytes, step: str, author: str, payload: bytes) -> bytes:
        """Ed25519 signature on `statement(...)`: a value this node vouches for to every other node,
        whoever relays it."""
        return self._key.sign(statement(session, step, author, payload))

    def export_private(self) -> bytes:
        """The private keys, for this node's own keystore only (mpclr.keystore)."""
        return self._key.private_bytes_raw() + self._box.private_bytes_raw()

    @classmethod
    def from_private(cls, raw: bytes) -> Identity:
        raw = bytes(raw)
        if len(raw) != 64:
            raise MessageError("an identity needs 64 bytes of private keys")
        ident = cls.__new__(cls)
        ident._key = Ed25519PrivateKey.from_private_bytes(raw[:32])
        ident._box = X25519PrivateKey.from_private_bytes(raw[32:])
        ident._links = {}
        ident.public_bytes = ident._key.public_key().public_bytes_raw() + ident._box.public_key().public_bytes_raw()
        return ident

    def open_box(self, box: bytes, aad: bytes) -> bytes:
        """Decrypt a sealed box addressed to this node; fails loudly if it was altered or misdirected."""
        box = bytes(box)
        if len(box) < 32 + 16:
            raise MessageError("sealed box truncated")
        shared = self._box.exchange(X25519PublicKey.from_public_bytes(box[:32]))
        key = _box_key(shared, box[:32], self.public_bytes[32:])
        try:
            return ChaCha20Poly1305(key).decrypt(b"\x00" * 12, box[32:], aad)
        except InvalidTag:
            raise MessageError("sealed box failed authentication (tampered, or not for this node)") from None

    def __reduce__(self):
        raise TypeError("an identity key cannot be pickled")

    def __repr__(self):
        return f"Identity(public={self.public_bytes.hex()[:16]}...)"


def statement(session: bytes, step: str, author: str, payload: bytes) -> bytes:
    """What a node signs when it vouches for a value relayed by others (a public-key share, a round-1
    share, the CRS seed): a digest binding the value to the session, the protocol step and its author,
    so a signature cannot be moved to another session, step or hospital."""
    h = hashlib.sha256(b"mpclr/statement/v1\x00" + bytes(session) + step.encode() + b"\x00" + author.encode() + b"\x00")
    h.update(payload)
    return h.digest()


def verify_statement(roster, session: bytes, step: str, author: str, payload: bytes, signature) -> None:
    """Check `author`'s signature (its Ed25519 key is roster[author][:32]) on a relayed value; raise a
    MessageError naming the author and the step if it does not verify."""
    if author not in roster:
        raise MessageError(f"{step}: {author!r} is not a member of this session")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes(roster[author])[:32])
        key.verify(bytes(signature), statement(session, step, author, payload))
    except (InvalidSignature, ValueError):
        raise MessageError(
            f"{step}: the value relayed as {author}'s does not carry {author}'s signature (forged or altered)"
        ) from None


def _box_key(shared: bytes, ephemeral_pub: bytes, recipient_pub: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"mpclr/box/v1" + ephemeral_pub + recipient_pub).derive(shared)


def seal_box(recipient_public: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt for one node (ephemeral X25519 + HKDF-SHA256 + ChaCha20-Poly1305): the relay (the server)
    sees only the length. `aad` binds the box to its session, sender, recipient and step."""
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    recipient_box = bytes(recipient_public)[32:64]
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_box))
    key = _box_key(shared, eph_pub, recipient_box)
    return eph_pub + ChaCha20Poly1305(key).encrypt(b"\x00" * 12, bytes(plaintext), aad)


@dataclass
class Message:
    kind: int
    type: str
    session: bytes
    params: bytes
    sender: str
    recipient: str
    seq: int
    fields: dict = field(default_factory=dict)
    nbytes: int = 0
    encrypted: bool = False


def _str(s: str) -> bytes:
    b = s.encode()
    if len(b) > 255:
        raise ValueError(f"name too long for a message header: {s[:40]!r}...")
    return struct.pack("<B", len(b)) + b


def encode_body(fields: dict) -> bytes:
    return b"".join(_body_parts(fields))


def _to_meta(v, blobs: list):
    """v with its binary fields moved to `blobs` (a module-level function: a nested one that calls itself is a
    reference cycle, which would hold every blob, a large reply's megabytes, until the collector ran)."""
    if isinstance(v, bytes | bytearray | memoryview):
        blobs.append(v)
        return {"$blob": len(blobs) - 1}
    if isinstance(v, dict):
        return {str(k): _to_meta(x, blobs) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_to_meta(x, blobs) for x in v]
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if hasattr(v, "item"):  # numpy scalar
        return v.item()
    raise TypeError(f"cannot put a {type(v).__name__} in a message")


def _from_meta(v, blobs: list):
    """`_to_meta` undone (module-level for the same reason: the blobs are views of the whole body)."""
    if isinstance(v, dict):
        if set(v) == {"$blob"}:
            return blobs[v["$blob"]]
        return {k: _from_meta(x, blobs) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_meta(x, blobs) for x in v]
    return v


def _body_parts(fields: dict) -> list:
    blobs: list = []
    meta = json.dumps(_to_meta(fields, blobs), separators=(",", ":")).encode()
    parts = [struct.pack("<I", len(meta)), meta, struct.pack("<I", len(blobs))]
    for b in blobs:
        parts.append(struct.pack("<Q", memoryview(b).nbytes))
        parts.append(b)
    return parts


def decode_body(body: bytes) -> dict:
    view = memoryview(body)
    try:
        (mlen,) = struct.unpack_from("<I", view, 0)
        meta = json.loads(bytes(view[4 : 4 + mlen]))
        off = 4 + mlen
        (count,) = struct.unpack_from("<I", view, off)
        off += 4
        blobs = []
        for _ in range(count):
            (blen,) = struct.unpack_from("<Q", view, off)
            off += 8
            if off + blen > len(view):
                raise MessageError("message body truncated inside a binary field")
            blobs.append(view[off : off + blen])
            off += blen
        if off != len(view):
            raise MessageError("message body has trailing bytes")
    except (struct.error, ValueError) as exc:
        if isinstance(exc, MessageError):
            raise
        raise MessageError(f"message body is malformed ({exc})") from None
    return _from_meta(meta, blobs)


def _message_key(link_key: bytes, sender: str, recipient: str, seq: int, purpose: bytes = b"") -> bytes:
    """A one-time key per (direction, sequence number): never reused under one link key. `purpose`
    separates the AEAD key of an encrypted body from the Poly1305 key of a plain one."""
    label = purpose + sender.encode() + b"\x00" + recipient.encode() + b"\x00" + struct.pack("<Q", seq)
    return hashlib.blake2b(label, key=link_key, digest_size=32).digest()


_AEAD = b"mpclr/aead/v1\x00"


def seal_message(
    identity: Identity,
    kind: int,
    type_: str,
    session: bytes,
    params: bytes,
    sender: str,
    recipient: str,
    seq: int,
    fields: dict,
    peer_public: bytes,
    encrypt: bool = False,
) -> bytes:
    """The envelope, authenticated for `recipient` (whose roster entry is `peer_public`): a Poly1305 tag
    under a key only the two of them derive (3 GB/s, where signing a 20 MB share cost as much as
    computing it). With `encrypt`, the body is also encrypted for the recipient (ChaCha20-Poly1305): the
    key is one-time per (direction, sequence number) and the nonce is random besides, so not even a node
    whose counters were rolled back (a restored keystore) can reuse a key with a nonce."""
    body = _body_parts(fields)
    body_len = sum(memoryview(p).nbytes for p in body)
    if encrypt:
        body_len += NONCE_BYTES + TAG_BYTES
    head = b"".join(
        [
            MAGIC,
            struct.pack("<BBB", VERSION, kind, FLAG_ENCRYPTED if encrypt else 0),
            _str(type_),
            session,
            params,
            _str(sender),
            _str(recipient),
            struct.pack("<QQ", seq, body_len - (TAG_BYTES if encrypt else 0)),
        ]
    )
    link = identity.link_key(peer_public)
    if encrypt:
        nonce = os.urandom(NONCE_BYTES)
        aead = ChaCha20Poly1305(_message_key(link, sender, recipient, seq, _AEAD))
        return b"".join([head, nonce, aead.encrypt(nonce, b"".join(body), head)])
    mac = Poly1305(_message_key(link, sender, recipient, seq))
    mac.update(head)
    for p in body:
        mac.update(p)
    return b"".join([head, *body, mac.finalize()])


class _Cursor:
    def __init__(self, raw: bytes):
        self.raw = raw
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.raw):
            raise MessageError(f"message truncated: {len(self.raw)} bytes where at least {self.pos + n} are needed")
        out = self.raw[self.pos : self.pos + n]
        self.pos += n
        return out

    def str(self) -> str:
        (n,) = struct.unpack("<B", self.take(1))
        try:
            return self.take(n).decode()
        except UnicodeDecodeError:
            raise MessageError("message header has a malformed name") from None


def peek(raw: bytes) -> Message:
    """Parse the header only (no verification): for routing and traffic statistics."""
    c = _Cursor(raw)
    if c.take(len(MAGIC)) != MAGIC:
        raise MessageError("not an mpclr message (bad magic)")
    version, kind, flags = struct.unpack("<BBB", c.take(3))
    if version != VERSION:
        raise MessageError(f"message format version {version} is not supported (expected {VERSION})")
    if kind not in KIND_NAMES:
        raise MessageError(f"unknown message kind {kind}")
    if flags & ~FLAG_ENCRYPTED:
        raise MessageError(f"unknown message flags {flags:#x}")
    type_ = c.str()
    session, params = c.take(16), c.take(16)
    sender, recipient = c.str(), c.str()
    seq, blen = struct.unpack("<QQ", c.take(16))
    msg = Message(kind, type_, session, params, sender, recipient, seq, nbytes=len(raw))
    msg.encrypted = bool(flags & FLAG_ENCRYPTED)
    msg.fields = {"_body_offset": c.pos, "_body_length": blen}
    return msg


def open_message(
    raw: bytes,
    *,
    identity: Identity,
    session: bytes,
    params: bytes,
    roster: dict[str, bytes],
    recipient: str,
    seen: dict[str, int],
) -> Message:
    """Verify and parse a message addressed to `recipient` (whose keys are `identity`); `seen` holds the
    last sequence number per sender."""
    if not isinstance(raw, bytes | bytearray):
        raise MessageError(f"a message must be bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    msg = peek(raw)
    off, blen = msg.fields.pop("_body_offset"), msg.fields.pop("_body_length")
    end = off + blen
    if len(raw) < end + TAG_BYTES:
        raise MessageError(f"{msg.type} from {msg.sender}: truncated ({len(raw)} of {end + TAG_BYTES} bytes)")
    if len(raw) > end + TAG_BYTES:
        raise MessageError(f"{msg.type} from {msg.sender}: {len(raw) - end - TAG_BYTES} unexpected trailing bytes")
    if msg.session != session:
        raise MessageError(f"{msg.type} from {msg.sender}: belongs to another session ({msg.session.hex()[:8]})")
    if msg.params != params:
        raise MessageError(f"{msg.type} from {msg.sender}: made for another parameter set")
    if msg.sender not in roster:
        raise MessageError(f"{msg.type}: sender {msg.sender!r} is not a member of this session")
    if msg.recipient != recipient:
        raise MessageError(f"{msg.type} from {msg.sender}: addressed to {msg.recipient!r}, not {recipient!r}")
    link = identity.link_key(roster[msg.sender])
    if msg.encrypted:
        if blen < NONCE_BYTES:
            raise MessageError(f"{msg.type} from {msg.sender}: encrypted body shorter than its nonce")
        aead = ChaCha20Poly1305(_message_key(link, msg.sender, recipient, msg.seq, _AEAD))
        try:
            body = aead.decrypt(raw[off : off + NONCE_BYTES], memoryview(raw)[off + NONCE_BYTES :], raw[:off])
        except InvalidTag:
            raise MessageError(
                f"{msg.type} from {msg.sender}: encrypted body failed authentication (tampered, forged or not for "
                f"{recipient})"
            ) from None
    else:
        try:
            Poly1305.verify_tag(_message_key(link, msg.sender, recipient, msg.seq), memoryview(raw)[:end], raw[end:])
        except InvalidSignature:
            raise MessageError(f"{msg.type} from {msg.sender}: bad authentication tag (tampered or forged)") from None
        body = memoryview(raw)[off:end]
    if msg.seq <= seen.get(msg.sender, -1):
        raise MessageError(f"{msg.type} from {msg.sender}: replayed (sequence {msg.seq} already seen)")
    seen[msg.sender] = msg.seq
    msg.fields = decode_body(body)
    return msg
