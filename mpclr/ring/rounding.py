"""A share's low bits, below the noise it carries, left off the wire (lossy compression by rounding).

A refresh share h (mpclr.protocols.refresh) is uniform modulo its level's modulus Q, but only its value up to
the smudging noise it already carries matters: the combiner adds the parties' shares and the result's low
bits are noise. So a party sends the integer

    v = round(h 2^B / Q) mod 2^B          (B = keep bits, a multiple of 8: B / 8 bytes per coefficient)

and the combiner takes h' = round(v Q / 2^B) mod Q, with |h' - h| <= Q / 2^(B+1) + 1/2 < 2^(drop - 1) + 1/2,
drop = bits(Q) - B. That error is uniform and independent of the message; `drop_bits` keeps it 2^-9.6 of the
smudging's variance (a rounding error of standard deviation 2^drop / sqrt(12) against sigma = 2^smudging_bits),
and the refresh's noise bound counts it (RefreshProtocol.noise_sigma).

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
_M32 = np.uint64(0xFFFFFFFF)


def _limbs(value: int, count: int) -> list[int]:
    return [(value >> (32 * j)) & 0xFFFFFFFF for j in range(count)]


@cache
def _plan(moduli: tuple[int, ...], keep: int):
    """CRT factors (Q / q)^-1 mod q, the fixed-point reciprocals floor(2^(keep + guard) / q) and Q as 32-bit limbs,
    and 2^(32 t) mod q."""
    big_q = math.prod(moduli)
    inv = [pow((big_q // q) % q, -1, q) for q in moduli]
    width = keep + _GUARD
    recip = [_limbs((1 << width) // q, -(-width // 32)) for q in moduli]
    q_limbs = _limbs(big_q, -(-big_q.bit_length() // 32))
    h_limbs = -(-big_q.bit_length() // 32) + 1
    powers = np.array([[pow(2, 32 * t, q) for q in moduli] for t in range(h_limbs)], dtype=np.uint64)
    return big_q, np.array(inv, dtype=np.uint64), recip, q_limbs, powers


def _carry(acc: list[np.ndarray]) -> None:
    """Limbs of up to 64 bits -> 32-bit limbs (the last one keeps its overflow)."""
    for j in range(len(acc) - 1):
        acc[j + 1] += acc[j] >> np.uint64(32)
        acc[j] &= _M32


def round_poly(ring: Ring, coeffs: np.ndarray, keep: int) -> bytes:
    """Coefficient-domain residues (K, N) -> N integers of `keep` bits (little-endian, keep / 8 bytes each):
    round(h 2^keep / Q) with h / Q = frac(sum_i y_i / q_i), y_i = x_i (Q / q_i)^-1 mod q_i, in fixed point."""
    if keep % 8:
        raise ValueError(f"kept bits must be a multiple of 8, got {keep}")
    _, inv, recip, _, _ = _plan(ring.moduli, keep)
    y = ring.mul_scalar_rows(np.ascontiguousarray(coeffs, dtype=np.uint64), inv)
    width = keep + _GUARD
    count = -(-width // 32)
    acc = [np.zeros(ring.n, dtype=np.uint64) for _ in range(count + 1)]
    for yi, r in zip(y, recip):
        halves = (yi & _M32, yi >> np.uint64(32))
        for j, rj in enumerate(r):
            if not rj:
                continue
            for h, yh in enumerate(halves):
                p = yh * np.uint64(rj)  # < 2^64
                acc[j + h] += p & _M32
                acc[j + h + 1] += p >> np.uint64(32)
        _carry(acc)  # keep every limb far from overflow (each step adds below 2^34 to a 32-bit limb)
    acc[_GUARD // 32 - 1] += np.uint64(1 << 31)  # round half up at bit guard - 1
    _carry(acc)
    top = width - 32 * (count - 1)
    acc[count - 1] &= np.uint64((1 << top) - 1)  # mod 2^(keep + guard): the integer part of the sum drops
    out = np.stack(acc[_GUARD // 32 : count], axis=1).astype("<u4")  # (N, limbs) of the kept bits
    return np.ascontiguousarray(out.view(np.uint8)[:, : keep // 8]).tobytes()


def unround_poly(ring: Ring, raw, keep: int, what: str) -> np.ndarray:
    """The inverse of round_poly up to the rounding: h' = round(v Q / 2^keep) mod Q as (K, N) coefficient-domain
    residues."""
    width = keep // 8
    if keep % 8 or len(raw) != width * ring.n:
        raise FormatError(f"{what}: {len(raw)} bytes, expected {width * ring.n} ({keep}-bit coefficients)")
    _, _, _, q_limbs, powers = _plan(ring.moduli, keep)
    lv = -(-keep // 32)
    padded = np.zeros((ring.n, 4 * lv), dtype=np.uint8)
    padded[:, :width] = np.frombuffer(bytes(raw), dtype=np.uint8).reshape(ring.n, width)
    v = padded.view("<u4").astype(np.uint64)  # (N, lv)
    acc = [np.zeros(ring.n, dtype=np.uint64) for _ in range(lv + len(q_limbs) + 1)]
    for j in range(lv):
        vj = v[:, j]
        for t, qt in enumerate(q_limbs):
            p = vj * np.uint64(qt)
            acc[j + t] += p & _M32
            acc[j + t + 1] += p >> np.uint64(32)
        _carry(acc)
    a, b = divmod(keep - 1, 32)
    acc[a] += np.uint64(1 << b)  # + 2^(keep - 1): round half up
    _carry(acc)
    a, b = divmod(keep, 32)  # h = bits [keep, ...) of the product
    count = powers.shape[0]
    limbs = []
    for t in range(count):
        lo = acc[a + t] >> np.uint64(b) if a + t < len(acc) else np.zeros(ring.n, dtype=np.uint64)
        hi = (acc[a + t + 1] << np.uint64(32 - b)) & _M32 if b and a + t + 1 < len(acc) else np.uint64(0)
        limbs.append(lo | hi)
    out = ring.zeros()
    for t, limb in enumerate(limbs):  # sum_t limb_t 2^(32 t) mod q (limbs < 2^32 < every prime)
        term = ring.mul(np.ascontiguousarray(np.broadcast_to(limb, ring.shape)), np.repeat(powers[t][:, None], ring.n, axis=1))
        out = ring.add(out, term)
    return out
