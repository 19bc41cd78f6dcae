"""Clear-text metrics against scikit-learn and by hand."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from mpclr.errors import DataError
from mpclr.plain.metrics import auc, confusion, fold_metrics, mean_sd, roc_curve


@pytest.fixture(params=[0, 1, 2])
def scored(request):
    """Labels and scores with many ties (scores rounded to one decimal)."""
    rng = np.random.default_rng(request.param)
    y = (rng.random(400) < 0.3).astype(int)
    s = np.round(rng.normal(size=400) + 0.8 * y, 1)
    return y, s


def test_auc_matches_sklearn_with_ties(scored):
    y, s = scored
    assert len(np.unique(s)) < len(s) / 2
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_by_hand():
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    assert auc([1, 0, 1], [3.0, 1.0, 2.0]) == 1.0


def test_roc_curve_matches_sklearn(scored):
    y, s = scored
    fpr, tpr, thr = roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    assert thr[0] == np.inf
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc(y, s), abs=1e-12)  # ties: diagonal segments


def test_confusion_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.0, 0.0, -1.0, -2.0, 2.0])
    c = confusion(y, s, threshold=0.0)  # >= threshold is positive
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 2, 1, 1)
    assert c.accuracy == pytest.approx(3 / 6)
    assert c.sensitivity == pytest.approx(2 / 3)
    assert c.specificity == pytest.approx(1 / 3)
    assert c.ppv == pytest.approx(2 / 4)
    assert c.npv == pytest.approx(1 / 2)
    none_positive = confusion(y, s, threshold=10.0)
    assert none_positive.tp == 0 and np.isnan(none_positive.ppv) and none_positive.specificity == 1.0


def test_mean_sd():
    m, sd = mean_sd([0.8, 0.9, 1.0])
    assert m == pytest.approx(0.9) and sd == pytest.approx(0.1)
    assert np.isnan(mean_sd([0.5])[1])


def test_fold_metrics(scored):
    y, s = scored
    folds = np.arange(len(y)) % 4
    fm = fold_metrics(y, s, folds, threshold=0.2)
    for k in range(4):
        te = folds == k
        assert fm.auc[k] == pytest.approx(roc_auc_score(y[te], s[te]))
        c = confusion(y[te], s[te], 0.2)
        assert fm.accuracy[k] == c.accuracy and fm.npv[k] == c.npv
    assert fm.rows.tolist() == [100] * 4
    assert fm.summary()["auc"] == pytest.approx(mean_sd(fm.auc))
    assert "auc" in fm.table()


def test_errors():
    with pytest.raises(DataError, match="both classes, got 0 negatives and 3 positives"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="same length"):
        auc([0, 1], [0.1])
    with pytest.raises(DataError, match="row 2 is nan"):
        auc([0, 1], [0.1, np.nan])
