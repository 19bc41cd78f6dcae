"""The default study a deployment runs (until mpclr.study.run_study plugs in through the same hook):
x-fold cross-validated logistic regression trained on encrypted data, fold models decrypted by the
key holders. Transport-agnostic: the same function runs on an in-process `mpclr.Federation` whose
parties hold their rows, and on a `DeployedFederation` whose sites do.

Options (run-config keys, all optional): folds (5), seed, workers ("auto", or a number), and either
schedule (a JSON list of [gamma, eta]) with degree (3) and bound-bits (6), or, when schedule is empty,
the plaintext twin's defaults (mpclr.lr.twin.NesterovLR: degree 5, 6 iterations) with step sizes from
the curvature of the encrypted aggregates, as mpclr.study does (iterations, degree, learning-rate
override them).
"""

from __future__ import annotations

import json
import time

import numpy as np

__all__ = ["encrypted_cv", "DEFAULT_SCHEDULE", "fold_aucs"]

DEFAULT_SCHEDULE = [(2.0, 0.0), (1.0, 0.0), (0.7, -0.2)]


def _schedule(value):
    if value in (None, ""):
        return list(DEFAULT_SCHEDULE)
    if isinstance(value, str):
        value = json.loads(value)
    return [(float(g), float(e)) for g, e in value]


def encrypted_cv(fed, config: dict) -> dict:
    from ..lr.cv import run_encrypted_cv
    from ..lr.encrypted import TrainingPlan
    from ..lr.sigmoid import sigmoid_poly

    progress = config.get("progress") or (lambda event, **info: None)
    folds = int(config.get("folds", 5))
    plan = TrainingPlan(sigmoid_poly(int(config.get("degree") or 3), 8.0), _schedule(config.get("schedule")),
                        bound_bits=int(config.get("bound-bits", 6)))
    workers = config.get("workers", "auto")
    workers = workers if workers == "auto" else int(workers)
    seed = config.get("seed")
    seed = 0 if seed is None else int(seed)

    def on_iteration(done, total):
        progress("training", done=done, total=total)

    t0 = time.perf_counter()
    if config.get("schedule") not in (None, ""):
        res = run_encrypted_cv(fed, folds=folds, plan=plan, seed=seed, workers=workers, progress=on_iteration)
    else:
        from ..lr.cv import encrypt_study
        from ..lr.twin import NesterovLR
        from ..study import plan_for

        res = encrypt_study(fed, folds=folds, seed=seed)
        defaults = NesterovLR()
        model = NesterovLR(iterations=int(config.get("iterations") or defaults.iterations),
                           degree=int(config.get("degree") or defaults.degree),
                           learning_rate=float(config.get("learning-rate") or defaults.learning_rate),
                           curvature=res.curvature)
        plan = plan_for(model, res.curvature)
        res.train(fed, plan, workers=workers, progress=on_iteration)
    progress("trained", seconds=round(time.perf_counter() - t0, 2))
    W = res.decrypt_models(fed)
    progress("models_decrypted", seconds=round(res.seconds.get("decrypt_models", 0.0), 2))
    log = res.trainer.log
    return {
        "folds": folds,
        "schedule": [list(s) for s in plan.schedule],
        "degree": plan.degree,
        "models": W.tolist(),
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
    pad = bytes(int(config.get("payload", 0)))  # request size, to measure throughput
    for _ in range(int(config.get("rounds", 20))):
        t0 = time.perf_counter()
        fed.network.request_many([(p, s._seal(KIND_REQUEST, "ping", p, {"pad": pad} if pad else {})) for p in names])
        times.append(time.perf_counter() - t0)
    return {"round_seconds": times}
