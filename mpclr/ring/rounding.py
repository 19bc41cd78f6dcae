"""A share's low bits, below the noise it carries, left off the wire (lossy compression by rounding).

A refresh share h (mpclr.protocols.refresh) is uniform modulo its level's modulus Q, but only its value up to
the smudging noise it already carries matters: the combiner adds the parties' shares and the result's low
bits are noise. So a party sends the integer

    v = round(h 2^B / Q) mod 2^B          (B = keep bits, a multiple of 8: B / 8 bytes per coefficient)

and the combiner takes h' = round(v Q / 2^B) mod Q, with |h' - h| <= Q / 2^(B+1) + 1/2 < 2^(drop - 1) + 1/2,
drop = bits(Q) - B. That error is uniform and independent of the message; `keep_bits` keeps it 2^-9.6 of the
smudging's variance (a rounding error of standard deviation 2^drop / sqrt(12) against sigma = 2^smudging_bits),
and the refresh's noise bound counts it (RefreshProtocol.noise_sigma). v is computed in fixed point with 128
guard bits (h / Q = frac(sum_i y_i / q_i), y_i the CRT digits), so it is the exact rounding except within
2^-60 of a tie; both directions are C kernels (_kernels.round_high / round_back: about 2 ms a top-level
share at train, the time of two NTTs), checked against Python integers in tests/ring/test_rounding.py.

Security: v is a function of h alone (post-processing), so it reveals nothing h did not, and everything the
server computes afterwards is a function of what it saw before. The rounding error needs no smudging of its
own: it is set by h's low bits, which the share's mask (uniform, 2^64 wider than the value it hides) and,
for h1, the fresh CRP make independent of the key up to the masks' statistical distance; it is extra noise,
not key-dependent noise. (The noise probe, tests/noise_probe.py, runs with smudging 0, where nothing is
dropped: `keep_bits` keeps every bit when there is no smudging to round under.)
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from ..errors import FormatError
from . import _kernels
from .rns import Ring

__all__ = ["keep_bits", "round_poly", "unround_poly"]

_MARGIN_BITS = 3  # drop <= smudging_bits - 3: rounding variance 2^(2 drop) / 12 <= 2^-9.6 of the smudging's


def keep_bits(modulus_bits: int, smudging_bits: float) -> int:
    """The bits kept per coefficient (a multiple of 8) for a modulus of `modulus_bits` bits whose shares carry
    smudging of sigma 2^smudging_bits; modulus_bits itself (nothing dropped) when the smudging is too small."""
    most = math.floor(smudging_bits) - _MARGIN_BITS
    if most < 1:
        return modulus_bits
    return 8 * -(-(modulus_bits - most) // 8)


_GUARD = 128  # fixed-point guard bits of h / Q = frac(sum_i y_i / q_i): error below 2^-60 of an output unit


def _limbs(value: int, count: int) -> np.ndarray:
    return np.array([(value >> (64 * j)) & (2**64 - 1) for j in range(count)], dtype=np.uint64)


@cache
def _plan(moduli: tuple[int, ...], keep: int):
    """The CRT factors (Q / q)^-1 mod q, the fixed-point reciprocals floor(2^(keep + guard) / q) and Q, as 64-bit
    limbs (a public function of the primes)."""
    big_q = math.prod(moduli)
    inv = np.array([pow((big_q // q) % q, -1, q) for q in moduli], dtype=np.uint64)
    width = keep + _GUARD
    words = -(-width // 64)
    recip = np.concatenate([_limbs((1 << width) // q, words) for q in moduli])
    q_words = -(-big_q.bit_length() // 64)
    pow32 = np.array([[pow(2, 32 * t, q) for t in range(2 * q_words)] for q in moduli], dtype=np.uint64)
    return inv, recip, _limbs(big_q, q_words), pow32


def round_poly(ring: Ring, coeffs: np.ndarray, keep: int) -> bytes:
    """Coefficient-domain residues (K, N) -> N integers of `keep` bits (little-endian, keep / 8 bytes each):
    round(h 2^keep / Q), with h / Q = frac(sum_i y_i / q_i), y_i = x_i (Q / q_i)^-1 mod q_i, in fixed point
    (the C kernel round_high)."""
    if keep % 8 or keep <= 0:
        raise ValueError(f"kept bits must be a positive multiple of 8, got {keep}")
    inv, recip, _, _ = _plan(ring.moduli, keep)
    words = -(-keep // 64)
    out = np.empty((ring.n, words), dtype=np.uint64)
    x = np.ascontiguousarray(ring.check(coeffs))
    _kernels.round_high(out, x, ring.q, ring._ratio, inv, recip, keep, ring.n)
    return np.ascontiguousarray(out.astype("<u8").view(np.uint8)[:, : keep // 8]).tobytes()


def unround_poly(ring: Ring, raw, keep: int, what: str) -> np.ndarray:
    """The inverse of round_poly up to the rounding: h' = round(v Q / 2^keep) mod Q as (K, N) coefficient-domain
    residues (the C kernel round_back)."""
    width = keep // 8
    if keep % 8 or keep <= 0 or len(raw) != width * ring.n:
        raise FormatError(f"{what}: {len(raw)} bytes, expected {width * ring.n} ({keep}-bit coefficients)")
    _, _, q_limbs, pow32 = _plan(ring.moduli, keep)
    words = -(-keep // 64)
    padded = np.zeros((ring.n, 8 * words), dtype=np.uint8)
    padded[:, :width] = np.frombuffer(bytes(raw), dtype=np.uint8).reshape(ring.n, width)
    v = np.ascontiguousarray(padded.view("<u8").astype(np.uint64))
    out = ring.zeros()
    _kernels.round_back(out, v, ring.q, ring._ratio, q_limbs, pow32, keep, ring.n)
    return out
