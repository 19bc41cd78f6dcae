"""A study in stages: prepare -> [table_one] -> encrypt -> train -> evaluate -> references -> record. The
command line (`mpclr cv`, `run_cv`), the estimators, each notebook step and the Flower deployment
(deploy/study.py) run these same stages; a notebook step runs one and hands the next step its results
through the run folder (`Study.resumed`).

prepare     the data split over the hospitals (a simulation), the federation and its manifest
table_one   (spec.table_one) the secure Table 1 by the label, overall and per class (mpclr.stats.table1):
            only pooled counts, means and SDs revealed, small cells suppressed under encryption
encrypt     fold assignment, pooled scaling (the one aggregate the researcher decrypts), encrypted rows
train       encrypted training of every fold model at once (they stay encrypted)
evaluate    secure evaluation (only counts reach the researcher) and, if agreed, the models decrypted
references  the plaintext twin and scikit-learn on the same folds and scaling (a simulation only)
record      the JSON-able record (README, "The study record")

With folds=1 (and evaluation "none") the study trains one model on every row: nothing is held out, so
nothing is evaluated (mpclr.EncryptedLogisticRegression; the cross-validated estimator's final model).

The references exist because this is a simulation: the plaintext twin (the same algorithm in float64,
with the same folds, scaling, step sizes and iterations) separates approximation error from HE error,
and scikit-learn's LogisticRegression on the same folds and features is the usual baseline. In a real
deployment nobody holds the pooled rows they need.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np

from .data import Dataset, check_folds, load, split
from .errors import DataError, ParameterError, ProtocolError
from .federation import Federation
from .params import check_study_preset
from .plain.metrics import METRICS, fold_metrics
from .spec import StudySpec
from .training.encrypted import TrainingPlan
from .training.hospital import fold_sizes as hospital_fold_sizes
from .version import __version__

__all__ = ["Study", "StageOrderError", "run_cv", "plan_for", "study_plan", "study_manifest_for", "fold_scores",
           "Twin", "fit_twin", "sklearn_reference", "STAGES"]

STAGES = ("prepare", "table_one", "encrypt", "train", "evaluate", "references", "record")
OPTIONAL = ("table_one",)  # runs when the spec asks for it (spec.table_one)
NEEDS = {"prepare": (), "table_one": ("prepare",), "encrypt": ("prepare",), "train": ("encrypt",),
         "evaluate": ("train",), "references": ("encrypt",), "record": ("evaluate", "references")}


class StageOrderError(ProtocolError):
    """A stage of a study asked for before the stages it needs, or a second time."""


# ------------------------------------------------------------------------------------------------ shared pieces
def fold_scores(X_std, weights, fold_of_row) -> np.ndarray:
    """Every row's log-odds under the model of its own fold (the model that did not see it); weights
    (folds, d + 1), intercept first, on standardized features."""
    W = np.asarray(weights, dtype=np.float64)[np.asarray(fold_of_row)]
    return W[:, 0] + np.einsum("ij,ij->i", np.asarray(X_std, dtype=np.float64), W[:, 1:])


@dataclass
class Twin:
    """The plaintext twin on the pooled rows: same folds, scaling, step sizes and iterations."""

    model: object  # the fold models (mpclr.plain.twin.FoldModels)
    Z: np.ndarray  # z-rows of the pooled data, standardized with the decrypted aggregate's scaling
    X_std: np.ndarray

    def scores(self, fold_of_row) -> np.ndarray:
        return fold_scores(self.X_std, self.model.weights, fold_of_row)


def fit_twin(spec: StudySpec, pooled: Dataset, ecv) -> Twin:
    """The twin of the encrypted training of `ecv` on the pooled rows (global row order)."""
    from .plain.twin import fit_folds_z
    from .training.party import design_rows

    model = spec.model(curvature=ecv.curvature)
    Z = design_rows(pooled.X, pooled.y, ecv.mean, ecv.std)
    fold_ids = None if spec.single else ecv.fold_of_row
    return Twin(fit_folds_z(model, Z, fold_ids), Z, (pooled.X - ecv.mean) / ecv.std)


def sklearn_reference(spec: StudySpec, twin: Twin, y, fold_of_row):
    """scikit-learn on the twin's standardized rows: on the same folds (BaselineCV), or with folds=1 its
    one model on every row ((1, d + 1), intercept first)."""
    from .plain.baselines import sklearn_cv, sklearn_fit

    if spec.single:
        return sklearn_fit(twin.X_std, y)
    return sklearn_cv(twin.X_std, y, fold_of_row)


def plan_for(model, curvature: float, bound_bits: int = 8) -> TrainingPlan:
    """The encrypted trainer's public plan for exactly the twin's algorithm (model: a NesterovLR)."""
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


def training_plan(spec: StudySpec, curvature: float) -> TrainingPlan:
    """The spec's explicit schedule, or the twin's from the pooled curvature."""
    from .plain.sigmoid import sigmoid_poly

    model = spec.model(curvature=curvature)
    if spec.schedule is not None:
        return TrainingPlan(sigmoid_poly(model.degree, model.interval), list(spec.schedule),
                            bound_bits=spec.bound_bits)
    return plan_for(model, curvature, bound_bits=spec.bound_bits)


def study_etas(spec: StudySpec) -> tuple[float, ...]:
    """The momentum of every iteration the training will run (public before the study: the manifest)."""
    from .plain.twin import momentum_schedule

    if spec.schedule is not None:
        return tuple(float(e) for _, e in spec.schedule)
    return tuple(float(e) for e in momentum_schedule(spec.model().iterations))


def study_plan(spec: StudySpec, rows: int, features: int, fold_sizes, rotation_steps=(), **more):
    """The public plan the stages follow, for its manifest (mpclr.manifest): the design, the rows and
    features, and the rows per fold of the hospitals' own fold assignments (summed). `more`: StudyPlan's
    other fields (key_holders, threshold, params of a deployment; evaluation and name of the notebooks)."""
    from .manifest import StudyPlan
    from .upload_mode import AUTO

    params = spec.params()
    if params.upload == AUTO and "params" not in more:
        # in one process nothing travels: the bytes share-keyed uploads would save are never sent, while the
        # server's switch and the hospitals' encryption in threads (Pyfhel holds the GIL) cost time: paper
        # scale's encryption 25.6 s against 10.8 s (benchmarks/results/uploads-paper-in-process.json). A
        # deployment (mpclr.deploy.study) resolves "auto" by its bytes (mpclr.upload_mode).
        params = params.with_(upload="public-key")
    values = dict(
        key_holders=tuple(spec.hospital_names()),
        threshold=spec.key_holders_needed,
        params=params,
        rows=int(rows),
        features=int(features),
        folds=spec.folds,
        etas=study_etas(spec),
        degree=spec.model().degree,
        bound_bits=spec.bound_bits,
        evaluation=spec.evaluation_options(),
        fold_sizes=None if fold_sizes is None else tuple(int(x) for x in fold_sizes),
        decrypt_models=spec.decrypt_models,
        workers=spec.workers,
        rotation_steps=tuple(int(s) for s in rotation_steps),
    )
    return StudyPlan(**{**values, **more})


def load_parts(hospitals, parts, own_rows: bool = False) -> None:
    """Each hospital its own rows, numbered hospital by hospital (each hospital's rows contiguous), so
    that a data block holds one hospital's rows: with rows scattered, every hospital would encrypt every
    block. own_rows: the parts' own global row numbers instead (the notebooks')."""
    offsets = np.cumsum([0] + [len(p) for p in parts])
    for k, (party, part) in enumerate(zip(hospitals, parts)):
        party.load_data(part.X, part.y, part.rows if own_rows else np.arange(offsets[k], offsets[k + 1]))


def summed_fold_sizes(hospitals, folds: int):
    """Rows per fold of the hospitals' own fold assignments, summed (None for one model on every row)."""
    if folds == 1:
        return None
    return sum(np.asarray(hospital_fold_sizes(p, folds)) for p in hospitals)


def study_manifest_for(spec: StudySpec, parts, features: int, *, own_rows: bool = False, rotation_steps=(), **more):
    """The manifest the hospitals agree to, as a function of them (Federation's `manifest`): each gets
    its rows and counts its rows per fold with the secret fold key it will use in the study. With
    spec.table_one, the Table 1's part (mpclr.stats.baseline.table_part, at the hospitals' own min_cell)
    merged in beside the cross-validation's."""
    from .manifest import study_manifest

    def agree(hospitals):
        load_parts(hospitals, parts, own_rows)
        sizes = summed_fold_sizes(hospitals, spec.folds)
        rows = {"hospital_rows": tuple(len(p) for p in parts)}
        cv = study_manifest(study_plan(spec, sum(len(p) for p in parts), features, sizes, rotation_steps,
                                       **{**rows, **more}))
        if not spec.table_one:
            return cv
        from .roles.policy import merge_manifests
        from .stats.baseline import table_part

        return merge_manifests(f"{cv.name} and Table 1", cv,
                               table_part(spec.params(), hospitals, spec.key_holders_needed, parts))

    return agree


def _metrics_table(m) -> dict:
    return {name: [float(v) for v in getattr(m, name)] for name in METRICS}


# ------------------------------------------------------------------------------------------------ the stages
class Study:
    """One run of a StudySpec, stage by stage (each stage a method, in the order of STAGES; `run` does all).

    fed: an existing federation (its manifest must cover the study; its hospitals hold their rows when
    `prepare` gets no data, as the deployed hospitals do). Without it `prepare` makes one whose hospitals
    answer only this study's manifest, each appending its audit log under `audit_dir` when given."""

    def __init__(self, spec: StudySpec, fed: Federation | None = None, *, progress=None, audit_dir=None):
        if not isinstance(spec, StudySpec):
            raise ParameterError(f"parameter spec must be an mpclr.spec.StudySpec, got {type(spec).__name__}")
        self.spec = spec
        self.fed = fed
        self.progress = progress
        self.audit_dir = audit_dir
        self.done: list[str] = []
        self.timings: dict[str, float] = {}
        self.dataset = self.parts = self.pooled = None
        self.ecv = self.log = self.plan = self.secure = self.weights = None
        self.evaluation = None  # a SecureEvaluation whose rows were encrypted before training
        self.twin = self.base = None
        self.table = None  # the Table 1's record (mpclr.stats.table1.TableOne.to_dict), when it ran
        self._own_fed = False
        self._t_start = time.perf_counter()

    @classmethod
    def resumed(cls, spec: StudySpec, fed: Federation, ecv=None, *, after: str, pooled: Dataset | None = None,
                parts=None) -> Study:
        """A study whose stages up to `after` ran earlier (a notebook step after the steps before it)."""
        study = cls(spec, fed)
        study.done = list(STAGES[: STAGES.index(after) + 1])
        study.ecv, study.pooled, study.parts = ecv, pooled, parts
        study._revealed_start, study._traffic_start = len(fed.researcher.revealed), fed.traffic()
        return study

    def _enter(self, stage: str) -> None:
        if stage in self.done:
            raise StageOrderError(f"stage {stage!r} of this study already ran (the hospitals would be asked again, "
                                  "beyond their manifest): make a new Study")
        missing = [s for s in NEEDS[stage] if s not in self.done]
        if missing:
            order = " -> ".join(f"[{s}]" if s in OPTIONAL else s for s in STAGES)
            raise StageOrderError(f"stage {stage!r} needs stage {missing[0]!r} first; a study's stages run in the "
                                  f"order {order}")

    def _leave(self, stage: str) -> None:
        self.done.append(stage)

    # ---------------------------------------------------------------------------------------------- prepare
    def prepare(self, data: str | Dataset | None = None) -> Study:
        """The data (a name, a path or a Dataset; None: the spec's dataset, or, with a federation whose
        hospitals hold their rows, nothing), split over the hospitals, and the federation."""
        self._enter("prepare")
        spec = self.spec
        check_study_preset(spec.params() if self.fed is None else self.fed.params, spec.hospitals)  # before any work
        if data is not None or self.fed is None:
            self._split(spec.dataset if data is None else data)
        if self.fed is not None and self.fed.n != spec.hospitals:
            raise ParameterError(f"parameter hospitals is {spec.hospitals} but the federation has {self.fed.n} "
                                 "hospitals")
        t0 = time.perf_counter()
        if self.fed is None:
            # the hospitals agree to the study's requests, counted from its plan, and answer nothing more
            manifest = study_manifest_for(spec, self.parts, self.dataset.n_features)
            self.fed = Federation(hospitals=spec.hospitals, preset=spec.params(), seed=spec.seed,
                                  threshold=spec.threshold, manifest=manifest, audit_dir=self.audit_dir)
            self._own_fed = True
            self._traffic_start = {"by_type": {}, "by_sender": {}, "total_bytes": 0}
        else:
            self._traffic_start = self.fed.traffic()
        self._revealed_start = len(self.fed.researcher.revealed)  # the record lists what this study revealed
        self.timings["key_ceremony"] = time.perf_counter() - t0
        if self.parts is not None:
            load_parts(self.fed.hospitals, self.parts)
        self._leave("prepare")
        return self

    def _split(self, data) -> None:
        spec = self.spec
        dataset = load(data) if isinstance(data, str) else data
        if not isinstance(dataset, Dataset):
            raise ParameterError(f"parameter data must be a data set name, a path or a Dataset, got "
                                 f"{type(data).__name__}")
        if spec.single:
            counts = np.bincount(dataset.y, minlength=2)
            if counts.min() < 1 or dataset.n_samples < 2:
                raise DataError(f"data set {dataset.name!r}: one model needs rows of both classes; class counts "
                                f"are 0: {counts[0]}, 1: {counts[1]}")
        else:
            check_folds(dataset, spec.folds)
        self.parts = split(dataset, spec.hospitals, spec.split_how(), seed=spec.seed)
        self.dataset = dataset
        self.pooled = dataset.subset(np.concatenate([p.rows for p in self.parts]))  # in load_parts' row order

    # ---------------------------------------------------------------------------------------------- table_one
    def table_one(self):
        """The secure Table 1 of the hospitals' rows by the label, overall and per class (mpclr.stats.table1),
        on this federation and under its manifest, before any model: a hospital refusing it (its own
        disclosure rules) stops the study here, naming why."""
        from .stats.baseline import agreed, study_table

        self._enter("table_one")
        if self.parts is None:
            raise StageOrderError("stage 'table_one' needs the hospitals' rows as this study split them (prepare "
                                  "with data); deployed hospitals run mpclr.stats.deploy:table_one")
        if not agreed(getattr(self.fed, "manifest", None)):
            raise ParameterError("parameter table_one: the federation's study manifest has no Table 1, so its "
                                 "hospitals would refuse it; make the federation with one that has "
                                 "(mpclr.stats.baseline.table_part merged in), or table_one=False")
        t0 = time.perf_counter()
        try:
            table = study_table(self.fed, self.parts)
        except ProtocolError as exc:
            raise ProtocolError(f"Table 1: {exc}. The study stopped before its cross-validation; without the table: "
                                "table_one=False (mpclr cv --no-table-one)") from None
        self.table = table.to_dict()
        self.timings["table_one"] = time.perf_counter() - t0
        self._leave("table_one")
        return table

    # ---------------------------------------------------------------------------------------------- encrypt
    def encrypt(self, *, evaluation_rows: bool = False, fed=None):
        """Fold assignment, pooled scaling, encrypted rows. evaluation_rows: every hospital also encrypts
        its rows for the secure evaluation now, while all are there (the evaluation then needs only t key
        holders). `fed`: the federation to ask through (a notebook's researcher tap); default this one's."""
        from .training.cv import encrypt_study

        self._enter("encrypt")
        also = None
        if evaluation_rows and self.spec.evaluation == "secure":
            from .evaluation.secure import SecureEvaluation

            def also(ecv):  # the evaluation rows go in the rounds of the training rows (one round fewer)
                self.evaluation = SecureEvaluation(self.fed, ecv, **self.spec.evaluation_options())
                return [self.evaluation.rows_upload()]

        self.ecv = encrypt_study(fed or self.fed, folds=self.spec.folds, interval=self.spec.model().interval,
                                 bound_bits=self.spec.bound_bits, also=also)
        if also is not None:
            t1 = time.perf_counter()
            self.evaluation.rows_done()
            self.ecv.seconds["encrypt_evaluation_rows"] = time.perf_counter() - t1  # uploaded with "encryption"
        self.timings.update(self.ecv.seconds)
        self._leave("encrypt")
        return self.ecv

    # ---------------------------------------------------------------------------------------------- train
    def train(self, progress=None):
        """Every fold model trained at once under encryption (they stay encrypted); returns the log."""
        self._enter("train")
        self.plan = training_plan(self.spec, self.ecv.curvature)
        ev = self.evaluation
        if ev is not None and ev._by is None and "rotation_keys" not in ev.seconds:
            # the secure evaluation's rotation keys in the rounds of the training's (by whoever answers,
            # as both would make them): one round fewer
            t0 = time.perf_counter()
            self.fed.generate_rotation_key_sets([(self.ecv.rotation_steps(), None), ev.rotation_key_set()])
            # a phase of its own: no longer inside the training's seconds nor the evaluation's
            self.ecv.seconds["rotation_keys"] = ev.seconds["rotation_keys"] = time.perf_counter() - t0
        self.log = self.ecv.train(self.fed, self.plan, workers=self.spec.workers, progress=progress or self.progress)
        self.timings["training"] = self.ecv.seconds["training"]
        self._leave("train")
        return self.log

    # ---------------------------------------------------------------------------------------------- evaluate
    def evaluate(self, *, cutoff: float | None = None, decrypt: bool | None = None, note=None, progress=None):
        """The secure evaluation (spec.evaluation "secure"), then the fold models decrypted for the
        researcher if the spec agrees to it (decrypt False: not in this stage, a later step does).
        note(event, **info): progress events (evaluation, evaluated, models_decrypted), as a deployment logs;
        progress(done, total): the secure evaluation's steps (SecureEvaluation.run)."""
        self._enter("evaluate")
        spec, note = self.spec, note or (lambda event, **info: None)
        t0 = time.perf_counter()
        if spec.evaluation == "secure":
            if self.evaluation is None:
                from .evaluation.secure import SecureEvaluation

                options = spec.evaluation_options()
                if cutoff is not None:
                    options["cutoff"] = cutoff
                self.evaluation = SecureEvaluation(self.fed, self.ecv, **options)
            note("evaluation")
            self.secure = self.evaluation.run(progress)
            note("evaluated", seconds=round(time.perf_counter() - t0, 2),
                 auc=[round(f["auc"], 4) for f in self.secure["folds"]])
        self.timings["evaluation"] = time.perf_counter() - t0
        if spec.decrypt_models if decrypt is None else decrypt:
            t1 = time.perf_counter()
            self.weights = self.ecv.decrypt_models(self.fed)
            self.timings["decrypt_models"] = time.perf_counter() - t1
            note("models_decrypted", seconds=round(self.ecv.seconds.get("decrypt_models", 0.0), 2))
        self._leave("evaluate")
        return self.secure

    # ---------------------------------------------------------------------------------------------- references
    def references(self) -> Twin:
        """The twin (same folds, the decrypted aggregate's scaling, same step sizes from the same
        curvature) and scikit-learn on the pooled rows: possible only in a simulation."""
        self._enter("references")
        if self.pooled is None:
            raise StageOrderError("stage 'references' needs the pooled rows, which only a simulation holds (prepare "
                                  "with data)")
        self.twin = fit_twin(self.spec, self.pooled, self.ecv)
        self.base = sklearn_reference(self.spec, self.twin, self.pooled.y, self.ecv.fold_of_row)
        self._leave("references")
        return self.twin

    # ---------------------------------------------------------------------------------------------- record
    def revealed(self) -> list:
        """Everything this study decrypted or switched to the researcher (the researcher's own record)."""
        return list(self.fed.researcher.revealed[self._revealed_start:])

    def record(self) -> dict:
        """The JSON-able record (see README, "The study record")."""
        self._enter("record")
        spec, fed, ecv, single = self.spec, self.fed, self.ecv, self.spec.single
        y, folds, W, secure = self.pooled.y, ecv.fold_of_row, self.weights, self.secure
        model_m = twin_m = None
        if W is not None and not single:  # the decrypted models scored in the clear: what the training produced
            model_m = fold_metrics(y, fold_scores(self.twin.X_std, W, folds), folds)
        if single:
            enc_folds, enc_summary, base_coef = [], None, self.base
        else:
            if spec.evaluation == "none":  # fold models trained, none evaluated (a deployment may skip it)
                enc_folds, enc_summary = [None] * spec.folds, None
            elif spec.evaluation == "decrypted-models":
                enc_folds = [{m: float(getattr(model_m, m)[k]) for m in METRICS} for k in range(spec.folds)]
                enc_summary = model_m.summary()
            else:
                enc_folds = [{"auc": f["auc"], **f["metrics"]} for f in secure["folds"]]
                enc_summary = {m: (secure["summary"][m]["mean"], secure["summary"][m]["sd"]) for m in METRICS}
            twin_m = fold_metrics(y, self.twin.scores(folds), folds)
            base_coef = self.base.coef
        self.timings["total"] = time.perf_counter() - self._t_start
        per_fold = []
        for k in range(0 if single else spec.folds):
            test = np.flatnonzero(folds == k)
            per_fold.append(
                {
                    "fold": k,
                    "test_rows": sorted(self.pooled.rows[test].tolist()),  # row numbers in the data set as given
                    "n_test": int(test.size),
                    "encrypted": enc_folds[k],
                    "encrypted_model": None if model_m is None else {m: float(getattr(model_m, m)[k]) for m in METRICS},
                    "twin": {m: float(getattr(twin_m, m)[k]) for m in METRICS},
                    "sklearn": {m: float(getattr(self.base.metrics, m)[k]) for m in METRICS},
                }
            )
        model, plan, log, twin = self.twin.model.model, self.plan, self.log, self.twin.model
        record = {
            "mpclr": __version__,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "data": {
                "name": self.dataset.name,
                "source": self.dataset.source,
                "rows": self.dataset.n_samples,
                "features": self.dataset.n_features,
                "positives": self.dataset.n_positive,
                "rows_per_hospital": [len(p) for p in self.parts],
            },
            "parameters": {
                "hospitals": spec.hospitals,
                "threshold": fed.threshold,
                "folds": spec.folds,
                "iterations": model.iterations,
                "degree": model.degree,
                "learning_rate": model.learning_rate,
                "interval": model.interval,
                "step_sizes": [g for g, _ in plan.schedule],
                "momentum": [e for _, e in plan.schedule],
                "seed": spec.seed,
                "preset": fed.params.name,
                "split": list(spec.split) if isinstance(spec.split, tuple) else spec.split,
                "evaluation": spec.evaluation,  # "none": folds=1, one model on every row
                "decrypt_models": spec.decrypt_models,
                "score_bound": spec.score_bound if spec.evaluation == "secure" else None,
                "table_one": spec.table_one,
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
            "timings_s": self.timings,
            "training": {
                "refresh_rounds": log.refreshes,
                "refreshed_ciphertexts": log.refreshed_ciphertexts,
                "workers": log.workers,
                "seconds": log.seconds,
                "iterations": log.iterations,
            },
            "traffic": fed.network.traffic.since(self._traffic_start),
            "weights": {
                "encrypted": None if W is None else W.tolist(),
                "twin": twin.weights.tolist(),
                "sklearn": base_coef.tolist(),
                "max_abs_diff_encrypted_twin": None if W is None else float(np.abs(W - twin.weights).max()),
            },
            "twin": {"max_abs_margin": twin.max_abs_margin,
                     "fraction_outside_interval": twin.fraction_outside.tolist()},
            "folds": per_fold,
            "summary": {
                "encrypted": enc_summary,
                "encrypted_model": None if model_m is None else model_m.summary(),
                "twin": None if single else twin_m.summary(),
                "sklearn": None if single else self.base.metrics.summary(),
            },
            "table_one": self.table,
            "revealed": self.revealed(),
            "manifest": fed.manifest.to_json() if getattr(fed, "manifest", None) else None,
            # what each hospital answered against the manifest's budgets: [rounds, ciphertexts, values]
            "answered": {p.name: dict(p.policy.used) for p in fed.hospitals if hasattr(p, "policy")},
        }
        self._leave("record")
        return record

    def close(self) -> None:
        """Close the federation if this study made it."""
        if self._own_fed and self.fed is not None:
            self.fed.close()

    def run(self, data: str | Dataset | None = None) -> dict:
        """Every stage, in order; returns the record."""
        try:
            self.prepare(data)
            if self.spec.table_one:
                self.table_one()
            self.encrypt()
            self.train()
            self.evaluate()
            self.references()
            return self.record()
        finally:
            self.close()


def run_cv(data: str | Dataset | None = None, spec: StudySpec | None = None, *, progress=None, fed=None,
           audit_dir=None) -> dict:
    """The whole study (`Study(spec).run(data)`); returns the JSON-able record. Without `fed`, the
    hospitals of a new federation answer only the requests of the study's manifest (mpclr.manifest),
    each appending its audit log under `audit_dir` when given (else kept in memory). With `fed`, its
    manifest must cover the study."""
    return Study(spec or StudySpec(), fed, progress=progress, audit_dir=audit_dir).run(data)
