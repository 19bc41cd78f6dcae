"""The plaintext twin: float64, step for step the algorithm the server runs under encryption.

Comparing an encrypted run with this twin isolates the error that homomorphic encryption adds; comparing
the twin with scikit-learn isolates the error of the algorithm itself (polynomial sigmoid, few
iterations). So the twin uses only what CKKS offers without comparisons or encrypted division: sums,
products, and public constants (step sizes, momentum, 1/n_k, fold masks) multiplying encrypted values.

The algorithm (Kim et al., BMC Med Genomics 2018, the iDASH 2017 winner; HELR's z-form):

    z_i = y'_i * [1, x_i]   with y' = 2y - 1           each hospital, before encryption
    u_ki = z_i . v_k                                     margin of row i under model k
    g_k = (1/n_k) sum_i m_ki * p(-u_ki) * z_i            ascent direction of the log-likelihood
    w_k <- v_k + gamma_t * g_k                           (old w_k kept for the momentum step)
    v_k <- (1 - eta_t) * w_k(new) + eta_t * w_k(old)

where p is the least-squares polynomial of the sigmoid on [-R, R] (`sigmoid.sigmoid_poly`), m_ki = 1
when row i trains model k (it is not in fold k) and n_k = sum_i m_ki. With the exact sigmoid, g_k is
the gradient of the mean log-likelihood (1/n_k) sum_i m_ki log sigmoid(z_i . v_k), since
d/du log sigmoid(u) = sigmoid(-u). All fold models train at once, from w = v = 0.

Step size. gamma_t = learning_rate / (c_1 * curvature) / (t + 1)^decay, where c_1 = p'(0) is the
polynomial's slope at 0 and `curvature` is the largest eigenvalue of the Gram matrix
[1, x]^T [1, x] / n over all rows. c_1 * curvature bounds the surrogate's curvature at the start, so
learning_rate = 1 is the classical 1/L step. The Gram matrix is label-free (y'^2 = 1, so
Z^T Z = [1, x]^T [1, x]); with standardized features it is diag(1, correlation matrix), computable from
aggregate cross-products (`curvature_from_aggregates`). A fixed step cannot serve all data sets: 30
correlated features (breast cancer, curvature 13) diverge at steps that 9 weakly correlated ones
(curvature about 2) need to converge in a few iterations.

Momentum. lambda_0 = 0, lambda_{s+1} = (1 + sqrt(1 + 4 lambda_s^2)) / 2, and iteration t = 0, 1, ...
uses eta_t = (1 - lambda_{t+1}) / lambda_{t+2}: 0, -0.28, -0.43, -0.53, ... (Nesterov's sequence as in
Bubeck's notes, starting from lambda_1 = 1). Read with t from 0, the iDASH formula would give
eta_0 = (1 - lambda_0) / lambda_1 = 1, which sets v_1 = w_0 and throws the first gradient step away.

Scaling. Features are standardized with the mean and standard deviation (population, ddof 0) of all
rows of all hospitals, computed from the aggregates count, sum and sum of squares
(`standardize_from_aggregates`), so only those aggregates are revealed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..data import binary_labels
from ..errors import DataError, ParameterError
from .folds import fold_ids_for, training_masks
from .sigmoid import DEGREES, evaluate, sigmoid, sigmoid_poly

__all__ = [
    "Standardization",
    "standardization_stats",
    "standardize_from_aggregates",
    "curvature",
    "curvature_from_aggregates",
    "make_z",
    "momentum_schedule",
    "surrogate_gradient",
    "mean_log_likelihood",
    "NesterovLR",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# Scaling from aggregates

@dataclass(frozen=True)
class Standardization:
    """Per-feature mean and standard deviation; `transform` gives (x - mean) / std."""

    mean: np.ndarray
    std: np.ndarray
    count: int

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.size:
            raise DataError(f"X has shape {X.shape}, expected (rows, {self.mean.size}) to match the scaling")
        return (X - self.mean) / self.std


def standardize_from_aggregates(count, sums, sums_of_squares) -> Standardization:
    """Mean and std (ddof 0) from the only aggregates revealed: row count, per-feature sums and sums of
    squares over all hospitals (in the encrypted path, decrypted sums of the hospitals' local sums)."""
    n = float(count)
    sums = np.asarray(sums, dtype=np.float64).ravel()
    sq = np.asarray(sums_of_squares, dtype=np.float64).ravel()
    if not n >= 2:
        raise DataError(f"standardization needs at least 2 rows, got count={count!r}")
    if sq.shape != sums.shape:
        raise DataError(f"sums has {sums.size} features but sums_of_squares has {sq.size}")
    mean = sums / n
    var = sq / n - mean**2
    # an exactly constant column has var 0; decrypted aggregates carry noise, so allow a relative slack
    tiny = 1e-12 * np.maximum(sq / n, 1.0)
    bad = np.flatnonzero(var <= tiny)
    if bad.size:
        j = int(bad[0])
        raise DataError(f"feature column {j + 1} has (near) zero variance (mean {mean[j]:g}, variance "
                        f"{var[j]:g}); a constant column cannot be standardized, drop it")
    return Standardization(mean=mean, std=np.sqrt(var), count=int(round(n)))


def standardization_stats(X) -> Standardization:
    """The same statistics straight from a plaintext matrix, through the same aggregates."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"X must be 2-D (rows x features), got shape {X.shape}")
    return standardize_from_aggregates(X.shape[0], X.sum(axis=0), (X**2).sum(axis=0))


def curvature(X) -> float:
    """Largest eigenvalue of [1, X]^T [1, X] / n for (already scaled) features X of all rows."""
    X = np.asarray(X, dtype=np.float64)
    return _top_eigenvalue(np.hstack([np.ones((X.shape[0], 1)), X]))


def _top_eigenvalue(M) -> float:
    """Largest eigenvalue of M^T M / n; for M = Z it equals that of [1, X] since every y'^2 = 1."""
    return float(np.linalg.eigvalsh(M.T @ M / M.shape[0])[-1])


def curvature_from_aggregates(count, sums, cross_products) -> float:
    """The same eigenvalue for standardized features, from the label-free aggregates count, per-feature
    sums and the d x d matrix of summed cross-products sum_i x_i x_i^T of the raw features.

    The standardized Gram matrix is diag(1, correlation matrix); its diagonal of cross-products holds
    the sums of squares that `standardize_from_aggregates` uses, so one aggregate serves both.
    """
    cross = np.asarray(cross_products, dtype=np.float64)
    if cross.ndim != 2 or cross.shape[0] != cross.shape[1]:
        raise DataError(f"cross_products must be a square d x d matrix, got shape {cross.shape}")
    scale = standardize_from_aggregates(count, sums, np.diag(cross))
    n = float(count)
    cov = cross / n - np.outer(scale.mean, scale.mean)
    corr = cov / np.outer(scale.std, scale.std)
    return float(max(1.0, np.linalg.eigvalsh((corr + corr.T) / 2)[-1]))


# ------------------------------------------------------------------------------------------------
# The algorithm's pieces (module level so tests and the encrypted path can check each one)

def make_z(X, y) -> np.ndarray:
    """z_i = (2 y_i - 1) * [1, x_i]: the one matrix a hospital encrypts (labels folded in)."""
    X = np.asarray(X, dtype=np.float64)
    y = binary_labels(y, "y")
    if X.ndim != 2:
        raise DataError(f"X must be 2-D (rows x features), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise DataError(f"y has shape {y.shape}, expected ({X.shape[0]},) to match X")
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise DataError(f"X row {i + 1}, column {j + 1} is {X[i, j]} (not finite)")
    sign = 2.0 * y - 1.0
    return sign[:, None] * np.hstack([np.ones((X.shape[0], 1)), X])


def momentum_schedule(iterations: int) -> np.ndarray:
    """eta_t for t = 0..iterations-1 (see the module docstring): 0, -0.28, -0.43, ..."""
    lam = [0.0]
    for _ in range(iterations + 1):
        lam.append((1.0 + np.sqrt(1.0 + 4.0 * lam[-1] ** 2)) / 2.0)
    return np.array([(1.0 - lam[t + 1]) / lam[t + 2] for t in range(iterations)])


def surrogate_gradient(Z, masks, V, coefficients=None) -> tuple[np.ndarray, np.ndarray]:
    """g_k = (1/n_k) sum_i m_ki p(-z_i . v_k) z_i for every model k, and the margins u = V Z^T.

    coefficients=None uses the exact sigmoid (then g is the gradient of `mean_log_likelihood`).
    """
    U = V @ Z.T                                               # (K, n) margins
    S = sigmoid(-U) if coefficients is None else evaluate(coefficients, -U)
    n_k = masks.sum(axis=1)
    return (masks * S) @ Z / n_k[:, None], U


def mean_log_likelihood(Z, masks, V) -> np.ndarray:
    """(1/n_k) sum_i m_ki log sigmoid(z_i . v_k) per model: the objective the surrogate climbs."""
    U = V @ Z.T
    return (masks * -np.logaddexp(0.0, -U)).sum(axis=1) / masks.sum(axis=1)


def _single(folds) -> bool:
    """folds=1 asks for one model trained on every row."""
    return isinstance(folds, int | np.integer) and not isinstance(folds, bool) and folds == 1


# ------------------------------------------------------------------------------------------------
class NesterovLR:
    """x-fold cross-validated logistic regression by Nesterov's accelerated gradient, the plaintext
    twin of the encrypted trainer (see the module docstring for the exact algorithm).

    Parameters
    ----------
    iterations : gradient iterations (each costs one collective refresh under encryption)
    degree : degree of the sigmoid polynomial, 3, 5 or 7
    learning_rate : step in units of 1 / (c_1 * curvature), the surrogate's 1/L step at the start
    interval : R, the polynomial fits the sigmoid on [-R, R]
    decay : gamma_t = gamma_0 / (t + 1)^decay (0: constant, 1: the iDASH 10/(t+1) shape)
    curvature : largest eigenvalue of [1, x]^T [1, x] / n over all rows; None computes it in `fit`
        from the rows given (the encrypted path gets it from `curvature_from_aggregates`)
    random_state : seed of the public fold assignment when `fit` is given a number of folds

    Defaults (degree 5, R = 8, 6 iterations, learning_rate 1, constant step) were chosen on edin, lbw,
    pcs, uis, breast cancer and a synthetic set; benchmarks/accuracy_defaults.py reproduces the check.
    Degree 3 and 7 polynomials turn away from the sigmoid outside [-R, R] in the direction that
    pushes confident rows further out (their leading coefficient is negative), so margins run away on
    nearly separable data such as breast cancer; degree 5's leading term pulls them back.
    """

    def __init__(self, iterations: int = 6, degree: int = 5, learning_rate: float = 1.0,
                 interval: float = 8.0, *, decay: float = 0.0, curvature: float | None = None,
                 random_state: int | None = 0):
        self.iterations = iterations
        self.degree = degree
        self.learning_rate = learning_rate
        self.interval = interval
        self.decay = decay
        self.curvature = curvature
        self.random_state = random_state

    def __repr__(self) -> str:
        return (f"NesterovLR(iterations={self.iterations!r}, degree={self.degree!r}, "
                f"learning_rate={self.learning_rate!r}, interval={self.interval!r}, decay={self.decay!r}, "
                f"curvature={self.curvature!r}, random_state={self.random_state!r})")

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("iterations", "degree", "learning_rate", "interval",
                                              "decay", "curvature", "random_state")}

    # --------------------------------------------------------------------------------------------
    def _validate(self) -> None:
        it = self.iterations
        if isinstance(it, bool) or not isinstance(it, int | np.integer) or it < 1:
            raise ParameterError(f"parameter iterations of NesterovLR must be an integer >= 1, got {it!r}")
        if self.degree not in DEGREES or isinstance(self.degree, bool):
            raise ParameterError(f"parameter degree of NesterovLR must be one of {DEGREES}, got {self.degree!r}")
        for pname in ("learning_rate", "interval"):
            v = getattr(self, pname)
            if isinstance(v, bool) or not isinstance(v, int | float | np.number) or not np.isfinite(v) or v <= 0:
                raise ParameterError(f"parameter {pname} of NesterovLR must be a positive number, got {v!r}")
        d = self.decay
        if isinstance(d, bool) or not isinstance(d, int | float | np.number) or not np.isfinite(d) or d < 0:
            raise ParameterError(f"parameter decay of NesterovLR must be a number >= 0, got {d!r}")
        c = self.curvature
        if c is not None and (isinstance(c, bool) or not isinstance(c, int | float | np.number)
                              or not np.isfinite(c) or c <= 0):
            raise ParameterError(f"parameter curvature of NesterovLR must be a positive number or None, got {c!r}")

    def step_sizes(self, curvature_value: float) -> np.ndarray:
        """gamma_t for every iteration, given the curvature (public constants)."""
        self._validate()
        c1 = sigmoid_poly(self.degree, self.interval)[1]
        t = np.arange(self.iterations)
        return self.learning_rate / (c1 * curvature_value) / (t + 1.0) ** self.decay

    def schedule(self, curvature_value: float) -> list[tuple[float, float]]:
        """[(gamma_t, eta_t)] for every iteration: the public constants an encrypted run needs."""
        return list(zip(self.step_sizes(curvature_value).tolist(),
                        momentum_schedule(self.iterations).tolist(), strict=True))

    def fit(self, X, y, folds=5) -> NesterovLR:
        """Train one model per fold on scaled features X (rows x features) and 0/1 labels y.

        folds : a number of folds (assigned by `assign_folds(y, folds, random_state)`), an array of
            fold ids 0..k-1 (a public assignment made elsewhere), or 1 for a single model on all rows
        """
        Z = make_z(X, y)
        return self.fit_z(Z, 1 if _single(folds) else fold_ids_for(folds, y, self.random_state))

    def fit_z(self, Z, folds) -> NesterovLR:
        """Train on z-rows (`make_z`) directly: exactly what the server sees, encrypted."""
        self._validate()
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] < 2:
            raise DataError(f"Z must be 2-D with an intercept column and at least one feature, got shape {Z.shape}")
        n = Z.shape[0]
        if _single(folds):
            fold_ids = np.full(n, -1)
            masks = np.ones((1, n))
        else:
            fold_ids = np.asarray(folds)
            if fold_ids.shape != (n,):
                raise ParameterError(f"parameter folds of fit_z must be 1 or {n} fold ids (fit also takes a "
                                     f"number of folds), got shape {fold_ids.shape}")
            masks = training_masks(fold_ids)
        empty = np.flatnonzero(masks.sum(axis=1) == 0)
        if empty.size:
            raise DataError(f"fold model {int(empty[0])} has no training rows")
        lam = _top_eigenvalue(Z) if self.curvature is None else float(self.curvature)
        coef = sigmoid_poly(self.degree, self.interval)
        gammas = self.step_sizes(lam)
        etas = momentum_schedule(self.iterations)

        K, d1 = masks.shape[0], Z.shape[1]
        w = np.zeros((K, d1))
        v = np.zeros((K, d1))
        history = [w.copy()]
        margin_max = np.zeros((self.iterations, K))
        outside = np.zeros(self.iterations)
        R = float(self.interval)
        for t in range(self.iterations):
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                g, U = surrogate_gradient(Z, masks, v, coef)
            train_u = np.abs(np.where(masks > 0, U, 0.0))
            margin_max[t] = train_u.max(axis=1)
            outside[t] = (train_u > R).sum() / masks.sum()
            with np.errstate(over="ignore", invalid="ignore"):
                w_new = v + gammas[t] * g
                v = (1.0 - etas[t]) * w_new + etas[t] * w
            w = w_new
            if not (np.isfinite(w).all() and np.isfinite(v).all()):
                raise ParameterError(
                    f"NesterovLR diverged at iteration {t + 1}: weights are no longer finite (max |z.v| "
                    f"reached {margin_max[: t + 1].max():.3g} against R = {R:g}); lower learning_rate "
                    f"(now {self.learning_rate!r}) or iterations")
            history.append(w.copy())

        self.coef_ = w
        self.intercept_ = w[:, 0].copy()
        self.history_ = np.stack(history)
        self.margin_history_ = margin_max
        self.fraction_outside_ = outside
        self.max_abs_margin_ = float(margin_max.max())
        self.curvature_ = lam
        self.step_sizes_ = gammas
        self.momentum_ = etas
        self.sigmoid_coef_ = coef
        self.fold_ids_ = fold_ids
        self.masks_ = masks
        self.n_iter_ = self.iterations
        self.n_features_in_ = d1 - 1
        log.info("NesterovLR: %d models, %d iterations, max |z.v| = %.3g (R = %g, %.2fx), %.2f%% of "
                 "training margins outside [-R, R] at the last iteration", K, self.iterations,
                 self.max_abs_margin_, R, self.max_abs_margin_ / R, 100 * outside[-1])
        return self

    # --------------------------------------------------------------------------------------------
    def _check_fitted(self, X) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise ParameterError("this NesterovLR is not fitted yet; call fit first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise DataError(f"X has shape {X.shape}, expected (rows, {self.n_features_in_})")
        return X

    def decision_function(self, X) -> np.ndarray:
        """(models, rows) log-odds w_0 + x . w of every fold model for every row of X."""
        X = self._check_fitted(X)
        return self.coef_[:, :1] + self.coef_[:, 1:] @ X.T

    def predict_proba(self, X) -> np.ndarray:
        """(models, rows) probability of class 1 (the exact sigmoid: prediction is not encrypted here)."""
        return sigmoid(self.decision_function(X))

    def cv_scores(self, X) -> np.ndarray:
        """Out-of-fold log-odds: row i scored by the model that did not train on it. X holds the rows
        given to `fit`, in the same order."""
        X = self._check_fitted(X)
        if (self.fold_ids_ < 0).any():
            raise ParameterError("cv_scores needs a cross-validated fit; this one trained a single model")
        if X.shape[0] != self.fold_ids_.size:
            raise DataError(f"cv_scores needs the {self.fold_ids_.size} rows given to fit, got {X.shape[0]}")
        s = self.decision_function(X)
        return s[self.fold_ids_, np.arange(X.shape[0])]
