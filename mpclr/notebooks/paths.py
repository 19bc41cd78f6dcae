"""Where the notebooks and the run folders are, resolved through the package and never through the
current folder: papermill executes in the folder it is started from, JupyterLab in the notebook's
folder, so a relative path would mean two different places.

- notebooks: `$MPCLR_NOTEBOOKS`, else the `notebooks/` folder of the source checkout mpclr runs from.
- run folders: an absolute path is used as given; a relative one is taken relative to the project
  root (the folder holding `notebooks/`); an empty one means the default run folder,
  `$MPCLR_RUN_DIR` or else `<project root>/runs/interactive`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ParameterError

__all__ = ["project_root", "notebooks_dir", "default_run_dir", "resolve_run_dir", "notebook_path"]

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../mpclr


def notebooks_dir() -> Path:
    """The folder holding the numbered notebooks."""
    env = os.environ.get("MPCLR_NOTEBOOKS")
    path = Path(env).expanduser().resolve() if env else _PACKAGE_DIR.parent / "notebooks"
    if not path.is_dir():
        raise ParameterError(
            f"notebooks folder {path} not found: run from a source checkout of mpclr or set MPCLR_NOTEBOOKS"
        )
    return path


def project_root() -> Path:
    """The folder that holds `notebooks/` (the repository root in a checkout)."""
    return notebooks_dir().parent


def default_run_dir() -> Path:
    env = os.environ.get("MPCLR_RUN_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return project_root() / "runs" / "interactive"


def resolve_run_dir(run_dir: str | os.PathLike = "") -> Path:
    """The absolute run folder for a notebook's `run_dir` parameter (see the module docstring)."""
    text = os.fspath(run_dir)
    if not text:
        return default_run_dir()
    path = Path(text).expanduser()
    return path.resolve() if path.is_absolute() else (project_root() / path).resolve()


def notebook_path(name: str) -> Path:
    """The notebook of a step name ("01_key_ceremony" or "01_key_ceremony.ipynb")."""
    stem = name[:-6] if name.endswith(".ipynb") else name
    path = notebooks_dir() / f"{stem}.ipynb"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in notebooks_dir().glob("*.ipynb")))
        raise ParameterError(f"no notebook named {stem!r} in {notebooks_dir()}; the notebooks are: {known}")
    return path
