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

Estimator. `NesterovLR` (mpclr.plain.nesterov, its own module: scikit-learn takes seconds to import,
and hospitals need only this module's numpy) is a scikit-learn classifier whose
`fit(X, y)` trains one model on the rows it is given. Cross-validation, every fold model trained at
once as the server trains them under encryption, is `fit_folds` (a number of folds or public fold ids)
and `fit_folds_z` (z-rows, the hospitals' fold ids).

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
from .sigmoid import evaluate, sigmoid, sigmoid_poly

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
    "FoldModels",
    "fit_folds",
    "fit_folds_z",
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


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """What Nesterov's iterations produce for K models at once (one per row of the masks)."""

    weights: np.ndarray  # (K, d + 1), intercept first
    history: np.ndarray  # (iterations + 1, K, d + 1): w_0 = 0, w_1, ...
    margin_history: np.ndarray  # (iterations, K): max |z . v_t| over each model's training rows
    fraction_outside: np.ndarray  # (iterations,): share of training margins outside [-R, R]
    curvature: float
    step_sizes: np.ndarray
    momentum: np.ndarray
    sigmoid_coef: np.ndarray


def _nesterov(model, Z, masks) -> _Run:
    """The algorithm of the module docstring on z-rows, for every model (row of `masks`) at once."""
    model._validate()
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] < 2:
        raise DataError(f"Z must be 2-D with an intercept column and at least one feature, got shape {Z.shape}")
    empty = np.flatnonzero(masks.sum(axis=1) == 0)
    if empty.size:
        raise DataError(f"fold model {int(empty[0])} has no training rows")
    lam = _top_eigenvalue(Z) if model.curvature is None else float(model.curvature)
    coef = sigmoid_poly(model.degree, model.interval)
    gammas = model.step_sizes(lam)
    etas = momentum_schedule(model.iterations)

    K, d1 = masks.shape[0], Z.shape[1]
    w = np.zeros((K, d1))
    v = np.zeros((K, d1))
    history = [w.copy()]
    margin_max = np.zeros((model.iterations, K))
    outside = np.zeros(model.iterations)
    R = float(model.interval)
    for t in range(model.iterations):
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
                f"(now {model.learning_rate!r}) or iterations")
        history.append(w.copy())
    log.info("NesterovLR: %d models, %d iterations, max |z.v| = %.3g (R = %g, %.2fx), %.2f%% of "
             "training margins outside [-R, R] at the last iteration", K, model.iterations,
             margin_max.max(), R, margin_max.max() / R, 100 * outside[-1])
    return _Run(w, np.stack(history), margin_max, outside, lam, gammas, etas, coef)


# ------------------------------------------------------------------------------------------------
# Cross-validation: every fold model at once, as the encrypted trainer trains them

@dataclass(frozen=True)
class FoldModels:
    """The fold models of one cross-validated training by `fit_folds`/`fit_folds_z`.

    weights : (folds, d + 1) one model per fold, intercept first (the layout of the decrypted encrypted
        models); fold_ids : (n,) the fold testing each row, -1 where no model holds the row out (a
        single model on every row); masks : (folds, n) 1 where row i trains model k; history :
        (iterations + 1, folds, d + 1) the weights after each iteration, from w_0 = 0; margin_history :
        (iterations, folds) max |z . v_t| over each model's training rows; fraction_outside :
        (iterations,) share of training margins outside [-R, R]; model : the NesterovLR whose design ran
    """

    model: object  # a NesterovLR (mpclr.plain.nesterov)
    weights: np.ndarray
    fold_ids: np.ndarray
    masks: np.ndarray
    history: np.ndarray
    margin_history: np.ndarray
    fraction_outside: np.ndarray
    curvature: float
    step_sizes: np.ndarray
    momentum: np.ndarray
    sigmoid_coef: np.ndarray

    @property
    def max_abs_margin(self) -> float:
        return float(self.margin_history.max())

    @property
    def interval(self) -> float:
        return float(self.model.interval)

    def decision_function(self, X) -> np.ndarray:
        """(folds, rows) log-odds w_0 + x . w of every fold model for every row of X."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.weights.shape[1] - 1:
            raise DataError(f"X has shape {X.shape}, expected (rows, {self.weights.shape[1] - 1})")
        return self.weights[:, :1] + self.weights[:, 1:] @ X.T

    def cv_scores(self, X) -> np.ndarray:
        """Out-of-fold log-odds: row i scored by the model that did not train on it. X holds the rows
        given to `fit_folds`, in the same order."""
        if (self.fold_ids < 0).any():
            raise ParameterError("cv_scores needs a cross-validated fit; this one trained a single model")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != self.fold_ids.size:
            raise DataError(f"cv_scores needs the {self.fold_ids.size} rows given to fit_folds, got shape {X.shape}")
        return self.decision_function(X)[self.fold_ids, np.arange(X.shape[0])]


def fit_folds(model, X, y, folds=5) -> FoldModels:
    """Every fold model of x-fold cross-validation on scaled features X and 0/1 labels y, trained at once.

    folds : a number of folds (assigned by `assign_folds(y, folds, model.random_state)`) or an array of
        fold ids 0..k-1 (a public assignment made elsewhere)
    """
    Z = make_z(X, y)
    return fit_folds_z(model, Z, fold_ids_for(folds, y, model.random_state))


def fit_folds_z(model, Z, fold_ids) -> FoldModels:
    """Train on z-rows (`make_z`) directly: exactly what the server sees, encrypted. fold_ids None trains
    one model on every row (the encrypted trainer's single model: a study with folds=1)."""
    Z = np.asarray(Z, dtype=np.float64)
    n = Z.shape[0] if Z.ndim == 2 else -1
    if fold_ids is None:
        fold_ids = np.full(n, -1)
        masks = np.ones((1, max(n, 0)))
    else:
        fold_ids = np.asarray(fold_ids)
        if fold_ids.shape != (n,):
            raise ParameterError(f"parameter fold_ids of fit_folds_z must hold one fold id per z-row ({n}), got "
                                 f"shape {fold_ids.shape}")
        masks = training_masks(fold_ids)
    run = _nesterov(model, Z, masks)
    return FoldModels(model, run.weights, fold_ids, masks, run.history, run.margin_history, run.fraction_outside,
                      run.curvature, run.step_sizes, run.momentum, run.sigmoid_coef)

