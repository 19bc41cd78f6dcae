"""A whole study end to end: data split across hospitals, key ceremony, encrypted cross-validated training,
evaluation, and the clear-text references beside it, as one JSON-able record. With folds=1 (and
evaluation "none") the study trains one model on every row instead: nothing is held out, so nothing is
evaluated (mpclr.EncryptedLogisticRegression; the cross-validated estimator's final model).

The references exist because this is a simulation: the plaintext twin (the same algorithm in float64,
with the same folds, scaling, step sizes and iterations) separates approximation error from HE error,
and scikit-learn's LogisticRegression on the same folds and features is the usual baseline. In a real
deployment nobody holds the pooled rows they need.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .data import Dataset, check_folds, load, split
from .errors import DataError, ParameterError
from .federation import Federation
from .params import check_study_preset
from .plain.baselines import sklearn_cv, sklearn_fit
from .plain.metrics import METRICS, fold_metrics
from .plain.twin import fit_folds_z
from .training.cv import encrypt_study
from .training.encrypted import TrainingPlan
from .training.hospital import fold_sizes as hospital_fold_sizes
from .training.party import design_rows
from .version import __version__

if TYPE_CHECKING:
    from .plain.nesterov import NesterovLR

__all__ = ["StudyConfig", "run_cv", "plan_for"]


@dataclass(frozen=True)
class StudyConfig:
    """The study's design. None takes the twin's defaults (mpclr.plain.nesterov.NesterovLR)."""

    parties: int = 3
    threshold: int | None = None
    folds: int = 5  # 1: one model on every row, nothing held out (then evaluation "none")
    iterations: int | None = None
    degree: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    preset: str = "train"
    split: str | list = "even"
    workers: int | str = "auto"
    evaluation: str = "secure"  # "secure" (encrypted scores and counts), "decrypted-models" or "none" (folds=1)
    decrypt_models: bool = True  # reveal the fold models to the researcher (to compare with the twin)
    score_bound: float = 16.0  # public bound on |score| for the secure comparisons
    refine_rounds: int | None = None  # secure ROC refinement rounds (None: the evaluation's default)

    def model(self, curvature: float | None = None) -> NesterovLR:
        from .plain.nesterov import NesterovLR

        defaults = NesterovLR()
        return NesterovLR(
            iterations=defaults.iterations if self.iterations is None else self.iterations,
            degree=defaults.degree if self.degree is None else self.degree,
            learning_rate=defaults.learning_rate if self.learning_rate is None else self.learning_rate,
            interval=defaults.interval,
            curvature=curvature,
            random_state=self.seed,
        )


def plan_for(model: NesterovLR, curvature: float, bound_bits: int = 8) -> TrainingPlan:
    """The encrypted trainer's public plan for exactly the twin's algorithm."""
    from .plain.sigmoid import sigmoid_poly
    from .plain.twin import momentum_schedule

    gammas = model.step_sizes(curvature)
    etas = momentum_schedule(model.iterations)
    return TrainingPlan(
        sigmoid_poly(model.degree, model.interval),
        [(float(g), float(e)) for g, e in zip(gammas, etas)],
        interval=float(model.interval),
        bound_bits=bound_bits,
    )


def study_plan(config: StudyConfig, rows: int, features: int, evaluation: str, fold_sizes, rotation_steps=()):
    """The public plan `run_cv` follows, for its manifest (mpclr.manifest): the design, the rows and
    features, and the rows per fold of the hospitals' own fold assignments (summed)."""
    from .manifest import StudyPlan
    from .params import get_preset
    from .plain.twin import momentum_schedule

    model = config.model()
    model._validate()
    options = None
    if evaluation == "secure":
        options = {"score_bound": config.score_bound, "workers": config.workers}
        if config.refine_rounds is not None:
            options["refine_rounds"] = config.refine_rounds
    return StudyPlan(
        key_holders=tuple(f"hospital-{i + 1}" for i in range(config.parties)),
        threshold=config.threshold or config.parties,
        params=get_preset(config.preset),
        rows=int(rows),
        features=int(features),
        folds=config.folds,
        etas=tuple(float(e) for e in momentum_schedule(model.iterations)),
        degree=model.degree,
        evaluation=options,
        fold_sizes=None if fold_sizes is None else tuple(int(x) for x in fold_sizes),
        decrypt_models=config.decrypt_models,
        workers=config.workers,
        rotation_steps=tuple(rotation_steps),
    )


def load_parts(parties, parts) -> None:
    """Each hospital its own rows, numbered hospital by hospital (each hospital's rows contiguous), so
    that a data block holds one hospital's rows: with rows scattered, every hospital would encrypt every
    block."""
    offsets = np.cumsum([0] + [len(p) for p in parts])
    for k, (party, part) in enumerate(zip(parties, parts)):
        party.load_data(part.X, part.y, np.arange(offsets[k], offsets[k + 1]))


def study_manifest_for(config: StudyConfig, parts, evaluation: str, features: int):
    """The manifest run_cv's hospitals agree to, as a function of them (Federation's `manifest`): each
    gets its rows and counts its rows per fold with the secret fold key it will use in the study."""
    from .manifest import study_manifest

    def agree(parties):
        load_parts(parties, parts)
        sizes = None if config.folds == 1 else sum(np.asarray(hospital_fold_sizes(p, config.folds)) for p in parties)
        return study_manifest(study_plan(config, sum(len(p) for p in parts), features, evaluation, sizes))

    return agree


def _metrics_table(m) -> dict:
    return {name: [float(v) for v in getattr(m, name)] for name in METRICS}


def run_cv(
    data: str | Dataset = "breast_cancer",
    config: StudyConfig | None = None,
    *,
    progress=None,
    evaluation: str | None = None,
    fed: Federation | None = None,
    audit_dir=None,
) -> dict:
    """Run the study; returns the JSON-able record (see README, "The study record"). Without `fed`, the
    hospitals of a new federation answer only the requests of the study's manifest (mpclr.manifest),
    each appending its audit log under `audit_dir` when given (else kept in memory). With `fed`, its
    manifest must cover the study."""
    config = config or StudyConfig()
    t_start = time.perf_counter()
    check_study_preset(config.preset if fed is None else fed.params, config.parties)  # before any work
    dataset = load(data) if isinstance(data, str) else data
    if not isinstance(dataset, Dataset):
        raise ParameterError(f"parameter data must be a data set name, a path or a Dataset, got {type(data).__name__}")
    single = config.folds == 1 and not isinstance(config.folds, bool)  # one model on every row
    evaluation = config.evaluation if evaluation is None else evaluation
    if evaluation not in ("secure", "decrypted-models", "none"):
        raise ParameterError(f"parameter evaluation must be 'secure', 'decrypted-models' or 'none' (folds=1), "
                             f"got {evaluation!r}")
    if single != (evaluation == "none"):
        raise ParameterError("folds=1 trains one model on every row and holds none out to evaluate it: it goes with "
                             f"evaluation 'none' and only with it (folds={config.folds!r}, evaluation={evaluation!r})")
    if single:
        counts = np.bincount(dataset.y, minlength=2)
        if counts.min() < 1 or dataset.n_samples < 2:
            raise DataError(f"data set {dataset.name!r}: one model needs rows of both classes; class counts are "
                            f"0: {counts[0]}, 1: {counts[1]}")
    else:
        check_folds(dataset, config.folds)
    if evaluation == "decrypted-models" and not config.decrypt_models:
        raise ParameterError("evaluation 'decrypted-models' needs decrypt_models=True")
    if evaluation == "secure" and not 0.0 < config.score_bound <= 1e6:
        raise ParameterError(f"parameter score_bound must be in (0, 1e6], got {config.score_bound!r}")
    config.model()._validate()  # the study's design (iterations, degree, learning rate), before any work
    parts = split(dataset, config.parties, config.split, seed=config.seed)
    study_data = dataset.subset(np.concatenate([p.rows for p in parts]))  # in the study's row order (load_parts)
    timings = {}

    t0 = time.perf_counter()
    own_fed = fed is None
    if fed is None:
        # the hospitals agree to the study's requests, counted from its plan, and answer nothing more
        manifest = study_manifest_for(config, parts, evaluation, dataset.n_features)
        fed = Federation(parties=config.parties, preset=config.preset, seed=config.seed, threshold=config.threshold,
                         manifest=manifest, audit_dir=audit_dir)
        traffic_start = {"by_type": {}, "by_sender": {}, "total_bytes": 0}
    else:
        if fed.n != config.parties:
            raise ParameterError(f"parameter parties is {config.parties} but the federation has {fed.n} hospitals")
        traffic_start = fed.traffic()
    revealed_start = len(fed.researcher.revealed)  # the record lists what this study revealed
    timings["key_ceremony"] = time.perf_counter() - t0
    load_parts(fed.parties, parts)

    model = config.model()
    ecv = encrypt_study(fed, folds=config.folds, interval=model.interval)
    timings.update({k: v for k, v in ecv.seconds.items()})

    # the twin: same folds, same scaling (the decrypted aggregate's), same step sizes from the same curvature
    model = config.model(curvature=ecv.curvature)
    Z = design_rows(study_data.X, study_data.y, ecv.mean, ecv.std)
    twin = fit_folds_z(model, Z, None if single else ecv.fold_of_row)
    plan = plan_for(model, ecv.curvature)

    log = ecv.train(fed, plan, workers=config.workers, progress=progress)
    timings["training"] = ecv.seconds["training"]

    X_std = (study_data.X - ecv.mean) / ecv.std
    Xi = np.hstack([np.ones((study_data.n_samples, 1)), X_std])
    folds = ecv.fold_of_row
    secure = None
    t0 = time.perf_counter()
    if evaluation == "secure":
        from .evaluation.secure import evaluate_encrypted_cv

        options = {"score_bound": config.score_bound, "workers": config.workers}
        if config.refine_rounds is not None:
            options["refine_rounds"] = config.refine_rounds
        secure = evaluate_encrypted_cv(fed, ecv, **options)
    timings["evaluation"] = time.perf_counter() - t0
    W = None
    if config.decrypt_models:
        t1 = time.perf_counter()
        W = ecv.decrypt_models(fed)
        timings["decrypt_models"] = time.perf_counter() - t1
    model_m = None
    if W is not None and not single:  # the decrypted models scored in the clear: what the training produced
        model_m = fold_metrics(study_data.y, np.einsum("ij,ij->i", Xi, W[folds]), folds)
    if single:  # nothing held out: no metrics; the model beside scikit-learn's on every row
        enc_folds, enc_summary, twin_m, base, base_coef = [], None, None, None, sklearn_fit(X_std, study_data.y)
    elif evaluation == "decrypted-models":
        enc_folds = [{m: float(getattr(model_m, m)[k]) for m in METRICS} for k in range(config.folds)]
        enc_summary = model_m.summary()
    else:
        enc_folds = [{"auc": f["auc"], **f["metrics"]} for f in secure["folds"]]
        enc_summary = {m: (secure["summary"][m]["mean"], secure["summary"][m]["sd"]) for m in METRICS}
    if not single:
        twin_scores = np.einsum("ij,ij->i", Xi, twin.weights[folds])
        twin_m = fold_metrics(study_data.y, twin_scores, folds)
        base = sklearn_cv(X_std, study_data.y, folds)
        base_coef = base.coef
    timings["total"] = time.perf_counter() - t_start

    per_fold = []
    for k in range(0 if single else config.folds):
        test = np.flatnonzero(folds == k)
        per_fold.append(
            {
                "fold": k,
                "test_rows": sorted(study_data.rows[test].tolist()),  # row numbers in the data set as given
                "n_test": int(test.size),
                "encrypted": enc_folds[k],
                "encrypted_model": None if model_m is None else {m: float(getattr(model_m, m)[k]) for m in METRICS},
                "twin": {m: float(getattr(twin_m, m)[k]) for m in METRICS},
                "sklearn": {m: float(getattr(base.metrics, m)[k]) for m in METRICS},
            }
        )
    record = {
        "mpclr": __version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "data": {
            "name": dataset.name,
            "source": dataset.source,
            "rows": dataset.n_samples,
            "features": dataset.n_features,
            "positives": dataset.n_positive,
            "rows_per_party": [len(p) for p in parts],
        },
        "parameters": {
            "parties": config.parties,
            "threshold": fed.threshold,
            "folds": config.folds,
            "iterations": model.iterations,
            "degree": model.degree,
            "learning_rate": model.learning_rate,
            "interval": model.interval,
            "step_sizes": [g for g, _ in plan.schedule],
            "momentum": [e for _, e in plan.schedule],
            "seed": config.seed,
            "preset": fed.params.name,
            "split": config.split,
            "evaluation": evaluation,  # "none": folds=1, one model on every row
            "decrypt_models": config.decrypt_models,
            "score_bound": config.score_bound if evaluation == "secure" else None,
        },
        "security": fed.params.describe(),
        "layout": ecv.layout.describe(),
        "scaling": {"mean": ecv.mean.tolist(), "std": ecv.std.tolist(), "curvature": ecv.curvature},
        "evaluation_path": (
            "secure: encrypted scores and comparisons; only counts key-switched to the researcher"
            if secure is not None
            else "none: one model trained on every row (folds=1), no row held out"
            if single
            else "threshold decryption of the fold models, metrics computed in the clear on the test rows "
            "(this simulation holds them)"
        ),
        "secure_evaluation": secure,
        "timings_s": timings,
        "training": {
            "refresh_rounds": log.refreshes,
            "refreshed_ciphertexts": log.refreshed_ciphertexts,
            "workers": log.workers,
            "seconds": log.seconds,
            "iterations": log.iterations,
        },
        "traffic": fed.network.traffic.since(traffic_start),
        "weights": {
            "encrypted": None if W is None else W.tolist(),
            "twin": twin.weights.tolist(),
            "sklearn": base_coef.tolist(),
            "max_abs_diff_encrypted_twin": None if W is None else float(np.abs(W - twin.weights).max()),
        },
        "twin": {"max_abs_margin": twin.max_abs_margin, "fraction_outside_interval": twin.fraction_outside.tolist()},
        "folds": per_fold,
        "summary": {
            "encrypted": enc_summary,
            "encrypted_model": None if model_m is None else model_m.summary(),
            "twin": None if single else twin_m.summary(),
            "sklearn": None if single else base.metrics.summary(),
        },
        "revealed": list(fed.researcher.revealed[revealed_start:]),
        "manifest": fed.manifest.to_json() if getattr(fed, "manifest", None) else None,
        # what each hospital answered against the manifest's budgets: [rounds, ciphertexts, values]
        "answered": {p.name: dict(p.policy.used) for p in fed.parties if hasattr(p, "policy")},
    }
    if own_fed:
        fed.close()
    return record
