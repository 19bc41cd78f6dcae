"""Step 03 (notebooks/03_training.ipynb): encrypted training, the plaintext twin beside it, the training record."""

from __future__ import annotations

import numpy as np

from ..federation import Federation
from ..pipeline import Twin
from ..pipeline import fit_twin as _fit_twin
from .study import HospitalData, Study

__all__ = ['Twin', 'fit_twin', 'train', 'convergence', 'plan_rows', 'training_record']


def fit_twin(study: Study, data: HospitalData, cv) -> Twin:
    """The plaintext twin on the pooled rows (mpclr.pipeline.fit_twin: same folds, scaling, step sizes)."""
    return _fit_twin(study, data.pooled, cv)


def train(fed: Federation, cv, study: Study, progress=None):
    """Encrypted cross-validated training of every fold model in one pass (the pipeline's train stage; the
    models stay encrypted). Returns (TrainingLog, TrainingPlan, traffic of the training)."""
    from ..pipeline import Study as Stages

    stages = Stages.resumed(study, fed, cv, after="encrypt")
    before = fed.traffic()
    log = stages.train(progress=progress)
    return log, stages.plan, fed.network.traffic.since(before)


def convergence(twin: Twin) -> dict:
    """Per iteration (0 = the zero start) and fold: the twin's mean log-likelihood on the fold's training
    rows and on its test rows; per iteration and fold the largest |margin| the sigmoid polynomial saw."""
    from ..plain.twin import mean_log_likelihood

    m = twin.model
    masks = m.masks
    train_ll = np.stack([mean_log_likelihood(twin.Z, masks, W) for W in m.history])
    test_ll = np.stack([mean_log_likelihood(twin.Z, 1.0 - masks, W) for W in m.history])
    return {
        "train_log_likelihood": train_ll,  # (iterations + 1, folds)
        "test_log_likelihood": test_ll,
        "max_abs_margin": m.margin_history,  # (iterations, folds)
        "fraction_outsideinterval": m.fraction_outside,
        "interval": float(m.interval),
    }


def plan_rows(record: dict) -> list[dict]:
    """training.json's public plan and the encrypted run's seconds, one row per iteration."""
    plan, per = record["plan"], record["encrypted"]["per_iteration"]
    return [
        {
            "iteration": it["iteration"],
            "step size": f"{g:.4g}",
            "momentum": f"{e:.4g}",
            "gradient s": f"{it['gradient_s']:.3f}",
            "update + refresh s": f"{it['update_refresh_s']:.3f}",
        }
        for g, e, it in zip(plan["step_sizes"], plan["momentum"], per)
    ]


def training_record(study: Study, log, plan, traffic: dict, twin: Twin) -> dict:
    conv = convergence(twin)
    per_iteration = [
        {
            "iteration": int(r["iteration"]),
            "gradient_s": float(r["gradient_s"]),
            "update_refresh_s": float(r["update_refresh_s"]),
            "seconds": float(r["gradient_s"] + r["update_refresh_s"]),
        }
        for r in log.iterations
    ]
    refresh = traffic["by_type"].get("refresh.share", {"messages": 0, "bytes": 0})
    seconds = {k: float(v) for k, v in log.seconds.items()}
    return {
        "plan": {
            "iterations": len(plan.schedule),
            "degree": study.degree,
            "interval": plan.interval,
            "sigmoid_coefficients": np.asarray(plan.sigmoid, dtype=np.float64),
            "step_sizes": [g for g, _ in plan.schedule],
            "momentum": [e for _, e in plan.schedule],
        },
        "encrypted": {
            "seconds": seconds,
            "per_iteration": per_iteration,
            "refresh_rounds": log.refreshes,
            "refreshed_ciphertexts": log.refreshed_ciphertexts,
            "workers": log.workers,
            "traffic": traffic,
            "models": "encrypted at the server (encrypted_cv/); nobody has decrypted them",
        },
        "twin": {
            "note": "the plaintext twin on the pooled rows (simulation only): same folds, scaling, step sizes, "
            "sigmoid polynomial and iterations as the encrypted run",
            **conv,
            "coef": twin.model.weights,
        },
        "summary": {
            "training_s": round(seconds.get("train", 0.0), 3),
            "seconds_per_iteration": round(float(np.mean([r["seconds"] for r in per_iteration])), 3),
            "refresh_rounds": log.refreshes,
            "refreshed_ciphertexts": log.refreshed_ciphertexts,
            "refresh_mb": round(refresh["bytes"] / 1e6, 2),
            "twin_train_log_likelihood": round(float(conv["train_log_likelihood"][-1].mean()), 5),
            "twin_test_log_likelihood": round(float(conv["test_log_likelihood"][-1].mean()), 5),
            "twin_max_abs_margin": round(float(conv["max_abs_margin"].max()), 3),
        },
    }


