"""Polynomial stand-ins for the sigmoid, the only non-polynomial step of LR training under CKKS.

CKKS evaluates additions and multiplications only, so the sigmoid is replaced by its least-squares
polynomial on a symmetric interval [-R, R]: the continuous L2 projection, minimising
integral_{-R}^{R} (sigmoid(x) - p(x))^2 dx over polynomials of the given odd degree. Because
sigmoid(x) - 1/2 is odd, the projection is 1/2 plus odd powers only (the even coefficients are exactly
zero, and are returned as zeros so that ``coefficients[k]`` is always the coefficient of x^k).
On [-8, 8] degree 3 gives HELR's 0.5 + 0.15012 x - 0.001593 x^3 (Kim et al. 2018).

Outside [-R, R] the polynomials diverge fast (degree 3 goes to -inf as x -> +inf), so inputs must be
kept inside the interval; the trainer records how far they reach.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import ParameterError

__all__ = ["DEGREES", "sigmoid", "sigmoid_poly", "evaluate", "max_error"]

DEGREES = (3, 5, 7)
_QUADRATURE_NODES = 200  # Gauss-Legendre: exact for polynomials of degree < 400, sigmoid is smooth


def sigmoid(x):
    """The exact logistic function, computed without overflow for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check(degree, interval) -> tuple[int, float]:
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree not in DEGREES:
        raise ParameterError(f"parameter degree must be one of {DEGREES}, got {degree!r}")
    try:
        r = float(interval)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter interval must be a positive number R (for [-R, R]), "
                             f"got {interval!r}") from None
    if not np.isfinite(r) or r <= 0:
        raise ParameterError(f"parameter interval must be a positive number R (for [-R, R]), got {interval!r}")
    return int(degree), r


def sigmoid_poly(degree: int = 3, interval: float = 8.0) -> np.ndarray:
    """Coefficients c_0..c_degree (increasing powers) of the L2 projection of the sigmoid on [-R, R].

    Solved on t = x / R in [-1, 1] (well conditioned), then rescaled: c_k = a_k / R^k.
    """
    degree, r = _check(degree, interval)
    return _projection(degree, r).copy()


@lru_cache(maxsize=32)
def _projection(degree: int, r: float) -> np.ndarray:
    t, weights = np.polynomial.legendre.leggauss(_QUADRATURE_NODES)
    powers = np.arange(1, degree + 1, 2)
    basis = t[:, None] ** powers[None, :]                    # odd monomials on [-1, 1]
    gram = basis.T @ (weights[:, None] * basis)
    rhs = basis.T @ (weights * (sigmoid(r * t) - 0.5))
    odd = np.linalg.solve(gram, rhs) / r ** powers
    coef = np.zeros(degree + 1)
    coef[0] = 0.5
    coef[powers] = odd
    coef.flags.writeable = False
    return coef


def evaluate(coefficients, x) -> np.ndarray:
    """p(x) for coefficients in increasing powers (Horner's rule)."""
    coef = np.asarray(coefficients, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, coef[-1])
    for c in coef[-2::-1]:
        out = out * x + c
    return out


def max_error(degree: int = 3, interval: float = 8.0, points: int = 20001) -> float:
    """max |p(x) - sigmoid(x)| over a dense grid on [-R, R]."""
    degree, r = _check(degree, interval)
    x = np.linspace(-r, r, points)
    return float(np.abs(evaluate(_projection(degree, r), x) - sigmoid(x)).max())
