"""Clear-text evaluation metrics: the references the secure evaluation is compared with.

Scores are decision values (log-odds) unless said otherwise: a row is predicted positive when its score
is >= the threshold (0 for log-odds, 0.5 for probabilities: the same decision).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import binary_labels
from ..errors import DataError

__all__ = ["auc", "roc_curve", "Confusion", "confusion", "mean_sd", "FoldMetrics", "fold_metrics"]


def _check(y, scores) -> tuple[np.ndarray, np.ndarray]:
    y = binary_labels(y)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise DataError(f"labels and scores must be 1-D of the same length, got shapes {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        i = int(np.flatnonzero(~np.isfinite(s))[0])
        raise DataError(f"score of row {i + 1} is {s[i]} (not finite)")
    return y, s


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], s.size]
    ranks = np.empty(s.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def auc(y, scores) -> float:
    """Area under the ROC curve, as the Mann-Whitney statistic: the probability that a random positive
    scores above a random negative, ties counting one half."""
    y, s = _check(y, scores)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise DataError(f"AUC needs both classes, got {n0} negatives and {n1} positives")
    r = _average_ranks(s)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def roc_curve(y, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, from (0, 0) at threshold +inf to (1, 1).

    Point k predicts positive every row whose score is >= thresholds[k].
    """
    y, s = _check(y, scores)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise DataError(f"a ROC curve needs both classes, got {n0} negatives and {n1} positives")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]
    tp = np.cumsum(y_sorted)[last_of_group]
    fp = (last_of_group + 1) - tp
    fpr = np.r_[0.0, fp / n0]
    tpr = np.r_[0.0, tp / n1]
    return fpr, tpr, np.r_[np.inf, s_sorted[last_of_group]]


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold; rates are NaN when their denominator is zero (e.g. PPV with no
    predicted positives)."""

    tp: int
    fp: int
    tn: int
    fn: int

    @staticmethod
    def _ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def accuracy(self) -> float:
        return self._ratio(self.tp + self.tn, self.n)

    @property
    def sensitivity(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return self._ratio(self.tn, self.tn + self.fp)

    @property
    def ppv(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp)

    @property
    def npv(self) -> float:
        return self._ratio(self.tn, self.tn + self.fn)


def confusion(y, scores, threshold: float = 0.0) -> Confusion:
    """Confusion matrix when rows with score >= threshold are predicted positive."""
    y, s = _check(y, scores)
    pred = s >= threshold
    pos = y == 1
    return Confusion(tp=int((pred & pos).sum()), fp=int((pred & ~pos).sum()),
                     tn=int((~pred & ~pos).sum()), fn=int((~pred & pos).sum()))


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; NaN for a single value) across folds."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise DataError("mean_sd needs at least one value")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


METRICS = ("auc", "accuracy", "sensitivity", "specificity", "ppv", "npv")


@dataclass(frozen=True)
class FoldMetrics:
    """Per-fold test metrics of a cross-validation (each array has one entry per fold)."""

    auc: np.ndarray
    accuracy: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    ppv: np.ndarray
    npv: np.ndarray
    rows: np.ndarray
    threshold: float

    def summary(self) -> dict[str, tuple[float, float]]:
        """metric -> (mean, sd) across folds."""
        return {m: mean_sd(getattr(self, m)) for m in METRICS}

    def table(self) -> str:
        return "\n".join(f"{m:12s} {mu:.4f} +/- {sd:.4f}" for m, (mu, sd) in self.summary().items())


def fold_metrics(y, scores, fold_ids, threshold: float = 0.0) -> FoldMetrics:
    """Test metrics of every fold k on its own rows, from out-of-fold scores (row i scored by the
    model that did not train on it)."""
    y, s = _check(y, scores)
    fold_ids = np.asarray(fold_ids)
    if fold_ids.shape != y.shape:
        raise DataError(f"fold_ids has shape {fold_ids.shape}, expected {y.shape}")
    k = int(fold_ids.max()) + 1
    out = {m: np.empty(k) for m in METRICS}
    rows = np.bincount(fold_ids, minlength=k)
    for f in range(k):
        te = fold_ids == f
        if not te.any():
            raise DataError(f"fold {f} has no rows")
        out["auc"][f] = auc(y[te], s[te])
        c = confusion(y[te], s[te], threshold)
        for m in METRICS[1:]:
            out[m][f] = getattr(c, m)
    return FoldMetrics(rows=rows, threshold=float(threshold), **out)
