"""What the protocols exchange: shares (polynomial stacks that serialize themselves) and the secret share
that never leaves its party."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError, ProtocolError
from ..ring import Ring, SecretRandom
from ..ring.packing import pack_residues, unpack_residues
from ..ring.rounding import round_poly, unround_poly

__all__ = ["Share", "SecretKeyShare"]

_SHARE_MAGIC = b"MPSH"
_SHARE_VERSION = 2  # 2: residues bit-packed at their prime's width
_ROUNDED_MAGIC = b"MPSR"  # a share rounded to its high bits (mpclr.ring.rounding): one polynomial


@dataclass(frozen=True)
class Share:
    """A protocol share: a stack of RNS polynomials in NTT form, tagged with the protocol step it belongs to.

    `data` has shape (..., K, N); `tag` names the step and its public arguments (e.g. "gkg/elt=3"), so a
    share of one step cannot be fed to another.
    """

    tag: str
    data: np.ndarray

    def to_bytes(self) -> bytes:
        """Residues at their primes' widths (mpclr.ring.packing): a fifth fewer bytes at the train preset."""
        tag = self.tag.encode()
        shape = self.data.shape
        head = struct.pack(
            f"<4sBB{len(tag)}sB{len(shape)}Q", _SHARE_MAGIC, _SHARE_VERSION, len(tag), tag, len(shape), *shape
        )
        return head + pack_residues(self.data)

    @classmethod
    def sum_of(cls, shares: list[Share], ring: Ring, what: str) -> Share:
        """The hospitals' shares of one key added up: refused (ValueError naming `what`) if they belong to
        different steps (tags)."""
        tags = {s.tag for s in shares}
        if len(tags) != 1:
            raise ValueError(f"cannot aggregate shares of different {what}: {sorted(tags)}")
        return cls(tags.pop(), ring.sum(s.data for s in shares))

    @classmethod
    def from_bytes(cls, raw: bytes, tag: str, ring: Ring, lead: tuple[int, ...] = ()) -> Share:
        """Parse and validate a share for step `tag`: its shape must be (*lead, K, N) of `ring`, reduced."""
        try:
            magic, version, tlen = struct.unpack_from("<4sBB", raw, 0)
            if magic != _SHARE_MAGIC:
                raise FormatError("not a protocol share")
            if version != _SHARE_VERSION:
                raise FormatError(f"share format version {version}, expected {_SHARE_VERSION}")
            off = 6
            got_tag = bytes(raw[off : off + tlen]).decode()
            off += tlen
            (ndim,) = struct.unpack_from("<B", raw, off)
            off += 1
            shape = struct.unpack_from(f"<{ndim}Q", raw, off)
            off += 8 * ndim
        except (struct.error, UnicodeDecodeError) as exc:
            raise FormatError(f"share for {tag}: truncated or malformed header ({exc})") from None
        if got_tag != tag:
            raise FormatError(f"share is for step {got_tag!r}, expected {tag!r}")
        want = (*lead, *ring.shape)
        if tuple(shape) != want:
            raise FormatError(f"share for {tag}: shape {tuple(shape)}, expected {want}")
        data = unpack_residues(raw, off, want, [q.bit_length() for q in ring.moduli], f"share for {tag}")
        if not ring.is_reduced(data):
            raise FormatError(f"share for {tag}: values not reduced modulo the primes")
        return cls(tag, data)

    def to_rounded_bytes(self, ring: Ring, keep: int) -> bytes:
        """One polynomial (NTT form over `ring`) as round(h 2^keep / Q): its `keep` high bits per coefficient
        (mpclr.ring.rounding; lossy below the noise it carries). keep >= bits(Q): the exact form (to_bytes)."""
        if keep >= math.prod(ring.moduli).bit_length():
            return self.to_bytes()
        tag = self.tag.encode()
        head = struct.pack(f"<4sB{len(tag)}sH", _ROUNDED_MAGIC, len(tag), tag, keep)
        return head + round_poly(ring, ring.intt(ring.check(self.data)), keep)

    @classmethod
    def from_rounded_bytes(cls, raw: bytes, tag: str, ring: Ring, keep: int) -> Share:
        """Parse a share sent by to_rounded_bytes(ring, keep) for step `tag`: NTT form, reduced."""
        if keep >= math.prod(ring.moduli).bit_length():
            return cls.from_bytes(raw, tag, ring)
        try:
            magic, tlen = struct.unpack_from("<4sB", raw, 0)
            if magic != _ROUNDED_MAGIC:
                raise FormatError("not a rounded protocol share")
            got_tag = bytes(raw[5 : 5 + tlen]).decode()
            (got_keep,) = struct.unpack_from("<H", raw, 5 + tlen)
        except (struct.error, UnicodeDecodeError) as exc:
            raise FormatError(f"share for {tag}: truncated or malformed header ({exc})") from None
        if got_tag != tag:
            raise FormatError(f"share is for step {got_tag!r}, expected {tag!r}")
        if got_keep != keep:
            raise FormatError(f"share for {tag}: {got_keep} bits per coefficient, expected {keep}")
        coeffs = unround_poly(ring, memoryview(raw)[7 + tlen :], keep, f"share for {tag}")
        return cls(tag, ring.ntt(coeffs, inplace=True))

    @property
    def nbytes(self) -> int:
        return self.data.nbytes


class SecretKeyShare:
    """One party's additive share s_i of the collective secret s = sum_i s_i (never formed anywhere).

    Uniform ternary, in NTT form over the key level (all primes including the special prime). It has no
    byte form, refuses to be pickled and hides its value in repr: it lives and dies inside its party.
    """

    __slots__ = ("_poly", "ring")

    def __init__(self, ring: Ring, poly_ntt: np.ndarray):
        self.ring = ring
        self._poly = ring.check(poly_ntt, "secret key share")

    @classmethod
    def generate(cls, ring: Ring, rng: SecretRandom) -> SecretKeyShare:
        return cls(ring, rng.ternary_ntt(ring))

    def at_level(self, rows: int) -> np.ndarray:
        """The share restricted to the first `rows` primes (a ciphertext level), NTT form."""
        return self._live()[:rows]

    def full(self) -> np.ndarray:
        return self._live()

    def erase(self) -> None:
        """Overwrite the share with zeros and drop it; any later use raises. Copies that numpy or SEAL made
        while computing with it are out of reach (Python frees, it does not clear): this removes the one
        copy the party keeps, so a spent secret does not linger in the object or get saved again."""
        if self._poly is not None:
            if self._poly.flags.writeable:
                self._poly.fill(0)
            self._poly = None

    @property
    def erased(self) -> bool:
        return self._poly is None

    def _live(self) -> np.ndarray:
        if self._poly is None:
            raise ProtocolError("this secret-key share was erased after use")
        return self._poly

    def export_to_keystore(self, keystore, name: str) -> None:
        """Write the share to its own party's keystore (a 0600 file); the only way it is ever written."""
        keystore.put_array(name, self._live(), secret=True)

    @classmethod
    def import_from_keystore(cls, ring: Ring, keystore, name: str) -> SecretKeyShare:
        return cls(ring, keystore.get_array(name, secret=True))

    def __repr__(self) -> str:
        return f"SecretKeyShare(<hidden>, {self.ring!r})"

    def __reduce__(self):
        raise TypeError("a secret-key share cannot be pickled or copied out of its party")

    def __getstate__(self):
        raise TypeError("a secret-key share cannot be pickled or copied out of its party")
