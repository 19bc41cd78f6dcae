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
schedule (a JSON list of [gamma, eta]) with degree (3) and bound-bits (8), or, when schedule is empty,
the plaintext twin's defaults (mpclr.plain.nesterov.NesterovLR: degree 5, 6 iterations) with step sizes from
the curvature of the encrypted aggregates, as mpclr.study does (iterations, degree, learning-rate
override them). An option this study does not read, or iterations / learning-rate beside an explicit
schedule (which they cannot change), is refused before any site is contacted (check_config), and so is
a preset that cannot run a whole study (mpclr.params.check_study_preset). The run configuration's seed
does not reach this study: each site draws its fold assignment from its own secret randomness.

`encrypted_cv.manifest(SitesInfo, config)` is the study manifest of a run (mpclr.manifest): what each
hospital agrees, at join, to answer. It counts the secure evaluation's layout from the rows per fold of
the sites' own fold assignments, which each site reports before it joins (SitesInfo.fold_sizes).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..params import check_study_preset
from ..training.hospital import fold_sizes as hospital_fold_sizes

__all__ = ["encrypted_cv", "check_config", "study_options", "OPTIONS", "DEFAULT_SCHEDULE", "fold_aucs", "SitesInfo",
           "encrypted_cv_manifest", "local_sites_info"]
DEFAULT_SCHEDULE = [(2.0, 0.0), (1.0, 0.0), (0.7, -0.2)]


# the run-config keys encrypted_cv reads, beside "seed" and "progress" (the coordinator adds those)
OPTIONS = ("folds", "workers", "evaluation", "score-bound", "decrypt-models", "schedule", "degree", "bound-bits",
           "iterations", "learning-rate")
# keys of the app's other study (ping): every Flower run configuration carries all the app's keys
_OTHER_STUDY_KEYS = ("rounds", "payload")


def _flag(name: str, value) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ParameterError(f"run config: {name} must be true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool | int):
        raise ParameterError(f"run config: {name} must be true or false, got {value!r}")
    return bool(value)


def _number(config: dict, name: str, kind, default):
    """config[name] as `kind`; missing, empty or 0 (the app's "not set") gives `default`."""
    value = config.get(name)
    if value in (None, "", 0, 0.0):
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ParameterError(f"run config: {name} must be a number, got {value!r}") from None


def study_options(config: dict) -> dict:
    """The options encrypted_cv runs with, parsed and checked (errors name the run-config key)."""
    unknown = sorted(k for k in config if k not in (*OPTIONS, *_OTHER_STUDY_KEYS, "seed", "progress"))
    if unknown:
        raise ParameterError(f"run config: {', '.join(map(repr, unknown))} is not an option of the study "
                             f"{__name__}:encrypted_cv; it reads {', '.join(OPTIONS)}")
    folds = int(config.get("folds", 5))
    if folds < 2:
        raise ParameterError(f"run config: folds must be at least 2, got {folds}")
    workers = config.get("workers", "auto")
    workers = workers if workers == "auto" else int(workers)
    evaluation = str(config.get("evaluation") or "secure")
    if evaluation not in ("secure", "none"):
        raise ParameterError(f"run config: evaluation must be 'secure' or 'none', got {evaluation!r}")
    score_bound = _number(config, "score-bound", float, 16.0)
    if not 0.0 < score_bound <= 1e6:
        raise ParameterError(f"run config: score-bound must be in (0, 1e6], got {score_bound!r}")
    schedule = config.get("schedule")
    if isinstance(schedule, str) and schedule:
        try:
            schedule = json.loads(schedule)
        except json.JSONDecodeError:
            problem = f"run config: schedule must be JSON: a list of [gamma, eta], got {schedule!r}"
            raise ParameterError(problem) from None
    schedule = [(float(g), float(e)) for g, e in schedule] if schedule not in (None, "") else None
    iterations = _number(config, "iterations", int, None)
    learning_rate = _number(config, "learning-rate", float, None)
    if schedule is not None and (iterations is not None or learning_rate is not None):
        raise ParameterError("run config: iterations and learning-rate size the twin's schedule; with an explicit "
                             "schedule they would be ignored: give one or the other")
    degree = _number(config, "degree", int, None)
    if degree is not None and degree not in (3, 5, 7):
        raise ParameterError(f"run config: degree must be 3, 5 or 7, got {degree}")
    return {
        "folds": folds,
        "workers": workers,
        "evaluation": evaluation,
        "score_bound": score_bound,
        "decrypt_models": _flag("decrypt-models", config.get("decrypt-models", True)),
        "schedule": schedule,
        "degree": degree,
        "bound_bits": int(config.get("bound-bits", 8)),
        "iterations": iterations,
        "learning_rate": learning_rate,
    }


def check_config(preset, config: dict) -> None:
    """What encrypted_cv would refuse, checked by the coordinator before it contacts a site: a preset
    that cannot run a whole study, an option this study does not read, a value out of range."""
    check_study_preset(preset)
    study_options(config)


@dataclass
class SitesInfo:
    """What the coordinator knows of the hospitals before a study starts, for the study's manifest:
    their names (in the order that numbers their rows), rows, features, the parameter set, the threshold,
    whether the transport coalesces the workers' refreshes, and `fold_sizes(folds)`: the rows per fold of
    the hospitals' own fold assignments, summed (each hospital counts its own, with the secret fold key it
    then keeps for the session)."""

    names: list[str]
    rows: list[int]
    features: int
    params: object
    threshold: int
    coalesce: bool
    fold_sizes: Callable[[int], list[int]]


def local_sites_info(parties, params, threshold: int | None = None) -> SitesInfo:
    """SitesInfo for hospitals simulated in one process (Hospital nodes with their rows loaded, not yet
    joined): what an in-process Federation running encrypted_cv needs for its manifest, as a function of
    its hospitals (Federation's `manifest`)."""
    from ..params import get_preset

    parties = list(parties)
    shapes = [p.data_shape() for p in parties]

    def sizes(folds):
        return [int(x) for x in sum(np.asarray(hospital_fold_sizes(p, folds)) for p in parties)]

    return SitesInfo([p.name for p in parties], [r for r, _ in shapes], shapes[0][1], get_preset(params),
                     threshold or len(parties), False, sizes)


def _etas_degree(opts: dict) -> tuple[list[float], int]:
    """(momentum per iteration, sigmoid degree) of the training encrypted_cv will run."""
    if opts["schedule"] is not None:
        return [e for _, e in opts["schedule"]], opts["degree"] or 3
    from ..plain.nesterov import NesterovLR
    from ..plain.twin import momentum_schedule

    defaults = NesterovLR()
    etas = momentum_schedule(opts["iterations"] or defaults.iterations)
    return [float(e) for e in etas], opts["degree"] or defaults.degree


def encrypted_cv_manifest(info: SitesInfo, config: dict):
    """The manifest of `encrypted_cv(fed, config)` on these hospitals (mpclr.manifest), computed before
    the study starts: the coordinator sends it with the session, each hospital answers nothing beyond it."""
    from ..manifest import StudyPlan, study_manifest

    opts = study_options(config)
    etas, degree = _etas_degree(opts)
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
        bound_bits=opts["bound_bits"],
        evaluation={"score_bound": opts["score_bound"]} if secure else None,
        fold_sizes=tuple(int(x) for x in info.fold_sizes(opts["folds"])) if secure else None,
        decrypt_models=opts["decrypt_models"],
        workers=opts["workers"],
        coalesce=bool(info.coalesce),
    )
    return study_manifest(plan)


def encrypted_cv(fed, config: dict) -> dict:
    from ..plain.sigmoid import sigmoid_poly
    from ..training.cv import encrypt_study
    from ..training.encrypted import TrainingPlan

    check_study_preset(fed.params)
    opts = study_options(config)
    progress = config.get("progress") or (lambda event, **info: None)
    folds, workers = opts["folds"], opts["workers"]
    evaluation, decrypt_models = opts["evaluation"], opts["decrypt_models"]

    def on_iteration(done, total):
        progress("training", done=done, total=total)

    t0 = time.perf_counter()
    res = encrypt_study(fed, folds=folds)
    ev = None
    if evaluation == "secure":
        # every hospital encrypts its rows for the evaluation now, while all of them are there: the
        # evaluation itself then needs only t key holders
        from ..evaluation.secure import SecureEvaluation

        t1 = time.perf_counter()
        ev = SecureEvaluation(fed, res, score_bound=opts["score_bound"], workers=workers)
        ev.encrypt_rows()
        res.seconds["encrypt_evaluation_rows"] = time.perf_counter() - t1
    progress("encrypted", seconds=round(time.perf_counter() - t0, 2))
    if opts["schedule"] is not None:
        plan = TrainingPlan(sigmoid_poly(opts["degree"] or 3, 8.0), opts["schedule"], bound_bits=opts["bound_bits"])
    else:
        from ..plain.nesterov import NesterovLR
        from ..study import plan_for

        defaults = NesterovLR()
        model = NesterovLR(iterations=opts["iterations"] or defaults.iterations,
                           degree=opts["degree"] or defaults.degree,
                           learning_rate=opts["learning_rate"] or defaults.learning_rate,
                           curvature=res.curvature)
        plan = plan_for(model, res.curvature, bound_bits=opts["bound_bits"])
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
        "evaluation": evaluation,
        "score_bound": opts["score_bound"] if evaluation == "secure" else None,
        "decrypt_models": decrypt_models,
        "secure_evaluation": secure,
        "models": None if W is None else W.tolist(),
        "fold_of_row": res.fold_of_row.tolist(),
        "mean": res.mean.tolist(),
        "std": res.std.tolist(),
        "seconds": dict(res.seconds),
        "refreshes": log.refreshes,
        "workers": log.workers,
        "revealed": list(fed.researcher.revealed),  # every decryption and key switch to the researcher
    }


encrypted_cv.check_config = check_config  # the coordinator calls it before it contacts any site
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
    to compute (each site answers with a MACed "does not answer" error envelope). With `payload` = n,
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
