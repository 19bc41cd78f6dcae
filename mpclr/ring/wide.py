"""Exact integer arithmetic of the collective refresh on integers of any width, in RNS form.

The refresh lifts masked values out of RNS form (an exact centered CRT lift), rotates-and-sums them
over slots (a signed permutation of coefficients), forms public linear combinations with dyadic
coefficients a / 2^s, rounds, and reduces modulo each prime of the top level. Its masks are 64 bits
wider than the values they hide, so the integers involved exceed 128 bits at the larger presets.
Nothing here ever forms them: an integer is carried as its *channels*, its residues modulo each target
prime and modulo 2^64, and

- the centered lift of X from residues x_i modulo q_0..q_l is X = sum_i y_i Q/q_i - v Q with
  y_i = x_i (Q/q_i)^-1 mod q_i and the wrap count v = round(sum_i y_i / q_i), which float64 gives
  exactly while |X| <= Q/4 (the refresh keeps |X| far below that: `lift` checks it);
- a rotate-and-sum and a linear combination act on every channel alike;
- round(S / 2^s) mod p = (S - r) (2^s)^-1 mod p + [r >= 2^(s-1)] with r = S mod 2^s (s <= 64), which the
  2^64 channel holds exactly;
- a product with a public integer polynomial (a slot mask, encoded) is formed modulo every prime by NTT and
  lifted back for its residue modulo 2^64, exact while it stays below a quarter of the modulus (`multiply_round`).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import numpy as np

from . import _kernels
from .rns import Ring

__all__ = [
    "Channels", "dyadic", "dyadic_row", "lift", "mask_bytes", "random_masks", "rotate_and_sum", "combine", "MAX_SHIFT",
    "multiply_round",
]

MAX_SHIFT = 64  # s <= 64: the 2^64 channel holds the remainder exactly
_COEFF_BITS = 62  # |a| < 2^62


class Channels:
    """An integer polynomial as its residues modulo each prime of `ring` (rows, coefficient domain) and
    modulo 2^64 (`low`)."""

    __slots__ = ("ring", "rows", "low")

    def __init__(self, ring: Ring, rows: np.ndarray, low: np.ndarray):
        self.ring = ring
        self.rows = np.ascontiguousarray(rows, dtype=np.uint64)
        self.low = np.ascontiguousarray(low, dtype=np.uint64)

    def head(self, count: int) -> np.ndarray:
        """The residues modulo the first `count` primes (a lower level's ring), a copy."""
        return self.rows[:count].copy()

    @classmethod
    def from_ints(cls, ring: Ring, values) -> Channels:
        """From Python integers (tests and diagnostics)."""
        values = [int(v) for v in values]
        return cls(ring, ring.from_int_list(values), np.array([v % 2**64 for v in values], dtype=np.uint64))


# ------------------------------------------------------------------------------ lift
@cache
def _lift_plan(src: tuple[int, ...], dst: tuple[int, ...]):
    big_q = math.prod(src)
    hats = [big_q // q for q in src]
    inv = np.array([pow(h % q, -1, q) for h, q in zip(hats, src)], dtype=np.uint64)
    hat = np.array([[h % p for p in dst] for h in hats], dtype=np.uint64)
    qmod = np.array([big_q % p for p in dst], dtype=np.uint64)
    hat_low = np.array([h % 2**64 for h in hats], dtype=np.uint64)
    return inv, hat, qmod, hat_low, big_q % 2**64


def lift(src: Ring, residues: np.ndarray, dst: Ring) -> tuple[Channels, float]:
    """The centered lift of a coefficient-domain polynomial over `src` (q_0..q_l), as channels over
    `dst` (whose first primes are src's), and max |X| / Q (a bound check; the lift is exact below 1/4)."""
    if dst.moduli[: len(src.moduli)] != src.moduli:
        raise ValueError("the target ring must extend the source ring's primes")
    x = src.check(residues)
    inv, hat, qmod, hat_low, q_low = _lift_plan(src.moduli, dst.moduli)
    rows = dst.zeros()
    low = np.empty(dst.n, dtype=np.uint64)
    ratio = _kernels.rns_lift(rows, low, x, dst.q, inv, hat, qmod, hat_low, q_low, dst.n)
    if ratio > 0.25:
        raise OverflowError(f"a lifted value reaches {ratio:.3f} of its modulus: too large for an exact lift")
    return Channels(dst, rows, low), ratio


# ------------------------------------------------------------------------------ masks
@cache
def _mask_plan(moduli: tuple[int, ...], bits: int):
    words = -(-bits // 64)
    pow64 = np.array([[pow(2, 64 * w, q) for q in moduli] for w in range(words)], dtype=np.uint64)
    offset = 1 << (bits - 1)
    return words, pow64, np.array([offset % q for q in moduli], dtype=np.uint64), offset % 2**64


def mask_bytes(n: int, bits: int) -> int:
    """Random bytes `random_masks` takes for N coefficients of `bits` bits."""
    return 8 * n * -(-bits // 64)


def random_masks(raw: bytes, ring: Ring, bits: int) -> Channels:
    """Uniform integers in [-2^(bits-1), 2^(bits-1)) from `mask_bytes(N, bits)` random bytes (a CSPRNG's)."""
    if not 2 <= bits <= 1024:
        raise ValueError(f"mask width must be in [2, 1024] bits, got {bits}")
    words, pow64, offset, offset_low = _mask_plan(ring.moduli, bits)
    n = ring.n
    if len(raw) != mask_bytes(n, bits):
        raise ValueError(f"need {mask_bytes(n, bits)} random bytes for {bits}-bit masks, got {len(raw)}")
    w = np.frombuffer(raw, dtype="<u8").reshape(words, n).copy()
    top_bits = bits - 64 * (words - 1)
    if top_bits < 64:
        w[-1] &= np.uint64((1 << top_bits) - 1)
    rows = ring.zeros()
    low = np.empty(n, dtype=np.uint64)
    _kernels.rns_masks(rows, low, w, ring.q, pow64, offset, offset_low, n)
    return Channels(ring, rows, low)


# ------------------------------------------------------------------------------ rotate-and-sum
def rotate_and_sum(ch: Channels, galois_elements) -> Channels:
    """x + sigma_k(x) for each Galois element in turn (a copy): CKKS's rotate-and-sum over slots,
    applied to exact integers, with no key switching."""
    out = Channels(ch.ring, ch.rows.copy(), ch.low.copy())
    elts = np.asarray([int(e) for e in galois_elements], dtype=np.uint64)
    if elts.size:
        _kernels.rns_rotsum(out.rows, out.low, ch.ring.q, elts, ch.ring.n)
    return out


# ------------------------------------------------------------------------------ combination
def dyadic(coef: Fraction | float, max_bits: int = _COEFF_BITS, max_shift: int = MAX_SHIFT) -> tuple[int, int]:
    """(a, s) with a / 2^s the closest dyadic rational to coef, |a| < 2^max_bits and s <= max_shift.
    Every party and the combiner use the same pair, so rounding is shared."""
    c = Fraction(coef)
    if c == 0:
        return 0, 0
    s = max_bits - 1 - math.ceil(math.log2(abs(c)))
    s = max(0, min(s, max_shift))
    a = round(c * (1 << s))
    while abs(a) >= 1 << max_bits:
        s -= 1
        a = round(c * (1 << s))
    if s < 0:
        raise OverflowError(f"coefficient {float(c):.3g} is too large for an exact refresh")
    return int(a), s


def dyadic_row(coefs) -> tuple[list[int], int]:
    """One shared shift for a linear combination: a_t / 2^s for every coefficient, |a_t| < 2^62, s <= 64."""
    shifts = [dyadic(c)[1] for c in coefs if Fraction(c) != 0]
    s = min(shifts) if shifts else 0
    return [int(round(Fraction(c) * (1 << s))) for c in coefs], s


def combine(terms: list[tuple[Channels, int]], shift: int, ring: Ring | None = None) -> np.ndarray:
    """round(sum_t a_t v_t / 2^shift) (half up) modulo each prime of the channels' ring, as RNS rows
    in the coefficient domain; exact for integers of any width."""
    if not 0 <= shift <= MAX_SHIFT:
        raise ValueError(f"shift must be in [0, {MAX_SHIFT}], got {shift}")
    if not terms:
        if ring is None:
            raise ValueError("an empty combination needs its ring")
        return ring.zeros()
    ring = terms[0][0].ring
    if any(ch.ring is not ring for ch, _ in terms):
        raise ValueError("every term of a combination must be over one ring")
    rows = np.ascontiguousarray(np.stack([ch.rows for ch, _ in terms]))
    lows = np.ascontiguousarray(np.stack([ch.low for ch, _ in terms]))
    coeffs = np.array([[int(a) % q for q in ring.moduli] for _, a in terms], dtype=np.uint64)
    coeffs_low = np.array([int(a) % 2**64 for _, a in terms], dtype=np.uint64)
    inv2s = np.array([pow(2, -shift, q) for q in ring.moduli], dtype=np.uint64)
    out = ring.zeros()
    _kernels.rns_combine(out, rows, lows, coeffs, coeffs_low, int(shift), inv2s, ring.q, ring.n)
    return out


# ------------------------------------------------------------------------------ plaintext product
def multiply_round(ch: Channels, poly_ntt: np.ndarray, shift: int) -> Channels:
    """round(x * p / 2^shift) for a public integer polynomial p, given in NTT form over the channels' ring (a
    slot mask encoded at scale 2^shift): a slot-wise product applied to exact integers. The product is formed
    modulo every prime and lifted back (exact while below a quarter of the modulus: `lift` checks it), which
    also gives its residue modulo 2^64 for the rounding."""
    ring = ch.ring
    rows = ring.ntt(ch.rows)
    ring.mul(rows, poly_ntt, out=rows)
    product, _ = lift(ring, ring.intt(rows, inplace=True), ring)
    rounded, _ = lift(ring, combine([(product, 1)], shift), ring)
    return rounded
