"""Run the study notebooks in order with papermill's Python API, into one run folder.

    from mpclr.notebooks import run_sequence
    result = run_sequence("runs/demo", {"hospitals": 3, "folds": 3})

Parameters are real Python values (never the CLI's `-p` strings), checked before any kernel starts:
unknown names (with a suggestion), types and ranges, each error naming its parameter. Each notebook
gets only the parameters its `parameters` cell declares, plus the absolute run folder. The first failing
step stops the sequence and is reported with its notebook, its cell (index and source) and the error;
`<run>/run.json` records every step's executed notebook, status and seconds.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from ..errors import MpclrError, ParameterError
from ..params import check_study_preset
from .parameters import check_parameters, declared_parameters, renamed_parameters
from .rundir import RunFolder, to_jsonable
from .sequence import WORKSHOP, Step, resolve_steps

__all__ = ["run_sequence", "SequenceResult", "StepResult", "CellError", "SequenceFailed", "notebook_parameters"]

KERNEL = "python3"


@dataclass
class CellError:
    """Where a step failed: the cell index in the source notebook (0-based, as nbformat counts) and in
    the executed copy (which has papermill's injected-parameters cell), the cell's source and the error."""

    cell: int | None
    executed_cell: int | None
    source: str
    ename: str
    evalue: str
    line: int | None = None  # the line of the cell that raised (1-based), from the traceback

    def describe(self, notebook: str) -> str:
        where = f"cell {self.cell} of {notebook}" if self.cell is not None else notebook
        if self.line:
            where = f"cell {self.cell}, line {self.line} of {notebook}"
        lines = [f"{where}: {self.ename}: {self.evalue}".rstrip(": ")]
        if self.source:
            src = self.source.splitlines()
            lo = max(0, (self.line or 1) - 3)
            shown = [("--> " if i + 1 == self.line else "    ") + src[i] for i in range(lo, min(len(src), lo + 6))]
            lines.append("  the cell:\n" + "\n".join("    " + ln for ln in shown))
        return "\n".join(lines)


@dataclass
class StepResult:
    step: str
    notebook: str  # the source notebook
    executed: str  # the executed copy in the run folder
    status: str = "pending"  # pending, ok, failed, skipped
    seconds: float = 0.0
    error: CellError | None = None

    def describe(self) -> str:
        if self.status != "failed" or self.error is None:
            return f"{self.step}: {self.status}" + (f" in {self.seconds:.1f} s" if self.status == "ok" else "")
        return (
            f"step {self.step} failed after {self.seconds:.1f} s in "
            + self.error.describe(self.notebook)
            + f"\n  executed notebook: {self.executed}"
        )


@dataclass
class SequenceResult:
    run_dir: str
    parameters: dict
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.status == "ok" for s in self.steps)

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def describe(self) -> str:
        head = f"run {self.run_dir}: {'ok' if self.ok else 'FAILED'} in {self.seconds:.1f} s"
        return "\n".join([head, *("  " + s.describe().replace("\n", "\n  ") for s in self.steps)])

    def to_json(self) -> dict:
        return to_jsonable(
            {
                "run_dir": self.run_dir,
                "parameters": self.parameters,
                "ok": self.ok,
                "seconds": round(self.seconds, 3),
                "steps": [asdict(s) for s in self.steps],
            }
        )

    def raise_for_failure(self) -> SequenceResult:
        if not self.ok:
            raise SequenceFailed(self)
        return self


class SequenceFailed(MpclrError):
    def __init__(self, result: SequenceResult):
        self.result = result
        failed = result.failed
        super().__init__(failed.describe() if failed else result.describe())


def notebook_parameters(path: str | os.PathLike) -> dict:
    """The parameters a notebook's first cell (tagged `parameters`) declares: name -> default."""
    nb = nbformat.read(os.fspath(path), as_version=4)
    cell = _parameters_cell(nb)
    if cell is None:
        return {}
    return {p.name: p.default for p in declared_parameters(cell.source, f"{Path(path).name}, parameters cell")}


def _parameters_cell(nb):
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def _source_index(executed_index: int, executed_cells) -> int:
    """The index a cell of the executed copy had in the source notebook (papermill inserted a cell)."""
    injected = sum(
        1
        for c in list(executed_cells)[:executed_index]
        if "injected-parameters" in c.get("metadata", {}).get("tags", [])
    )
    return executed_index - injected


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CELL_FRAME = re.compile(r"^(?:Cell In\s*\[\d*\]|Input In \[\d*\]).*?line (\d+)")


def _failing_line(traceback: list[str] | None) -> int | None:
    """The cell's line that raised: IPython's first frame reads "Cell In[3], line 7"."""
    for frame in traceback or []:
        m = _CELL_FRAME.match(_ANSI.sub("", frame).strip())
        if m:
            return int(m.group(1))
    return None


def _cell_error(exc, executed: Path) -> CellError:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        cell = None
        try:
            # the saved copy has papermill's error banner in front: drop it, count as in the run
            cells = [
                c
                for c in nbformat.read(executed, as_version=4).cells
                if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])
            ]
            cell = _source_index(exc.cell_index, cells)
        except (OSError, ValueError):
            pass
        return CellError(
            cell, exc.cell_index, exc.source or "", exc.ename, str(exc.evalue), _failing_line(exc.traceback)
        )
    return CellError(None, None, "", type(exc).__name__, str(exc))


class _KnownParameters(logging.Filter):
    """papermill's own parameter inference skips `name: int | None = ...` lines and then warns that the
    parameter is unknown; the runner has already checked every name against the notebook's cell."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Passed unknown parameter: ") and msg.split(": ", 1)[1] in self.names)


@contextlib.contextmanager
def _environ(overrides: dict[str, str]):
    old = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _plan(steps: list[Step], parameters: dict, run_dir: Path) -> list[tuple[Step, dict]]:
    """Check parameters against what the steps declare; each step's own parameter values, with the
    absolute run folder for the steps that take one."""
    declared = {s.name: notebook_parameters(s.notebook) for s in steps}
    accepted = set().union(*declared.values())
    if "run_dir" in parameters:
        raise ParameterError("parameter run_dir is set by the runner (the run_dir argument); leave it out")
    check_parameters(parameters, accepted=accepted - {"run_dir"})
    if "preset" in parameters and any("preset" in declared[s.name] and s.name != WORKSHOP.name for s in steps):
        check_study_preset(parameters["preset"])  # a study's design (00), not the workshop's: before any kernel
    plan = []
    for s in steps:
        if s.source is None and "run_dir" not in declared[s.name]:
            raise ParameterError(f"notebook {s.notebook} declares no run_dir parameter: it cannot be a step")
        values = {k: v for k, v in parameters.items() if k in declared[s.name]}
        if "run_dir" in declared[s.name]:
            values["run_dir"] = str(run_dir)
        plan.append((s, values))
    return plan


def _run_step(
    papermill, step: Step, values: dict, rec: StepResult, run: RunFolder, progress, log_output, execution_timeout
) -> None:
    t0 = time.time()
    try:
        papermill.execute_notebook(
            str(step.notebook),
            rec.executed,
            parameters=values,
            kernel_name=KERNEL,
            progress_bar=progress,
            log_output=log_output,
            execution_timeout=execution_timeout,
        )
        stale = [f for f in step.writes if not run.has(f) or run.file(f).stat().st_mtime < t0 - 1]
        if stale:
            raise MpclrError(f"the notebook finished without writing {', '.join(stale)} to the run folder")
        rec.status = "ok"
    except Exception as exc:  # any failure of a step is recorded, with its cell when known
        rec.status = "failed"
        rec.error = _cell_error(exc, Path(rec.executed))
    rec.seconds = round(time.time() - t0, 3)


def run_sequence(
    run_dir: str | os.PathLike,
    parameters: dict | None = None,
    steps=None,
    *,
    check: bool = True,
    progress: bool | dict = True,
    log_output: bool = False,
    execution_timeout: float | None = None,
    kernel_env: dict[str, str] | None = None,
) -> SequenceResult:
    """Execute the steps' notebooks in order into `run_dir` (created; relative = from the current folder).

    parameters : {name: value}, real Python values; each step gets those its parameters cell declares
    steps : step names, numbers ("01"), Step objects or notebook paths; None = the whole SEQUENCE
    check : raise SequenceFailed (carrying the result) when a step fails; else just return the result
    progress : papermill's progress bar (True, False, or tqdm options such as {"mininterval": 60})
    kernel_env : environment variables for the kernels (e.g. TQDM_MININTERVAL for notebooks' own bars)
    """
    import papermill

    parameters = renamed_parameters(parameters or {}, stacklevel=3)  # parties -> hospitals
    run = RunFolder(Path(run_dir).expanduser().resolve())
    plan = _plan(resolve_steps(steps), parameters, run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    (run.path / "notebooks").mkdir(exist_ok=True)
    result = SequenceResult(str(run.path), parameters)
    result.steps = [StepResult(s.name, str(s.notebook), str(run.executed_notebook(s.name))) for s, _ in plan]
    started = time.perf_counter()
    record = {"started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    known = _KnownParameters()
    logger = logging.getLogger("papermill")
    logger.addFilter(known)
    try:
        with _environ(dict(kernel_env or {})):
            for (step, values), rec in zip(plan, result.steps):
                if result.failed:
                    rec.status = "skipped"
                    continue
                known.names = set(values)
                _run_step(papermill, step, values, rec, run, progress, log_output, execution_timeout)
                result.seconds = time.perf_counter() - started
                run.write_json("run.json", {**record, **result.to_json()}, step="run_sequence")
    finally:
        logger.removeFilter(known)
    if check:
        result.raise_for_failure()
    return result
