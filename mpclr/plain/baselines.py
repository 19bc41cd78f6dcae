"""scikit-learn's logistic regression on the same folds and the same scaled features as the twin.

This is the accuracy reference: the twin (and so the encrypted trainer) is judged by how close its test
AUCs come to these, fold by fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .folds import fold_ids_for
from .metrics import FoldMetrics, fold_metrics

__all__ = ["BaselineCV", "sklearn_cv", "sklearn_fit"]


@dataclass(frozen=True)
class BaselineCV:
    """coef : (folds, d+1), intercept in column 0 (as the twin's FoldModels.weights)
    scores : (n,) out-of-fold log-odds; scores[fold_ids == k] are fold k's test scores
    metrics : per-fold AUC, accuracy, ... at threshold 0 on the log-odds
    """

    coef: np.ndarray
    scores: np.ndarray
    fold_ids: np.ndarray
    metrics: FoldMetrics

    def test_scores(self, fold: int) -> np.ndarray:
        return self.scores[self.fold_ids == fold]


def sklearn_cv(X, y, folds=5, *, C: float = 1.0, max_iter: int = 10_000, random_state: int | None = 0,
               threshold: float = 0.0) -> BaselineCV:
    """Fit `sklearn.linear_model.LogisticRegression(C, lbfgs)` on the training rows of every fold.

    folds : a number of folds (assigned by `assign_folds(y, folds, random_state)`) or an array of fold ids
    """
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise DataError(f"X and y do not match: shapes {X.shape} and {y.shape}")
    fold_ids = fold_ids_for(folds, y, random_state)
    k = int(fold_ids.max()) + 1
    coef = np.empty((k, X.shape[1] + 1))
    scores = np.empty(y.size)
    for f in range(k):
        test = fold_ids == f
        model = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter).fit(X[~test], y[~test])
        coef[f, 0] = model.intercept_[0]
        coef[f, 1:] = model.coef_[0]
        scores[test] = model.decision_function(X[test])
    return BaselineCV(coef=coef, scores=scores, fold_ids=fold_ids,
                      metrics=fold_metrics(y, scores, fold_ids, threshold))


def sklearn_fit(X, y, *, C: float = 1.0, max_iter: int = 10_000) -> np.ndarray:
    """(1, d+1), intercept first: `LogisticRegression(C, lbfgs)` on every row, beside a single model."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter).fit(np.asarray(X, dtype=np.float64), y)
    return np.concatenate([model.intercept_, model.coef_[0]])[None, :]
