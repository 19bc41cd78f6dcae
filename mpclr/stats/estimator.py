"""The pooled GLM as a function (`mpclr.glm`) and as an estimator (`PooledGLM`), in one process: the rows are
dealt to simulated hospitals, each gets only its own, and the fit runs through protocol messages exactly
as it does over a deployment (mpclr.stats.deploy)."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError, renamed_keywords
from .columns import Columns, load_columns, split_rows
from .glm import fit_pooled
from .hospital import Settings, configure, give_data
from .requests import GLMModel
from .result import GLMResult

__all__ = ["glm", "PooledGLM", "deal", "fit_columns"]


def deal(fed, parts: list[Columns], settings=None) -> None:
    """Give each hospital of `fed` its own part, and its disclosure settings: one `Settings` for all, or a
    dict by hospital name or index (the others keep the defaults)."""
    if len(parts) != len(fed.hospitals):
        raise ParameterError(f"{len(parts)} parts of the rows for {len(fed.hospitals)} hospitals")
    for k, (party, part) in enumerate(zip(fed.hospitals, parts)):
        give_data(party, part.values, part.names)
        own = settings.get(party.name, settings.get(k)) if isinstance(settings, dict) else settings
        if own is not None:
            configure(party, own if isinstance(own, Settings) else Settings(**own))


@renamed_keywords(parties="hospitals")
def fit_columns(columns: Columns, family: str = "binomial", *, predictors=None, intercept: bool = True,
                hospitals: int = 3, threshold: int | None = None, preset="train", split="even",
                seed: int | None = None, federation=None, settings=None, max_iter: int = 25, tol: float = 1e-8,
                ridge: float = 0.0, by=None, progress=None) -> GLMResult:
    """Deal the rows to the hospitals (of `federation`, or of a new one with `hospitals`, `threshold`,
    `preset`) and fit the pooled GLM of the outcome on `predictors` (default: every other column).

    A new federation's hospitals agree to this fit's manifest (mpclr.stats.manifest.glm_manifest) and
    nothing more; an existing federation's own manifest governs (a hospital refuses a fit beyond it)."""
    from ..federation import Federation
    from .manifest import glm_manifest

    cols = list(predictors) if predictors is not None else columns.predictors()
    missing = [c for c in cols if c not in columns.names]
    if missing:
        raise ParameterError(f"parameter columns: no column {', '.join(map(repr, missing))} (columns: "
                             f"{', '.join(columns.names)})")
    model = GLMModel(family, columns.outcome, tuple(c for c in cols if c != split), intercept)
    if federation is None:
        def agreed(hospitals):
            return glm_manifest(len(hospitals), model.p, threshold=threshold, max_iter=max_iter,
                                family=model.family, outcome=model.outcome, columns=list(model.names))

        fed = Federation(hospitals=hospitals, preset=preset, threshold=threshold, seed=seed, manifest=agreed)
    else:
        fed = federation
    try:
        deal(fed, split_rows(columns, len(fed.hospitals), split, seed), settings)
        return GLMResult(fit_pooled(fed, model, max_iter=max_iter, tol=tol, ridge=ridge, by=by, progress=progress))
    finally:
        if federation is None:
            fed.close()


@renamed_keywords(parties="hospitals")
def glm(data, family: str = "binomial", *, label="last", columns=None, positive=None, **options) -> GLMResult:
    """A pooled GLM of one outcome on the other columns, fitted on encrypted per-hospital sums.

    data: a data set name (breast_cancer, edin, lbw, pcs, uis, synthetic:NxD), a file, a pandas DataFrame or
    a mpclr Dataset; label: the outcome column (default: the data set's label; any numeric column for the
    gaussian and poisson families); columns: the predictors (default: all other columns). Options:
    hospitals (3), threshold, preset ("train"), split ("even" or a hospital column), seed, federation (an existing
    one whose hospitals get the rows), settings (the hospitals' disclosure settings), max_iter (25), tol
    (1e-8, statsmodels' deviance criterion), ridge (0), intercept (True), by (who decrypts)."""
    return fit_columns(load_columns(data, label, family=family, positive=positive), family, predictors=columns,
                       **options)


class PooledGLM:
    """scikit-learn-style estimator of a pooled GLM (see `glm` for the options).

    fit(X, y) with X a DataFrame (column names kept), an array (columns x1, x2, ...) or a Dataset (y
    omitted); then params_, bse_, pvalues_, conf_int_, coef_ and intercept_ (scikit-learn's split),
    result_ (the GLMResult) and summary() (a DataFrame as statsmodels' GLM summary shows it)."""

    @renamed_keywords(parties="hospitals")
    def __init__(self, family: str = "binomial", *, hospitals: int = 3, threshold: int | None = None,
                 preset="train", split="even", seed: int | None = None, max_iter: int = 25, tol: float = 1e-8,
                 ridge: float = 0.0, intercept: bool = True, federation=None, settings=None):
        self.family = family
        self.hospitals, self.threshold, self.preset, self.split, self.seed = hospitals, threshold, preset, split, seed
        self.max_iter, self.tol, self.ridge, self.intercept = max_iter, tol, ridge, intercept
        self.federation, self.settings = federation, settings

    def _columns(self, X, y) -> Columns:
        import pandas as pd

        from ..data import Dataset

        if isinstance(X, Dataset | Columns):
            if y is not None:
                raise ParameterError("fit(X, y): a Dataset carries its outcome; give no y")
            return load_columns(X, family=self.family)
        if isinstance(X, pd.DataFrame):
            names = [str(c) for c in X.columns]
            values = X.to_numpy(dtype=np.float64)
        else:
            values = np.asarray(X, dtype=np.float64)
            if values.ndim != 2:
                raise ParameterError(f"fit(X, y): X must be 2-D (rows x columns), got shape {values.shape}")
            names = [f"x{j + 1}" for j in range(values.shape[1])]
        if y is None:
            raise ParameterError("fit(X, y): give the outcome y")
        outcome = str(getattr(y, "name", None) or "y")
        if outcome in names:
            outcome = f"{outcome} (outcome)"
        yv = np.asarray(y, dtype=np.float64).ravel()
        if yv.shape[0] != values.shape[0]:
            raise ParameterError(f"fit(X, y): X has {values.shape[0]} rows, y {yv.shape[0]}")
        return Columns((*names, outcome), np.column_stack([values, yv]), outcome, "fit(X, y)")

    def fit(self, X, y=None) -> PooledGLM:
        cols = self._columns(X, y)
        self.result_ = fit_columns(
            cols, self.family, intercept=self.intercept, hospitals=self.hospitals, threshold=self.threshold,
            preset=self.preset, split=self.split, seed=self.seed, federation=self.federation,
            settings=self.settings, max_iter=self.max_iter, tol=self.tol, ridge=self.ridge,
        )
        r = self.result_
        self.feature_names_in_ = np.array([n for n in r.names if n != "Intercept"], dtype=object)
        self.params_, self.bse_, self.pvalues_ = r.params, r.bse, r.pvalues
        self.conf_int_ = r.conf_int()
        self.intercept_ = float(r.params[0]) if self.intercept else 0.0
        self.coef_ = r.params[1:] if self.intercept else r.params
        self.n_iter_ = r.iterations
        return self

    def summary(self):
        return self.result_.summary()

    def predict(self, X) -> np.ndarray:
        """The fitted mean (probability, rate or value) for rows X (in the clear, wherever X is)."""
        from .family import family

        eta = np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_
        return family(self.family).mean(eta)
