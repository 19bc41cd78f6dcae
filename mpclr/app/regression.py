"""The study page's regression table: the pooled logistic GLM (mpclr.stats) when it is cheap and the
hospitals allow it, else the cross-validated models' coefficients, and always a sentence saying which.

The GLM is a second protocol with its own manifest and key ceremony (a few seconds at `train`): Newton
rounds on encrypted per-hospital sums, the researcher decrypting only the pooled sums of each round. It
is "cheap" while its packed sums fit one ciphertext (mpclr.stats.requests.MAX_COLUMNS parameters) and
every hospital's default rule allows it (parameters at most glm_max_fraction of its own rows). Separated
data (no maximum-likelihood estimate) are refitted with a ridge penalty, as notebook 07 does, and named.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import MpclrError

__all__ = ["Regression", "regression_table", "glm_refusal", "cv_table"]


@dataclass
class Regression:
    kind: str  # "glm" (maximum likelihood), "glm-ridge" (separated data) or "cv" (the CV models)
    note: str  # which table this is, and why
    frame: object  # pandas DataFrame, one row per term
    revealed: list[dict] = field(default_factory=list)  # what the researcher decrypted for it (the GLM's rounds)
    seconds: float = 0.0
    answered: dict = field(default_factory=dict)  # what each hospital answered for it: its ledger (the GLM's)

    def to_json(self) -> dict:
        frame = self.frame.reset_index()
        return {"kind": self.kind, "note": self.note, "seconds": round(self.seconds, 3),
                "columns": [str(c) for c in frame.columns],
                "rows": [[v if isinstance(v, str) else float(v) for v in row] for row in frame.itertuples(index=False)],
                "revealed": self.revealed, "answered": self.answered}


def glm_refusal(parameters: int, rows_per_hospital) -> str | None:
    """Why the pooled GLM is not run here (None: it is cheap and every hospital's default rule allows it)."""
    from ..stats.hospital import Settings
    from ..stats.requests import MAX_COLUMNS

    if parameters > MAX_COLUMNS:
        return f"{parameters} parameters do not fit the GLM's one ciphertext per round (at most {MAX_COLUMNS})"
    fraction = Settings().glm_max_fraction
    smallest = min(rows_per_hospital)
    if parameters > fraction * smallest:
        return (f"a hospital with {smallest} rows refuses a model of {parameters} parameters (its rule: at most "
                f"{fraction:g} of its rows)")
    return None


def _pooled_glm(study) -> Regression:
    from ..federation import Federation
    from ..stats import report
    from ..stats.manifest import glm_manifest

    spec, pooled = study.spec, study.pooled
    outcome = report.study_columns(study)[0].outcome
    manifest = glm_manifest(spec.hospitals, pooled.n_features + 1, threshold=spec.threshold,
                            max_iter=report.MAX_ITER, fits=2, family="binomial", outcome=outcome,
                            columns=list(pooled.feature_names))
    t0 = time.perf_counter()
    fed = Federation(hospitals=spec.hospitals, preset=spec.params(), threshold=spec.threshold, seed=spec.seed,
                     manifest=manifest)
    try:
        result, separation = report.study_glm(fed, study)
        answered = {p.name: {k: list(v) for k, v in p.policy.used.items()} for p in fed.hospitals}
    finally:
        fed.close()
    seconds = time.perf_counter() - t0
    frame = result.summary()
    if separation:
        note = (f"Pooled logistic GLM (mpclr.stats) with a ridge penalty, lambda = {result.ridge:g}: the maximum-"
                f"likelihood fit does not exist here ({separation}). Penalized coefficients; standard errors "
                "from the penalized information.")
        kind = "glm-ridge"
    else:
        note = ("Pooled logistic GLM (mpclr.stats): maximum likelihood on every hospital's rows, from encrypted "
                f"per-hospital sums ({result.iterations} Newton rounds; only the pooled sums were decrypted).")
        kind = "glm"
    revealed = [{**r, "for": "regression table (pooled GLM)"} for r in result.revealed]
    return Regression(kind, note, frame, revealed, seconds, answered)


def cv_table(record: dict, feature_names, reason: str) -> Regression:
    """The CV's fold models (decrypted, else their plaintext twin) by term: their mean taken back to the
    features' own units (coef, odds ratio), beside the per-SD weights of the twin and scikit-learn."""
    import pandas as pd

    weights = record["weights"]
    which = "encrypted" if weights["encrypted"] is not None else "twin"
    W = np.asarray(weights[which], dtype=np.float64)
    w = W.mean(axis=0)
    mean = np.asarray(record["scaling"]["mean"], dtype=np.float64)
    std = np.asarray(record["scaling"]["std"], dtype=np.float64)
    coef = np.empty_like(w)
    coef[1:] = w[1:] / std
    coef[0] = w[0] - float(np.sum(w[1:] * mean / std))
    frame = pd.DataFrame(
        {"coef": coef, "odds ratio": np.exp(coef), "per_sd": w,
         "per_sd sd over folds": W.std(axis=0, ddof=1) if W.shape[0] > 1 else np.zeros_like(w),
         "twin per_sd": np.asarray(weights["twin"], dtype=np.float64).mean(axis=0),
         "sklearn per_sd": np.asarray(weights["sklearn"], dtype=np.float64).mean(axis=0)},
        index=pd.Index(["intercept", *feature_names], name="term"))
    what = "the decrypted encrypted models" if which == "encrypted" else "their plaintext twin (models kept encrypted)"
    note = (f"The cross-validated models' coefficient table: the mean of the {W.shape[0]} fold models ({what}), "
            f"in the features' own units, beside the twin's and scikit-learn's weights per standard deviation. "
            f"No standard errors. The pooled GLM was not run: {reason}.")
    return Regression("cv", note, frame)


def regression_table(study, record: dict) -> Regression:
    """The pooled GLM of the study's rows if cheap and allowed, else the CV models' table (saying why)."""
    parameters = study.pooled.n_features + 1
    reason = glm_refusal(parameters, [len(p) for p in study.parts])
    if reason is None:
        try:
            return _pooled_glm(study)
        except MpclrError as exc:  # a fit that stops (collinear design, no convergence, a refusal) says why
            reason = f"it stopped: {exc}"
    return cv_table(record, study.pooled.feature_names, reason)
