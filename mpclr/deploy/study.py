"""The default study a deployment runs: x-fold cross-validated logistic regression trained on encrypted
data, then evaluated securely (the researcher receives only counts: confusion matrices, ROC points,
AUC), as `mpclr cv` does in one process; the fold models are decrypted by the key holders only if
asked (the default, so the researcher can compare them with a plaintext twin). Transport-agnostic:
the same function runs on an in-process `mpclr.Federation` whose parties hold their rows, and on a
`DeployedFederation` whose sites do.

Options (run-config keys, all optional): folds (5), seed, workers ("auto", or a number), evaluation
("secure", the default: encrypted scores, counts key-switched to the researcher, as `mpclr cv` does;
"none" to skip), score-bound (16), decrypt-models (true: the key holders decrypt the fold models for the
researcher, as `mpclr cv` does by default; false keeps them encrypted), and either
schedule (a JSON list of [gamma, eta]) with degree (3) and bound-bits (6), or, when schedule is empty,
the plaintext twin's defaults (mpclr.lr.twin.NesterovLR: degree 5, 6 iterations) with step sizes from
the curvature of the encrypted aggregates, as mpclr.study does (iterations, degree, learning-rate
override them).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["encrypted_cv", "DEFAULT_SCHEDULE", "fold_aucs", "SitesInfo", "encrypted_cv_manifest", "local_sites_info"]

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


@dataclass
class SitesInfo:
    """What the coordinator knows of the hospitals before a study starts, for the study's manifest:
    their names (in the order that numbers their rows), rows, features, the parameter set, the threshold,
    whether the transport coalesces the workers' refreshes, and `fold_sizes(folds, seed)`: the rows per
    fold of the hospitals' own fold assignment, summed (each hospital counts its own)."""

    names: list[str]
    rows: list[int]
    features: int
    params: object
    threshold: int
    coalesce: bool
    fold_sizes: Callable[[int, int], list[int]]


def local_sites_info(ys: list, features: int, params, threshold: int | None = None, names=None) -> SitesInfo:
    """SitesInfo for hospitals simulated in one process, from each one's labels (in study order): what
    an in-process Federation running encrypted_cv needs for its manifest."""
    from ..lr.party import fold_seed, fold_sizes
    from ..params import get_preset

    names = list(names or [f"hospital-{i + 1}" for i in range(len(ys))])

    def sizes(folds, seed):
        return sum(fold_sizes(y, folds, fold_seed(seed, i)) for i, y in enumerate(ys)).tolist()

    return SitesInfo(names, [len(y) for y in ys], int(features), get_preset(params), threshold or len(ys), False, sizes)


def _options(config: dict) -> dict:
    """The study options encrypted_cv reads, checked, with their defaults."""
    workers = config.get("workers", "auto")
    seed = config.get("seed")
    evaluation = str(config.get("evaluation") or "secure")
    if evaluation not in ("secure", "none"):
        raise ParameterError(f"evaluation must be 'secure' or 'none', got {evaluation!r}")
    return {
        "folds": int(config.get("folds", 5)),
        "workers": workers if workers == "auto" else int(workers),
        "seed": 0 if seed is None else int(seed),
        "evaluation": evaluation,
        "score_bound": float(config.get("score-bound") or 16.0),
        "decrypt_models": _flag(config.get("decrypt-models", True)),
    }


def _etas_degree(config: dict) -> tuple[list[float], int, int]:
    """(momentum per iteration, sigmoid degree, bound bits) of the training encrypted_cv will run."""
    if config.get("schedule") not in (None, ""):
        return [e for _, e in _schedule(config.get("schedule"))], int(config.get("degree") or 3), int(
            config.get("bound-bits", 6))
    from ..lr.twin import NesterovLR, momentum_schedule

    defaults = NesterovLR()
    iterations = int(config.get("iterations") or defaults.iterations)
    return [float(e) for e in momentum_schedule(iterations)], int(config.get("degree") or defaults.degree), 6


def encrypted_cv_manifest(info: SitesInfo, config: dict):
    """The manifest of `encrypted_cv(fed, config)` on these hospitals (mpclr.lr.manifest), computed before
    the study starts: the coordinator sends it with the session, each hospital answers nothing beyond it."""
    from ..lr.manifest import StudyPlan, study_manifest

    opts = _options(config)
    etas, degree, bound_bits = _etas_degree(config)
    secure = opts["evaluation"] == "secure"
    plan = StudyPlan(
        key_holders=tuple(info.names),
        threshold=int(info.threshold),
        params=info.params,
        rows=int(sum(info.rows)),
        features=int(info.features),
        folds=opts["folds"],
        etas=tuple(etas),
        degree=degree,
        bound_bits=bound_bits,
        evaluation={"score_bound": opts["score_bound"]} if secure else None,
        fold_sizes=tuple(int(x) for x in info.fold_sizes(opts["folds"], opts["seed"])) if secure else None,
        decrypt_models=opts["decrypt_models"],
        workers=opts["workers"],
        coalesce=bool(info.coalesce),
    )
    return study_manifest(plan)


def encrypted_cv(fed, config: dict) -> dict:
    from ..lr.cv import encrypt_study
    from ..lr.encrypted import TrainingPlan
    from ..lr.sigmoid import sigmoid_poly

    progress = config.get("progress") or (lambda event, **info: None)
    opts = _options(config)
    folds, workers, seed, evaluation = opts["folds"], opts["workers"], opts["seed"], opts["evaluation"]
    decrypt_models = opts["decrypt_models"]

    def on_iteration(done, total):
        progress("training", done=done, total=total)

    t0 = time.perf_counter()
    res = encrypt_study(fed, folds=folds, seed=seed)
    ev = None
    if evaluation == "secure":
        # every hospital encrypts its rows for the evaluation now, while all of them are there: the
        # evaluation itself then needs only t key holders
        from ..lr.evaluation import SecureEvaluation

        t1 = time.perf_counter()
        ev = SecureEvaluation(fed, res, score_bound=opts["score_bound"], workers=workers)
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


encrypted_cv.manifest = encrypted_cv_manifest  # the coordinator asks a study hook for its manifest here


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
