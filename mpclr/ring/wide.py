"""Signed integers up to 2^126 per coefficient, as (hi: int64, lo: uint64) array pairs.

The collective refresh lifts masked values out of RNS form (exact CRT), forms public linear
combinations with dyadic coefficients a / 2^s, rounds, and reduces back modulo each prime. Doing that
on Python integers costs milliseconds per polynomial; the C kernels here do it exactly in microseconds.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import _kernels
from .rns import Ring

__all__ = ["Wide", "dyadic", "dyadic_row", "random_wide", "crt_lift", "combine_mod", "rotate_and_sum", "MAX_BITS"]

MAX_BITS = 126  # values and moduli products handled exactly
_COEFF_BITS = 62  # |a| < 2^62 for the int64 coefficient of a term


class Wide:
    __slots__ = ("hi", "lo")

    def __init__(self, hi: np.ndarray, lo: np.ndarray):
        self.hi = np.ascontiguousarray(hi, dtype=np.int64)
        self.lo = np.ascontiguousarray(lo, dtype=np.uint64)

    def to_ints(self) -> list[int]:
        """Python integers (for tests and diagnostics)."""
        return [(int(h) << 64) + int(low) for h, low in zip(self.hi, self.lo)]

    @classmethod
    def from_ints(cls, values) -> Wide:
        values = [int(v) for v in values]
        return cls(
            np.array([v >> 64 for v in values], dtype=np.int64),
            np.array([v & (2**64 - 1) for v in values], dtype=np.uint64),
        )


def random_wide(raw: bytes, n: int, bits: int) -> Wide:
    """Uniform integers in [-2^(bits-1), 2^(bits-1)) from 16 n random bytes (a CSPRNG's)."""
    if not 2 <= bits <= MAX_BITS:
        raise ValueError(f"mask width must be in [2, {MAX_BITS}] bits, got {bits}")
    words = np.frombuffer(raw, dtype="<u8", count=2 * n).reshape(2, n)
    lo, hi_u = words[0].copy(), words[1].copy()
    if bits > 64:
        hi = (hi_u & np.uint64((1 << (bits - 64)) - 1)).astype(np.int64) - np.int64(1 << (bits - 65))
        return Wide(hi, lo)
    v = (
        (lo & np.uint64((1 << bits) - 1)).astype(np.int64) - np.int64(1 << (bits - 1))
        if bits < 64
        else (lo - np.uint64(1 << 63)).view(np.int64)
    )
    return Wide(np.where(v < 0, -1, 0).astype(np.int64), v.view(np.uint64))


def rotate_and_sum(w: Wide, galois_elements, n: int) -> Wide:
    """x + sigma_k(x) for each Galois element in turn, on exact integers (a copy): CKKS's rotate-and-sum
    over slots applied to a lifted plaintext or a mask, with no key switching."""
    out = Wide(w.hi.copy(), w.lo.copy())
    elts = np.asarray(list(galois_elements), dtype=np.uint64)
    if elts.size:
        _kernels.wide_rotsum(out.hi, out.lo, elts, n)
    return out


def dyadic(coef: Fraction | float, max_bits: int = _COEFF_BITS) -> tuple[int, int]:
    """(a, s) with a / 2^s the closest dyadic rational to coef and |a| < 2^max_bits (relative error
    below 2^-(max_bits - 1)). Every party and the combiner use the same pair, so rounding is shared."""
    c = Fraction(coef)
    if c == 0:
        return 0, 0
    s = max_bits - 1 - math.ceil(math.log2(abs(c)))
    s = max(0, min(s, 127))
    a = round(c * (1 << s))
    while abs(a) >= 1 << max_bits:
        s -= 1
        a = round(c * (1 << s))
    return int(a), s


def dyadic_row(coefs) -> tuple[list[int], int]:
    """One shared shift for a linear combination: a_t / 2^s for every coefficient, |a_t| < 2^62."""
    shifts = [dyadic(c)[1] for c in coefs if Fraction(c) != 0]
    s = min(shifts) if shifts else 0
    return [int(round(Fraction(c) * (1 << s))) for c in coefs], s


def combine_mod(ring: Ring, terms: list[tuple[Wide, int]], shift: int) -> np.ndarray:
    """round(sum_t a_t v_t / 2^shift) modulo each prime of `ring`, as RNS rows (coefficient domain)."""
    if not terms:
        return ring.zeros()
    hi = np.ascontiguousarray(np.stack([w.hi for w, _ in terms]))
    lo = np.ascontiguousarray(np.stack([w.lo for w, _ in terms]))
    coeffs = np.array([a for _, a in terms], dtype=np.int64)
    out = ring.zeros()
    if not _kernels.scaled_sum_mod(out, hi, lo, coeffs, int(shift), ring.q, ring._ratio, ring.n):
        raise OverflowError("a refreshed coefficient exceeded 2^127: bound or coefficients too large")
    return out


def crt_lift(ring: Ring, residues: np.ndarray) -> Wide:
    """Centered CRT reconstruction of RNS rows (coefficient domain), for moduli products below 2^126."""
    big_q = math.prod(ring.moduli)
    if big_q.bit_length() > MAX_BITS or len(ring.moduli) > 3:
        raise ValueError(f"exact lift supports moduli products below 2^{MAX_BITS} (got {big_q.bit_length()} bits)")
    garner, prefix = [], 1
    for q in ring.moduli:
        garner.append(pow(prefix % q, -1, q) if prefix > 1 else 1)
        prefix *= q
    hi = np.empty(ring.n, dtype=np.int64)
    lo = np.empty(ring.n, dtype=np.uint64)
    _kernels.crt_lift_128(
        hi,
        lo,
        ring.check(residues),
        ring.q,
        np.array(garner, dtype=np.uint64),
        big_q >> 64,
        big_q & (2**64 - 1),
        ring.n,
    )
    return Wide(hi, lo)
