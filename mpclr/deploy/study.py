"""The default study a deployment runs: x-fold cross-validated logistic regression trained on encrypted
data, then evaluated securely (the researcher receives only counts: confusion matrices, ROC points,
AUC), as `mpclr cv` does in one process; the fold models are decrypted by the key holders only if
asked (the default, so the researcher can compare them with a plaintext twin). Transport-agnostic:
the same function runs on an in-process `mpclr.Federation` whose parties hold their rows, and on a
`DeployedFederation` whose sites do.

Options (run-config keys, all optional): folds (5), workers ("auto", or a number), evaluation
("secure", the default: encrypted scores, counts key-switched to the researcher, as `mpclr cv` does;
"none" to skip), score-bound (16), decrypt-models (true: the key holders decrypt the fold models for the
researcher, as `mpclr cv` does by default; false keeps them encrypted), and either
schedule (a JSON list of [gamma, eta]) with degree (3) and bound-bits (6), or, when schedule is empty,
the plaintext twin's defaults (mpclr.lr.twin.NesterovLR: degree 5, 6 iterations) with step sizes from
the curvature of the encrypted aggregates, as mpclr.study does (iterations, degree, learning-rate
override them). The run configuration's seed does not reach this study: each site draws its fold
assignment from its own secret randomness.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ..errors import ParameterError

__all__ = ["encrypted_cv", "DEFAULT_SCHEDULE", "fold_aucs"]

DEFAULT_SCHEDULE = [(2.0, 0.0), (1.0, 0.0), (0.7, -0.2)]


def _schedule(value):
    if value in (None, ""):
        return list(DEFAULT_SCHEDULE)
    if isinstance(value, str):
        value = json.loads(value)
    return [(float(g), float(e)) for g, e in value]


def _flag(value) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ParameterError(f"decrypt-models must be true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    return bool(value)


def encrypted_cv(fed, config: dict) -> dict:
    from ..lr.cv import encrypt_study
    from ..lr.encrypted import TrainingPlan
    from ..lr.sigmoid import sigmoid_poly

    progress = config.get("progress") or (lambda event, **info: None)
    folds = int(config.get("folds", 5))
    workers = config.get("workers", "auto")
    workers = workers if workers == "auto" else int(workers)
    evaluation = str(config.get("evaluation") or "secure")
    if evaluation not in ("secure", "none"):
        raise ParameterError(f"evaluation must be 'secure' or 'none', got {evaluation!r}")
    decrypt_models = _flag(config.get("decrypt-models", True))

    def on_iteration(done, total):
        progress("training", done=done, total=total)

    t0 = time.perf_counter()
    res = encrypt_study(fed, folds=folds)
    ev = None
    if evaluation == "secure":
        # every hospital encrypts its rows for the evaluation now, while all of them are there: the
        # evaluation itself then needs only t key holders
        from ..lr.evaluation import SecureEvaluation

        t1 = time.perf_counter()
        ev = SecureEvaluation(fed, res, score_bound=float(config.get("score-bound") or 16.0), workers=workers)
        ev.encrypt_rows()
        res.seconds["encrypt_evaluation_rows"] = time.perf_counter() - t1
    progress("encrypted", seconds=round(time.perf_counter() - t0, 2))
    if config.get("schedule") not in (None, ""):
        plan = TrainingPlan(sigmoid_poly(int(config.get("degree") or 3), 8.0), _schedule(config.get("schedule")),
                            bound_bits=int(config.get("bound-bits", 6)))
    else:
        from ..lr.twin import NesterovLR
        from ..study import plan_for

        defaults = NesterovLR()
        model = NesterovLR(iterations=int(config.get("iterations") or defaults.iterations),
                           degree=int(config.get("degree") or defaults.degree),
                           learning_rate=float(config.get("learning-rate") or defaults.learning_rate),
                           curvature=res.curvature)
        plan = plan_for(model, res.curvature)
    t0 = time.perf_counter()
    res.train(fed, plan, workers=workers, progress=on_iteration)
    progress("trained", seconds=round(time.perf_counter() - t0, 2))
    secure = None
    if ev is not None:
        t1 = time.perf_counter()
        progress("evaluation")
        secure = ev.run()
        res.seconds["evaluation"] = time.perf_counter() - t1
        progress("evaluated", seconds=round(res.seconds["evaluation"], 2),
                 auc=[round(f["auc"], 4) for f in secure["folds"]])
    W = None
    if decrypt_models:
        W = res.decrypt_models(fed)
        progress("models_decrypted", seconds=round(res.seconds.get("decrypt_models", 0.0), 2))
    log = res.trainer.log
    return {
        "folds": folds,
        "schedule": [list(s) for s in plan.schedule],
        "degree": plan.degree,
        "secure_evaluation": secure,
        "models": None if W is None else W.tolist(),
        "fold_of_row": res.fold_of_row.tolist(),
        "mean": res.mean.tolist(),
        "std": res.std.tolist(),
        "seconds": dict(res.seconds),
        "refreshes": log.refreshes,
        "workers": log.workers,
    }


def fold_aucs(result: dict, X, y) -> list[float]:
    """Per-fold test AUC of the decrypted models on the rows (X, y) in the study's global row order:
    computed by whoever holds the rows (a test, a demo that plays every site), never by the server."""
    from sklearn.metrics import roc_auc_score

    W = np.asarray(result["models"])
    folds = np.asarray(result["fold_of_row"])
    Z = (np.asarray(X, dtype=np.float64) - np.asarray(result["mean"])) / np.asarray(result["std"])
    scores = W[:, 0][None, :] + Z @ W[:, 1:].T
    return [float(roc_auc_score(np.asarray(y)[folds == k], scores[folds == k, k])) for k in range(W.shape[0])]


def ping(fed, config: dict) -> dict:
    """`rounds` (default 20) rounds of a no-op request to every site: what a round costs with nothing
    to compute (each site answers with a signed "does not answer" error envelope). With `payload` = n,
    each request carries n more bytes (throughput)."""
    from ..wire import KIND_REQUEST

    s = fed.server
    names = [p.name for p in fed.parties]
    times = []
    size = int(config.get("payload", 0))  # request size, to measure throughput
    for _ in range(int(config.get("rounds", 20))):
        # random, one per site and round: Flower stores content-addressed chunks once, so a repeated
        # payload would not travel again
        pads = {p: os.urandom(size) for p in names}
        t0 = time.perf_counter()
        fed.network.request_many([(p, s._seal(KIND_REQUEST, "ping", p, {"pad": pads[p]} if size else {}))
                                  for p in names])
        times.append(time.perf_counter() - t0)
    return {"round_seconds": times}
