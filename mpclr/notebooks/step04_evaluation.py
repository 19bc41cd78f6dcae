"""Step 04 (notebooks/04_evaluation.ipynb): the secure evaluation and its record."""

from __future__ import annotations

import time

import numpy as np

from ..errors import ProtocolError
from ..federation import Federation

__all__ = ['evaluate', 'evaluation_record']


def evaluate(fed: Federation, cv, study, cutoff: float = 0.5, refine_rounds: int | None = None) -> dict:
    """Secure evaluation of every fold model (the pipeline's evaluate stage, mpclr.evaluation.secure):
    encrypted scores and comparisons, and only the agreed counts, switched to the researcher's own key
    (the models are not decrypted here: 05 does, if agreed). refine_rounds: rounds of thresholds the
    researcher chooses from the counts so far (None: the evaluation's default)."""
    from ..pipeline import Study as Stages

    spec = study.with_(evaluation="secure", refine_rounds=refine_rounds)
    t0 = time.perf_counter()
    result = Stages.resumed(spec, fed, cv, after="train").evaluate(cutoff=cutoff, decrypt=False)
    result["wall_s"] = time.perf_counter() - t0
    return result


def _checks_summary(checks: dict) -> dict:
    """The evaluation's own checks on its counts (whatever it reports), as flat metrics."""
    out = {}
    for k, v in checks.items():
        if isinstance(v, bool | int | float) or v is None:
            out[k] = round(float(v), 4) if isinstance(v, float) else v
    return out


def evaluation_record(result: dict, cv, cutoff: float, audit: list[dict], refine_rounds: int | None = None) -> dict:
    """evaluation.json: the secure evaluation's own result, what reached the researcher, a summary."""
    folds = result["folds"]
    sizes = np.bincount(cv.fold_of_row, minlength=cv.layout.folds)
    if [f["n"] for f in folds] != sizes.tolist():
        raise ProtocolError(f"the evaluation tested {[f['n'] for f in folds]} rows per fold, the folds hold {sizes}")
    total = {k: int(sum(f["confusion"][k] for f in folds)) for k in ("tp", "fp", "tn", "fn")}
    summary = result["summary"]

    def mean(key):
        v = summary.get(key, {}).get("mean")
        return None if v is None else round(float(v), 5)

    return {
        "cutoff": cutoff,
        "refine_rounds": refine_rounds,
        **result,
        "confusion_total": total,
        "researcher_audit": audit,
        "summary": {
            "secure_auc": mean("auc"),
            "secure_auc_sd": None if summary["auc"]["sd"] is None else round(float(summary["auc"]["sd"]), 5),
            "secure_accuracy": mean("accuracy"),
            "secure_sensitivity": mean("sensitivity"),
            "secure_specificity": mean("specificity"),
            "evaluation_s": round(float(result["seconds"]["total"]), 3),
            "rows_tested": int(sum(f["n"] for f in folds)),
            "revealed_values": int(result["revealed_values"]),
            **_checks_summary(result.get("checks", {})),
        },
    }


