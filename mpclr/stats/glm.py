"""A pooled GLM by Newton's method (IRLS) on encrypted per-hospital sums.

Each round the server sends every hospital the public coefficients (`glm.step`); each computes, on its own
rows, X^T W X, X^T (y - mu) and the sums the deviance needs, packs them (mpclr.stats.encoding) and
encrypts them under the collective key; the server adds the hospitals' ciphertexts; only that sum is
threshold-decrypted, to the researcher, who takes the Newton step and sends the next coefficients.

Rounds (each one decryption of one ciphertext, label "glm: ..."):
  0      at beta = 0: the pooled X^T X (times a constant weight), X^T y, the row count and the outcome's
         sums; from it the rank check (pivoted Cholesky on the equilibrated matrix, naming collinear
         columns), column scales, and the starting point (intercept at the link of the outcome's mean,
         as statsmodels starts near it). Done again with power-of-two balancing when its diagonal spans
         more than 2^20 (decoding would blur its small entries).
  1..    from the start: information matrix, score, deviance at beta_t; the step beta_t+1 = beta_t +
         H^-1 g (a step that raises the deviance is halved, as R's glm does). Converged when the
         deviance changed by at most `tol` (statsmodels' criterion); the result is the last step's
         coefficients, the covariance scale * H^-1 at the last round (statsmodels' convention).
A fit that stops must say why: perfect separation (deviance ~0), coefficients that still drift when the
deviance has settled (quasi-separation: the maximum-likelihood estimate does not exist), a singular
information matrix after the start, or no convergence in `max_iter` rounds. `ridge` (lambda > 0) adds
lambda / 2 * sum of squared non-intercept coefficients to the negative log-likelihood, which always has a
maximum; the result names the penalty.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ..errors import DataError, PrivacyWarning, ProtocolError
from .encoding import Scaling, packed_length, unpack
from .family import SCALARS, family
from .requests import GLMModel, step_fields

__all__ = ["GLMFitError", "fit_pooled", "pivoted_cholesky", "collinear_groups", "TWO_HOSPITALS_GLM", "LABEL"]

LABEL = "glm"
TWO_HOSPITALS_GLM = (
    "a pooled GLM with two hospitals: every hospital sees the public coefficients of each iteration, and at "
    "the solution the score sums to zero, so each learns the other's score vector X^T (y - mu) there (with "
    "three or more, only the others' sum)"
)
RANK_TOL = 1e-9  # pivots below this (on the equilibrated matrix, unit diagonal) mean linear dependence
DRIFT_TOL = 1e-3  # a settled fit moves a typical row's linear predictor by less than this in its last step
MAX_HALVINGS = 8
ZERO_TOL = 1e-9  # a packed diagonal entry below this times the row count is an all-zero column
_PERFECT = ("perfect separation: the deviance falls toward 0 ({dev:.2g}): the model predicts every row's outcome "
            "exactly, so the maximum-likelihood estimate does not exist; drop the separating predictors or fit with "
            "ridge > 0")


class GLMFitError(DataError):
    """A pooled GLM that cannot give a trustworthy answer: kind is 'separation', 'collinearity',
    'convergence' or 'singular'."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


# ------------------------------------------------------------------------------------------------
# linear algebra on the pooled information matrix (the researcher's, in the clear)
def pivoted_cholesky(A: np.ndarray, tol: float = RANK_TOL) -> tuple[list[int], list[int]]:
    """(independent columns in pivot order, dependent ones) of a symmetric positive semi-definite A with
    unit diagonal: each step takes the largest remaining diagonal; below `tol` the rest are dependent."""
    A = np.array(A, dtype=np.float64)
    n = A.shape[0]
    d = np.diag(A).copy()
    L = np.zeros((n, n))
    order: list[int] = []
    rest = list(range(n))
    while rest:
        j = max(rest, key=lambda k: d[k])
        if d[j] <= tol:
            break
        k = len(order)
        L[j, k] = math.sqrt(d[j])
        for i in rest:
            if i != j:
                L[i, k] = (A[i, j] - L[i, :k] @ L[j, :k]) / L[j, k]
                d[i] -= L[i, k] ** 2
        order.append(j)
        rest.remove(j)
    return order, rest


def collinear_groups(H: np.ndarray, names, tol: float = RANK_TOL, zero=None) -> list[str]:
    """For a rank-deficient information matrix: one sentence per dependent column, naming the columns it
    is a combination of (with their coefficients, from the equilibrated matrix). `zero`: the columns whose
    diagonal is indistinguishable from 0 (default: not positive)."""
    diag = np.diag(H).copy()
    zero = diag <= 0 if zero is None else np.asarray(zero, dtype=bool) | (diag <= 0)
    out = [f"{names[j]!r} is 0 in every row" for j in np.flatnonzero(zero)]
    live = np.flatnonzero(~zero)
    if live.size == 0:
        return out
    D = 1.0 / np.sqrt(diag[live])
    A = H[np.ix_(live, live)] * np.outer(D, D)
    order, dependent = pivoted_cholesky(A, tol)
    for j in dependent:
        coef = np.linalg.lstsq(A[np.ix_(order, order)], A[order, j], rcond=None)[0]
        # equilibrated columns are z_k = D_k x_k, so z_j = sum coef_k z_k is x_j = sum coef_k (D_k / D_j) x_k
        scale = D[order] / D[j]
        terms = [(live[k], c * s) for k, c, s in zip(order, coef, scale) if abs(c) > 1e-6]
        out.append(f"{names[live[j]]} = {_combination(terms, names)}")
    return out


def _combination(terms, names) -> str:
    """'a - b + 0.5 c' from [(index, coefficient)]."""
    text = ""
    for k, v in terms:
        mag = "" if abs(abs(v) - 1) < 1e-6 else f"{abs(v):.4g} "
        sign = "-" if v < 0 else "+"
        text += (f"{'-' if v < 0 else ''}" if not text else f" {sign} ") + mag + names[k]
    return text or "0"


# ------------------------------------------------------------------------------------------------
def _round(fed, model: GLMModel, beta, scaling: Scaling, label: str, by, log: list):
    """One glm.step to every hospital; the pooled (H, g, scalars) as the researcher decrypts them."""
    t0 = time.perf_counter()
    s = fed.server
    names = [p.name for p in fed.hospitals]
    request = step_fields(model, beta, scaling, label)
    replies = s.call_many("glm.step", {p: request for p in names})
    length = packed_length(model.p, len(SCALARS))
    handles = []
    for p in names:
        if int(replies[p]["length"]) != length:
            raise ProtocolError(f"{p} packed {replies[p]['length']} values for a model of {model.p} parameters")
        raw = s.uploads.load(replies[p]["ciphertext"], f"{p}'s glm.step", p)
        handles.append(s.import_ciphertext(raw, length))
    total = handles[0]
    for h in handles[1:]:
        total = s.add(total, h)
    values = fed.decrypt_many([total], by=by, labels=[label], level=None)[0]
    s.forget(*handles, total)
    H, g, sc = unpack(values, model.p, len(SCALARS), scaling)
    log.append({"label": label, "seconds": time.perf_counter() - t0})
    return H, g, dict(zip(SCALARS, sc.tolist()))


def _penalty(model: GLMModel, ridge: float) -> np.ndarray:
    pen = np.full(model.p, float(ridge))
    if model.intercept:
        pen[0] = 0.0
    return pen


def _start(model: GLMModel, fam, sums: dict) -> np.ndarray:
    beta = np.zeros(model.p)
    if model.intercept:
        mean = sums["sum_y"] / sums["rows"]
        if fam.name == "binomial":
            mean = min(max(mean, 1e-6), 1 - 1e-6)
            beta[0] = math.log(mean / (1 - mean))
        elif fam.name == "poisson":
            beta[0] = math.log(max(mean, 1e-6))
        else:
            beta[0] = mean
    return beta


def _drifting(step: np.ndarray, rms: np.ndarray, names) -> list[str]:
    drift = np.abs(step) * rms
    if not (drift.max(initial=0.0) > DRIFT_TOL):
        return []
    return [names[j] for j in np.argsort(-drift) if drift[j] > 0.1 * drift.max()]


def fit_pooled(fed, model: GLMModel, *, max_iter: int = 25, tol: float = 1e-8, ridge: float = 0.0, by=None,
               progress=None) -> dict:
    """Run the protocol on a federation whose hospitals hold the model's columns; returns the fit as a
    dict (mpclr.stats.result.GLMResult wraps it). Raises GLMFitError when no trustworthy fit exists."""
    if not isinstance(max_iter, int) or not 1 <= max_iter <= 200:
        raise ProtocolError(f"parameter max_iter must be an integer in 1..200, got {max_iter!r}")
    if not (tol > 0 and ridge >= 0 and math.isfinite(ridge)):
        raise ProtocolError(f"parameters tol > 0 and ridge >= 0 are needed, got tol={tol!r}, ridge={ridge!r}")
    if len(fed.hospitals) == 2:
        warnings.warn(TWO_HOSPITALS_GLM, PrivacyWarning, stacklevel=3)
    fam = family(model.family)
    names = model.names
    t0 = time.perf_counter()
    revealed0 = len(fed.researcher.revealed)
    log: list[dict] = []
    p = model.p

    # round 0: the design at beta = 0
    scaling = Scaling.unit(p, len(SCALARS))
    H, g, sums = _round(fed, model, np.zeros(p), scaling, f"{LABEL}: design (beta = 0)", by, log)
    n = float(round(sums["rows"]))
    if abs(sums["rows"] - n) > 1e-6 or n < 1:
        raise ProtocolError(f"the pooled row count decrypted to {sums['rows']!r}, not a positive integer")
    scaling = Scaling.balancing(H, np.array([sums[k] for k in SCALARS]), n)
    used = Scaling.unit(p, len(SCALARS))
    diag = np.diag(H)
    live = diag[diag > 0]
    if live.size and live.max() / live.min() > 2.0**20:
        H, g, sums = _round(fed, model, np.zeros(p), scaling, f"{LABEL}: design (beta = 0), balanced", by, log)
        used = scaling
    # a diagonal entry is 0 when, as packed (balanced towards n), it is lost in the decoding's rounding
    packed = np.diag(H) * np.exp2(2.0 * np.asarray(used.columns, dtype=np.float64))
    problems = collinear_groups(H, names, zero=packed <= ZERO_TOL * n)
    if problems:
        raise GLMFitError("collinearity", "the design is rank-deficient (detected on the pooled information "
                          "matrix): " + "; ".join(problems) + ". Drop one of each group of collinear columns "
                          "(e.g. one dummy of a full set beside the intercept)")
    w0 = {"binomial": 0.25}.get(fam.name, 1.0)  # the weight of every row at beta = 0
    rms = np.sqrt(np.maximum(np.diag(H), 0.0) / (n * w0))  # each column's root mean square

    pen = _penalty(model, ridge)
    beta = _start(model, fam, sums)
    history, prev, step, rounds, halvings = [], None, None, 0, 0
    converged = False
    while True:
        if rounds >= max_iter:
            moving = _drifting(step, rms, names) if step is not None else []
            last = history[-1]["deviance"]
            change = abs(last - history[-2]["deviance"]) if len(history) > 1 else float("nan")
            if fam.name == "binomial" and ridge == 0 and last < 1.0 and change > 0:
                raise GLMFitError("separation", _PERFECT.format(dev=last) + (
                    f" (the coefficients of {', '.join(moving)} grow fastest)" if moving else ""))
            if moving and ridge == 0:
                raise GLMFitError("separation", f"no convergence in {max_iter} rounds: the coefficients of "
                                  f"{', '.join(moving)} keep growing (deviance {last:.6g}, last change {change:.3g}); "
                                  "the outcome is (nearly) separated by them, so the maximum-likelihood estimate "
                                  "does not exist: drop them or fit with ridge > 0")
            raise GLMFitError("convergence", f"no convergence in {max_iter} rounds (deviance {last:.6g}, last change "
                              f"{change:.3g}); raise max_iter")
        rounds += 1
        H, g, sums = _round(fed, model, beta, scaling, f"{LABEL}: iteration {rounds}", by, log)
        sums["rows"] = n
        scaling = Scaling.balancing(H, np.array([sums[k] for k in SCALARS]), n)
        dev = sums["deviance"]
        objective = dev + float(pen @ beta**2)
        if progress is not None:
            progress(rounds, objective)
        if prev is not None and not (objective <= prev["objective"] + 1e-12 * abs(prev["objective"]) + tol):
            if halvings >= MAX_HALVINGS:
                raise GLMFitError("convergence", f"the deviance rose from {prev['objective']:.6g} to "
                                  f"{objective:.6g} and {MAX_HALVINGS} halvings of the step did not help")
            halvings += 1
            beta = (beta + prev["beta"]) / 2.0  # back halfway along the last step, as R's glm.fit does
            continue
        halvings = 0
        Hp = H + np.diag(pen)
        gp = g - pen * beta
        try:
            chol = np.linalg.cholesky(Hp)
        except np.linalg.LinAlgError:
            raise GLMFitError("singular", f"the pooled information matrix became singular at iteration {rounds} "
                              "(fitted values at 0 or 1: the outcome is separated); fit with ridge > 0") from None
        step = np.linalg.solve(chol.T, np.linalg.solve(chol, gp))
        history.append({"iteration": rounds, "deviance": dev, "objective": objective, "beta": beta.tolist()})
        if prev is not None and abs(objective - prev["objective"]) <= tol:
            converged = True
            break
        prev = {"objective": objective, "beta": beta.copy()}
        beta = beta + step
    if fam.name == "binomial" and ridge == 0 and dev < 1e-6 * n:
        raise GLMFitError("separation", _PERFECT.format(dev=dev))
    moving = _drifting(step, rms, names) if ridge == 0 else []
    if moving:
        raise GLMFitError("separation", f"quasi-separation: the deviance settled ({dev:.6g}) while the coefficients "
                          f"of {', '.join(moving)} still move by a whole unit of the linear predictor per iteration; "
                          "some rows are predicted exactly, so the maximum-likelihood estimate does not exist. Drop "
                          "these predictors or fit with ridge > 0")
    cov_unscaled = np.linalg.inv(Hp)
    params = beta + step
    df_resid = int(n) - p
    scale = sums["pearson"] / df_resid if fam.scale_estimated else 1.0
    return {
        "model": model,
        "params": params,
        "cov": scale * cov_unscaled,
        "scale": scale,
        "deviance": dev,
        "pearson_chi2": sums["pearson"],
        "null_deviance": fam.null_deviance(sums),
        "llf": fam.loglike(dev, sums, scale),
        "llnull": fam.loglike(fam.null_deviance(sums), sums, scale),
        "nobs": int(n),
        "df_resid": df_resid,
        "iterations": rounds,
        "converged": converged,
        "ridge": float(ridge),
        "history": history,
        "rounds": log,
        "hospitals": [p_.name for p_ in fed.hospitals],
        "revealed": list(fed.researcher.revealed[revealed0:]),
        "seconds": time.perf_counter() - t0,
    }
