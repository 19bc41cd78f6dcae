"""The notebook-driven research environment: run folders, parameters, the sequence runner and batch runs.

    notebooks/00_study_and_roles.ipynb ... one notebook per study step (see sequence.py), each with one
    `parameters` cell; the logic they call lives here and in mpclr.workshop.

    from mpclr.notebooks import run_sequence
    run_sequence("runs/demo", {"hospitals": 3})          # 00, 01, ... into runs/demo

    mpclr batch grid.yaml --out runs/grid              # the same over a grid (see batch.py)

Importing this package is cheap (no papermill, no matplotlib): the notebooks import it first.
"""

from .parameters import DATASETS, PARAMETERS, Parameter, check_parameters, declared_parameters, older_name
from .paths import default_run_dir, notebook_path, notebooks_dir, project_root, resolve_run_dir
from .rundir import RunFolder
from .sequence import SEQUENCE, STEPS, WORKSHOP, Step, resolve_steps
from .study import Study, make_federation, params_for

__all__ = [
    "DATASETS",
    "PARAMETERS",
    "Parameter",
    "check_parameters",
    "declared_parameters",
    "older_name",
    "default_run_dir",
    "notebook_path",
    "notebooks_dir",
    "project_root",
    "resolve_run_dir",
    "RunFolder",
    "SEQUENCE",
    "STEPS",
    "WORKSHOP",
    "Step",
    "resolve_steps",
    "Study",
    "make_federation",
    "params_for",
    "run_sequence",
    "SequenceResult",
    "SequenceFailed",
    "run_batch",
]


def __getattr__(name):
    # the runner and batch import papermill and nbformat: only when asked for
    if name in ("run_sequence", "SequenceResult", "SequenceFailed", "StepResult"):
        from . import runner

        return getattr(runner, name)
    if name == "run_batch":
        from .batch import run_batch

        return run_batch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
