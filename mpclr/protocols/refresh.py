"""Collective refresh: interactive bootstrapping by masked re-encryption (Mouchet et al. 2021, "RefreshProtocol"),
generalized to public linear combinations and batches.

SEAL has no CKKS bootstrapping. A ciphertext (c0, c1) whose levels are used up is brought back to the
top level by the key holders in one round. At the refresh level l (modulus Q_l), with a fresh CRP a'
at the top level and each party's mask M_i, uniform integers in [-2^(b-1), 2^(b-1)):

    share:    h0_i = s_i * c1 + e0_i - M_i          mod Q_l    (e0_i: smudging, sigma = 2^refresh_smudging_bits)
              h1_i = -s_i * a' + round(r * M_i) + e1_i  mod Q_top  (e1_i: CBD error)
    combine:  X    = c0 + sum_i h0_i = Delta * m + e - sum_i M_i   (no wrap-around mod Q_l: see below)
              c0'  = round(r * lift(X)) + sum_i h1_i ,   c1' = a'     ->  Delta_top * m + e'   at the top level

r = Delta_top / Delta_l puts the result on the top level's scale exactly. What the refresh reveals in the
end (when its output is decrypted) is r (Delta m + e + sum_i e0_i): the smudging of one honest party
hides the key-dependent noise e of the input, so refresh_smudging_bits is sized against the largest e a
study refreshes (README, "Smudging and masks"). (An earlier version multiplied the ciphertext by a
"precision boost" K first; that multiplies e by K as well, so with smudging sized against K e it bought
no precision: gone.)

Masks. b = ceil(log2 Delta_l) + bound_bits + mask_bits: a value |Delta m + e| <= 2^(b - mask_bits) is
hidden by one honest party's mask up to statistical distance 2^-mask_bits per coefficient (mask_bits >= 64
for the presets studies use; N 2^-mask_bits per ciphertext). The refresh level is the lowest whose
modulus holds n masks with room for an exact lift (`fits`). The lift, the rotate-and-sums and the
scaling by r are exact integer arithmetic on integers of any width, carried in RNS channels
(mpclr.ring.wide); r (a public real) is first rounded to a dyadic a / 2^s shared by all, so the
combination everyone computes is the same to the last bit.

Bound check. The combiner sees X only, masked: it refuses an input whose lifted X leaves the range
n masks and the declared bound allow (|X| <= n 2^(b-1) + 2^(b - mask_bits)). That catches a value that
exceeds its bound by about the masks' width; a smaller excess cannot be told from the masks (that is
what hiding means), so the declared bound_bits are the server's public promise, checked only up to that.

Because the lift is exact, the same round can output any public linear combination of several
input ciphertexts: each input k gets its own masks M_ik and h0_ik, output o = sum_k c_ok * input_k gets
h1_io = -s_i a'_o + round(sum_k c_ok r_k M_ik) + e, and the combiner forms round(sum_k c_ok r_k lift(X_k)).
An input may also be rotated-and-summed over slots first: an automorphism is a signed permutation of
the integer coefficients, which the combiner applies to the lifted values and each party to its masks,
so it costs no key switching and needs no rotation key. Encrypted training puts its Nesterov update
(public constants gamma_t, eta_t) and its sum over samples here, so neither costs a level or a rotation.
A batch of outputs is one message per party.

Slot masks. A rotate-and-sum is a convolution over the slots: it cannot sum a window aligned to a segment
of the slots (features packed side by side, each over its own samples). A term may therefore go on, after
its rotate-and-sum, with a product by a public integer polynomial p (a slot mask encoded at scale
2^POLY_SHIFT, sent with the request) and a second rotate-and-sum: round(T(x) p / 2^POLY_SHIFT) on the exact
integers, every party on its masks and the combiner on X, so the masks still cancel exactly (each rounding
adds at most 1/2 per coefficient). The mask keeps the segments' window sums and the second rotate-and-sum
broadcasts them over the segment: a segment-local sum at no level and no key. A public polynomial is one
more public coefficient: the output is still a fresh encryption of a public function of the input.

On the wire. Each share is sent rounded to its high bits (mpclr.ring.rounding): round(h 2^B / Q) with B a
multiple of 8 and bits(Q) - B <= refresh_smudging_bits - 3, so h0 at train's refresh level takes 128 bits per
coefficient instead of its primes' 150 and h1 352 instead of 375 (8.6 % fewer bytes per refreshed
ciphertext). The combiner's h' differs from h by a uniform error below 2^(bits(Q) - B - 1) + 1/2 per
coefficient, independent of everything else: in X (then times r) and in c0'. Its variance is at most 2^-9.6
of the smudging's, and `noise_sigma` counts it in what the refresh adds. A rounded share is a function of
the share, so it reveals nothing the share did not.

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
from ..ring.rounding import keep_bits
from ..ring.wide import Channels, combine, dyadic_row, lift, mask_bytes, multiply_round, random_masks, rotate_and_sum
from ..seal.context import SealContext
from .share import SecretKeyShare, Share

POLY_SHIFT = 50  # a slot mask's polynomial is sent as round(2^POLY_SHIFT p): |coefficients| < 2^50

# An output: ([(input index, a, galois elements, post)], s) meaning round(sum a * T(input) / 2^s), where T
# rotates-and-sums over the given Galois elements (none: the identity), then, if post = (i, elements 2), takes
# the product with the request's polynomial i (/ 2^POLY_SHIFT, rounded) and rotates-and-sums again; a / 2^s
# already includes r_k.
Output = tuple[list[tuple[int, int, tuple[int, ...], tuple]], int]


def _elements(elts) -> tuple[int, ...]:
    return tuple(int(e) for e in elts)


def plan_outputs(outputs: list[list[tuple]]) -> list[Output]:
    """Exact rational coefficients -> shared dyadic ones (relative error below 2^-60, the same for all).
    A term is (input index, coefficient[, galois elements[, (polynomial index, galois elements 2)]])."""
    planned = []
    for terms in outputs:
        a, s = dyadic_row([t[1] for t in terms])
        planned.append(([(t[0], ak, _elements(t[2] if len(t) > 2 else ()),
                          (int(t[3][0]), _elements(t[3][1])) if len(t) > 3 and t[3] else ())
                         for t, ak in zip(terms, a)], s))
    return planned


class _Transformed:
    """T(x) for each (input, galois elements, post) of a batch, computed once; polys: the request's slot-mask
    polynomials in NTT form over the top level. `take` hands out a term's T(x) and forgets it, and the input
    itself, after the batch's last term that needs it: a round of K inputs then holds a few of them
    transformed at a time, not K (a study's weight ciphertexts by the hundred, at each party at once)."""

    def __init__(self, values: list, polys: list[np.ndarray] | None = None, outputs: list[Output] | None = None):
        self.values, self.polys, self.cache = values, polys or [], {}
        self.left: dict[tuple, int] = {}  # top-level terms still to come, per (input, elements, post)
        self.left_input: dict[int, int] = {}  # the same, per input
        for terms, _ in outputs or []:
            for k, _, elts, post in terms:
                self.left[(k, elts, post)] = self.left.get((k, elts, post), 0) + 1
                self.left_input[k] = self.left_input.get(k, 0) + 1

    def __call__(self, k: int, elts: tuple[int, ...], post: tuple = ()) -> Channels:
        key = (k, elts, post)
        if key not in self.cache:
            if post:
                base = self(k, elts)
                masked = multiply_round(base, self.polys[post[0]], POLY_SHIFT)
                self.cache[key] = rotate_and_sum(masked, post[1]) if post[1] else masked
            elif not elts:
                return self.values[k]
            else:
                self.cache[key] = rotate_and_sum(self.values[k], elts)
        return self.cache[key]

    def take(self, k: int, elts: tuple[int, ...], post: tuple = ()) -> Channels:
        """T(x) for one term of the outputs given at construction, in their order (the same value as calling)."""
        out = self(k, elts, post)
        key = (k, elts, post)
        if key in self.left:
            self.left[key] -= 1
            if not self.left[key]:
                self.cache.pop(key, None)
            self.left_input[k] -= 1
            if not self.left_input[k]:  # the input's last use: it and what was derived from it go
                self.values[k] = None
                for other in [c for c in self.cache if c[0] == k]:
                    del self.cache[other]
        return out


def parse_term(t, polys: int) -> tuple:
    """A term as a request carries it: [input, a, elements] or [input, a, elements, [polynomial, elements 2]]."""
    post = t[3] if len(t) > 3 and t[3] else ()
    if post and (len(post) != 2 or not 0 <= int(post[0]) < polys):
        raise ProtocolError("refresh request names a polynomial it does not carry")
    return (int(t[0]), int(t[1]), _elements(t[2] if len(t) > 2 else ()),
            (int(post[0]), _elements(post[1])) if post else ())


def mask_polynomial(ctx, values) -> np.ndarray:
    """round(2^POLY_SHIFT p) for the slot vector `values` (entries in [-1, 1]): its CKKS encoding at that
    scale, as int64 coefficients (public; the combiner computes it once and sends it with the request, so that
    every party applies the very same integers)."""
    from ..seal.format import PlaintextData

    he = ctx.pyfhel()
    pt = he.encodeFrac(np.ascontiguousarray(values, dtype=np.float64), scale=2.0**POLY_SHIFT)
    rows = np.ascontiguousarray(PlaintextData.from_bytes(pt.to_bytes(), ctx.n).data)
    ring = ctx.ring(rows.shape[0] - 1)
    return ring.to_centered_small(ring.intt(rows))


def polys_ntt(ctx, polys) -> list[np.ndarray]:
    """Slot-mask polynomials (int64 coefficients, |c| < 2^62) in NTT form over the top level."""
    top = ctx.ring(ctx.top_level)
    out = []
    for p in polys:
        c = np.asarray(p, dtype=np.int64)
        if c.shape != (ctx.n,) or np.any(np.abs(c) >= 2**POLY_SHIFT + 2**20):
            raise ProtocolError(f"a refresh polynomial must hold {ctx.n} coefficients below 2^{POLY_SHIFT}")
        out.append(top.ntt(top.from_signed(c), inplace=True))
    return out


class RefreshProtocol:
    def __init__(self, ctx: SealContext, mask_bits: int | None = None, smudging_bits: float | None = None):
        self.ctx = ctx
        self.mask_bits = ctx.params.refresh_mask_bits if mask_bits is None else mask_bits
        self.smudging_bits = ctx.params.refresh_smudging if smudging_bits is None else smudging_bits
        self.top = ctx.ring(ctx.top_level)

    # --- planning (public) ----------------------------------------------------------------------
    def mask_bits_total(self, scale: float, bound_bits: int) -> int:
        return math.ceil(math.log2(scale)) + bound_bits + self.mask_bits

    def largest_lift(self, bits: int, parties: int) -> int:
        """The largest |X| a refresh with masks of `bits` bits and `parties` parties can lift, bound
        kept: n masks plus a value of at most 2^(bits - mask_bits) (twice that, for the input's noise)."""
        return parties * 2 ** (bits - 1) + 2 ** (bits - self.mask_bits + 1)

    def fits_masks(self, level: int, bits: int, parties: int) -> bool:
        """Whether level's modulus holds `parties` masks of `bits` bits with room for an exact lift
        (|X| <= Q_l / 4)."""
        if not 0 <= level <= self.ctx.top_level:
            return False
        return 4 * self.largest_lift(bits, parties) <= math.prod(self.ctx.primes[: level + 1])

    def fits(self, level: int, bound_bits: int, parties: int, scale: float | None = None) -> bool:
        """Whether level's modulus holds the masks for values up to 2^bound_bits at `scale` (default the
        ladder's)."""
        b = self.mask_bits_total(self.ctx.scale_ladder[level] if scale is None else scale, bound_bits)
        return self.fits_masks(level, b, parties)

    def min_level(self, bound_bits: int, parties: int, scale: float | None = None) -> int:
        """The lowest level whose modulus holds the masks (inputs of `scale`, default the ladder's)."""
        for level in range(self.ctx.top_level + 1):
            if self.fits(level, bound_bits, parties, scale):
                return level
        raise ProtocolError(
            f"no level can hold values up to 2^{bound_bits} under {self.mask_bits}-bit masks "
            f"for {parties} parties with these parameters"
        )

    def ratio(self, scale: float) -> Fraction:
        """r for an input of this scale, as an exact fraction (the float's binary value), so that the
        output lands on the top level's scale: scale * r = Delta_top."""
        return Fraction(self.ctx.scale_ladder[self.ctx.top_level] / scale)

    def keep(self, level: int) -> int:
        """Bits per coefficient a share at `level` goes on the wire with (mpclr.ring.rounding)."""
        return keep_bits(math.prod(self.ctx.primes[: level + 1]).bit_length(), self.smudging_bits)

    def rounding_sigma(self, level: int) -> float:
        """Standard deviation of the rounding error of one share at `level`, per coefficient (0 when exact)."""
        drop = math.prod(self.ctx.primes[: level + 1]).bit_length() - self.keep(level)
        return 2.0**drop / math.sqrt(12.0) if drop > 0 else 0.0

    def noise_sigma(self, level: int) -> float:
        """Per party and coefficient, a standard deviation that bounds what a refresh from `level` adds, in
        units of its input's scale (or any lower one): the smudging e0 and h0's rounding go into X, h1's
        rounding into c0' (on the top level's scale, at least the input's scale on the ladders used). All
        three are independent, so hypot; the CBD error e1 of h1 (a few units) is left out, as before."""
        smudge = 2.0**self.smudging_bits if self.smudging_bits > 0 else 0.0
        return math.hypot(smudge, self.rounding_sigma(level), self.rounding_sigma(self.ctx.top_level))

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
        polys: list[np.ndarray] | None = None,
        encode=None,
    ) -> tuple[list, list]:
        """Shares for a batch: one h0 per input ciphertext (its own mask), one h1 per output; polys: the
        request's slot-mask polynomials, NTT form over the top level (`polys_ntt`). crps: a list, or a
        function of the output's index (each drawn when needed). encode: (for h0, for h1) applied to each
        share as it is made (e.g. to its bytes), so that a large batch's shares are not all held at once."""
        low, top = self.ctx.ring(level), self.top
        s_low = np.ascontiguousarray(sk.at_level(level + 1))
        s_top = np.ascontiguousarray(sk.at_level(self.ctx.top_level + 1))
        masks = [random_masks(rng.bytes(mask_bytes(top.n, bits)), top, bits) for _ in c1s]
        h0s = []
        for c1, m in zip(c1s, masks):
            h0 = low.mul(c1, s_low)
            if self.smudging_bits > 0:
                low.add(h0, rng.smudging_ntt(low, 2.0**self.smudging_bits), out=h0)
            low.sub(h0, low.ntt(m.head(level + 1), inplace=True), out=h0)
            share = Share(f"refresh/h0/level={level}", h0)
            h0s.append(share if encode is None else encode[0](share))
        m = None
        h1s = []
        transformed = _Transformed(masks, polys, outputs)
        del masks  # each goes with its last output (`_Transformed.take`)
        for o, (terms, shift) in enumerate(outputs):
            crp = crps(o) if callable(crps) else crps[o]
            scaled = combine([(transformed.take(k, elts, post), a) for k, a, elts, post in terms], shift, top)
            h1 = top.mul(crp, s_top)
            top.sub(top.ntt(scaled, inplace=True), h1, out=h1)
            top.add(h1, rng.error_ntt(top), out=h1)
            share = Share("refresh/h1", h1)
            h1s.append(share if encode is None else encode[1](share))
        return h0s, h1s

    def h0_to_bytes(self, share: Share, level: int) -> bytes:
        return share.to_rounded_bytes(self.ctx.ring(level), self.keep(level))

    def h1_to_bytes(self, share: Share) -> bytes:
        return share.to_rounded_bytes(self.top, self.keep(self.ctx.top_level))

    def h0_from_bytes(self, raw: bytes, level: int) -> Share:
        return Share.from_rounded_bytes(raw, f"refresh/h0/level={level}", self.ctx.ring(level), self.keep(level))

    def h1_from_bytes(self, raw: bytes) -> Share:
        return Share.from_rounded_bytes(raw, "refresh/h1", self.top, self.keep(self.ctx.top_level))

    # --- combiner -------------------------------------------------------------------------------
    def finalize(
        self,
        c0s: list[np.ndarray],
        level: int,
        h0s: list[list[Share]],
        h1s: list[list[Share]],
        crps: list[np.ndarray],
        outputs: list[Output],
        bits: int | None = None,
        polys: list[np.ndarray] | None = None,
        emit=None,
    ) -> list:
        """(c0', c1') at the top level, NTT form, per output (or emit(pair), made as each is ready, so that a
        large batch's pairs are not all held at once). h0s[k] holds every party's share of input k, h1s[o]
        every party's share of output o; h0s, h1s and crps may be functions of the index instead of lists
        (each share read, each CRP drawn, when needed). With `bits` (the masks' width), an input whose lifted
        value leaves the range the masks and the declared bound allow is refused (module docstring)."""
        low, top = self.ctx.ring(level), self.top
        big_q = math.prod(low.moduli)
        lifted: list[Channels] = []
        for k, c0 in enumerate(c0s):
            shares = h0s(k) if callable(h0s) else h0s[k]
            x = low.sum([c0, *[s.data for s in shares]])
            try:
                ch, ratio = lift(low, low.intt(x, inplace=True), top)
            except OverflowError:
                raise ProtocolError(
                    f"refresh input {k} exceeds its declared bound: its masked value leaves the exact lift's "
                    f"range (a quarter of the level's modulus); refused"
                ) from None
            if bits is not None and ratio * big_q > self.largest_lift(bits, len(shares)) * (1 + 2**-40):
                raise ProtocolError(
                    f"refresh input {k} exceeds its declared bound: its masked value reaches 2^"
                    f"{math.log2(ratio * big_q):.1f}, {len(shares)} masks of {bits} bits allow 2^"
                    f"{math.log2(self.largest_lift(bits, len(shares))):.1f}; refused"
                )
            lifted.append(ch)
            del x, shares
        transformed = _Transformed(lifted, polys, outputs)
        del lifted  # each goes with its last output (`_Transformed.take`)
        out = []
        for o, (terms, shift) in enumerate(outputs):
            crp = crps(o) if callable(crps) else crps[o]
            shares = h1s(o) if callable(h1s) else h1s[o]
            terms_t = [(transformed.take(k, elts, post), a) for k, a, elts, post in terms]
            c0_top = top.ntt(combine(terms_t, shift, top), inplace=True)
            del terms_t
            top.add(c0_top, top.sum(s.data for s in shares), out=c0_top)
            pair = (c0_top, np.array(crp, copy=True))
            out.append(pair if emit is None else emit(pair))
            del crp, shares, pair
        return out
