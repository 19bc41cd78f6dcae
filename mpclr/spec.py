"""One study's design, frozen: what the command line, the notebooks, the estimators and the Flower
deployment each describe in their own words, checked once here (every error names the parameter).

A spec holds no data, no keys and nothing secret: it is public (it goes into the study's manifest and
record). `mpclr.pipeline.Study` runs it.

    StudySpec(hospitals=3, folds=5)                       directly (the estimators, tests)
    StudySpec.from_cli_args(args)                         mpclr cv / mpclr demo
    StudySpec.from_parameters(hospitals=3, folds=5, ...)  a notebook's parameters (study.json)
    StudySpec.from_run_config(config)                     a Flower run configuration (deploy/study.py)
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, replace

from .errors import ParameterError
from .params import Params, check_study_preset, get_preset

__all__ = ["StudySpec", "EVALUATIONS", "RUN_CONFIG_OPTIONS", "NOTEBOOK_PARAMETERS", "RENAMED", "renamed_parameters",
           "params_for"]

EVALUATIONS = ("secure", "decrypted-models", "none")
DEGREES = (3, 5, 7)
# the Flower run-config keys a deployed study reads (beside "seed" and "progress", which the coordinator adds)
RUN_CONFIG_OPTIONS = ("folds", "workers", "evaluation", "score-bound", "decrypt-models", "schedule", "degree",
                      "bound-bits", "iterations", "learning-rate")
# the notebook parameters that describe the study (the others say how to show or run it)
NOTEBOOK_PARAMETERS = {"dataset": "dataset", "label": "label", "split": "split", "hospitals": "hospitals",
                       "threshold": "threshold", "preset": "preset", "smudging_bits": "smudging_bits", "seed": "seed",
                       "folds": "folds", "iterations": "iterations", "degree": "degree"}

# notebook parameters' older names -> their names now (accepted with a DeprecationWarning)
RENAMED = {"parties": "hospitals"}


def renamed_parameters(values: dict, *, stacklevel: int = 2) -> dict:
    """The values with each older parameter name (RENAMED) replaced by its new one, with a DeprecationWarning;
    a ParameterError when both names are given."""
    out = dict(values)
    for old, new in RENAMED.items():
        if old in out:
            if new in out:
                raise ParameterError(f"parameter {old} is the older name of {new}: give only {new}")
            warnings.warn(f"parameter {old} is now called {new}", DeprecationWarning, stacklevel=stacklevel)
            out = {(new if k == old else k): v for k, v in out.items()}
    return out



def params_for(preset: str | Params = "fast", smudging_bits: float | None = None) -> Params:
    """The preset, with another smudging sigma if asked (Params checks the bound and names the parameter)."""
    base = get_preset(preset)
    if smudging_bits is None or smudging_bits == base.smudging_bits:
        return base
    return base.with_(name=f"{base.name}/smudging={smudging_bits:g}", smudging_bits=smudging_bits)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class StudySpec:
    """A study's design. iterations, degree, learning_rate None: the plaintext twin's defaults
    (mpclr.plain.nesterov.NesterovLR: 6, 5, 1), with step sizes from the pooled curvature; `schedule`
    (a list of (step size, momentum), with degree 3 unless given) replaces that computed schedule.

    folds 1 trains one model on every row and holds none out (then evaluation "none"); evaluation
    "secure" reveals only counts, "decrypted-models" scores the decrypted fold models in the clear,
    "none" evaluates nothing. seed: public randomness only (the split, synthetic data); the hospitals
    draw their folds from their own secret randomness. table_one: a secure Table 1 of the hospitals' rows
    by the label (mpclr.stats), in the manifest beside the cross-validation, before it; off for the
    estimators and the deployment, on for `mpclr cv` and `mpclr demo` (--no-table-one)."""

    dataset: str = "breast_cancer"
    label: str = "last"
    split: str | tuple = "even"
    hospitals: int = 3
    threshold: int | None = None
    preset: str = "train"
    smudging_bits: float | None = None
    seed: int = 0
    folds: int = 5
    iterations: int | None = None
    degree: int | None = None
    learning_rate: float | None = None
    schedule: tuple | None = None
    bound_bits: int = 8
    evaluation: str = "secure"
    decrypt_models: bool = True  # reveal the fold models to the researcher (to compare with the twin)
    score_bound: float = 16.0  # public bound on |score| for the secure comparisons
    refine_rounds: int | None = None  # secure ROC refinement rounds (None: the evaluation's default)
    workers: int | str = "auto"
    table_one: bool = False  # the secure Table 1 by the label before training (mpclr cv: on unless --no-table-one)

    def __post_init__(self):
        def bad(name, why):
            raise ParameterError(f"parameter {name} {why}, got {getattr(self, name)!r}")

        if not _is_int(self.hospitals) or self.hospitals < 1:
            bad("hospitals", "must be a positive integer")
        if self.threshold is not None and (not _is_int(self.threshold) or not 1 <= self.threshold <= self.hospitals):
            bad("threshold", f"must be in [1, hospitals = {self.hospitals}] or None (all of them)")
        if not _is_int(self.folds) or self.folds < 1:
            bad("folds", "must be a number of folds >= 2 (or 1: one model on every row)")
        if self.evaluation not in EVALUATIONS:
            bad("evaluation", f"must be one of {', '.join(map(repr, EVALUATIONS))}")
        if self.folds == 1 and self.evaluation != "none":
            raise ParameterError("folds=1 trains one model on every row and holds none out to evaluate it: it goes "
                                 f"with evaluation 'none' (folds={self.folds!r}, evaluation={self.evaluation!r})")
        if not isinstance(self.decrypt_models, bool):
            bad("decrypt_models", "must be True or False")
        if not isinstance(self.table_one, bool):
            bad("table_one", "must be True or False")
        if self.evaluation == "decrypted-models" and not self.decrypt_models:
            raise ParameterError("evaluation 'decrypted-models' scores the decrypted fold models: it needs "
                                 "decrypt_models=True")
        if not _is_number(self.score_bound) or not 0.0 < self.score_bound <= 1e6:
            bad("score_bound", "must be in (0, 1e6]")
        if self.refine_rounds is not None and (not _is_int(self.refine_rounds) or self.refine_rounds < 0):
            bad("refine_rounds", "must be a non-negative integer or None")
        if not (self.workers == "auto" or (_is_int(self.workers) and self.workers >= 0)):
            bad("workers", "must be 'auto' or a number of processes >= 0")
        if not _is_int(self.seed) or self.seed < 0:
            bad("seed", "must be a non-negative integer")
        if self.iterations is not None and (not _is_int(self.iterations) or self.iterations < 1):
            bad("iterations", "must be a positive integer or None (the twin's 6)")
        if self.degree is not None and self.degree not in DEGREES:
            bad("degree", "must be 3, 5 or 7 or None (the twin's 5)")
        if self.learning_rate is not None and (not _is_number(self.learning_rate) or self.learning_rate <= 0):
            bad("learning_rate", "must be positive or None (the twin's 1)")
        if not _is_int(self.bound_bits) or not 1 <= self.bound_bits <= 30:
            bad("bound_bits", "must be an integer in [1, 30]")
        if self.schedule is not None:
            try:
                schedule = tuple((float(g), float(e)) for g, e in self.schedule)
            except (TypeError, ValueError):
                bad("schedule", "must be a list of (step size, momentum) pairs")
            if not schedule or not all(math.isfinite(g) and math.isfinite(e) for g, e in schedule):
                bad("schedule", "must be a non-empty list of finite (step size, momentum) pairs")
            if self.iterations is not None or self.learning_rate is not None:
                raise ParameterError("parameters iterations and learning_rate size the twin's schedule; with an "
                                     "explicit schedule they would be ignored: give one or the other")
            object.__setattr__(self, "schedule", schedule)
        self._resolve_defaults()
        if isinstance(self.split, list):
            object.__setattr__(self, "split", tuple(self.split))
        if not isinstance(self.split, str | tuple) or self.split in ("", ()):
            bad("split", "must be 'even', a list of fractions (one per hospital) or a column name")
        if isinstance(self.split, tuple) and len(self.split) != self.hospitals:
            bad("split", f"must list one fraction per hospital ({self.hospitals})")
        if self.smudging_bits is not None and (not _is_number(self.smudging_bits) or not 0 <= self.smudging_bits <= 60):
            bad("smudging_bits", "must be in [0, 60] or None (the preset's)")
        if not isinstance(self.preset, str):
            bad("preset", "must be a preset's name")
        check_study_preset(self.params(), self.hospitals)  # what a study needs (README, "Smudging and masks")

    def _resolve_defaults(self) -> None:
        """None takes the twin's default, so that the same study is the same spec however it was written
        (an explicit schedule fixes the iterations and step sizes: those stay None)."""
        from .plain.nesterov import NesterovLR

        defaults = NesterovLR()
        if self.degree is None:
            object.__setattr__(self, "degree", 3 if self.schedule is not None else defaults.degree)
        if self.schedule is None:
            if self.iterations is None:
                object.__setattr__(self, "iterations", defaults.iterations)
            if self.learning_rate is None:
                object.__setattr__(self, "learning_rate", float(defaults.learning_rate))

    # ------------------------------------------------------------------------------------------ derived
    @property
    def single(self) -> bool:
        """One model on every row (folds=1), nothing held out."""
        return self.folds == 1

    @property
    def key_holders_needed(self) -> int:
        return self.hospitals if self.threshold is None else self.threshold

    def params(self) -> Params:
        return params_for(self.preset, self.smudging_bits)

    def split_how(self):
        """The `how` of mpclr.data.split: 'even', a list of fractions (also written '0.5,0.3,0.2'), or a
        column's name."""
        if isinstance(self.split, tuple):
            return list(self.split)
        if self.split != "even" and "," in self.split:
            try:
                return [float(p) for p in self.split.split(",")]
            except ValueError:
                pass
        return self.split

    def hospital_names(self) -> list[str]:
        return [f"hospital-{i + 1}" for i in range(self.hospitals)]

    def model(self, curvature: float | None = None):
        """The plaintext twin with this design (mpclr.plain.nesterov.NesterovLR), validated; the encrypted
        trainer runs the same algorithm."""
        from .plain.nesterov import NesterovLR

        defaults = NesterovLR()  # with an explicit schedule, iterations and learning rate are its
        model = NesterovLR(
            iterations=defaults.iterations if self.iterations is None else self.iterations,
            degree=self.degree,
            learning_rate=defaults.learning_rate if self.learning_rate is None else self.learning_rate,
            interval=defaults.interval,
            curvature=curvature,
            random_state=self.seed,
        )
        model._validate()
        return model

    def evaluation_options(self) -> dict | None:
        """The secure evaluation's public options (None: no secure evaluation)."""
        if self.evaluation != "secure":
            return None
        options = {"score_bound": self.score_bound, "workers": self.workers}
        if self.refine_rounds is not None:
            options["refine_rounds"] = self.refine_rounds
        return options

    def with_(self, **changes) -> StudySpec:
        return replace(self, **changes)

    # ------------------------------------------------------------------------------------------ entry points
    @classmethod
    def from_cli_args(cls, args) -> StudySpec:
        """`mpclr cv` / `mpclr demo`'s arguments (contradicting flags are refused by the flags' names)."""
        if args.folds == 1:
            raise ParameterError("--folds must be at least 2: mpclr cv cross-validates (one model on every row, "
                                 "nothing held out: mpclr.EncryptedLogisticRegression)")
        secure = args.evaluation == "secure"
        if not secure and args.keep_models_encrypted:
            raise ParameterError("--evaluation decrypted-models scores the decrypted fold models: it cannot go with "
                                 "--keep-models-encrypted")
        if not secure and args.score_bound is not None:
            raise ParameterError("--score-bound is a bound of the secure evaluation: it does nothing with "
                                 "--evaluation decrypted-models")
        return cls(
            dataset=getattr(args, "data", None) or (f"synthetic:{args.synthetic}" if getattr(args, "synthetic", None)
                                                    else "breast_cancer"),
            label=getattr(args, "label", "last"),
            hospitals=args.hospitals,
            threshold=args.threshold,
            folds=args.folds,
            iterations=args.iterations,
            degree=args.degree,
            learning_rate=args.learning_rate,
            seed=args.seed,
            preset=args.preset,
            split=args.split,
            evaluation=args.evaluation,
            decrypt_models=not args.keep_models_encrypted,
            score_bound=cls.score_bound if args.score_bound is None else args.score_bound,
            table_one=not getattr(args, "no_table_one", False),
        )

    @classmethod
    def from_parameters(cls, **values) -> StudySpec:
        """A notebook's study parameters (names as in mpclr.notebooks.parameters; parties: the older name of
        hospitals, with a DeprecationWarning)."""
        values = renamed_parameters(values, stacklevel=3)
        unknown = sorted(set(values) - set(NOTEBOOK_PARAMETERS))
        if unknown:
            raise ParameterError(f"parameter {unknown[0]} does not describe a study; the study's parameters are "
                                 f"{', '.join(NOTEBOOK_PARAMETERS)}")
        return cls(**{NOTEBOOK_PARAMETERS[k]: v for k, v in values.items()})

    def notebook_parameters(self) -> dict:
        """The inverse of from_parameters: what study.json records under "parameters"."""
        return {k: getattr(self, field) for k, field in NOTEBOOK_PARAMETERS.items()}

    @classmethod
    def from_run_config(cls, config: dict, *, preset: str = "train", hospitals: int | None = None,
                        threshold: int | None = None) -> StudySpec:
        """A Flower run configuration's study options (deploy/study.py); errors name the run-config key.
        Missing, empty or 0 numbers take the defaults (the app's "not set"); the run's seed does not reach
        the study (each hospital draws its folds from its own secret randomness)."""
        names = {"folds": "folds", "workers": "workers", "evaluation": "evaluation", "score_bound": "score-bound",
                 "decrypt_models": "decrypt-models", "schedule": "schedule", "degree": "degree",
                 "bound_bits": "bound-bits", "iterations": "iterations", "learning_rate": "learning-rate"}

        def number(key, kind, default):
            value = config.get(key)
            if value in (None, "", 0, 0.0):
                return default
            try:
                return kind(value)
            except (TypeError, ValueError):
                raise ParameterError(f"run config: {key} must be a number, got {value!r}") from None

        def flag(key, default):
            value = config.get(key, default)
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, bool | int) and not isinstance(value, str):
                return bool(value)
            raise ParameterError(f"run config: {key} must be true or false, got {value!r}")

        folds = number("folds", int, 5)
        if folds < 2:
            raise ParameterError(f"run config: folds must be at least 2, got {folds}")
        evaluation = str(config.get("evaluation") or "secure")
        if evaluation not in ("secure", "none"):
            raise ParameterError(f"run config: evaluation must be 'secure' or 'none', got {evaluation!r}")
        schedule = config.get("schedule")
        if isinstance(schedule, str) and schedule:
            try:
                schedule = json.loads(schedule)
            except json.JSONDecodeError:
                raise ParameterError(f"run config: schedule must be JSON: a list of [gamma, eta], got "
                                     f"{schedule!r}") from None
        workers = config.get("workers", "auto")
        values = {
            "folds": folds,
            "workers": workers if workers == "auto" else number("workers", int, 0),
            "evaluation": evaluation,
            "score_bound": number("score-bound", float, 16.0),
            "decrypt_models": flag("decrypt-models", True),
            "schedule": None if schedule in (None, "") else schedule,
            "degree": number("degree", int, None),
            "bound_bits": number("bound-bits", int, 8),
            "iterations": number("iterations", int, None),
            "learning_rate": number("learning-rate", float, None),
        }
        kwargs = {"preset": preset}
        if hospitals is not None:
            kwargs["hospitals"] = hospitals
            kwargs["threshold"] = threshold
        try:
            return cls(**values, **kwargs)
        except ParameterError as exc:
            text = str(exc)
            for field, key in names.items():  # the run configuration's own name for the parameter
                text = text.replace(f"parameter {field} ", f"run config: {key} ").replace(f"parameters {field} ",
                                                                                          f"run config: {key} ")
            raise ParameterError(text) from None

