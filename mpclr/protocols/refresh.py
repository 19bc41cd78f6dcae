"""Collective refresh: interactive bootstrapping by masked re-encryption (Mouchet et al. 2021, "RefreshProtocol").

SEAL has no CKKS bootstrapping. A ciphertext (c0, c1) whose levels are used up is brought back to the
top level by the key holders in one round. At the refresh level l (modulus Q_l), with a fresh CRP a'
at the top level and each party's mask M_i, uniform integers in [-2^(b-1), 2^(b-1)):

    share:    h0_i = s_i * c1 + e0_i - M_i          mod Q_l       (e0_i: smudging, sigma = 2^smudging_bits)
              h1_i = -s_i * a' + round(r * M_i) + e1_i  mod Q_top  (e1_i: CBD error)
    combine:  X    = c0 + sum_i h0_i = Delta * m + e - sum_i M_i   (no wrap-around mod Q_l: see below)
              c0'  = round(r * lift(X)) + sum_i h1_i ,   c1' = a'     ->  Delta_top * m + e'   at the top level

r = Delta_top / (K * Delta_l) puts the result on the top level's scale exactly; K >= 1 is an optional
precision boost: the server first multiplies the ciphertext by the integer K (no level used), so the
smudging noise lands divided by K. The masks have b = log2(K * Delta_l) + bound_bits + mask_bits bits,
so sum_i M_i hides Delta * m + e up to statistical distance about 2^-mask_bits, and Q_l must exceed
n * 2^b with margin (`min_level`). The lift and the scaling by r are exact integer arithmetic.

Reveals: to the combiner (the server) X, which the masks hide; each h0_i, h1_i is masked or an RLWE
sample. The CRP a' must never repeat (two outputs with one a' would reveal differences of messages):
parties refuse a label they have seen.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..errors import ProtocolError
from ..ring import CommonRandomString, Ring, SecretRandom
from ..seal.context import SealContext
from .share import SecretKeyShare, Share


def _residues(ring: Ring, values: np.ndarray) -> np.ndarray:
    """Python-int coefficients (object array, length N) -> RNS rows, coefficient domain."""
    return np.ascontiguousarray(np.stack([(values % q).astype(np.uint64) for q in ring.moduli]))


def crt_lift(ring: Ring, coeffs: np.ndarray) -> np.ndarray:
    """Centered CRT reconstruction of an RNS polynomial (coefficient domain) as an object array."""
    big_q = math.prod(ring.moduli)
    acc = np.zeros(ring.n, dtype=object)
    for row, q in zip(coeffs, ring.moduli):
        q_hat = big_q // q
        acc = acc + row.astype(object) * (q_hat * pow(q_hat % q, -1, q))
    acc = acc % big_q
    return np.where(acc > big_q // 2, acc - big_q, acc)


def _scale_round(values: np.ndarray, ratio: Fraction) -> np.ndarray:
    """round(values * ratio), exactly, on Python integers."""
    num, den = ratio.numerator, ratio.denominator
    return (values * num + den // 2) // den


class RefreshProtocol:
    def __init__(self, ctx: SealContext, mask_bits: int | None = None, smudging_bits: float | None = None):
        self.ctx = ctx
        self.mask_bits = ctx.params.refresh_mask_bits if mask_bits is None else mask_bits
        self.smudging_bits = ctx.params.smudging_bits if smudging_bits is None else smudging_bits
        self.top = ctx.ring(ctx.top_level)

    # --- planning (public) ----------------------------------------------------------------------
    def mask_bits_total(self, level: int, bound_bits: int, boost: int = 1) -> int:
        return math.ceil(math.log2(boost * self.ctx.scale_ladder[level])) + bound_bits + self.mask_bits

    def fits(self, level: int, bound_bits: int, parties: int, boost: int = 1) -> bool:
        b = self.mask_bits_total(level, bound_bits, boost)
        q = math.prod(self.ctx.primes[: level + 1])
        return parties * 2 ** (b - 1) + 2 ** (b - self.mask_bits + 1) < q // 2

    def min_level(self, bound_bits: int, parties: int, boost: int = 1) -> int:
        for level in range(self.ctx.top_level + 1):
            if self.fits(level, bound_bits, parties, boost):
                return level
        raise ProtocolError(
            f"no level can hold values up to 2^{bound_bits} (boost {boost}) under {self.mask_bits}-bit masks "
            f"for {parties} parties with these parameters"
        )

    def ratio(self, level: int, boost: int = 1) -> Fraction:
        """r as an exact fraction (the float's binary value): output scale = Delta_l * K * r = Delta_top."""
        return Fraction(self.ctx.scale_ladder[self.ctx.top_level] / (boost * self.ctx.scale_ladder[level]))

    def sample_crp(self, crs: CommonRandomString, label: str) -> np.ndarray:
        return crs.uniform_poly(self.top, f"refresh/a/{label}")

    # --- party ----------------------------------------------------------------------------------
    def gen_share(
        self,
        sk: SecretKeyShare,
        c1: np.ndarray,
        level: int,
        crp: np.ndarray,
        ratio: Fraction,
        bits: int,
        rng: SecretRandom,
    ) -> tuple[Share, Share]:
        low = self.ctx.ring(level)
        top = self.top
        masks = rng.uniform_bounded(self.ctx.n, bits)
        m_low = low.ntt(_residues(low, masks), inplace=True)
        m_top = top.ntt(_residues(top, _scale_round(masks, ratio)), inplace=True)
        h0 = low.mul(c1, np.ascontiguousarray(sk.at_level(level + 1)))
        if self.smudging_bits > 0:
            low.add(h0, rng.smudging_ntt(low, 2.0**self.smudging_bits), out=h0)
        low.sub(h0, m_low, out=h0)
        h1 = top.mul(crp, np.ascontiguousarray(sk.at_level(self.ctx.top_level + 1)))
        top.sub(m_top, h1, out=h1)
        top.add(h1, rng.error_ntt(top), out=h1)
        return Share(f"refresh/h0/level={level}", h0), Share("refresh/h1", h1)

    def shares_from_bytes(self, raw0: bytes, raw1: bytes, level: int) -> tuple[Share, Share]:
        return (
            Share.from_bytes(raw0, f"refresh/h0/level={level}", self.ctx.ring(level)),
            Share.from_bytes(raw1, "refresh/h1", self.top),
        )

    # --- combiner -------------------------------------------------------------------------------
    def finalize(
        self, c0: np.ndarray, level: int, h0s: list[Share], h1s: list[Share], crp: np.ndarray, ratio: Fraction
    ) -> tuple[np.ndarray, np.ndarray]:
        """(c0', c1') at the top level, NTT form."""
        low, top = self.ctx.ring(level), self.top
        x = low.sum([c0, *[s.data for s in h0s]])
        lifted = crt_lift(low, low.intt(x, inplace=True))
        c0_top = top.ntt(_residues(top, _scale_round(lifted, ratio)), inplace=True)
        top.add(c0_top, top.sum(s.data for s in h1s), out=c0_top)
        return c0_top, np.array(crp, copy=True)
