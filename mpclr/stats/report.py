"""The statistics in the notebooks: Table 1 in 02b (after the rows are loaded and encrypted, before
training) and the regression table of 07 beside statsmodels on the pooled rows and beside the encrypted CV
models; and their parts of the study manifest 01 makes (`study_manifests`), which the hospitals agree to
with the keys. The table's pieces are mpclr.stats.baseline's, which `mpclr cv` uses too."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .baseline import agreed as table_agreed
from .baseline import codebook, hospital_columns, label_name, study_table, table_part
from .columns import Columns
from .estimator import deal
from .glm import LABEL as GLM_LABEL
from .glm import GLMFitError, fit_pooled
from .manifest import glm_manifest
from .requests import GLMModel
from .result import GLMResult
from .table1 import LABEL as TABLE_LABEL

__all__ = ["study_columns", "codebook", "study_table_one", "study_glm", "statsmodels_frame", "cv_coefficients",
           "regression_table", "regression_record", "RIDGE_AFTER_SEPARATION", "study_manifests", "agreed"]

RIDGE_AFTER_SEPARATION = 1.0  # 07 fits with this ridge penalty, named in its output, when the data are separated
MAX_ITER = 25  # 07's iterations per fit


def study_manifests(study, data, hospitals, *, table: bool, regression: bool) -> list:
    """The manifest parts (mpclr.stats.manifest, without the key ceremony: 01 merges them into the study's)
    for 02b's Table 1 (`table`) and 07's regression table (`regression`), from the study's public facts: its
    data dictionary (mpclr.stats.baseline.codebook), the hospitals' own min_cell (`hospitals`: their Hospital
    nodes), the features. 07's plan is two fits: the maximum-likelihood one and, if the data are separated,
    the ridge."""
    n, t = len(hospitals), study.key_holders_needed
    parts = []
    if table:
        parts.append(table_part(study.params(), hospitals, t, data.parts))
    if regression:
        parts.append(glm_manifest(n, data.pooled.n_features + 1, threshold=t, max_iter=MAX_ITER, fits=2,
                                  ceremony=False, family="binomial", outcome=label_name(data.parts[0]),
                                  columns=list(data.pooled.feature_names)))
    return parts


def agreed(fed, what: str) -> bool:
    """Whether the federation's hospitals agreed to 02b's Table 1 (what="table1") or 07's GLM ("glm")."""
    if what == TABLE_LABEL:
        return table_agreed(fed.manifest)
    if what != GLM_LABEL:
        raise ValueError(f"what must be {TABLE_LABEL!r} or {GLM_LABEL!r}, got {what!r}")
    return fed.manifest.exploration or fed.manifest.budget_for("glm.step", GLM_LABEL) is not None


def study_columns(data) -> list[Columns]:
    """Each hospital's rows (notebooks' HospitalData parts) as named columns: its features and the label."""
    return hospital_columns(data.parts)


def study_table_one(fed, data, max_levels: int = 10):
    """Table 1 of the study's rows by its label, each hospital answering for its own rows."""
    return study_table(fed, data.parts, max_levels)


def study_glm(fed, data, ridge: float = 0.0) -> tuple[GLMResult, str | None]:
    """The pooled logistic GLM of the label on every feature; when the data are separated (no maximum-
    likelihood estimate) and no ridge was asked for, the message and a fit with RIDGE_AFTER_SEPARATION."""
    if not agreed(fed, GLM_LABEL):
        raise DataError("the study manifest the hospitals agreed to in 01 has no pooled GLM: rerun "
                        "notebooks/01_key_ceremony.ipynb with regression_table=True (new keys), then 02 and this step")
    parts = study_columns(data)
    deal(fed, parts)
    model = GLMModel("binomial", parts[0].outcome, tuple(parts[0].predictors()))
    try:
        return GLMResult(fit_pooled(fed, model, max_iter=MAX_ITER, ridge=ridge)), None
    except GLMFitError as exc:
        if exc.kind != "separation" or ridge:
            raise
        return GLMResult(fit_pooled(fed, model, max_iter=MAX_ITER, ridge=RIDGE_AFTER_SEPARATION)), str(exc)


def statsmodels_frame(pooled):
    """statsmodels' GLM on the pooled rows (a simulation has them), as (coefficients, standard errors), or
    None when statsmodels is not installed."""
    try:
        import statsmodels.api as sm
    except ImportError:
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.GLM(pooled.y, sm.add_constant(pooled.X, has_constant="add"), family=sm.families.Binomial()).fit(
            tol=1e-12, maxiter=100)
    return ref.params, ref.bse


def cv_coefficients(comparison: dict | None, data_record: dict) -> tuple[np.ndarray, str] | None:
    """The encrypted CV's fold models (decrypted in 05, else the twin's) averaged over folds and taken back to
    the original units: w on standardized features -> b_j = w_j / sd_j, b_0 = w_0 - sum_j w_j mean_j / sd_j."""
    if comparison is None:
        return None
    coef = comparison["coefficients"]
    which = "encrypted" if "encrypted" in coef else "twin"
    W = np.asarray(coef[which], dtype=np.float64).mean(axis=0)
    mean = np.asarray(data_record["scaling"]["mean"], dtype=np.float64)
    std = np.asarray(data_record["scaling"]["std"], dtype=np.float64)
    b = np.empty_like(W)
    b[1:] = W[1:] / std
    b[0] = W[0] - float(np.sum(W[1:] * mean / std))
    return b, "encrypted CV, mean of the fold models" if which == "encrypted" else "plaintext twin of the CV models"


def regression_table(result: GLMResult, reference=None, cv=None):
    """Our coefficients, standard errors and odds ratios beside statsmodels' and the CV models'."""
    frame = result.summary()[["coef", "std err", "P>|z|", "odds ratio", "odds ratio [0.025", "odds ratio 0.975]"]]
    frame = frame.copy()
    if reference is not None:
        frame["statsmodels coef"], frame["statsmodels std err"] = np.asarray(reference[0]), np.asarray(reference[1])
    if cv is not None:
        frame[cv[1]] = cv[0]
    return frame


def regression_record(result: GLMResult, note: str | None, reference=None, cv=None) -> dict:
    record = {"glm": result.to_dict(), "separation": note, "statsmodels": None, "cv": None}
    summary = {"glm_s": round(result.seconds, 3), "glm_iterations": result.iterations, "glm_ridge": result.ridge,
               "glm_revealed_values": int(sum(e["values"] for e in result.revealed))}
    if reference is not None:
        params, bse = np.asarray(reference[0]), np.asarray(reference[1])
        record["statsmodels"] = {"params": params.tolist(), "bse": bse.tolist()}
        if not result.ridge:
            summary["glm_max_rel_diff_statsmodels"] = float(max(np.max(np.abs(result.params - params) / np.abs(params)),
                                                                np.max(np.abs(result.bse - bse) / bse)))
    if cv is not None:
        record["cv"] = {"coef": cv[0].tolist(), "what": cv[1]}
    record["summary"] = summary
    return record
