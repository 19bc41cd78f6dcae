"""The default study a deployment runs: x-fold cross-validated logistic regression trained on encrypted
data, then evaluated securely (the researcher receives only counts: confusion matrices, ROC points,
AUC), as `mpclr cv` does in one process; the fold models are decrypted by the key holders only if
asked (the default, so the researcher can compare them with a plaintext twin). Transport-agnostic:
the same function runs on an in-process `mpclr.Federation` whose hospitals hold their rows, and on a
`DeployedFederation` whose hospitals do.

Options (run-config keys, all optional): folds (5), workers ("auto", or a number), evaluation
("secure", the default: encrypted scores, counts key-switched to the researcher, as `mpclr cv` does;
"none" to skip), score-bound (16), decrypt-models (true: the key holders decrypt the fold models for the
researcher, as `mpclr cv` does by default; false keeps them encrypted), and either
schedule (a JSON list of [gamma, eta]) with degree (3) and bound-bits (8), or, when schedule is empty,
the plaintext twin's defaults (mpclr.plain.nesterov.NesterovLR: degree 5, 6 iterations) with step sizes from
the curvature of the encrypted aggregates, as mpclr.pipeline does (iterations, degree, learning-rate
override them). An option this study does not read, or iterations / learning-rate beside an explicit
schedule (which they cannot change), is refused before any hospital is contacted (check_config), and so is
a preset that cannot run a whole study (mpclr.params.check_study_preset). The run configuration's seed
does not reach this study: each hospital draws its fold assignment from its own secret randomness.

`encrypted_cv.manifest(HospitalsInfo, config)` is the study manifest of a run (mpclr.manifest): what each
hospital agrees, at join, to answer. It counts the secure evaluation's layout from the rows per fold of
the hospitals' own fold assignments, which each hospital reports before it joins (HospitalsInfo.fold_sizes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from ..params import check_study_preset
from ..spec import RUN_CONFIG_OPTIONS
from ..training.hospital import fold_sizes as hospital_fold_sizes

__all__ = ["encrypted_cv", "check_config", "study_spec", "OPTIONS", "fold_aucs", "HospitalsInfo",
           "encrypted_cv_manifest", "local_hospitals_info"]


# the run-config keys encrypted_cv reads, beside "seed" and "progress" (the coordinator adds those)
OPTIONS = RUN_CONFIG_OPTIONS
# keys of the app's other study (ping): every Flower run configuration carries all the app's keys
_OTHER_STUDY_KEYS = ("rounds", "payload")


def study_spec(config: dict, preset: str = "train", hospitals: int | None = None, threshold: int | None = None):
    """The study a run configuration describes (mpclr.spec.StudySpec.from_run_config; errors name the
    run-config key). A key this study does not read is refused by name."""
    from ..spec import StudySpec

    unknown = sorted(k for k in config if k not in (*OPTIONS, *_OTHER_STUDY_KEYS, "seed", "progress"))
    if unknown:
        raise ParameterError(f"run config: {', '.join(map(repr, unknown))} is not an option of the study "
                             f"{__name__}:encrypted_cv; it reads {', '.join(OPTIONS)}")
    return StudySpec.from_run_config({k: v for k, v in config.items() if k in OPTIONS}, preset=preset,
                                     hospitals=hospitals, threshold=threshold)


def check_config(preset, config: dict) -> None:
    """What encrypted_cv would refuse, checked by the coordinator before it contacts a hospital: a preset
    that cannot run a whole study, an option this study does not read, a value out of range."""
    check_study_preset(preset)
    study_spec(config)


@dataclass
class HospitalsInfo:
    """What the coordinator knows of the hospitals before a study starts, for the study's manifest:
    their names (in the order that numbers their rows), rows, features, the parameter set, the threshold,
    whether the transport coalesces the workers' refreshes, and `fold_sizes(folds)`: the rows per fold of
    the hospitals' own fold assignments, summed (each hospital counts its own, with the secret fold key it
    then keeps for the session); `min_cells`: each hospital's own smallest cell a table shows (its
    disclosure setting, public: a Table 1's manifest needs the largest)."""

    names: list[str]
    rows: list[int]
    features: int
    params: object
    threshold: int
    coalesce: bool
    fold_sizes: Callable[[int], list[int]]
    min_cells: list[int | None] = field(default_factory=list)


def local_hospitals_info(parties, params, threshold: int | None = None) -> HospitalsInfo:
    """HospitalsInfo for hospitals simulated in one process (Hospital nodes with their rows loaded, not yet
    joined): what an in-process Federation running encrypted_cv needs for its manifest, as a function of
    its hospitals (Federation's `manifest`)."""
    from ..params import get_preset

    parties = list(parties)
    shapes = [p.data_shape() for p in parties]

    def sizes(folds):
        return [int(x) for x in sum(np.asarray(hospital_fold_sizes(p, folds)) for p in parties)]

    return HospitalsInfo([p.name for p in parties], [r for r, _ in shapes], shapes[0][1], get_preset(params),
                         threshold or len(parties), False, sizes)


def encrypted_cv_manifest(info: HospitalsInfo, config: dict):
    """The manifest of `encrypted_cv(fed, config)` on these hospitals (mpclr.manifest), computed before
    the study starts: the coordinator sends it with the session, each hospital answers nothing beyond it."""
    from ..manifest import study_manifest
    from ..pipeline import study_plan

    spec = study_spec(config, info.params.name, len(info.names), int(info.threshold))
    secure = spec.evaluation == "secure"
    # the rows per fold shape the training's layout (features side by side where folds are small) and the
    # secure evaluation's
    plan = study_plan(spec, sum(info.rows), info.features, info.fold_sizes(spec.folds) if spec.folds > 1 else None,
                      key_holders=tuple(info.names), threshold=int(info.threshold), params=info.params,
                      evaluation={"score_bound": spec.score_bound} if secure else None, coalesce=bool(info.coalesce),
                      hospital_rows=tuple(info.rows))
    return study_manifest(plan)


def encrypted_cv(fed, config: dict) -> dict:
    """The study's stages (mpclr.pipeline.Study) on a federation whose hospitals hold their rows: no
    references (nobody holds the pooled rows), and a record of what the coordinator and researcher saw."""
    from ..pipeline import Study

    check_study_preset(fed.params)
    spec = study_spec(config, fed.params.name, fed.n, fed.threshold)
    progress = config.get("progress") or (lambda event, **info: None)
    study = Study(spec, fed).prepare()  # the hospitals hold their own rows

    t0 = time.perf_counter()
    # every hospital encrypts its rows for the evaluation now, while all of them are there: the
    # evaluation itself then needs only t key holders
    res = study.encrypt(evaluation_rows=True)
    progress("encrypted", seconds=round(time.perf_counter() - t0, 2))
    t0 = time.perf_counter()
    study.train(progress=lambda done, total: progress("training", done=done, total=total))
    progress("trained", seconds=round(time.perf_counter() - t0, 2))
    secure = study.evaluate(note=progress)
    if secure is not None:
        res.seconds["evaluation"] = study.timings["evaluation"]
    W, log = study.weights, res.trainer.log
    return {
        "folds": spec.folds,
        "schedule": [list(s) for s in study.plan.schedule],
        "degree": study.plan.degree,
        "evaluation": spec.evaluation,
        "score_bound": spec.score_bound if spec.evaluation == "secure" else None,
        "decrypt_models": spec.decrypt_models,
        "secure_evaluation": secure,
        "models": None if W is None else W.tolist(),
        "fold_of_row": res.fold_of_row.tolist(),
        "mean": res.mean.tolist(),
        "std": res.std.tolist(),
        "seconds": dict(res.seconds),
        "refreshes": log.refreshes,
        "workers": log.workers,
        "revealed": study.revealed(),  # every decryption and key switch to the researcher
    }


encrypted_cv.check_config = check_config  # the coordinator calls it before it contacts any hospital
encrypted_cv.manifest = encrypted_cv_manifest  # the coordinator asks a study hook for its manifest here


def fold_aucs(result: dict, X, y) -> list[float]:
    """Per-fold test AUC of the decrypted models on the rows (X, y) in the study's global row order:
    computed by whoever holds the rows (a test, a demo that plays every hospital), never by the server."""
    from sklearn.metrics import roc_auc_score

    from ..pipeline import fold_scores

    folds = np.asarray(result["fold_of_row"])
    Z = (np.asarray(X, dtype=np.float64) - np.asarray(result["mean"])) / np.asarray(result["std"])
    scores = fold_scores(Z, result["models"], folds)
    return [float(roc_auc_score(np.asarray(y)[folds == k], scores[folds == k])) for k in range(len(result["models"]))]


def ping(fed, config: dict) -> dict:
    """`rounds` (default 20) rounds of a no-op request to every hospital: what a round costs with nothing
    to compute (each hospital answers with a MACed "does not answer" error envelope). With `payload` = n,
    each request carries n more bytes (throughput)."""
    from ..wire import KIND_REQUEST

    s = fed.server
    names = [p.name for p in fed.hospitals]
    times = []
    size = int(config.get("payload", 0))  # request size, to measure throughput
    for _ in range(int(config.get("rounds", 20))):
        # random, one per hospital and round: Flower stores content-addressed chunks once, so a repeated
        # payload would not travel again
        pads = {p: os.urandom(size) for p in names}
        t0 = time.perf_counter()
        fed.network.request_many([(p, s._seal(KIND_REQUEST, "ping", p, {"pad": pads[p]} if size else {}))
                                  for p in names])
        times.append(time.perf_counter() - t0)
    return {"round_seconds": times}
