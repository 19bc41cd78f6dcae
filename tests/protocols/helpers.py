"""Run protocols with n simulated parties, without any network, and check key relations.

Relations are checked as sum_i (b * s_i) + a: the same structure as a decryption, so the collective
secret sum_i s_i is never formed, not even in tests.
"""

import numpy as np

from mpclr.protocols.share import SecretKeyShare
from mpclr.ring import SecretRandom


def make_parties(ctx, n):
    rng = SecretRandom()
    return [SecretKeyShare.generate(ctx.key_ring, rng) for _ in range(n)], rng


def apply_secret(ring, b, shares, rows=None):
    """sum_i b * s_i (NTT form)."""
    acc = ring.zeros()
    for s in shares:
        key = s.full() if rows is None else s.at_level(rows)
        ring.add(acc, ring.mul(b, np.ascontiguousarray(key)), out=acc)
    return acc


def max_centered(ring, poly_ntt) -> int:
    c = ring.intt(poly_ntt).astype(np.int64)
    worst = 0
    for row, q in zip(c, ring.moduli):
        centered = np.where(row > q // 2, row - np.int64(q), row)
        worst = max(worst, int(np.abs(centered).max()))
    return worst
