"""The GLM families with their canonical links, as statsmodels defines them: what a hospital computes on
its own rows at public coefficients, and what the researcher derives from the pooled sums.

For a canonical link, Fisher scoring is Newton's method: the information matrix is X^T W X with
W = V(mu) and the score is X^T (y - mu). A hospital also sums its rows' unit deviances, Pearson terms and
a few outcome-only sums (for the null deviance and the log-likelihood); `SCALARS` names them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from ..errors import ParameterError

__all__ = ["FAMILIES", "Family", "family", "SCALARS", "local_sums"]

FAMILIES = ("binomial", "gaussian", "poisson")

# per-hospital sums beside the information matrix and score, in this order
SCALARS = ("rows", "deviance", "pearson", "sum_y", "sum_y2", "sum_ylogy", "poisson_const")


def _xlogy(y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(y, dtype=np.float64)
    pos = y > 0
    out[pos] = y[pos] * np.log(y[pos])
    return out


class Family:
    """One family: name, link, and the per-row quantities of one IRLS step."""

    def __init__(self, name: str, link: str, scale_estimated: bool):
        self.name, self.link, self.scale_estimated = name, link, scale_estimated

    def __repr__(self) -> str:
        return f"Family({self.name!r}, link={self.link!r})"

    def check_outcome(self, y: np.ndarray) -> str | None:
        """Why y cannot be this family's outcome, or None."""
        if self.name == "binomial" and not np.isin(y, (0.0, 1.0)).all():
            bad = sorted(set(np.unique(y[~np.isin(y, (0.0, 1.0))]).tolist()))[:4]
            return f"a binomial outcome must be 0/1, found {bad}"
        if self.name == "poisson" and (y < 0).any():
            return f"a Poisson outcome must be counts (>= 0), found {float(y.min()):g}"
        return None

    def mean(self, eta: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            return np.exp(-np.logaddexp(0.0, -eta))
        if self.name == "poisson":
            return np.exp(np.minimum(eta, 700.0))
        return eta

    def weights(self, mu: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            return mu * (1.0 - mu)
        if self.name == "poisson":
            return mu
        return np.ones_like(mu)

    def deviance_terms(self, y: np.ndarray, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Unit deviances, computed from eta where mu underflows (separated rows)."""
        if self.name == "binomial":
            # -2 log mu for y = 1, -2 log(1 - mu) for y = 0, through log-sigmoids (exact far out)
            return 2.0 * np.where(y > 0.5, np.logaddexp(0.0, -eta), np.logaddexp(0.0, eta))
        if self.name == "poisson":
            return 2.0 * (_xlogy(y) - y * np.minimum(eta, 700.0) - y + mu)
        return (y - mu) ** 2

    def pearson_terms(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        var = self.weights(mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (y - mu) ** 2 / var
        return np.where(np.isfinite(out), out, 0.0) if self.name != "gaussian" else out

    # --- the researcher's side: from pooled sums ---------------------------------------------------
    def null_deviance(self, s: dict) -> float:
        n, sy = s["rows"], s["sum_y"]
        mean = sy / n
        if self.name == "binomial":
            terms = [v * math.log(m) for v, m in ((sy, mean), (n - sy, 1.0 - mean)) if v > 0.5]
            return -2.0 * float(sum(terms))
        if self.name == "poisson":
            return 2.0 * (s["sum_ylogy"] - (sy * math.log(mean) if sy > 0 else 0.0))
        return s["sum_y2"] - sy * sy / n

    def loglike(self, deviance: float, s: dict, scale: float) -> float:
        """statsmodels' llf: Bernoulli -dev / 2; Poisson -dev / 2 + sum(y log y - y - log y!); Gaussian the
        concentrated log-likelihood -n / 2 (log(2 pi RSS / n) + 1) (statsmodels' choice for identity link)."""
        if self.name == "binomial":
            return -deviance / 2.0
        if self.name == "poisson":
            return -deviance / 2.0 + s["poisson_const"]
        n = s["rows"]
        return -n / 2.0 * (math.log(2.0 * math.pi * deviance / n) + 1.0)


_FAMILIES = {
    "binomial": Family("binomial", "logit", False),
    "gaussian": Family("gaussian", "identity", True),
    "poisson": Family("poisson", "log", False),
}


def family(name) -> Family:
    if isinstance(name, Family):
        return name
    try:
        return _FAMILIES[str(name).lower()]
    except KeyError:
        raise ParameterError(f"parameter family must be one of {', '.join(FAMILIES)}, got {name!r}") from None


def local_sums(fam: Family, X: np.ndarray, y: np.ndarray, beta: np.ndarray):
    """What one hospital computes at the public coefficients: (X^T W X, X^T (y - mu), SCALARS values)."""
    eta = X @ beta
    mu = fam.mean(eta)
    w = fam.weights(mu)
    H = (X * w[:, None]).T @ X
    g = X.T @ (y - mu)
    scalars = {
        "rows": float(len(y)),
        "deviance": float(fam.deviance_terms(y, eta, mu).sum()),
        "pearson": float(fam.pearson_terms(y, mu).sum()),
        "sum_y": float(y.sum()),
        "sum_y2": float((y * y).sum()),
        "sum_ylogy": float(_xlogy(y).sum()),
        "poisson_const": float((_xlogy(y) - y - gammaln(y + 1.0)).sum()) if fam.name == "poisson" else 0.0,
    }
    return H, g, np.array([scalars[k] for k in SCALARS])
