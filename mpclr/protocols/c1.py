"""The random half c1 of a ciphertext, when someone else chooses it.

Decryption, key switching and refresh all make a hospital compute s_i * c1 + noise for a c1 it is sent.
For a genuine ciphertext c1 is uniform modulo each prime (it carries u * a + e of an encryption, and
every homomorphic operation keeps it so). A crafted one is not: c1 = K (a constant) returns K * s_i + e,
from which s_i is read off exactly. So a hospital tests each c1 it is asked about (`check_uniform`) and
remembers a digest of every c1 it answered (`digest`), and an honest requester that needs a share for
a c1 it asked about before makes it fresh first (`rerandomize`).

The test. Per prime q, the N coefficients of c1 (coefficient domain) fall into 16 equal ranges of
[0, q); for a uniform c1 each range's count is Binomial(N, 1/16). A c1 is refused if any count lies
outside bounds chosen by the Chernoff bound P(X >= k), P(X <= k) <= exp(-N * KL(k/N || p)) so that each
of the 2 * 16 tails, for each of up to 64 primes, has probability below 2^-75: a genuine c1 is refused
with probability below 2^-64 (below 2^-40 over 2^24 requests, far more than a study makes). The accepted
counts are 305..749 of 8192 (mean 512) and 724..1354 of 16384 (mean 1024): a constant, a sparse
polynomial (more than 3 % zero coefficients) or a small-norm one (every coefficient near 0 or q) fails
by far.

What no test on one c1 can see (README, "Residual risks"): a c1 that is uniform but related to values
the requester knows, e.g. c1' = c1 + K for a c1 answered before (the two shares differ by K * s_i), or
c1 = K * a with a the public key's CRP (then K * s_i * a is known up to noise from the hospital's public
key share). Only the study plan (how many shares, for what) bounds those.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np

from ..errors import ProtocolError
from ..ring import Ring, SecretRandom

BINS = 16
TAIL_BITS = 75  # per tail; 2 tails x 16 bins x up to 64 primes: a genuine c1 is refused below 2^-64

__all__ = ["check_uniform", "digest", "rerandomize", "count_bounds", "BINS"]


def _kl(a: float, p: float) -> float:
    """KL divergence between Bernoulli(a) and Bernoulli(p), in nats."""
    out = 0.0
    if a > 0:
        out += a * math.log(a / p)
    if a < 1:
        out += (1 - a) * math.log((1 - a) / (1 - p))
    return out


@lru_cache(maxsize=64)
def count_bounds(n: int, q: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(lowest accepted count, highest accepted count) per range, and the range width, for N = n
    coefficients modulo q: every count outside has Chernoff tail probability below 2^-TAIL_BITS under
    a uniform c1."""
    width = -(-q // BINS)  # ranges [b * width, (b + 1) * width); the last one is a little shorter
    probs = [width / q] * (BINS - 1) + [(q - (BINS - 1) * width) / q]
    limit = TAIL_BITS * math.log(2)
    lo, hi = [], []
    for p in probs:
        mean = n * p
        k = math.floor(mean)
        while k >= 0 and n * _kl(k / n, p) < limit:
            k -= 1
        lo.append(k)  # counts <= k are refused (-1: none)
        k = math.ceil(mean)
        while k <= n and n * _kl(k / n, p) < limit:
            k += 1
        hi.append(k)  # counts >= k are refused (n + 1: none)
    return np.array(lo), np.array(hi), width


def check_uniform(ring: Ring, c1_ntt: np.ndarray, what: str) -> None:
    """Refuse (ProtocolError naming `what`, the prime and the range) a c1 whose coefficients are far from
    uniform modulo any prime of `ring`."""
    coeffs = ring.intt(c1_ntt)
    for row, q in enumerate(ring.moduli):
        lo, hi, width = count_bounds(ring.n, q)
        counts = np.bincount((coeffs[row] // np.uint64(width)).astype(np.int64), minlength=BINS)[:BINS]
        bad = np.flatnonzero((counts <= lo) | (counts >= hi))
        if bad.size:
            b = int(bad[0])
            raise ProtocolError(
                f"{what}: c1 is not a ciphertext's random half: modulo prime {row} ({q.bit_length()} bits), "
                f"{int(counts[b])} of {ring.n} coefficients fall in range {b} of {BINS}, where a uniform c1 "
                f"has {int(lo[b]) + 1}..{int(hi[b]) - 1} (a crafted constant, sparse or small polynomial would "
                f"make the reply reveal the key share)"
            )


def digest(c1_ntt: np.ndarray) -> bytes:
    """A c1's identity for the replay check: its residues modulo q_0, the prime every level keeps, so
    the same c1 sent again at another level is recognised too."""
    return hashlib.sha256(b"mpclr/c1/v1\x00" + np.ascontiguousarray(c1_ntt[0], dtype="<u8").tobytes()).digest()[:16]


def rerandomize(
    ring: Ring, public_key: np.ndarray, c0: np.ndarray, c1: np.ndarray, rng: SecretRandom, key_ring: Ring
) -> tuple[np.ndarray, np.ndarray]:
    """(c0, c1) plus a fresh encryption of zero under the collective public key (p0, p1) (shape (2, K, N)
    at the key level, `key_ring`: the primes and the special prime P): the same message and a fresh
    uniform c1. The encryption of zero is made as SEAL makes one, at the key level and divided by P, so
    its noise is a rescale's rounding (about 2^6), not a raw encryption's u e_pk + e0 + e1 s (about 2^10,
    which the smudging of a decryption or refresh of this ciphertext would then have to hide). NTT form."""
    u = rng.ternary_ntt(key_ring)
    z0 = key_ring.add(key_ring.mul(u, np.ascontiguousarray(public_key[0])), rng.error_ntt(key_ring))
    z1 = key_ring.add(key_ring.mul(u, np.ascontiguousarray(public_key[1])), rng.error_ntt(key_ring))
    keep = [*range(len(ring.moduli)), len(key_ring.moduli) - 1]  # the ciphertext's primes and P
    ext = key_ring.sub_ring(keep)
    z0, z1 = (ext.divide_by_last_prime(np.ascontiguousarray(z[keep])) for z in (z0, z1))
    return ring.add(c0, z0), ring.add(c1, z1)

