"""A run folder: what one study run's steps hand each other.

<run>/study.json, keys.json, ...   one JSON per step (see sequence.py), with a "summary" of metrics
<run>/*.png                        small plots the steps save
<run>/notebooks/<step>.ipynb       the executed notebooks (sequence runner, batch)
<run>/run.json                     the runner's record: parameters, per step status and seconds
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError, ParameterError
from .paths import resolve_run_dir

__all__ = ["RunFolder", "to_jsonable"]


def to_jsonable(value):
    """numpy scalars and arrays, paths, tuples and bytes in plain JSON types."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def open(cls, run_dir: str | os.PathLike = "", *, create: bool = True) -> RunFolder:
        """The run folder of a notebook's `run_dir` parameter, resolved through the package."""
        path = resolve_run_dir(run_dir)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.is_dir():
            raise ParameterError(f"parameter run_dir: run folder {path} does not exist")
        return cls(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def file(self, name: str) -> Path:
        """A file directly in the run folder (plain names only)."""
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ParameterError(f"run-folder files have plain names, got {name!r}")
        return self.path / name

    def has(self, name: str) -> bool:
        return self.file(name).is_file()

    def write_json(self, name: str, data: dict, *, step: str = "") -> Path:
        """Write `data` (plus who wrote it, and when) atomically to <run>/<name>."""
        if not name.endswith(".json"):
            raise ParameterError(f"run-folder JSON files end in .json, got {name!r}")
        record = to_jsonable(dict(data))
        record["written"] = {
            "by": step,
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "mpclr": _version(),
        }
        target = self.file(name)
        self.path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh, indent=1, allow_nan=False)
                fh.write("\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read_json(self, name: str) -> dict:
        """Read <run>/<name>, saying which step writes it when it is missing."""
        path = self.file(name)
        if not path.is_file():
            from .sequence import writer_of

            step = writer_of(name)
            hint = f": run notebooks/{step.name}.ipynb first" if step else ""
            raise DataError(f"run folder {self.path} has no {name}{hint}")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None

    def executed_notebook(self, step_name: str) -> Path:
        return self.path / "notebooks" / f"{step_name}.ipynb"

    def save_figure(self, fig, name: str) -> Path:
        """Save a matplotlib figure as a small PNG in the run folder."""
        if not name.endswith(".png"):
            raise ParameterError(f"figures are saved as .png, got {name!r}")
        path = self.file(name)
        fig.savefig(path, dpi=80, bbox_inches="tight")
        return path


def _version() -> str:
    from ..version import __version__

    return __version__
