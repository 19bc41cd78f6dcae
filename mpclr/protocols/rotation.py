"""Collective rotation (Galois) keys (Mouchet et al. 2021, "RTG").

For a Galois element k (slot rotation by r: k = 3^r mod 2N) and digit j, with a_kj from the CRS:

    share:  h_ij = -a_kj * s_i + sigma_k(s_i) * g_j + e_ij     (e_ij centered binomial)
    key:    gk_kj = (sum_i h_ij, a_kj)     so that  gk_kj0 + gk_kj1 * s = sigma_k(s) g_j + e

sigma_k acts on NTT form as a permutation of the evaluation points (SEAL's apply_galois_ntt).
Reveals: RLWE samples of s_i only.

A key for rotations at levels up to L only (`level=L`) is the restriction of the full key to the digits
j <= L and to the primes q_0..q_L and P: what SEAL's key switching reads for a ciphertext at level L or
below. Its share is the same RLWE sample projected on fewer primes (it reveals less), and it is a
fraction of the size: (L + 1) (L + 2) of L_top (L_top + 1) residue rows; the secure evaluation rotates
only below the refresh level, so its keys are 6 times smaller at 'train'.
"""

from __future__ import annotations

import numpy as np

from ..ring import CommonRandomString, SecretRandom
from ..seal.context import SealContext
from ..seal.format import galois_elt_from_step
from .rlk import add_gadget_rows
from .share import SecretKeyShare, Share


def tag(galois_elt: int) -> str:
    return f"gkg/elt={galois_elt}"


class RotationKeyGen:
    """level: None for keys valid at every level, else the highest level the keys rotate at."""

    def __init__(self, ctx: SealContext, level: int | None = None):
        self.ctx = ctx
        full = len(ctx.gadget)
        if level is not None and not 0 <= int(level) <= ctx.top_level:
            raise ValueError(f"rotation key level must lie in 0..{ctx.top_level}, got {level}")
        self.level = None if level is None or int(level) >= ctx.top_level else int(level)
        self.digits = full if self.level is None else self.level + 1
        # the key ring's rows this key holds: q_0..q_level and the special prime
        self.rows = list(range(len(ctx.primes))) if self.level is None else [*range(self.level + 1), full]
        self.ring = ctx.key_ring if self.level is None else ctx.key_ring.sub_ring(self.rows)

    def galois_element(self, step: int) -> int:
        return galois_elt_from_step(step, self.ctx.n)

    def sample_crp(self, crs: CommonRandomString, galois_elt: int) -> np.ndarray:
        """The full key's CRP, restricted to this key's digits and primes (one CRP whatever the level)."""
        full = self.ctx.key_ring
        crp = np.stack([crs.uniform_poly(full, f"gkg/a/{galois_elt}/{j}") for j in range(self.digits)])
        return crp if self.level is None else np.ascontiguousarray(crp[:, self.rows])

    def gen_share(self, sk: SecretKeyShare, galois_elt: int, crp: np.ndarray, rng: SecretRandom) -> Share:
        r = self.ring
        s = sk.full()
        if self.level is not None:
            s = np.ascontiguousarray(s[self.rows])
        h = r.mul(crp, s)
        r.sub(rng.error_ntt(r, self.digits), h, out=h)
        if self.level is None:
            add_gadget_rows(self.ctx, h, r.automorphism_ntt(s, galois_elt))
        else:  # digit j adds sigma(s) (P mod q_j) in row j only, as in the full key
            rotated = r.automorphism_ntt(s, galois_elt)
            for j in range(self.digits):
                sub = r.sub_ring([j])
                g = self.ctx.gadget[j][j : j + 1]
                sub.add(h[j, j : j + 1], sub.mul_scalar_rows(rotated[j : j + 1], g), out=h[j, j : j + 1])
        return Share(tag(galois_elt), h)

    def share_from_bytes(self, raw: bytes, galois_elt: int) -> Share:
        return Share.from_bytes(raw, tag(galois_elt), self.ring, (self.digits,))

    def aggregate_shares(self, shares: list[Share]) -> Share:
        return Share.sum_of(shares, self.ring, "Galois elements")

    def rotation_key(self, agg: Share, crp: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The key's (k0_j, k1_j) pairs for every digit of the key level; the server assembles all elements
        into one SEAL GaloisKeys. A restricted key is zero in the digits and primes it does not hold, which
        SEAL never reads for ciphertexts at or below its level."""
        if self.level is None:
            return [(agg.data[j], crp[j]) for j in range(self.digits)]
        full = self.ctx.key_ring
        out = []
        for j in range(len(self.ctx.gadget)):
            k0, k1 = full.zeros(), full.zeros()
            if j < self.digits:
                k0[self.rows], k1[self.rows] = agg.data[j], crp[j]
            out.append((k0, k1))
        return out
