"""Step 05 (notebooks/05_comparison.ipynb): encrypted against plaintext and scikit-learn, phase times."""

from __future__ import annotations

import numpy as np

from ..pipeline import Twin
from .pipeline import STUDY_FIGURES
from .rundir import RunFolder
from .study import HospitalData, Study

__all__ = ['phase_times', 'times_rows', 'compare']


def phase_times(run: RunFolder) -> list[dict]:
    """Seconds per phase from the run folder's records, beside the source study's figures."""
    rows = []
    keys = run.read_json("keys.json")["summary"] if run.has("keys.json") else {}
    if keys:
        rows.append({"phase": "key ceremony (01)", "mpclr_s": keys["key_ceremony_s"], "study_s": None})
        rows.append({"phase": "rotation keys (01)", "mpclr_s": keys["rotation_keys_s"], "study_s": None})
    if run.has("data.json"):
        sec = run.read_json("data.json")["seconds"]
        for k in ("folds", "scaling", "rotation_keys", "encryption"):
            if k in sec:
                rows.append({"phase": f"data: {k.replace('_', ' ')} (02)", "mpclr_s": sec[k], "study_s": None})
    if run.has("training.json"):
        rows.append(
            {
                "phase": "encrypted training (03)",
                "mpclr_s": run.read_json("training.json")["summary"]["training_s"],
                "study_s": STUDY_FIGURES["training_s"],
            }
        )
    if run.has("evaluation.json"):
        rows.append(
            {
                "phase": "secure evaluation (04)",
                "mpclr_s": run.read_json("evaluation.json")["summary"]["evaluation_s"],
                "study_s": STUDY_FIGURES["evaluation_s"],
            }
        )
    return [{**r, "mpclr_s": round(float(r["mpclr_s"]), 3)} for r in rows]


def times_rows(record: dict) -> list[dict]:
    """comparison.json's time per phase for a table: ours, and the study's where it gives a figure."""
    f = record["study_figures"]
    theirs = f"{f['rows']:,} x {f['features']}, {f['folds']} folds"
    return [
        {
            "phase": r["phase"],
            "mpclr (s)": f"{r['mpclr_s']:.3f}",
            "the study": f"about {r['study_s'] / 60:.0f} min ({theirs})" if r["study_s"] else "",
        }
        for r in record["times"]
    ]


def compare(
    study: Study, data: HospitalData, cv, evaluation: dict, twin: Twin, weights: np.ndarray | None, run: RunFolder
) -> dict:
    """comparison.json: per fold the secure AUC (04) beside the twin's and scikit-learn's on the same
    folds and scaling; the coefficients (the decrypted encrypted models when the key holders decrypted
    them); the time per phase beside the source study's."""
    from ..pipeline import sklearn_reference
    from ..plain.metrics import METRICS, fold_metrics, mean_sd

    y, folds = data.pooled.y, cv.fold_of_row
    twin_m = fold_metrics(y, twin.scores(folds), folds)
    base = sklearn_reference(study, twin, y, folds)
    secure = [f["auc"] for f in evaluation["folds"]]
    rows = []
    for k in range(study.folds):
        rows.append(
            {
                "fold": k,
                "n_test": int((folds == k).sum()),
                "secure_auc": float(secure[k]),
                "secure_auc_bound": float(evaluation["folds"][k]["auc_bound"]),
                "twin_auc": float(twin_m.auc[k]),
                "sklearn_auc": float(base.metrics.auc[k]),
            }
        )
    mean = {key: mean_sd([r[key] for r in rows]) for key in ("secure_auc", "twin_auc", "sklearn_auc")}
    names = ["intercept", *data.pooled.feature_names]
    coef = {"features": names, "twin": twin.model.weights, "sklearn": base.coef}
    summary = {  # the secure AUC and the seconds per phase are in 04's and the other steps' summaries
        "twin_auc": round(mean["twin_auc"][0], 5),
        "sklearn_auc": round(mean["sklearn_auc"][0], 5),
        "max_auc_diff_secure_twin": round(max(abs(r["secure_auc"] - r["twin_auc"]) for r in rows), 5),
        "max_auc_diff_twin_sklearn": round(max(abs(r["twin_auc"] - r["sklearn_auc"]) for r in rows), 5),
        "models_decrypted": weights is not None,
    }
    if weights is not None:
        coef["encrypted"] = weights
        diff = float(np.abs(weights - twin.model.weights).max())
        coef["max_abs_diff_encrypted_twin"] = diff
        summary["max_weight_diff_encrypted_twin"] = diff
    times = phase_times(run)
    return {
        "folds": rows,
        "mean_sd": {k: {"mean": v[0], "sd": v[1]} for k, v in mean.items()},
        "twin_metrics": {m: [float(v) for v in getattr(twin_m, m)] for m in METRICS},
        "sklearn_metrics": {m: [float(v) for v in getattr(base.metrics, m)] for m in METRICS},
        "coefficients": coef,
        "models_decrypted": weights is not None,
        "times": times,
        "study_figures": STUDY_FIGURES,
        "setting": {
            "rows": data.pooled.n_samples,
            "features": data.pooled.n_features,
            "folds": study.folds,
            "hospitals": study.hospitals,
            "preset": study.preset,
            "iterations": study.iterations,
        },
        "summary": summary,
    }
