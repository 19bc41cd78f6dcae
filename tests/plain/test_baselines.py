"""scikit-learn on the same folds: per-fold models, out-of-fold scores, metrics."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mpclr.plain.baselines import sklearn_cv
from mpclr.plain.folds import assign_folds


def test_sklearn_cv_uses_the_given_folds():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 3))
    y = (X @ [1.0, -2.0, 0.5] + rng.normal(size=200) > 0).astype(int)
    base = sklearn_cv(X, y, 4, random_state=1)
    np.testing.assert_array_equal(base.fold_ids, assign_folds(y, 4, seed=1))
    for k in range(4):
        train = base.fold_ids != k
        ref = LogisticRegression(max_iter=10_000).fit(X[train], y[train])
        np.testing.assert_allclose(base.coef[k], np.r_[ref.intercept_, ref.coef_[0]], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(base.test_scores(k), ref.decision_function(X[~train]), rtol=1e-4, atol=1e-6)
        assert base.metrics.auc[k] == pytest.approx(roc_auc_score(y[~train], base.test_scores(k)))
    same = sklearn_cv(X, y, base.fold_ids)
    np.testing.assert_allclose(same.scores, base.scores)
