"""Collective refresh: interactive bootstrapping by masked re-encryption (Mouchet et al. 2021, "RefreshProtocol"),
generalized to public linear combinations and batches.

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
n * 2^b with margin (`min_level`; at most 2^126, the width of the exact lift). The lift and the scaling
by r are exact integer arithmetic: r (a public real) is first rounded to a dyadic a / 2^s shared by all,
so the combination everyone computes is the same to the last bit.

Because the lift is exact, the same round can output any public linear combination of several
input ciphertexts: each input k gets its own masks M_ik and h0_ik, output o = sum_k c_ok * input_k gets
h1_io = -s_i a'_o + round(sum_k c_ok r_k M_ik) + e, and the combiner forms round(sum_k c_ok r_k lift(X_k)).
An input may also be rotated-and-summed over slots first: an automorphism is a signed permutation of
the integer coefficients, which the combiner applies to the lifted values and each party to its masks,
so it costs no key switching and needs no rotation key. Encrypted training puts its Nesterov update
(public constants gamma_t, eta_t) and its sum over samples here, so neither costs a level or a rotation.
A batch of outputs is one message per party.

Reveals: to the combiner (the server) X, which the masks hide; each h0_i, h1_i is masked or an RLWE
sample. The CRP a' must never repeat (two outputs with one a' would reveal differences of messages):
parties refuse a label they have seen.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..errors import ProtocolError
from ..ring import CommonRandomString, SecretRandom
from ..ring.wide import MAX_BITS, Wide, combine_mod, crt_lift, dyadic_row, random_wide, rotate_and_sum
from ..seal.context import SealContext
from .share import SecretKeyShare, Share

# An output: ([(input index, a, galois elements)], s) meaning round(sum a * T(input) / 2^s), where T
# rotates-and-sums over the given Galois elements (none: the identity); a / 2^s already includes r_k.
Output = tuple[list[tuple[int, int, tuple[int, ...]]], int]


def plan_outputs(outputs: list[list[tuple]]) -> list[Output]:
    """Exact rational coefficients -> shared dyadic ones (relative error below 2^-60, the same for all).
    A term is (input index, coefficient) or (input index, coefficient, galois elements)."""
    planned = []
    for terms in outputs:
        a, s = dyadic_row([t[1] for t in terms])
        planned.append(
            ([(t[0], ak, tuple(int(e) for e in (t[2] if len(t) > 2 else ()))) for t, ak in zip(terms, a)], s)
        )
    return planned


class _Transformed:
    """T(x) for each (input, galois elements) pair, computed once per batch."""

    def __init__(self, values: list[Wide], n: int):
        self.values, self.n, self.cache = values, n, {}

    def __call__(self, k: int, elts: tuple[int, ...]) -> Wide:
        if not elts:
            return self.values[k]
        if (k, elts) not in self.cache:
            self.cache[(k, elts)] = rotate_and_sum(self.values[k], elts, self.n)
        return self.cache[(k, elts)]


class RefreshProtocol:
    def __init__(self, ctx: SealContext, mask_bits: int | None = None, smudging_bits: float | None = None):
        self.ctx = ctx
        self.mask_bits = ctx.params.refresh_mask_bits if mask_bits is None else mask_bits
        self.smudging_bits = ctx.params.smudging_bits if smudging_bits is None else smudging_bits
        self.top = ctx.ring(ctx.top_level)

    # --- planning (public) ----------------------------------------------------------------------
    def mask_bits_total(self, scale: float, bound_bits: int, boost: int = 1) -> int:
        return math.ceil(math.log2(boost * scale)) + bound_bits + self.mask_bits

    def fits(self, level: int, bound_bits: int, parties: int, boost: int = 1, scale: float | None = None) -> bool:
        b = self.mask_bits_total(self.ctx.scale_ladder[level] if scale is None else scale, bound_bits, boost)
        q = math.prod(self.ctx.primes[: level + 1])
        return parties * 2 ** (b - 1) + 2 ** (b - self.mask_bits + 1) < q // 2 and q.bit_length() <= MAX_BITS

    def min_level(self, bound_bits: int, parties: int, boost: int = 1, scale: float | None = None) -> int:
        """The lowest level whose modulus holds the masks (inputs of `scale`, default the ladder's)."""
        for level in range(self.ctx.top_level + 1):
            if self.fits(level, bound_bits, parties, boost, scale):
                return level
        raise ProtocolError(
            f"no level can hold values up to 2^{bound_bits} (boost {boost}) under {self.mask_bits}-bit masks "
            f"for {parties} parties with these parameters"
        )

    def ratio(self, scale: float, boost: int = 1) -> Fraction:
        """r for an input of this scale, as an exact fraction (the float's binary value), so that the
        output lands on the top level's scale: scale * K * r = Delta_top."""
        return Fraction(self.ctx.scale_ladder[self.ctx.top_level] / (boost * scale))

    def sample_crp(self, crs: CommonRandomString, label: str) -> np.ndarray:
        return crs.uniform_poly(self.top, f"refresh/a/{label}")

    # --- party ----------------------------------------------------------------------------------
    def gen_shares(
        self,
        sk: SecretKeyShare,
        c1s: list[np.ndarray],
        level: int,
        crps: list[np.ndarray],
        outputs: list[Output],
        bits: int,
        rng: SecretRandom,
    ) -> tuple[list[Share], list[Share]]:
        """Shares for a batch: one h0 per input ciphertext (its own mask), one h1 per output."""
        low, top = self.ctx.ring(level), self.top
        n = self.ctx.n
        s_low = np.ascontiguousarray(sk.at_level(level + 1))
        s_top = np.ascontiguousarray(sk.at_level(self.ctx.top_level + 1))
        masks = [random_wide(rng.bytes(16 * n), n, bits) for _ in c1s]
        h0s = []
        for c1, m in zip(c1s, masks):
            h0 = low.mul(c1, s_low)
            if self.smudging_bits > 0:
                low.add(h0, rng.smudging_ntt(low, 2.0**self.smudging_bits), out=h0)
            low.sub(h0, low.ntt(combine_mod(low, [(m, 1)], 0), inplace=True), out=h0)
            h0s.append(Share(f"refresh/h0/level={level}", h0))
        h1s = []
        transformed = _Transformed(masks, self.ctx.n)
        for crp, (terms, shift) in zip(crps, outputs):
            scaled = combine_mod(top, [(transformed(k, elts), a) for k, a, elts in terms], shift)
            h1 = top.mul(crp, s_top)
            top.sub(top.ntt(scaled, inplace=True), h1, out=h1)
            top.add(h1, rng.error_ntt(top), out=h1)
            h1s.append(Share("refresh/h1", h1))
        return h0s, h1s

    def h0_from_bytes(self, raw: bytes, level: int) -> Share:
        return Share.from_bytes(raw, f"refresh/h0/level={level}", self.ctx.ring(level))

    def h1_from_bytes(self, raw: bytes) -> Share:
        return Share.from_bytes(raw, "refresh/h1", self.top)

    # --- combiner -------------------------------------------------------------------------------
    def finalize(
        self,
        c0s: list[np.ndarray],
        level: int,
        h0s: list[list[Share]],
        h1s: list[list[Share]],
        crps: list[np.ndarray],
        outputs: list[Output],
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(c0', c1') at the top level, NTT form, per output. h0s[k] holds every party's share of input k,
        h1s[o] every party's share of output o."""
        low, top = self.ctx.ring(level), self.top
        lifted: list[Wide] = []
        for c0, shares in zip(c0s, h0s):
            x = low.sum([c0, *[s.data for s in shares]])
            lifted.append(crt_lift(low, low.intt(x, inplace=True)))
        transformed = _Transformed(lifted, self.ctx.n)
        out = []
        for crp, (terms, shift), shares in zip(crps, outputs, h1s):
            c0_top = top.ntt(combine_mod(top, [(transformed(k, elts), a) for k, a, elts in terms], shift), inplace=True)
            top.add(c0_top, top.sum(s.data for s in shares), out=c0_top)
            out.append((c0_top, np.array(crp, copy=True)))
        return out
