"""The numbered study steps, in order. Each step is one notebook that reads earlier steps' files from the
run folder and writes its own, so any step can be rerun alone on an existing run folder.

    00_study_and_roles       the design (data, split, hospitals, preset, seed, folds, ...) and the roles
    01_key_ceremony          the collective keys; the federation saved, one keystore folder per node
    02_data_and_encryption   hospitals load their rows; folds; scaling from the encrypted aggregate;
                             the rows encrypted in the public layout
    02b_table_one            the study's Table 1 (baseline characteristics by the label, mpclr.stats), if 01
                             agreed it (table_one); HTML and LaTeX exports
    03_training              encrypted cross-validated training: progress bar, convergence (on the twin)
    04_evaluation            secure evaluation: ROC, confusion matrices, what was decrypted
    05_comparison            the plaintext twin and scikit-learn on the same folds; time per phase
    06_deployment            (optional) the study of 00 on a multi-hospital Flower deployment (deployed.py)
    07_regression_table      (optional, after 02) the pooled GLM's regression table beside statsmodels and
                             the CV models (mpclr.stats)

A step's number is the part of its name before the first "_" ("02b"); numbers sort in sequence order.

Besides its JSON, a step may keep folders in the run folder for the steps after it (`keeps`): 01 the
federation (`federation/`), 02 and 03 the encrypted study (`encrypted_cv/`); see pipeline.py.

A later step joins by adding a `Step` to `SEQUENCE` (and its notebook to notebooks/).

Convention for what a step writes: `<name>.json` in the run folder, with a `"summary"` mapping of flat
scalar metrics (numbers, strings) that batch runs collect into their summary table, and small files
(PNG plots) beside it. Steps may also be given as paths to other notebooks (`run_sequence(...,
steps=[..., "my_analysis.ipynb"])`); those declare nothing and are only executed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ParameterError
from .paths import notebook_path

__all__ = ["Step", "SEQUENCE", "DEPLOYMENT", "REGRESSION", "WORKSHOP", "STEPS", "resolve_steps", "writer_of"]


@dataclass(frozen=True)
class Step:
    name: str  # the notebook's file stem, e.g. "01_key_ceremony"
    title: str
    writes: tuple[str, ...] = ()  # JSON files the step must (re)write in the run folder
    reads: tuple[str, ...] = ()  # files of earlier steps it needs
    source: Path | None = None  # a notebook outside notebooks/ (None: notebooks/<name>.ipynb)
    keeps: tuple[str, ...] = ()  # folders it (re)writes in the run folder for later steps

    @property
    def notebook(self) -> Path:
        return self.source if self.source is not None else notebook_path(self.name)


STUDY = Step("00_study_and_roles", "The study and the roles", writes=("study.json",))
KEYS = Step("01_key_ceremony", "Key ceremony", writes=("keys.json",), reads=("study.json",), keeps=("federation",))
DATA = Step(
    "02_data_and_encryption",
    "Data and encryption",
    writes=("data.json",),
    reads=("study.json", "keys.json"),
    keeps=("federation", "encrypted_cv"),
)
TABLE_ONE = Step(
    "02b_table_one",
    "Table 1: baseline characteristics",
    writes=("table_one.json",),
    reads=("study.json", "keys.json"),
    keeps=("federation",),
)
TRAINING = Step(
    "03_training",
    "Encrypted cross-validated training",
    writes=("training.json",),
    reads=("study.json", "data.json"),
    keeps=("federation", "encrypted_cv"),
)
EVALUATION = Step(
    "04_evaluation",
    "Secure evaluation",
    writes=("evaluation.json",),
    reads=("study.json", "data.json", "training.json"),
    keeps=("federation",),
)
COMPARISON = Step(
    "05_comparison",
    "Comparison with the plaintext twin and scikit-learn",
    writes=("comparison.json",),
    reads=("study.json", "keys.json", "data.json", "training.json", "evaluation.json"),
    keeps=("federation",),
)

SEQUENCE: tuple[Step, ...] = (STUDY, KEYS, DATA, TABLE_ONE, TRAINING, EVALUATION, COMPARISON)

# Optional, after 00 (and beside 01-05): the same study on a multi-hospital deployment (Flower).
DEPLOYMENT = Step(
    "06_deployment", "The same study on a multi-hospital deployment", writes=("deployment.json",), reads=("study.json",)
)

# Optional, after 02 (05's models shown beside it when there): the pooled GLM's regression table (mpclr.stats).
REGRESSION = Step(
    "07_regression_table",
    "Regression table: a pooled GLM with standard errors",
    writes=("regression.json",),
    reads=("study.json", "keys.json", "data.json"),
    keeps=("federation",),
)

# Teaching, not part of a study: runs alone (its own parameters, its own workshop.json).
WORKSHOP = Step("90_workshop", "Workshop: threshold decryption, noise and smudging", writes=("workshop.json",))

STEPS: dict[str, Step] = {s.name: s for s in (*SEQUENCE, DEPLOYMENT, REGRESSION, WORKSHOP)}


def writer_of(filename: str) -> Step | None:
    """The step that writes `filename` into a run folder, if any."""
    for step in STEPS.values():
        if filename in step.writes:
            return step
    return None


def _one(item) -> Step:
    if isinstance(item, Step):
        return item
    if not isinstance(item, str | os.PathLike):
        raise ParameterError(f"parameter steps: expected step names or notebook paths, got {item!r}")
    text = os.fspath(item)
    if text in STEPS:
        return STEPS[text]
    stem = text[:-6] if text.endswith(".ipynb") else text
    if stem in STEPS:
        return STEPS[stem]
    prefixed = [s for s in STEPS.values() if s.name.split("_", 1)[0] == stem]
    if len(prefixed) == 1:
        return prefixed[0]
    path = Path(text).expanduser()
    if path.suffix == ".ipynb" and path.is_file():
        return Step(path.stem, path.stem, source=path.resolve())
    raise ParameterError(
        f"parameter steps: {text!r} is neither a step ({', '.join(STEPS)}; or its number) nor a notebook file"
    )


def resolve_steps(steps=None) -> list[Step]:
    """Steps from names ("01_key_ceremony"), numbers ("01"), Step objects or notebook paths; None = SEQUENCE."""
    if steps is None:
        return list(SEQUENCE)
    if isinstance(steps, str | os.PathLike | Step):
        steps = [steps]
    out = [_one(s) for s in steps]
    if not out:
        raise ParameterError("parameter steps: the list of steps is empty")
    names = [s.name for s in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ParameterError(f"parameter steps: {', '.join(sorted(dup))} listed twice")
    return out
