"""Polynomials of Z_Q[X]/(X^N + 1) in RNS form: one uint64 row per prime, NTT laid out as SEAL 4.1 does.

Shares of the multiparty protocols must be bit-compatible with SEAL's key and ciphertext objects, so the
NTT here uses SEAL's roots (the minimal primitive 2N-th root of unity, powers stored in bit-reversed
order) and SEAL's butterfly order. All arithmetic is exact integer arithmetic in a small C extension.
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np

from . import _kernels

__all__ = ["Ring", "bit_reverse", "minimal_primitive_root", "u64_from_buffer", "ring_for"]


def u64_from_buffer(raw, offset: int, count: int) -> np.ndarray:
    """Little-endian uint64 values from bytes, without a copy where the machine is little-endian."""
    a = np.frombuffer(raw, dtype="<u8", count=count, offset=offset)
    return a.view(np.uint64) if a.dtype == np.uint64 else a.astype(np.uint64)


def bit_reverse(value: int, bits: int) -> int:
    return int(f"{value:0{bits}b}"[::-1], 2) if bits else 0


def _is_prime(q: int) -> bool:
    if q < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if q % p == 0:
            return q == p
    d, s = q - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):  # deterministic below 3.3e24
        x = pow(a, d, q)
        if x in (1, q - 1):
            continue
        for _ in range(s - 1):
            x = x * x % q
            if x == q - 1:
                break
        else:
            return False
    return True


def minimal_primitive_root(degree: int, q: int) -> int:
    """Smallest primitive `degree`-th root of unity mod q (what SEAL's try_minimal_primitive_root returns)."""
    if (q - 1) % degree:
        raise ValueError(f"modulus {q} is not 1 mod {degree}: no NTT of that size exists")
    for x in range(2, q):
        g = pow(x, (q - 1) // degree, q)
        if pow(g, degree // 2, q) == q - 1:
            break
    else:  # pragma: no cover - q prime guarantees a generator
        raise ValueError(f"no primitive {degree}-th root modulo {q}")
    best, cur, g2 = g, g, g * g % q
    for _ in range(degree // 2):
        best = min(best, cur)
        cur = cur * g2 % q
    return best


@cache
def _prime_tables(n: int, q: int):
    logn = n.bit_length() - 1
    psi = minimal_primitive_root(2 * n, q)
    powers = [1] * (2 * n)
    for i in range(1, 2 * n):
        powers[i] = powers[i - 1] * psi % q
    roots = [0] * n
    inv_roots = [0] * n
    for i in range(n):
        j = bit_reverse(i, logn)
        roots[j] = powers[i]
        inv_roots[j] = powers[(2 * n - i) % (2 * n)]
    shoup = [(w << 64) // q for w in roots]
    inv_shoup = [(w << 64) // q for w in inv_roots]
    n_inv = pow(n, -1, q)
    ratio = (1 << 128) // q
    as_u64 = lambda v: np.array(v, dtype=np.uint64)  # noqa: E731
    return (
        as_u64(roots),
        as_u64(shoup),
        as_u64(inv_roots),
        as_u64(inv_shoup),
        n_inv,
        (n_inv << 64) // q,
        (ratio >> 64, ratio & (2**64 - 1)),
        psi,
    )


class Ring:
    """R_Q = Z_Q[X]/(X^N+1) for Q a product of distinct NTT-friendly primes below 2^61.

    Arrays are uint64 of shape (len(moduli), N). Methods return new arrays unless `out` is given.
    """

    def __init__(self, n: int, moduli):
        moduli = tuple(int(q) for q in moduli)
        if n < 2 or n & (n - 1):
            raise ValueError(f"ring degree N must be a power of two, got {n}")
        if not moduli:
            raise ValueError("a ring needs at least one modulus")
        if len(set(moduli)) != len(moduli):
            raise ValueError(f"moduli must be distinct, got {moduli}")
        for q in moduli:
            if not 2 < q < 2**61 or not _is_prime(q) or (q - 1) % (2 * n):
                raise ValueError(f"modulus {q} must be a prime below 2^61 that is 1 mod 2N = {2 * n}")
        self.n = n
        self.moduli = moduli
        tables = [_prime_tables(n, q) for q in moduli]
        self.q = np.array(moduli, dtype=np.uint64)
        self._roots = np.ascontiguousarray(np.stack([t[0] for t in tables]))
        self._roots_shoup = np.ascontiguousarray(np.stack([t[1] for t in tables]))
        self._inv_roots = np.ascontiguousarray(np.stack([t[2] for t in tables]))
        self._inv_roots_shoup = np.ascontiguousarray(np.stack([t[3] for t in tables]))
        self._n_inv = np.array([t[4] for t in tables], dtype=np.uint64)
        self._n_inv_shoup = np.array([t[5] for t in tables], dtype=np.uint64)
        self._ratio = np.array([t[6] for t in tables], dtype=np.uint64).reshape(-1)
        self.psi = tuple(t[7] for t in tables)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.moduli), self.n)

    def __repr__(self) -> str:
        bits = "+".join(str(q.bit_length()) for q in self.moduli)
        return f"Ring(N={self.n}, moduli bits {bits})"

    def sub_ring(self, rows) -> Ring:
        """The ring over a subset of this ring's primes (e.g. the last prime only)."""
        return ring_for(self.n, tuple(self.moduli[i] for i in rows))

    # --- element checks -------------------------------------------------------------------------
    def check(self, a: np.ndarray, name: str = "polynomial") -> np.ndarray:
        """Accept one polynomial (K, N) or a stack (..., K, N) of uint64."""
        if not isinstance(a, np.ndarray) or a.dtype != np.uint64 or a.ndim < 2 or a.shape[-2:] != self.shape:
            got = getattr(a, "shape", type(a).__name__)
            raise ValueError(f"{name} must be a uint64 array of shape (..., {self.shape[0]}, {self.n}), got {got}")
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)

    def zeros(self, *lead: int) -> np.ndarray:
        return np.zeros((*lead, *self.shape), dtype=np.uint64)

    def is_reduced(self, a: np.ndarray) -> bool:
        return _kernels.all_reduced(self.check(a), self.q, self.n)

    # --- transforms -----------------------------------------------------------------------------
    def ntt(self, a: np.ndarray, inplace: bool = False) -> np.ndarray:
        a = self.check(a)
        out = a if inplace else a.copy()
        _kernels.ntt_forward(out, self._roots, self._roots_shoup, self.q, self.n)
        return out

    def intt(self, a: np.ndarray, inplace: bool = False) -> np.ndarray:
        a = self.check(a)
        out = a if inplace else a.copy()
        _kernels.ntt_inverse(
            out, self._inv_roots, self._inv_roots_shoup, self.q, self._n_inv, self._n_inv_shoup, self.n
        )
        return out

    # --- arithmetic (b may be one polynomial broadcast over a stack a) ---------------------------
    def _binary(self, kernel, a, b, out, *extra):
        a, b = self.check(a, "a"), self.check(b, "b")
        if b.shape != a.shape and b.shape != self.shape:
            raise ValueError(f"cannot combine shapes {a.shape} and {b.shape}")
        if out is None:
            out = np.empty_like(a)
        elif not isinstance(out, np.ndarray) or out.shape != a.shape or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous array of shape {a.shape}")
        kernel(out, a, b, self.q, *extra, self.n)
        return out

    def add(self, a, b, out=None) -> np.ndarray:
        return self._binary(_kernels.add_mod, a, b, out)

    def sub(self, a, b, out=None) -> np.ndarray:
        return self._binary(_kernels.sub_mod, a, b, out)

    def mul(self, a, b, out=None) -> np.ndarray:
        """Coefficient-wise product (a polynomial product when both are in NTT form)."""
        return self._binary(_kernels.mul_mod, a, b, out, self._ratio)

    def neg(self, a) -> np.ndarray:
        a = self.check(a)
        return self.sub(np.zeros_like(a), a)

    def sum(self, polys) -> np.ndarray:
        polys = list(polys)
        if not polys:
            raise ValueError("cannot sum an empty list of shares")
        acc = self.check(polys[0]).copy()
        for p in polys[1:]:
            _kernels.add_mod(acc, acc, self.check(p), self.q, self.n)
        return acc

    def mul_scalar_rows(self, a, scalars) -> np.ndarray:
        """Multiply row i by scalars[i] (already reduced mod q_i), e.g. a Lagrange or gadget factor."""
        b = np.repeat(np.asarray(scalars, dtype=np.uint64)[:, None], self.n, axis=1)
        return self.mul(a, b)

    def divide_by_last_prime(self, a) -> np.ndarray:
        """round(a / p) modulo the other primes, p this ring's last prime (a key-switch's special prime):
        NTT form in (..., K, N) and out (..., K - 1, N). Only p's row leaves the NTT domain."""
        a = self.check(a)
        p = self.moduli[-1]
        last = self.sub_ring([len(self.moduli) - 1]).intt(np.ascontiguousarray(a[..., -1:, :]))[..., 0, :]
        last = last.astype(np.int64)
        last = np.where(last > p // 2, last - np.int64(p), last)  # centred: rounds to nearest
        low = self.sub_ring(range(len(self.moduli) - 1))
        out = low.sub(np.ascontiguousarray(a[..., :-1, :]), low.ntt(low.from_signed(last), inplace=True))
        return low.mul_scalar_rows(out, [pow(p % q, -1, q) for q in low.moduli])

    # --- conversions ----------------------------------------------------------------------------
    def from_signed(self, coeffs) -> np.ndarray:
        """Lift small signed integer polynomials (..., N) with |c| < 2^62 to RNS (..., K, N), coefficient domain."""
        c = np.ascontiguousarray(coeffs, dtype=np.int64)
        if c.shape[-1:] != (self.n,):
            raise ValueError(f"expected {self.n} coefficients, got shape {c.shape}")
        out = np.empty((*c.shape[:-1], *self.shape), dtype=np.uint64)
        _kernels.lift_signed(out, c, self.q, self.n)
        return out

    def from_int_list(self, coeffs) -> np.ndarray:
        """Lift arbitrary Python integers (e.g. a CRT-lifted polynomial) to RNS, coefficient domain."""
        if len(coeffs) != self.n:
            raise ValueError(f"expected {self.n} coefficients, got {len(coeffs)}")
        rows = [np.array([int(c) % q for c in coeffs], dtype=np.uint64) for q in self.moduli]
        return np.ascontiguousarray(np.stack(rows))

    def to_centered_int_list(self, a) -> list[int]:
        """CRT-reconstruct a coefficient-domain polynomial to centered Python integers in (-Q/2, Q/2]."""
        a = self.check(a)
        big_q = 1
        for q in self.moduli:
            big_q *= q
        acc = [0] * self.n
        for i, q in enumerate(self.moduli):
            qi_hat = big_q // q
            factor = qi_hat * pow(qi_hat % q, -1, q)
            row = a[i].tolist()
            acc = [x + factor * r for x, r in zip(acc, row)]
        half = big_q // 2
        return [((x % big_q) - big_q) if (x % big_q) > half else (x % big_q) for x in acc]

    def to_centered_small(self, a) -> np.ndarray:
        """Centered coefficients of a polynomial known to be small (|c| < q_0 / 2), from the first row."""
        a = self.check(a)
        q0 = np.int64(self.moduli[0])
        row = a[0].astype(np.int64)
        return np.where(row > q0 // 2, row - q0, row)

    # --- automorphisms --------------------------------------------------------------------------
    def galois_permutation(self, galois_elt: int) -> np.ndarray:
        return _galois_table(self.n, galois_elt)

    def automorphism_ntt(self, a, galois_elt: int) -> np.ndarray:
        """X -> X^galois_elt applied to a polynomial in NTT form (a permutation of its slots)."""
        a = self.check(a)
        return np.ascontiguousarray(a[..., _galois_table(self.n, galois_elt)])


@cache
def _galois_table(n: int, galois_elt: int) -> np.ndarray:
    if galois_elt % 2 == 0 or not 0 < galois_elt < 2 * n:
        raise ValueError(f"Galois element must be odd and in (0, 2N), got {galois_elt}")
    logn = n.bit_length() - 1
    i = np.arange(n, 2 * n, dtype=np.uint64)
    rev = _bitrev_array(i, logn + 1)
    raw = ((np.uint64(galois_elt) * rev) >> np.uint64(1)) & np.uint64(n - 1)
    return _bitrev_array(raw, logn).astype(np.int64)


def _bitrev_array(x: np.ndarray, bits: int) -> np.ndarray:
    x = x.astype(np.uint64)
    out = np.zeros_like(x)
    for b in range(bits):
        out |= ((x >> np.uint64(b)) & np.uint64(1)) << np.uint64(bits - 1 - b)
    return out


@lru_cache(maxsize=64)
def ring_for(n: int, moduli: tuple[int, ...]) -> Ring:
    return Ring(n, moduli)
