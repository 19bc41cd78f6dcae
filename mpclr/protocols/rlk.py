"""Collective relinearization key, two rounds (Mouchet et al. 2021, "RKG").

SEAL key switching uses one special prime P and one digit per data prime q_j (dnum = L), gadget
g_j = P * [delta_ij] (P mod q_j in row j). Per digit j, with a_j from the CRS and u_i an ephemeral
ternary secret of party i:

    round 1:  h0_ij = -u_i * a_j + s_i * g_j + e0_ij        h1_ij = s_i * a_j + e1_ij
    aggregate h0_j = sum_i h0_ij,  h1_j = sum_i h1_ij
    round 2:  h0'_ij = s_i * h0_j + e2_ij                   h1'_ij = (u_i - s_i) * h1_j + e3_ij
    key:      rlk_j = (sum_i h0'_ij + sum_i h1'_ij,  h1_j)  so that  rlk_j0 + rlk_j1 * s = s^2 g_j + e

Reveals: every share is an RLWE sample under s_i or u_i; the aggregates are the public key material.
A hospital multiplies its key share by the round-1 aggregate only after a random linear check that it is
the sum of the shares (mpclr.protocols.lincheck, checked in mpclr.roles.guard).
The collective key's noise (about 2^12) is far below P and disappears in key switching's division by P.
"""

from __future__ import annotations

import numpy as np

from ..ring import CommonRandomString, SecretRandom
from ..seal.context import SealContext
from .share import SecretKeyShare, Share

TAG1 = "rlk/round1"
TAG2 = "rlk/round2"


def add_gadget_rows(ctx: SealContext, h: np.ndarray, s: np.ndarray) -> None:
    """h[j] += s * g_j for every digit j, in place: only row j changes, by s_j * (P mod q_j)."""
    for j, g in enumerate(ctx.gadget):
        sub = ctx.key_ring.sub_ring([j])
        sub.add(h[j, j : j + 1], sub.mul_scalar_rows(s[j : j + 1], g[j : j + 1]), out=h[j, j : j + 1])


class RelinKeyGen:
    def __init__(self, ctx: SealContext):
        self.ctx = ctx
        self.ring = ctx.key_ring
        self.digits = len(ctx.gadget)

    def sample_crp(self, crs: CommonRandomString) -> np.ndarray:
        """The L polynomials a_j, shape (L, K, N)."""
        return np.stack([crs.uniform_poly(self.ring, f"rlk/a/{j}") for j in range(self.digits)])

    def ephemeral(self, rng: SecretRandom) -> SecretKeyShare:
        """u_i: a fresh ternary secret kept by the party between the two rounds."""
        return SecretKeyShare.generate(self.ring, rng)

    def gen_share_round_one(self, sk: SecretKeyShare, u: SecretKeyShare, crp: np.ndarray, rng: SecretRandom) -> Share:
        r = self.ring
        s = sk.full()
        out = r.zeros(2, self.digits)
        h0, h1 = out[0], out[1]
        r.mul(crp, u.full(), out=h0)
        r.sub(rng.error_ntt(r, self.digits), h0, out=h0)
        add_gadget_rows(self.ctx, h0, s)
        r.mul(crp, s, out=h1)
        r.add(h1, rng.error_ntt(r, self.digits), out=h1)
        return Share(TAG1, out)

    def gen_share_round_two(self, sk: SecretKeyShare, u: SecretKeyShare, round1: Share, rng: SecretRandom) -> Share:
        r = self.ring
        s = sk.full()
        out = r.zeros(2, self.digits)
        h0, h1 = out[0], out[1]
        r.mul(round1.data[0], s, out=h0)
        r.add(h0, rng.error_ntt(r, self.digits), out=h0)
        r.mul(round1.data[1], r.sub(u.full(), s), out=h1)
        r.add(h1, rng.error_ntt(r, self.digits), out=h1)
        return Share(TAG2, out)

    def share_from_bytes(self, raw: bytes, round_: int) -> Share:
        return Share.from_bytes(raw, TAG1 if round_ == 1 else TAG2, self.ring, (2, self.digits))

    def aggregate_shares(self, shares: list[Share]) -> Share:
        return Share.sum_of(shares, self.ring, "rounds")

    def relin_key(self, round1: Share, round2: Share) -> bytes:
        """SEAL RelinKeys bytes."""
        r = self.ring
        k0 = r.add(round2.data[0], round2.data[1])
        k1 = round1.data[1]
        return self.ctx.relin_keys_bytes([(k0[j], k1[j]) for j in range(self.digits)])
