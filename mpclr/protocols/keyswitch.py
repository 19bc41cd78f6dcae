"""Collective public-key switch to a researcher's own key (Mouchet et al. 2021, "PCKS").

A ciphertext (c0, c1) under the collective secret s becomes a ciphertext under the researcher's secret
s', known only to the researcher, given the researcher's public key (p0', p1') = (-a's' + e', a'):

    share:    h0_i = s_i * c1 + u_i * p0' + e0_i      (u_i ternary, e0_i smudging)
              h1_i = u_i * p1' + e1_i                 (e1_i CBD)
    combine:  (c0 + sum_i h0_i, sum_i h1_i)   decrypts under s' to Delta * m + noise

Reveals: nothing to the server that combines (the result is encrypted under s'), nothing to the
parties; to the researcher, the result plus smudged noise, exactly as a threshold decryption would.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..ring import SecretRandom
from ..seal.context import SealContext
from ..seal.format import CiphertextData
from .share import SecretKeyShare, Share


def key_hash(public_key: bytes) -> str:
    return hashlib.sha256(bytes(public_key)).hexdigest()


class PublicKeySwitch:
    def __init__(self, ctx: SealContext, smudging_bits: float | None = None):
        self.ctx = ctx
        self.smudging_bits = ctx.params.smudging_bits if smudging_bits is None else smudging_bits

    def target(self, public_key: bytes) -> CiphertextData:
        pk = CiphertextData.from_bytes(bytes(public_key), "researcher public key")
        if pk.parms_id != self.ctx.key_parms_id or pk.size != 2:
            raise ValueError("the target public key is not a public key of this parameter set")
        return pk

    def gen_share(self, sk: SecretKeyShare, c1: np.ndarray, level: int, pk: CiphertextData, rng: SecretRandom) -> Share:
        ring = self.ctx.ring(level)
        rows = level + 1
        u = ring.ntt(ring.from_signed(rng.ternary(ring.n)), inplace=True)
        p0 = np.ascontiguousarray(pk.data[0, :rows])
        p1 = np.ascontiguousarray(pk.data[1, :rows])
        out = ring.zeros(2)
        h0, h1 = out[0], out[1]
        ring.mul(c1, np.ascontiguousarray(sk.at_level(rows)), out=h0)
        ring.add(h0, ring.mul(u, p0), out=h0)
        if self.smudging_bits > 0:
            ring.add(h0, rng.smudging_ntt(ring, 2.0**self.smudging_bits), out=h0)
        ring.mul(u, p1, out=h1)
        ring.add(h1, rng.error_ntt(ring), out=h1)
        return Share(f"pcks/level={level}", out)

    def share_from_bytes(self, raw: bytes, level: int) -> Share:
        return Share.from_bytes(raw, f"pcks/level={level}", self.ctx.ring(level), (2,))

    def finalize(self, ct: CiphertextData, shares: list[Share]) -> CiphertextData:
        level = self.ctx.check_ciphertext(ct)
        ring = self.ctx.ring(level)
        agg = ring.sum(s.data for s in shares)
        c0 = ring.add(ct.data[0], agg[0])
        return CiphertextData(ct.parms_id, ct.scale, np.stack([c0, agg[1]]))
