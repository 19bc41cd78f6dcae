"""Collective public key generation (Mouchet et al. 2021, "CKG").

    crp:    a, uniform over R_QP (key level), expanded from the CRS
    share:  p_i = -(a * s_i) + e_i        (e_i centered binomial: symmetric, so this is -(a s_i + e'_i))
    agg:    p   = sum_i p_i = -(a * s) + e
    key:    pk  = (p, a)   as a SEAL PublicKey at the key level

Reveals: p_i is an RLWE sample of s_i; nothing about s_i beyond RLWE hardness. Additive shares let the
last party bias pk if it sees the others first (rushing); the session's commit-then-reveal round
(cpk.commit / cpk.reveal: mpclr.roles.hospital, commitments from mpclr.roles.guard) prevents that.
"""

from __future__ import annotations

import numpy as np

from ..ring import CommonRandomString, SecretRandom
from ..seal.context import SealContext
from .share import SecretKeyShare, Share

TAG = "cpk"


class PublicKeyGen:
    def __init__(self, ctx: SealContext):
        self.ctx = ctx
        self.ring = ctx.key_ring

    def sample_crp(self, crs: CommonRandomString) -> np.ndarray:
        return crs.uniform_poly(self.ring, "cpk/a")

    def gen_share(self, sk: SecretKeyShare, crp: np.ndarray, rng: SecretRandom) -> Share:
        r = self.ring
        p = r.mul(crp, sk.full())
        r.sub(rng.error_ntt(r), p, out=p)
        return Share(TAG, p)

    def share_from_bytes(self, raw: bytes) -> Share:
        return Share.from_bytes(raw, TAG, self.ring)

    def aggregate_shares(self, shares: list[Share]) -> Share:
        return Share(TAG, self.ring.sum(s.data for s in shares))

    def public_key(self, agg: Share, crp: np.ndarray) -> bytes:
        """SEAL PublicKey bytes (p, a)."""
        return self.ctx.public_key_bytes(agg.data, crp)
