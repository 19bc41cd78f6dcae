"""How statistics are packed into one CKKS vector so that their pooled sum decrypts to full precision.

A slot's decryption error has two parts. CKKS noise (encryption, smudging of the partial decryptions):
absolute, about 4e-7 at `train` (scale 2^50, smudging sigma 2^20), more with larger smudging. Decoding
in double precision: about 1e-16 of the *largest* slot of the ciphertext, times a few tens (measured:
6e-6 absolute on unit entries beside entries of 1e12). So:

- every value is multiplied by 2^SHIFT (public) before encryption, which puts the noise 2^40 further
  down (1e-19 of a unit at `train`, 1e-13 even with smudging 2^40), and the ciphertext is decrypted at
  its own level (the top one: 360 bits of modulus at `train`), whose room holds it;
- entries are equilibrated with public powers of two so that no slot dwarfs another: entry (j, k) of the
  information matrix is multiplied by 2^(e_j + e_k), score entry j by 2^e_j, scalar s by 2^f_s, with the
  exponents chosen from the previous round's pooled values (diagonal and scalars brought near the row
  count). Powers of two are exact in floating point: the researcher divides them out without rounding.

The exponents are public (they travel with the request): each hospital learns powers of two of the
pooled diagonal and scalars, which the researcher has anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ProtocolError

__all__ = ["SHIFT", "Scaling", "packed_length", "pack", "unpack", "check_room", "MAX_EXPONENT"]

SHIFT = 40  # public pre-multiplier 2^SHIFT of every packed value
MAX_EXPONENT = 200  # equilibration exponents stay within +-200 (doubles reach 2^1023)
_MARGIN_BITS = 24  # room kept above the largest value: decoding expansion, sum over up to 64 hospitals


def packed_length(p: int, scalars: int) -> int:
    return p * (p + 1) // 2 + p + scalars


@dataclass(frozen=True)
class Scaling:
    """Public powers of two: e_j per column, f_s per scalar."""

    columns: tuple[int, ...]
    scalars: tuple[int, ...]

    @classmethod
    def unit(cls, p: int, scalars: int) -> Scaling:
        return cls((0,) * p, (0,) * scalars)

    def to_json(self) -> dict:
        return {"columns": list(self.columns), "scalars": list(self.scalars)}

    @classmethod
    def from_json(cls, d, p: int, scalars: int) -> Scaling:
        """The request's scaling, checked (a hospital refuses anything but small integer exponents)."""
        try:
            cols, scal = [int(v) for v in d["columns"]], [int(v) for v in d["scalars"]]
        except (TypeError, KeyError, ValueError):
            raise ProtocolError("the request's scaling must list integer exponents for columns and scalars") from None
        if len(cols) != p or len(scal) != scalars:
            raise ProtocolError(f"the request's scaling has {len(cols)} column and {len(scal)} scalar exponents, "
                                f"{p} and {scalars} expected")
        if any(abs(v) > MAX_EXPONENT for v in cols + scal):
            raise ProtocolError(f"the request's scaling exponents must lie within +-{MAX_EXPONENT}")
        return cls(tuple(cols), tuple(scal))

    @classmethod
    def balancing(cls, H: np.ndarray, scalars: np.ndarray, rows: float) -> Scaling:
        """Exponents that bring the pooled diagonal and scalars near the row count: chosen by the researcher
        from the last round's pooled values (zero where an entry is zero or not finite)."""
        def exponent(target: float, value: float) -> int:
            if not (value > 0 and math.isfinite(value)):
                return 0
            return int(np.clip(round(math.log2(target / value)), -MAX_EXPONENT, MAX_EXPONENT))

        target = max(float(rows), 1.0)
        cols = tuple(exponent(target, float(H[j, j])) // 2 for j in range(H.shape[0]))
        scal = tuple(exponent(target, abs(float(s))) for s in scalars)
        return cls(cols, scal)


def _factors(s: Scaling):
    c = np.exp2(np.asarray(s.columns, dtype=np.float64))
    return c, np.exp2(np.asarray(s.scalars, dtype=np.float64))


def pack(H: np.ndarray, g: np.ndarray, scalars: np.ndarray, s: Scaling) -> np.ndarray:
    """[2^(e_j+e_k) H_jk for j <= k, 2^e_j g_j, 2^f_s scalar_s] * 2^SHIFT."""
    c, f = _factors(s)
    upper = np.triu_indices(len(g))
    out = np.concatenate([(np.outer(c, c) * H)[upper], c * g, f * scalars])
    return out * 2.0**SHIFT


def unpack(values: np.ndarray, p: int, n_scalars: int, s: Scaling):
    """(H, g, scalars) from a decrypted pooled vector (the inverse of `pack`)."""
    values = np.asarray(values, dtype=np.float64).real / 2.0**SHIFT
    need = packed_length(p, n_scalars)
    if values.size < need:
        raise ProtocolError(f"the decrypted vector holds {values.size} values, {need} expected")
    c, f = _factors(s)
    t = p * (p + 1) // 2
    H = np.zeros((p, p))
    H[np.triu_indices(p)] = values[:t]
    H = H + np.triu(H, 1).T
    H = H / np.outer(c, c)
    g = values[t : t + p] / c
    return H, g, values[t + p : need] / f


def check_room(values: np.ndarray, ctx, what: str) -> None:
    """Refuse values whose pooled sum could overflow the top level's modulus (decrypted there)."""
    top = ctx.top_level
    bits = sum(ctx.params.coeff_bits[: top + 1]) - ctx.params.scale_bits - _MARGIN_BITS
    big = float(np.max(np.abs(values))) if values.size else 0.0
    if not np.isfinite(big) or big >= 2.0**bits:
        raise ProtocolError(f"{what}: a value of magnitude {big:.3g} does not fit the preset's modulus "
                            f"(at most 2^{bits} with the public pre-multiplier 2^{SHIFT}); rescale the column")
