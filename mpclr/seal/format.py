"""SEAL 4.1 binary formats (uncompressed), read and written without SEAL's help.

Pyfhel exposes no coefficient access, but every SEAL object round-trips through bytes and SEAL validates
what it loads. So the multiparty layer computes key and decryption shares on numpy arrays and moves
them in and out of SEAL through these exact layouts (native/src/seal/{serialization,ciphertext,
plaintext,kswitchkeys}.cpp of SEAL 4.1.2):

    SEALHeader   u16 magic 0xA15E | u8 header size 16 | u8 major 4 | u8 minor 1 | u8 compr 0 | u16 0 | u64 size
    DynArray     header | u64 count | count x u64
    Plaintext    header | parms_id 32B | u64 coeff_count | f64 scale | DynArray
    Ciphertext   header | parms_id | u8 is_ntt | u64 size | u64 N | u64 rows | f64 scale | u64 corr | DynArray
    SecretKey    = Plaintext at the key level, NTT form;  PublicKey = Ciphertext
    KSwitchKeys  header | parms_id | u64 dim1 | dim1 x (u64 dim2 | dim2 x PublicKey)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError
from ..ring.packing import pack_residues, unpack_residues

SEAL_MAGIC = 0xA15E
SEAL_VERSION = (4, 1)
HEADER = struct.Struct("<HBBBBHQ")
SCHEME_CKKS = 2

__all__ = [
    "parms_id",
    "CiphertextData",
    "PlaintextData",
    "KSwitchKeysData",
    "galois_elt_from_step",
    "SCHEME_CKKS",
]


def parms_id(n: int, moduli, scheme: int = SCHEME_CKKS, plain_modulus: int = 0) -> bytes:
    """SEAL's parms_id: BLAKE2b-256 over the words [scheme, N, q_0..q_k, plain_modulus]."""
    words = [scheme, n, *[int(q) for q in moduli], plain_modulus]
    return hashlib.blake2b(struct.pack(f"<{len(words)}Q", *words), digest_size=32).digest()


def galois_elt_from_step(step: int, n: int) -> int:
    """Galois element of a slot rotation by `step` (left if positive), as SEAL's get_elt_from_step."""
    slots = n // 2
    if step == 0:
        return 2 * n - 1  # complex conjugation
    if abs(step) >= slots:
        raise ValueError(f"rotation step {step} must be below N/2 = {slots} in absolute value")
    s = step % slots
    return pow(3, s, 2 * n)


def _header(total_size: int) -> bytes:
    return HEADER.pack(SEAL_MAGIC, HEADER.size, *SEAL_VERSION, 0, 0, total_size)


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.buf = memoryview(data)
        self.pos = 0
        self.what = what

    def take(self, nbytes: int) -> memoryview:
        if self.pos + nbytes > len(self.buf):
            raise FormatError(f"{self.what}: truncated (needs {self.pos + nbytes} bytes, has {len(self.buf)})")
        out = self.buf[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return out

    def unpack(self, fmt: str):
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def header(self) -> int:
        magic, hsize, major, minor, compr, _reserved, size = self.unpack(HEADER.format)
        if magic != SEAL_MAGIC or hsize != HEADER.size:
            raise FormatError(f"{self.what}: not a SEAL object (magic {magic:#x})")
        if (major, minor) != SEAL_VERSION:
            raise FormatError(f"{self.what}: SEAL version {major}.{minor}, expected 4.1")
        if compr != 0:
            raise FormatError(f"{self.what}: compressed SEAL objects are not supported (mode {compr})")
        return size

    def dynarray(self) -> np.ndarray:
        start = self.pos
        size = self.header()
        (count,) = self.unpack("<Q")
        if size != HEADER.size + 8 + 8 * count:
            raise FormatError(f"{self.what}: inconsistent array size")
        data = np.frombuffer(self.take(8 * count), dtype="<u8").astype(np.uint64)
        assert self.pos - start == size
        return data


def _dynarray_bytes(data: np.ndarray) -> bytes:
    flat = np.ascontiguousarray(data, dtype="<u8").reshape(-1)
    return _header(HEADER.size + 8 + 8 * flat.size) + struct.pack("<Q", flat.size) + flat.tobytes()


@dataclass
class PlaintextData:
    """A SEAL Plaintext. For CKKS (NTT form) `data` has shape (rows, N) and parms_id is non-zero."""

    parms_id: bytes
    scale: float
    data: np.ndarray

    @classmethod
    def from_bytes(cls, raw: bytes, n: int, what: str = "plaintext") -> PlaintextData:
        r = _Reader(raw, what)
        size = r.header()
        pid = bytes(r.take(32))
        (coeff_count,) = r.unpack("<Q")
        (scale,) = r.unpack("<d")
        data = r.dynarray()
        if data.size != coeff_count or coeff_count % n:
            raise FormatError(f"{what}: {data.size} coefficients do not fit N = {n}")
        if r.pos != size or size != len(raw):
            raise FormatError(f"{what}: size field {size} does not match {len(raw)} bytes")
        return cls(pid, scale, data.reshape(-1, n))

    def to_bytes(self) -> bytes:
        body = self.parms_id + struct.pack("<Qd", self.data.size, self.scale) + _dynarray_bytes(self.data)
        return _header(HEADER.size + len(body)) + body


@dataclass
class CiphertextData:
    """A SEAL Ciphertext (also a PublicKey). `data` has shape (size, rows, N), RNS + NTT form."""

    parms_id: bytes
    scale: float
    data: np.ndarray
    is_ntt: bool = True
    correction_factor: int = 1

    @property
    def size(self) -> int:
        return self.data.shape[0]

    @property
    def rows(self) -> int:
        return self.data.shape[1]

    @classmethod
    def read(cls, r: _Reader) -> CiphertextData:
        start = r.pos
        size_bytes = r.header()
        pid = bytes(r.take(32))
        (is_ntt,) = r.unpack("<B")
        size, n, rows = r.unpack("<QQQ")
        (scale,) = r.unpack("<d")
        (corr,) = r.unpack("<Q")
        if not 0 < n <= 2**17 or rows > 64 or size > 16:
            raise FormatError(f"{r.what}: implausible shape size={size} N={n} rows={rows}")
        data = r.dynarray()
        if data.size != size * rows * n:
            raise FormatError(f"{r.what}: data holds {data.size} values, expected {size}x{rows}x{n}")
        if r.pos - start != size_bytes:
            raise FormatError(f"{r.what}: size field {size_bytes} does not match its content")
        return cls(pid, scale, data.reshape(size, rows, n), bool(is_ntt), corr)

    @classmethod
    def from_bytes(cls, raw: bytes, what: str = "ciphertext") -> CiphertextData:
        r = _Reader(raw, what)
        ct = cls.read(r)
        if r.pos != len(raw):
            raise FormatError(f"{what}: {len(raw) - r.pos} trailing bytes")
        return ct

    def to_bytes(self) -> bytes:
        size, rows, n = self.data.shape
        body = (
            self.parms_id
            + struct.pack("<BQQQdQ", int(self.is_ntt), size, n, rows, self.scale, self.correction_factor)
            + _dynarray_bytes(self.data)
        )
        return _header(HEADER.size + len(body)) + body


@dataclass
class KSwitchKeysData:
    """SEAL KSwitchKeys: RelinKeys (one row) or GaloisKeys (row (elt - 1) / 2 per Galois element)."""

    parms_id: bytes
    keys: list[list[CiphertextData]] = field(default_factory=list)

    @classmethod
    def from_bytes(cls, raw: bytes, what: str = "key-switching keys") -> KSwitchKeysData:
        r = _Reader(raw, what)
        size = r.header()
        pid = bytes(r.take(32))
        (dim1,) = r.unpack("<Q")
        if dim1 > 2**17:
            raise FormatError(f"{what}: implausible key count {dim1}")
        keys = []
        for _ in range(dim1):
            (dim2,) = r.unpack("<Q")
            if dim2 > 64:
                raise FormatError(f"{what}: implausible decomposition count {dim2}")
            keys.append([CiphertextData.read(r) for _ in range(dim2)])
        if r.pos != size or size != len(raw):
            raise FormatError(f"{what}: size field {size} does not match {len(raw)} bytes")
        return cls(pid, keys)

    def to_bytes(self) -> bytes:
        parts = [self.parms_id, struct.pack("<Q", len(self.keys))]
        for row in self.keys:
            parts.append(struct.pack("<Q", len(row)))
            parts.extend(k.to_bytes() for k in row)
        body = b"".join(parts)
        return _header(HEADER.size + len(body)) + body

    @classmethod
    def galois(cls, parms_id_: bytes, n: int, keys_by_elt: dict[int, list[CiphertextData]]):
        rows: list[list[CiphertextData]] = [[] for _ in range(n)]
        for elt, key in keys_by_elt.items():
            rows[(elt - 1) // 2] = key
        return cls(parms_id_, rows)

    def galois_elements(self) -> list[int]:
        return [2 * i + 1 for i, row in enumerate(self.keys) if row]


# ---- hospitals' ciphertexts on the wire ----------------------------------------------------------------
# A hospital's encrypted rows are most of what it uploads; they travel with their residues packed
# (mpclr.ring.packing) and the server turns them back into SEAL's format, which SEAL validates as usual.
_PACKED_MAGIC = b"MPCT"
_PACKED_VERSION = 1
_PACKED_HEAD = struct.Struct("<4sB32sBQQQdQ")


def pack_ciphertext(raw: bytes, what: str = "ciphertext") -> bytes:
    """SEAL ciphertext bytes -> the packed wire form."""
    ct = CiphertextData.from_bytes(raw, what)
    size, rows, n = ct.data.shape
    head = _PACKED_HEAD.pack(_PACKED_MAGIC, _PACKED_VERSION, ct.parms_id, int(ct.is_ntt), size, n, rows, ct.scale,
                             ct.correction_factor)
    return head + pack_residues(ct.data)


def unpack_ciphertext(raw: bytes, what: str = "ciphertext", ctx=None) -> bytes:
    """The packed wire form -> SEAL ciphertext bytes. With `ctx` (a SealContext) the parameter set and
    every residue are checked here; SEAL checks them again when it loads the bytes."""
    view = memoryview(raw)
    if len(view) < _PACKED_HEAD.size:
        raise FormatError(f"{what}: truncated ({len(view)} bytes, not even a header)")
    magic, version, pid, is_ntt, size, n, rows, scale, corr = _PACKED_HEAD.unpack_from(view, 0)
    if magic != _PACKED_MAGIC:
        raise FormatError(f"{what}: not a packed ciphertext")
    if version != _PACKED_VERSION:
        raise FormatError(f"{what}: packed ciphertext version {version}, expected {_PACKED_VERSION}")
    if not 0 < n <= 2**17 or n & (n - 1) or not 0 < rows <= 64 or not 0 < size <= 16:
        raise FormatError(f"{what}: implausible shape size={size} N={n} rows={rows}")
    data = unpack_residues(view, _PACKED_HEAD.size, (size, rows, n), [61] * rows, what)
    ct = CiphertextData(pid, scale, data, bool(is_ntt), corr)
    if ctx is not None:
        ctx.check_ciphertext(ct, what)
    return ct.to_bytes()
