"""Randomness for the protocols.

Two sources, never mixed:
- `SecretRandom`: every secret-key share, error, smudging term, refresh mask and Shamir coefficient.
  A ChaCha20 keystream keyed with 32 fresh bytes from the OS CSPRNG (os.urandom) per sampler; it can
  not be seeded, on purpose.
- `CommonRandomString`: public common random polynomials (the `a` halves of keys), expanded by every
  party alike from a public seed and a label, so only the seed ever travels.
"""

from __future__ import annotations

import hashlib
import math
import os
from functools import lru_cache

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from .rns import Ring

__all__ = ["SecretRandom", "CommonRandomString", "CBD_ETA", "ERROR_SIGMA"]

CBD_ETA = 21  # centered binomial with eta = 21: sigma = sqrt(21/2) = 3.24, as SEAL's 3.19
ERROR_SIGMA = math.sqrt(CBD_ETA / 2)


class _ChaChaStream:
    def __init__(self, key: bytes, nonce: bytes = b"\x00" * 16):
        self._enc = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()

    def read(self, nbytes: int) -> bytes:
        return self._enc.update(bytes(nbytes))


def _uniform_rows(stream: _ChaChaStream, moduli, n: int) -> np.ndarray:
    """Uniform residues by rejection: 64-bit little-endian words masked to bit length, kept if < q."""
    rows = []
    for q in moduli:
        mask = np.uint64((1 << int(q).bit_length()) - 1)
        got = np.empty(0, dtype=np.uint64)
        while got.size < n:
            want = int((n - got.size) * 1.1) + 16
            words = np.frombuffer(stream.read(8 * want), dtype="<u8") & mask
            got = np.concatenate([got, words[words < np.uint64(q)]])
        rows.append(got[:n])
    return np.ascontiguousarray(np.stack(rows))


class SecretRandom:
    """CSPRNG-backed samplers for secret material. Not seedable: a seed would make secrets replayable."""

    def __init__(self):
        # cryptography's 16-byte ChaCha20 nonce is a 32-bit block counter then a 96-bit nonce: the counter
        # starts at 0 (a random start could leave only a few GB of stream before it overflows)
        self._stream = _ChaChaStream(os.urandom(32), b"\x00" * 4 + os.urandom(12))

    def bytes(self, nbytes: int) -> bytes:
        return self._stream.read(nbytes)

    def ternary(self, n: int) -> np.ndarray:
        """Uniform {-1, 0, 1} coefficients (SEAL's secret-key distribution)."""
        out = np.empty(0, dtype=np.int64)
        while out.size < n:
            b = np.frombuffer(self.bytes(int((n - out.size) * 1.01) + 16), dtype=np.uint8)
            b = b[b < 255]  # 255 = 3 * 85: keep a multiple of 3 values for exact uniformity
            out = np.concatenate([out, (b % 3).astype(np.int64) - 1])
        return out[:n]

    def cbd(self, n: int, eta: int = CBD_ETA) -> np.ndarray:
        """Centered binomial error: popcount(eta bits) - popcount(eta bits)."""
        if not 1 <= eta <= 32:
            raise ValueError(f"eta must be in [1, 32], got {eta}")
        words = np.frombuffer(self.bytes(8 * n), dtype="<u8")
        mask = np.uint64((1 << eta) - 1)
        a = np.bitwise_count(words & mask).astype(np.int64)
        b = np.bitwise_count((words >> np.uint64(32)) & mask).astype(np.int64)
        return a - b

    def gaussian(self, n: int, sigma: float) -> np.ndarray:
        """Rounded Gaussian with standard deviation sigma (smudging noise; sigma >> 1).

        Box-Muller on 53-bit uniforms from the CSPRNG; for sigma above a few units the rounded and the
        discrete Gaussian are statistically indistinguishable at the precision that matters here.
        """
        if not 0 < sigma < 2**52:
            raise ValueError(f"smudging sigma must be in (0, 2^52), got {sigma}")
        half = (n + 1) // 2
        words = np.frombuffer(self.bytes(16 * half), dtype="<u8").reshape(2, half)
        u1 = ((words[0] >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53  # (0, 1]
        u2 = (words[1] >> np.uint64(11)).astype(np.float64) * 2.0**-53
        radius = np.sqrt(-2.0 * np.log(u1))
        z = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:n]
        return np.rint(z * sigma).astype(np.int64)

    def uniform_bounded(self, n: int, bits: int) -> np.ndarray:
        """Uniform integers in [-2^(bits-1), 2^(bits-1)) of any size (refresh masks): an object array of
        Python ints, built from whole 64-bit words and reduced mod 2^bits (a power of two: exact)."""
        if bits < 1:
            raise ValueError(f"bits must be positive, got {bits}")
        words = (bits + 63) // 64
        raw = np.frombuffer(self.bytes(8 * words * n), dtype="<u8").reshape(words, n)
        acc = np.zeros(n, dtype=object)
        for j in range(words):
            acc = acc + (raw[j].astype(object) << (64 * j))
        return (acc % (1 << bits)) - (1 << (bits - 1))

    def uniform_poly(self, ring: Ring) -> np.ndarray:
        return _uniform_rows(self._stream, ring.moduli, ring.n)

    def error_ntt(self, ring: Ring, *lead: int) -> np.ndarray:
        """Fresh CBD errors of shape (*lead, K, N), lifted to the ring and in NTT form."""
        count = int(np.prod(lead)) if lead else 1
        coeffs = self.cbd(count * ring.n).reshape(*lead, ring.n)
        return ring.ntt(ring.from_signed(coeffs), inplace=True)

    def ternary_ntt(self, ring: Ring) -> np.ndarray:
        """A fresh uniform ternary polynomial (a secret), in NTT form."""
        return ring.ntt(ring.from_signed(self.ternary(ring.n)), inplace=True)

    def smudging_ntt(self, ring: Ring, sigma: float) -> np.ndarray:
        """Smudging noise of standard deviation sigma, in NTT form."""
        return ring.ntt(ring.from_signed(self.gaussian(ring.n, sigma)), inplace=True)

    def __reduce__(self):
        raise TypeError("SecretRandom cannot be pickled")


class CommonRandomString:
    """Public randomness every party expands identically from one seed (Lattigo's CRS)."""

    def __init__(self, seed: bytes):
        if not isinstance(seed, bytes | bytearray) or len(seed) < 16:
            raise ValueError("a common random string needs a seed of at least 16 bytes")
        self.seed = bytes(seed)

    def uniform_poly(self, ring: Ring, label: str) -> np.ndarray:
        """A uniform polynomial, sampled directly in NTT form (uniform is uniform in either domain).

        Read-only and cached per process: the value is public, and parties simulated in one process
        would otherwise expand the same polynomial once each."""
        return _expand(self.seed, label, ring.n, ring.moduli)

    def uniform_rows(self, moduli, count: int, label: str) -> np.ndarray:
        """`count` uniform residues per modulus, shape (len(moduli), count); not cached (for one-off
        public challenges, which would otherwise push the CRS polynomials out of the cache)."""
        key = hashlib.sha256(b"mpclr/crs/v1\x00" + self.seed + b"\x00" + label.encode()).digest()
        return _uniform_rows(_ChaChaStream(key), moduli, count)


@lru_cache(maxsize=24)
def _expand(seed: bytes, label: str, n: int, moduli: tuple[int, ...]) -> np.ndarray:
    key = hashlib.sha256(b"mpclr/crs/v1\x00" + seed + b"\x00" + label.encode()).digest()
    out = _uniform_rows(_ChaChaStream(key), moduli, n)
    out.flags.writeable = False
    return out
