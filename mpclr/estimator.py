"""scikit-learn's front door to the encrypted study: `EncryptedLogisticRegressionCV` and
`EncryptedLogisticRegression`.

Both simulate the hospitals in this process: `fit` splits the rows it is given over `hospitals`
hospitals (or hands them to the hospitals of an existing federation) and runs the study entry point,
mpclr.pipeline.run_cv: key ceremony, encrypted training, secure evaluation, and the plaintext twin and
scikit-learn beside them on the same folds. Nothing here re-implements a step; the estimators turn the
study's JSON record into scikit-learn's fitted attributes.

The models are trained on features standardized with the pooled means and standard deviations (the
one aggregate the researcher decrypts); `coef_` and `intercept_` are converted back to the units of X,
so `decision_function(X) = X @ coef_.T + intercept_` as in scikit-learn. Prediction runs in the clear,
on a model the hospitals decrypted for the researcher.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError

from .data import Dataset
from .errors import DataError, ParameterError
from .plain.metrics import METRICS
from .plain.sigmoid import sigmoid
from .tabular import _numbers, _Where, read_frame

__all__ = ["EncryptedLogisticRegressionCV", "EncryptedLogisticRegression"]

EVALUATIONS = ("secure", "decrypted-models")


# ------------------------------------------------------------------------------------------------ input
def _frame(X):
    """X as a DataFrame and whether its column names are scikit-learn feature names (all strings)."""
    import pandas as pd

    if isinstance(X, pd.Series):
        raise ParameterError("parameter X must be 2-D (rows x features), got a pandas Series; use X.to_frame() "
                             "for a single feature")
    if isinstance(X, pd.DataFrame):
        return X, all(isinstance(c, str) for c in X.columns)
    if X is None:
        raise ParameterError("parameter X is required: a 2-D array or DataFrame of features, one row per patient")
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ParameterError(f"parameter X must be 2-D (rows x features), got {arr.ndim}-D data of shape "
                             f"{arr.shape}; reshape(-1, 1) a single feature")
    return pd.DataFrame(arr, columns=[f"x{j}" for j in range(arr.shape[1])]), False


def _labels(y, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes_, 0/1 labels): the two values of y sorted, the larger one positive (scikit-learn's rule)."""
    import pandas as pd

    if y is None:
        raise ParameterError("parameter y is required: the outcome of every row, two classes")
    values = y.to_numpy() if isinstance(y, pd.Series | pd.DataFrame) else np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ParameterError(f"parameter y must be 1-D (one label per row), got shape {values.shape}")
    if values.shape[0] != n:
        raise ParameterError(f"parameters X and y do not match: X has {n} rows, y has {values.shape[0]} labels")
    missing = pd.isna(values)
    if missing.any():
        raise DataError(f"parameter y, row {int(np.flatnonzero(missing)[0]) + 1}: the label is missing")
    try:
        classes, y01 = np.unique(values, return_inverse=True)
    except TypeError:
        raise DataError("parameter y mixes label types (e.g. numbers and text); give one type") from None
    if classes.size != 2:
        raise DataError(f"parameter y must hold exactly two classes (a binary outcome), found {classes.size}: "
                        f"{classes[:6].tolist()}")
    return classes, y01.astype(np.int64)


def _split_column(split, names: list[str]):
    """The column of X that `split` names (its hospital per row), or None for 'even' or fractions."""
    if isinstance(split, str) and split == "even":
        return None
    if isinstance(split, str):
        if split not in names:
            raise ParameterError(f"parameter split: X has no column {split!r} to assign rows to hospitals by "
                                 f"(columns: {', '.join(names)})")
        return names.index(split)
    if isinstance(split, int | np.integer) and not isinstance(split, bool):
        if not -len(names) <= split < len(names):
            raise ParameterError(f"parameter split: column {split} is out of range for the {len(names)} columns of X")
        return int(split) % len(names)
    return None  # fractions: mpclr.data.split checks them


class _EncryptedStudy(ClassifierMixin, BaseEstimator):
    """What both estimators share: turning (X, y) into the study's Dataset, a study's record into fitted
    attributes, and prediction with the decrypted model."""

    def __sklearn_clone__(self):
        # a federation is a live set of nodes holding key shares, not a value: clones share it, never copy it
        params = {k: (v if k == "federation" else clone(v, safe=False)) for k, v in self.get_params(deep=False).items()}
        return type(self)(**params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.non_deterministic = True  # fold assignments and noise come from the hospitals' CSPRNG
        return tags

    def _check_common(self) -> None:
        h = self.hospitals
        if isinstance(h, bool) or not isinstance(h, int | np.integer) or h < 1:
            raise ParameterError(f"parameter hospitals must be a positive integer, got {h!r}")
        if self.federation is not None:
            from .federation import Federation

            if not isinstance(self.federation, Federation):
                raise ParameterError(f"parameter federation must be an mpclr.Federation or None, got "
                                     f"{type(self.federation).__name__}")
            if self.federation.n != h:
                raise ParameterError(f"parameter hospitals is {h} but the federation has {self.federation.n} "
                                     f"hospitals")

    def _dataset(self, X, y) -> Dataset:
        """The rows as the study's Dataset; sets classes_, n_features_in_, feature_names_in_ and the
        columns the model uses (all of X but the split column, if split names one)."""
        frame, named = _frame(X)
        classes, y01 = _labels(y, frame.shape[0])
        names = [str(c) for c in frame.columns]
        label = "label"
        while label in names:
            label = "_" + label
        parts = read_frame(frame.assign(**{label: y01}), label=frame.shape[1], positive=1, what="parameter X")
        self.classes_ = classes
        self.n_features_in_ = frame.shape[1]
        if named:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        skip = _split_column(self.split, names)
        self._columns = [j for j in range(len(names)) if j != skip]
        self.features_ = [names[j] for j in self._columns]  # the model's features, in coef_'s order
        return Dataset(**{**parts, "classes": tuple(classes.tolist())}, name="X", source=f"{type(self).__name__}.fit")

    def _spec(self, folds: int, evaluation: str, decrypt_models: bool, **more):
        """The study this fit runs (mpclr.spec.StudySpec: every parameter checked there, by name)."""
        from .spec import StudySpec

        return StudySpec(dataset="X", hospitals=self.hospitals, threshold=self.threshold, folds=folds,
                         iterations=self.iterations, degree=self.degree, learning_rate=self.learning_rate,
                         seed=self.random_state, preset=self.preset, split=self.split, workers=self.workers,
                         evaluation=evaluation, decrypt_models=decrypt_models, **more)

    def _model_from(self, record: dict) -> None:
        """coef_ (1, d) and intercept_ (1,) in the units of X, from the decrypted standardized model."""
        w = np.asarray(record["weights"]["encrypted"][0], dtype=np.float64)
        mean = np.asarray(record["scaling"]["mean"], dtype=np.float64)
        std = np.asarray(record["scaling"]["std"], dtype=np.float64)
        self.coef_ = (w[1:] / std)[None, :]
        self.intercept_ = np.array([w[0] - float(np.sum(w[1:] * mean / std))])

    # ----------------------------------------------------------------------------------- prediction
    def _require_model(self) -> None:
        if not hasattr(self, "coef_"):
            why = " (refit=False trains no final model)" if getattr(self, "refit", True) is False else ""
            raise NotFittedError(f"this {type(self).__name__} is not fitted: it has no model{why}; call fit first")

    def _matrix(self, X) -> np.ndarray:
        self._require_model()
        import pandas as pd

        frame, named = _frame(X)
        names = [str(c) for c in frame.columns]
        if frame.shape[1] != self.n_features_in_:
            raise ParameterError(f"parameter X has {frame.shape[1]} columns, the model was fitted on "
                                 f"{self.n_features_in_}")
        if hasattr(self, "feature_names_in_") and isinstance(X, pd.DataFrame) and names != list(self.feature_names_in_):
            raise ParameterError(f"parameter X: columns {names} differ from those given to fit, "
                                 f"{list(self.feature_names_in_)}")
        default = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
        at = _Where("parameter X", "row", 1, names, index=None if default else frame.index)
        for j in self._columns:
            if not _numbers(frame.dtypes.iloc[j]):
                raise DataError(f"parameter X, {at.column(j)}: holds {frame.dtypes.iloc[j]} values, not numbers")
        A = np.column_stack([frame.iloc[:, j].to_numpy(dtype=np.float64, na_value=np.nan) for j in self._columns])
        bad = ~np.isfinite(A)
        if bad.any():
            i = int(np.flatnonzero(bad.any(axis=1))[0])
            j = int(np.flatnonzero(bad[i])[0])
            kind = "is missing" if np.isnan(A[i, j]) else f"is {A[i, j]} (not finite)"
            raise DataError(f"parameter X, {at.row(i)}, {at.column(self._columns[j])}: {kind}")
        return A

    def decision_function(self, X) -> np.ndarray:
        """(rows,) log-odds of classes_[1] under the decrypted model."""
        return self._matrix(X) @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X) -> np.ndarray:
        """(rows, 2) probabilities of classes_[0] and classes_[1]; each row sums to 1."""
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.int64)]

    def coefficient_table(self):
        """The final model as a DataFrame, one row per term (intercept, then the features by name):
        coef and odds_ratio per unit of the feature; per_sd, the trained weights (per standard deviation);
        twin_per_sd and sklearn_per_sd, the plaintext twin's and scikit-learn's on the same rows."""
        import pandas as pd

        self._require_model()
        weights = self._final_record()["weights"]
        table = pd.DataFrame(
            {
                "coef": np.concatenate([self.intercept_, self.coef_[0]]),
                "per_sd": weights["encrypted"][0],
                "twin_per_sd": weights["twin"][0],
                "sklearn_per_sd": weights["sklearn"][0],
            },
            index=pd.Index(["intercept", *self.features_], name="term"),
        )
        table.insert(1, "odds_ratio", np.exp(table["coef"]))
        return table


# ------------------------------------------------------------------------------------------------ single model
class EncryptedLogisticRegression(_EncryptedStudy):
    """One logistic regression model trained under threshold encryption on every row of every hospital
    (the study with folds=1: nothing held out, so nothing evaluated), decrypted for the researcher.

    Parameters
    ----------
    hospitals : number of simulated hospitals holding the rows (key holders)
    threshold : t of t-out-of-n decryption (None: all hospitals)
    preset : CKKS parameter set; a study runs on "train" (mpclr.params.check_study_preset)
    iterations, degree, learning_rate : the training's design (None: the twin's defaults, 6, 5 and 1)
    random_state : public randomness only: the shuffle before rows are split over hospitals
    split : "even", a list of fractions (one per hospital) or a column of X naming each row's hospital
        (that column is then not a feature; predict takes X with it and ignores it)
    federation : an existing mpclr.Federation whose hospitals take the rows; its manifest must cover the
        study (e.g. "exploration"). None: a new federation, agreeing to exactly this study's requests
    workers : the server's worker processes ("auto": one per core when it pays)

    Fitted: coef_ (1, d) and intercept_ (1,) in the units of X; classes_; n_features_in_;
    feature_names_in_ (X a DataFrame with string column names); features_ (the model's features);
    study_ (the study's JSON record, as `mpclr cv --json` writes it); revealed_ (every value the
    researcher received: the pooled aggregate and the model); coefficient_table().
    """

    def __init__(self, *, hospitals: int = 3, threshold: int | None = None, preset: str = "train",
                 iterations: int | None = None, degree: int | None = None, learning_rate: float | None = None,
                 random_state: int = 0, split="even", federation=None, workers="auto"):
        self.hospitals = hospitals
        self.threshold = threshold
        self.preset = preset
        self.iterations = iterations
        self.degree = degree
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.split = split
        self.federation = federation
        self.workers = workers

    def fit(self, X, y) -> EncryptedLogisticRegression:
        from .pipeline import run_cv

        self._check_common()
        dataset = self._dataset(X, y)
        self.study_ = run_cv(dataset, self._spec(1, "none", True), fed=self.federation)
        self._model_from(self.study_)
        self.revealed_ = [{"study": "final model", **r} for r in self.study_["revealed"]]
        return self

    def _final_record(self) -> dict:
        return self.study_


# ------------------------------------------------------------------------------------------------ cross-validated
class EncryptedLogisticRegressionCV(_EncryptedStudy):
    """Encrypted x-fold cross-validated logistic regression across simulated hospitals, in the shape of
    scikit-learn's LogisticRegressionCV: `fit` runs the study (mpclr.pipeline.run_cv, as `mpclr cv` does),
    then, with refit=True, trains the final model on every row.

    The study trains one model per fold and evaluates each on its held-out rows; it defines no final
    model. So `coef_` and `intercept_` are those of a second study, `EncryptedLogisticRegression` on all
    rows (its own key ceremony unless `federation` is given), decrypted for the researcher: `final_model_`.
    The fold models only measure how well that recipe generalizes (`cv_results_`).

    Parameters
    ----------
    cv : number of folds (>= 2); each hospital assigns its own rows with its secret randomness
    evaluation : "secure" (encrypted scores and comparisons; only counts reach the researcher) or
        "decrypted-models" (the fold models decrypted and scored in the clear), as `mpclr cv --evaluation`
    keep_models_encrypted : do not decrypt the fold models (then no decrypted-model metrics and no
        weight comparison with the twin); the final model is always decrypted, prediction needs it
    refit : train the final model (coef_, predict); False stops after cross-validation
    score_bound, refine_rounds : the secure evaluation's public score bound and ROC refinement rounds
    The others as for EncryptedLogisticRegression (hospitals, threshold, preset, iterations, degree,
    learning_rate, random_state, split, federation, workers).

    Fitted: cv_results_ (dict of arrays, one entry per fold: fold, n_test, and for every metric in auc,
    accuracy, sensitivity, specificity, ppv, npv its `_secure` (secure evaluation), `_decrypted` (the
    decrypted fold models scored in the clear), `_twin` and `_sklearn` values on the same folds;
    auc_bound, the secure AUC's certified error); secure_evaluation_ (per fold the confusion matrix and
    ROC points the researcher received, or None); study_ (the cross-validation's JSON record);
    revealed_ (everything the researcher received, each entry tagged with its study); with refit:
    final_model_, coef_, intercept_, coefficient_table(); classes_, n_features_in_, feature_names_in_.
    """

    def __init__(self, *, cv: int = 5, hospitals: int = 3, threshold: int | None = None, preset: str = "train",
                 iterations: int | None = None, degree: int | None = None, learning_rate: float | None = None,
                 random_state: int = 0, evaluation: str = "secure", keep_models_encrypted: bool = False,
                 split="even", federation=None, refit: bool = True, score_bound: float = 16.0,
                 refine_rounds: int | None = None, workers="auto"):
        self.cv = cv
        self.hospitals = hospitals
        self.threshold = threshold
        self.preset = preset
        self.iterations = iterations
        self.degree = degree
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.evaluation = evaluation
        self.keep_models_encrypted = keep_models_encrypted
        self.split = split
        self.federation = federation
        self.refit = refit
        self.score_bound = score_bound
        self.refine_rounds = refine_rounds
        self.workers = workers

    def _check(self) -> None:
        self._check_common()
        if isinstance(self.cv, bool) or not isinstance(self.cv, int | np.integer) or self.cv < 2:
            raise ParameterError(f"parameter cv must be a number of folds >= 2, got {self.cv!r} (one model on "
                                 f"every row: EncryptedLogisticRegression)")
        if self.evaluation not in EVALUATIONS:
            raise ParameterError(f"parameter evaluation must be one of {EVALUATIONS}, got {self.evaluation!r}")
        for name in ("keep_models_encrypted", "refit"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"parameter {name} must be True or False, got {getattr(self, name)!r}")
        if self.evaluation == "decrypted-models" and self.keep_models_encrypted:
            raise ParameterError("evaluation 'decrypted-models' scores the decrypted fold models: it cannot go "
                                 "with keep_models_encrypted=True")

    def fit(self, X, y) -> EncryptedLogisticRegressionCV:
        from .pipeline import run_cv

        self._check()
        for name in ("coef_", "intercept_", "final_model_"):  # a refit=False fit leaves no stale model
            if hasattr(self, name):
                delattr(self, name)
        dataset = self._dataset(X, y)
        spec = self._spec(self.cv, self.evaluation, not self.keep_models_encrypted,
                          score_bound=self.score_bound, refine_rounds=self.refine_rounds)
        self.study_ = run_cv(dataset, spec, fed=self.federation)
        self.secure_evaluation_ = self.study_["secure_evaluation"]
        self.cv_results_ = _cv_results(self.study_)
        self.revealed_ = [{"study": "cross-validation", **r} for r in self.study_["revealed"]]
        if self.refit:
            params = {k: getattr(self, k) for k in EncryptedLogisticRegression().get_params()}
            self.final_model_ = EncryptedLogisticRegression(**params).fit(X, y)
            self.coef_, self.intercept_ = self.final_model_.coef_, self.final_model_.intercept_
            self.revealed_ += self.final_model_.revealed_
        return self

    def _final_record(self) -> dict:
        return self.final_model_.study_


def _cv_results(record: dict) -> dict:
    """Per fold, as arrays: what the researcher received (secure), the decrypted fold models scored in
    the clear, the twin and scikit-learn on the same folds and scaled features."""
    folds = record["folds"]
    out = {"fold": np.array([f["fold"] for f in folds]), "n_test": np.array([f["n_test"] for f in folds])}
    secure = record["secure_evaluation"] is not None
    for m in METRICS:
        if secure:
            out[f"{m}_secure"] = np.array([f["encrypted"][m] for f in folds])
        if folds and folds[0]["encrypted_model"] is not None:
            out[f"{m}_decrypted"] = np.array([f["encrypted_model"][m] for f in folds])
        out[f"{m}_twin"] = np.array([f["twin"][m] for f in folds])
        out[f"{m}_sklearn"] = np.array([f["sklearn"][m] for f in folds])
    if secure:
        out["auc_bound"] = np.array([f["auc_bound"] for f in record["secure_evaluation"]["folds"]])
    return out
