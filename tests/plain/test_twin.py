"""The plaintext twin: scaling from aggregates, the gradient, Nesterov's steps, folds trained at once,
and the twin as a scikit-learn classifier."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import check_estimator

from mpclr.errors import DataError, ParameterError
from mpclr.plain.folds import assign_folds, training_masks
from mpclr.plain.nesterov import NesterovLR
from mpclr.plain.sigmoid import sigmoid, sigmoid_poly
from mpclr.plain.twin import (
    curvature,
    curvature_from_aggregates,
    fit_folds,
    fit_folds_z,
    make_z,
    mean_log_likelihood,
    momentum_schedule,
    standardization_stats,
    standardize_from_aggregates,
    surrogate_gradient,
)


@pytest.fixture
def problem():
    """Correlated raw features with assorted scales, labels from a logistic model."""
    rng = np.random.default_rng(11)
    n, d = 300, 4
    A = rng.normal(size=(d, d))
    X = rng.normal(size=(n, d)) @ A * rng.uniform(0.5, 20, d) + rng.uniform(-50, 50, d)
    scale = standardization_stats(X)
    Xs = scale.transform(X)
    y = (rng.random(n) < sigmoid(Xs @ rng.normal(size=d) + 0.3)).astype(int)
    return X, Xs, y


# ------------------------------------------------------------------------------------------- scaling
def test_standardization_from_aggregates_matches_numpy(problem):
    X, Xs, _ = problem
    s = standardize_from_aggregates(len(X), X.sum(0), (X**2).sum(0))
    np.testing.assert_allclose(s.mean, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.std, X.std(0), rtol=1e-9)
    np.testing.assert_allclose(Xs.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Xs.std(0), 1, rtol=1e-9)


def test_constant_column_is_refused_by_name():
    X = np.c_[np.arange(10.0), np.full(10, 3.0)]
    with pytest.raises(DataError, match="feature column 2 has .*zero variance"):
        standardization_stats(X)


def test_curvature_from_aggregates_matches_the_gram_matrix(problem):
    X, Xs, y = problem
    lam = curvature_from_aggregates(len(X), X.sum(0), X.T @ X)
    assert lam == pytest.approx(curvature(Xs), rel=1e-9)
    Z = make_z(Xs, y)  # labels drop out: y'^2 = 1
    assert lam == pytest.approx(np.linalg.eigvalsh(Z.T @ Z / len(Z))[-1], rel=1e-9)
    assert lam > 1.5  # the fixture's features are correlated, so well above the uncorrelated value 1


def test_make_z():
    X = np.array([[1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(make_z(X, [1, 0]), [[1, 1, 2], [-1, -3, 4]])
    with pytest.raises(DataError, match=r"y must be 0/1, found values \[-1, 1\]"):
        make_z(X, [1, -1])
    with pytest.raises(DataError, match="row 2, column 1"):
        make_z(np.array([[1.0], [np.nan]]), [0, 1])


# ------------------------------------------------------------------------------------------- gradient
def test_exact_gradient_equals_finite_differences(problem):
    _, Xs, y = problem
    Z = make_z(Xs, y)
    masks = training_masks(assign_folds(y, 3, seed=0))
    V = np.random.default_rng(2).normal(scale=0.5, size=(3, Z.shape[1]))
    g, _ = surrogate_gradient(Z, masks, V)
    h = 1e-6
    for j in range(Z.shape[1]):
        E = np.zeros_like(V)
        E[:, j] = h
        fd = (mean_log_likelihood(Z, masks, V + E) - mean_log_likelihood(Z, masks, V - E)) / (2 * h)
        np.testing.assert_allclose(g[:, j], fd, rtol=1e-6, atol=1e-9)


def test_polynomial_gradient_is_the_stated_sum(problem):
    _, Xs, y = problem
    Z = make_z(Xs, y)
    fold = assign_folds(y, 4, seed=1)
    masks = training_masks(fold)
    V = np.random.default_rng(3).normal(scale=0.3, size=(4, Z.shape[1]))
    c = sigmoid_poly(5, 8.0)
    g, U = surrogate_gradient(Z, masks, V, c)
    for k in range(4):
        train = fold != k
        u = Z[train] @ V[k]
        p = 0.5 - c[1] * u - c[3] * u**3 - c[5] * u**5   # p(-u), p odd around 1/2
        np.testing.assert_allclose(g[k], (p[:, None] * Z[train]).sum(0) / train.sum(), rtol=1e-12)
        np.testing.assert_allclose(U[k], Z @ V[k], rtol=1e-12)


# ------------------------------------------------------------------------------------------- Nesterov
def test_momentum_schedule():
    eta = momentum_schedule(5)
    lam = [0.0]
    for _ in range(7):
        lam.append((1 + np.sqrt(1 + 4 * lam[-1] ** 2)) / 2)
    np.testing.assert_allclose(eta, [(1 - lam[t + 1]) / lam[t + 2] for t in range(5)])
    assert eta[0] == 0.0 and eta[1] == pytest.approx(-0.2818, abs=1e-4)
    assert (np.diff(eta) < 0).all()


def test_iterations_by_hand(problem):
    """Replay three iterations with the formulas of the module docstring."""
    _, Xs, y = problem
    Z = make_z(Xs, y)
    fold = assign_folds(y, 5, seed=0)
    m = fit_folds(NesterovLR(iterations=3), Xs, y, fold)
    masks = training_masks(fold)
    n_k = masks.sum(1)
    c = sigmoid_poly(5, 8.0)
    gam = 1.0 / (c[1] * curvature(Xs))
    eta = momentum_schedule(3)
    w = np.zeros((5, Z.shape[1]))
    v = w.copy()
    for t in range(3):
        u = v @ Z.T
        p = 0.5 - c[1] * u - c[3] * u**3 - c[5] * u**5
        g = (masks * p) @ Z / n_k[:, None]
        w_new = v + gam * g
        v = (1 - eta[t]) * w_new + eta[t] * w
        w = w_new
        np.testing.assert_allclose(m.history[t + 1], w, rtol=1e-12, atol=1e-15)
    # the first step from zero: p(0) = 1/2, so w_1 = gamma * (1/2) * mean of the training z
    np.testing.assert_allclose(m.history[1], gam * 0.5 * masks @ Z / n_k[:, None], rtol=1e-12)
    np.testing.assert_allclose(np.array(m.model.schedule(curvature(Xs))), np.c_[[gam] * 3, eta], rtol=1e-12)


def test_folds_trained_together_equal_folds_trained_alone(problem):
    _, Xs, y = problem
    fold = assign_folds(y, 5, seed=2)
    lam = curvature(Xs)  # public and global: the same for every fold model
    together = fit_folds(NesterovLR(iterations=6), Xs, y, fold)
    Z = make_z(Xs, y)
    for k in range(5):
        train = fold != k
        alone = NesterovLR(iterations=6, curvature=lam).fit(Xs[train], y[train])  # the estimator: one model
        np.testing.assert_allclose(together.history[:, k], alone.history_[:, 0], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(together.margin_history[:, k], alone.margin_history_[:, 0], rtol=1e-11)
        np.testing.assert_allclose(alone.coef_[0], together.weights[k, 1:], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(alone.intercept_, together.weights[k, :1], rtol=1e-11, atol=1e-14)
        # z-rows without fold ids: the single model a study with folds=1 trains (mpclr.pipeline.run_cv)
        single = fit_folds_z(NesterovLR(iterations=6, curvature=lam), Z[train], None)
        np.testing.assert_array_equal(single.history[:, 0], alone.history_[:, 0])


def test_fitted_state_and_predictions(problem):
    _, Xs, y = problem
    m = fit_folds(NesterovLR(iterations=4), Xs, y, 5)
    np.testing.assert_array_equal(m.fold_ids, assign_folds(y, 5, seed=0))
    assert m.weights.shape == (5, Xs.shape[1] + 1) and m.history.shape == (5, 5, Xs.shape[1] + 1)
    assert not m.history[0].any()
    np.testing.assert_array_equal(m.history[-1], m.weights)
    assert m.margin_history[0].max() == 0.0  # v_0 = 0
    assert m.max_abs_margin == m.margin_history.max() > 0
    s = m.decision_function(Xs[:7])
    assert s.shape == (5, 7)
    np.testing.assert_allclose(s[2], m.weights[2, 0] + Xs[:7] @ m.weights[2, 1:])
    oof = m.cv_scores(Xs)
    full = m.decision_function(Xs)
    np.testing.assert_array_equal(oof, full[m.fold_ids, np.arange(len(y))])


def test_margins_are_reported(problem):
    _, Xs, y = problem
    m = fit_folds(NesterovLR(iterations=5, interval=2.0), Xs, y, 5)
    assert m.max_abs_margin > 2.0 and m.fraction_outside[-1] > 0
    # margins are those of v_t, the point where the gradient is taken; recompute the last one
    eta = m.momentum[-2]
    v = (1 - eta) * m.history[-2] + eta * m.history[-3]
    expect = np.abs(np.where(m.masks > 0, v @ make_z(Xs, y).T, 0)).max(axis=1)
    np.testing.assert_allclose(m.margin_history[-1], expect, rtol=1e-12)


def test_divergence_names_the_learning_rate(problem):
    _, Xs, y = problem
    with pytest.raises(ParameterError, match="diverged at iteration .* learning_rate"):
        fit_folds(NesterovLR(iterations=60, learning_rate=25.0, degree=3), Xs, y, 5)
    with pytest.raises(ParameterError, match="diverged at iteration .* learning_rate"):
        NesterovLR(iterations=60, learning_rate=25.0, degree=3).fit(Xs, y)


@pytest.mark.parametrize("kwargs, name", [({"iterations": 0}, "iterations"), ({"degree": 4}, "degree"),
                                          ({"learning_rate": -1.0}, "learning_rate"),
                                          ({"interval": 0}, "interval"), ({"decay": -0.5}, "decay"),
                                          ({"curvature": 0.0}, "curvature")])
def test_parameters_are_validated_in_fit(problem, kwargs, name):
    _, Xs, y = problem
    model = NesterovLR(**kwargs)  # stored unchanged, as scikit-learn does
    assert model.get_params()[name] == kwargs[name]
    with pytest.raises(ParameterError, match=f"parameter {name} of NesterovLR"):
        model.fit(Xs, y)
    with pytest.raises(ParameterError, match=f"parameter {name} of NesterovLR"):
        fit_folds(model, Xs, y, 5)


def test_fold_argument_errors(problem):
    _, Xs, y = problem
    with pytest.raises(ParameterError, match="parameter folds must be a number of folds or 300 integer fold ids"):
        fit_folds(NesterovLR(), Xs, y, np.zeros(5, dtype=int))
    with pytest.raises(ParameterError, match="parameter fold_ids of fit_folds_z must hold one fold id per z-row"):
        fit_folds_z(NesterovLR(), make_z(Xs, y), np.zeros(5, dtype=int))
    with pytest.raises(NotFittedError, match="not fitted"):
        NesterovLR().decision_function(Xs)
    single = fit_folds_z(NesterovLR(), make_z(Xs, y), None)
    assert single.weights.shape == (1, Xs.shape[1] + 1) and (single.fold_ids == -1).all()
    with pytest.raises(ParameterError, match="single model"):
        single.cv_scores(Xs)


# ------------------------------------------------------------------------------------------- estimator
def test_twin_passes_scikit_learns_estimator_checks():
    check_estimator(NesterovLR(), on_skip=None)  # the only skip: array API input (SCIPY_ARRAY_API unset)


def test_twin_as_a_classifier(problem):
    """One model on the rows given; labels of any two values, the larger one positive (scikit-learn's
    classes_ convention); predict_proba (rows, 2); clone, get_params and set_params round trip."""
    _, Xs, y = problem
    m = NesterovLR(iterations=4).fit(Xs, y)
    assert m.coef_.shape == (1, Xs.shape[1]) and m.intercept_.shape == (1,) and m.n_features_in_ == Xs.shape[1]
    np.testing.assert_array_equal(m.classes_, [0, 1])
    s = m.decision_function(Xs)
    np.testing.assert_allclose(s, m.intercept_[0] + Xs @ m.coef_[0], rtol=1e-12)
    p = m.predict_proba(Xs)
    assert p.shape == (len(y), 2)
    np.testing.assert_allclose(p[:, 1], sigmoid(s), rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert m.score(Xs, y) == pytest.approx(np.mean((s > 0) == y))
    # the same model from labels "no"/"yes" ("yes" sorts last: positive) and from -1/+1
    text = NesterovLR(iterations=4).fit(Xs, np.where(y == 1, "yes", "no"))
    np.testing.assert_array_equal(text.classes_, ["no", "yes"])
    np.testing.assert_array_equal(text.coef_, m.coef_)
    assert set(text.predict(Xs)) <= {"no", "yes"}
    np.testing.assert_array_equal(NesterovLR(iterations=4).fit(Xs, 2 * y - 1).coef_, m.coef_)
    # its defaults rank the rows as scikit-learn's LogisticRegression does (issue 4's bar, on the rows fitted)
    ours = roc_auc_score(y, NesterovLR().fit(Xs, y).decision_function(Xs))
    assert abs(ours - roc_auc_score(y, LogisticRegression().fit(Xs, y).decision_function(Xs))) <= 0.01
    twin = clone(NesterovLR(iterations=4, degree=3, curvature=2.0))
    assert twin.get_params()["degree"] == 3 and not hasattr(twin, "coef_")
    assert twin.set_params(degree=7, learning_rate=0.5).get_params()["degree"] == 7
    assert clone(twin).get_params() == twin.get_params()
    with pytest.raises(DataError, match="Only binary classification .* y has 3 classes: \\[0, 1, 2\\]"):
        NesterovLR().fit(Xs, np.arange(len(y)) % 3)
    with pytest.raises(ValueError, match="X has 3 features, but NesterovLR is expecting 4 features"):
        m.predict_proba(Xs[:, :3])
