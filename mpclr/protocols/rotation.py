"""Collective rotation (Galois) keys (Mouchet et al. 2021, "RTG").

For a Galois element k (slot rotation by r: k = 3^r mod 2N) and digit j, with a_kj from the CRS:

    share:  h_ij = -a_kj * s_i + sigma_k(s_i) * g_j + e_ij     (e_ij centered binomial)
    key:    gk_kj = (sum_i h_ij, a_kj)     so that  gk_kj0 + gk_kj1 * s = sigma_k(s) g_j + e

sigma_k acts on NTT form as a permutation of the evaluation points (SEAL's apply_galois_ntt).
Reveals: RLWE samples of s_i only.
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
    def __init__(self, ctx: SealContext):
        self.ctx = ctx
        self.ring = ctx.key_ring
        self.digits = len(ctx.gadget)

    def galois_element(self, step: int) -> int:
        return galois_elt_from_step(step, self.ctx.n)

    def sample_crp(self, crs: CommonRandomString, galois_elt: int) -> np.ndarray:
        return np.stack([crs.uniform_poly(self.ring, f"gkg/a/{galois_elt}/{j}") for j in range(self.digits)])

    def gen_share(self, sk: SecretKeyShare, galois_elt: int, crp: np.ndarray, rng: SecretRandom) -> Share:
        r = self.ring
        s = sk.full()
        h = r.mul(crp, s)
        r.sub(rng.error_ntt(r, self.digits), h, out=h)
        add_gadget_rows(self.ctx, h, r.automorphism_ntt(s, galois_elt))
        return Share(tag(galois_elt), h)

    def share_from_bytes(self, raw: bytes, galois_elt: int) -> Share:
        return Share.from_bytes(raw, tag(galois_elt), self.ring, (self.digits,))

    def aggregate_shares(self, shares: list[Share]) -> Share:
        tags = {s.tag for s in shares}
        if len(tags) != 1:
            raise ValueError(f"cannot aggregate shares of different Galois elements: {sorted(tags)}")
        return Share(tags.pop(), self.ring.sum(s.data for s in shares))

    def rotation_key(self, agg: Share, crp: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The key's (k0_j, k1_j) pairs; the server assembles all elements into one SEAL GaloisKeys."""
        return [(agg.data[j], crp[j]) for j in range(self.digits)]
