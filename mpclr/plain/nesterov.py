"""The plaintext twin as a scikit-learn classifier (the algorithm: mpclr.plain.twin).

In its own module because scikit-learn's base classes take seconds to import and the hospitals, which
use mpclr.plain.twin's numpy functions, never need them.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import DataError, ParameterError
from .sigmoid import DEGREES, sigmoid, sigmoid_poly
from .twin import _nesterov, make_z, momentum_schedule

__all__ = ["NesterovLR"]


class NesterovLR(ClassifierMixin, BaseEstimator):
    """Logistic regression by Nesterov's accelerated gradient on a polynomial sigmoid: the plaintext twin
    of the encrypted trainer (see the module docstring for the exact algorithm), as a scikit-learn
    classifier. `fit` trains one model on the rows given; `fit_folds` trains every fold model at once.

    Parameters
    ----------
    iterations : gradient iterations (each costs one collective refresh under encryption)
    degree : degree of the sigmoid polynomial, 3, 5 or 7
    learning_rate : step in units of 1 / (c_1 * curvature), the surrogate's 1/L step at the start
    interval : R, the polynomial fits the sigmoid on [-R, R]
    decay : gamma_t = gamma_0 / (t + 1)^decay (0: constant, 1: the iDASH 10/(t+1) shape)
    curvature : largest eigenvalue of [1, x]^T [1, x] / n over all rows; None computes it in `fit`
        from the rows given (the encrypted path gets it from `curvature_from_aggregates`)
    random_state : seed of the public fold assignment when `fit_folds` is given a number of folds
        (`fit` draws nothing)

    X holds features already scaled as the study scales them (`standardization_stats`); the twin does
    not standardize, so that it sees exactly the encrypted trainer's numbers. The positive class is
    `classes_[1]`, as in scikit-learn. Fitted: `coef_` (1, d), `intercept_` (1,), and per iteration
    `history_` (iterations + 1, 1, d + 1; intercept first), `margin_history_`, `fraction_outside_`.

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # one logistic model: binary outcomes only
        return tags

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

    def fit(self, X, y) -> NesterovLR:
        """Train one model on (scaled) features X and two-class labels y (positive: the larger class)."""
        self._validate()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y01 = np.unique(y, return_inverse=True)
        found = f"{self.classes_.size} class{'es' if self.classes_.size != 1 else ''}: {self.classes_[:6].tolist()}"
        if type_of_target(y, input_name="y") != "binary":
            raise DataError(f"Only binary classification is supported: NesterovLR fits one logistic model, "
                            f"y has {found}")
        if self.classes_.size != 2:
            raise DataError(f"NesterovLR needs two classes in y, got {found}")
        run = _nesterov(self, make_z(X, y01), np.ones((1, X.shape[0])))
        self.coef_ = run.weights[:, 1:].copy()
        self.intercept_ = run.weights[:, 0].copy()
        self.history_ = run.history
        self.margin_history_ = run.margin_history
        self.fraction_outside_ = run.fraction_outside
        self.max_abs_margin_ = float(run.margin_history.max())
        self.curvature_ = run.curvature
        self.step_sizes_ = run.step_sizes
        self.momentum_ = run.momentum
        self.sigmoid_coef_ = run.sigmoid_coef
        self.n_iter_ = np.array([self.iterations])
        return self

    # --------------------------------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """(rows,) log-odds of classes_[1]."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.intercept_[0] + X @ self.coef_[0]

    def predict_proba(self, X) -> np.ndarray:
        """(rows, 2) probabilities of classes_[0] and classes_[1] (the exact sigmoid: prediction is not
        encrypted here)."""
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.int64)]
