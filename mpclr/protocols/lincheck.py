"""A random linear check that an aggregate A, relayed by the server, is the sum of the shares h_j the
hospitals sent it, without any hospital seeing another's share whole (the relinearization round-1
aggregate: a hospital multiplies its key share by A, so a forged A would return the key share).

The challenge is public and derived from A's digest (bound to the session): per prime q and per
challenge c, uniform vectors alpha (one entry per polynomial of the stack) and beta (one per
coefficient), and the scalar <A>_c = alpha^T A beta mod q. Each hospital signs its own <h_j>_c; a
hospital accepts A only if <A>_c = sum_j <h_j>_c for every prime and challenge.

Soundness. Let D = A - sum_j h_j be nonzero modulo q. D beta = 0 with probability at most 1/q (a
nonzero row of D times a uniform beta is uniform), and otherwise alpha^T (D beta) = 0 with probability
1/q: a challenge misses D with probability below 2/q. `count` independent challenges per prime miss it
with probability below (2/q)^count <= 2^-SECURITY_BITS for the smallest prime. A is fixed before the
challenge exists (the challenge is a hash of A), so a server hunting for an A that passes must try
about 2^SECURITY_BITS aggregates, each a fresh hash of tens of MB.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from ..errors import FormatError
from ..ring import CommonRandomString, Ring

__all__ = ["LinearCheck", "aggregate_digest", "SECURITY_BITS"]

SECURITY_BITS = 128
_LO = 0 if sys.byteorder == "little" else 1  # index of a uint64's low half among its two uint32s


def aggregate_digest(session: bytes, step: str, aggregate: bytes) -> bytes:
    """H(A): the digest the server announces before it reveals A, bound to session and step."""
    h = hashlib.sha256(b"mpclr/aggregate/v1\x00" + bytes(session) + step.encode() + b"\x00")
    h.update(aggregate)
    return h.digest()


class LinearCheck:
    """The challenge for one aggregate: `rows` polynomials (the share's leading dimensions flattened)
    over `ring`, derived from (session, digest) by a public PRF (ChaCha20 keyed by SHA-256, as the CRS)."""

    def __init__(self, ring: Ring, rows: int, session: bytes, digest: bytes):
        self.ring = ring
        self.rows = rows
        bits = min(q.bit_length() for q in ring.moduli) - 2  # q >= 2^(bits+1), so 2/q <= 2^-bits
        self.count = -(-SECURITY_BITS // bits)
        prf = CommonRandomString(b"mpclr/lincheck/v1\x00" + bytes(session) + bytes(digest))
        self._beta = [prf.uniform_rows(ring.moduli, ring.n, f"beta/{c}") for c in range(self.count)]  # (K, N)
        self._alpha = [prf.uniform_rows(ring.moduli, rows, f"alpha/{c}") for c in range(self.count)]  # (K, rows)

    @property
    def nbytes(self) -> int:
        """Bytes of one set of scalars: `count` per prime, 8 bytes each."""
        return 8 * self.count * len(self.ring.moduli)

    def scalars(self, data: np.ndarray) -> np.ndarray:
        """alpha^T data beta mod q per challenge and prime, shape (count, K); `data` is (..., K, N)."""
        ring = self.ring
        stack = ring.check(data).reshape(-1, *ring.shape)
        if stack.shape[0] != self.rows:
            raise ValueError(f"a linear check for {self.rows} polynomials, got {stack.shape[0]}")
        out = np.empty((self.count, len(ring.moduli)), dtype=np.uint64)
        prod = np.empty_like(stack)
        for c in range(self.count):
            ring.mul(stack, self._beta[c], out=prod)
            # each product is below 2^61: sum the 32-bit halves separately (N < 2^31 terms fit in 64 bits)
            halves = prod.view(np.uint32)
            lo = halves[..., _LO::2].sum(axis=-1, dtype=np.uint64)
            hi = halves[..., 1 - _LO :: 2].sum(axis=-1, dtype=np.uint64)
            for k, q in enumerate(ring.moduli):
                alpha = self._alpha[c][k]
                out[c, k] = sum(int(a) * ((int(h) << 32) + int(v)) for a, h, v in zip(alpha, hi[:, k], lo[:, k])) % q
        return out

    def total(self, parts) -> np.ndarray:
        """The sum of several hospitals' scalars, mod each prime."""
        acc = [[0] * len(self.ring.moduli) for _ in range(self.count)]
        for part in parts:
            for c in range(self.count):
                for k in range(len(self.ring.moduli)):
                    acc[c][k] += int(part[c, k])
        return np.array([[v % q for v, q in zip(row, self.ring.moduli)] for row in acc], dtype=np.uint64)

    def sum_matches(self, data: np.ndarray, claimed) -> bool:
        """Whether the scalars `claimed` (bytes, one set per hospital) add up to those of `data`."""
        try:
            parts = [self.from_bytes(c, "") for c in claimed]
        except FormatError:
            return False
        return np.array_equal(self.scalars(data), self.total(parts))

    def to_bytes(self, scalars: np.ndarray) -> bytes:
        return np.ascontiguousarray(scalars, dtype="<u8").tobytes()

    def from_bytes(self, raw, what: str) -> np.ndarray:
        """Scalars back, refusing a wrong length or a value not reduced modulo its prime."""
        raw = bytes(raw)
        if len(raw) != self.nbytes:
            raise FormatError(f"{what}: {len(raw)} bytes of check scalars, expected {self.nbytes}")
        out = np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(self.count, len(self.ring.moduli))
        if (out >= self.ring.q).any():
            raise FormatError(f"{what}: check scalars not reduced modulo the primes")
        return out
