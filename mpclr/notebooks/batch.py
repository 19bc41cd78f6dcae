"""`mpclr batch GRID.yaml`: the study notebooks over a grid of parameters, one run folder per run.

A grid file (YAML):

    steps: [00_study_and_roles, 01_key_ceremony]   # optional; default: the whole sequence
    parameters:                                    # optional: the same for every run
      iterations: 3
    grid:                                          # optional: the cartesian product of these lists
      hospitals: [2, 3, 5]
      threshold: [null]
    runs:                                          # optional: more runs, each over `parameters`
      - {hospitals: 4, smudging_bits: 12}

A parameter's older name (parties for hospitals) is still read, with a DeprecationWarning.

Output, in --out (default runs/batch-<time>): one folder per run (`001_hospitals=2`, ...) with the executed
notebooks, the steps' files and a `results.json`; then `summary.csv` (one row per run: status, seconds,
parameters, each step's summary metrics, where a failed run failed) and `report.html` (the table, a plot
per metric across runs, each run's plots). A failed run is reported with its notebook and cell; the other
runs go on. Exit status 0 when every run succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import re
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from ..errors import MpclrError, ParameterError
from .parameters import PARAMETERS, check_parameters, renamed_parameters
from .rundir import RunFolder, to_jsonable
from .sequence import resolve_steps

__all__ = ["BatchSpec", "load_grid", "parse_grid", "run_batch", "add_batch_parser", "BATCH_MININTERVAL"]

# Progress bars in batch runs refresh at most this often (seconds): papermill's cell bar, and through
# TQDM_MININTERVAL every tqdm bar inside the notebooks, which would otherwise write an output per refresh.
BATCH_MININTERVAL = 60.0

_TOP_KEYS = ("steps", "parameters", "grid", "runs")


@dataclass
class BatchSpec:
    runs: list[tuple[str, dict]]  # (folder name, parameters)
    varied: list[str]  # parameters that differ between runs
    steps: list[str] | None = None
    source: str = ""


def _mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParameterError(f"{what} must be a mapping of parameter names to values, got {value!r}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ParameterError(f"{what}: parameter names must be strings, got {bad[0]!r}")
    return dict(value)


def _folder_name(index: int, params: dict, varied: list[str]) -> str:
    parts = [f"{k}={params[k]}" for k in varied if k in params]
    text = "_".join([f"{index:03d}", *parts])
    text = re.sub(r"[^A-Za-z0-9=._-]+", "-", text.replace(" ", ""))
    return text[:90]


def parse_grid(spec: dict, source: str = "grid") -> BatchSpec:
    """Expand a grid specification (the YAML's content) into runs."""
    if not isinstance(spec, dict):
        raise ParameterError(f"{source}: expected a mapping with keys {', '.join(_TOP_KEYS)}, got {spec!r}")
    unknown = [k for k in spec if k not in _TOP_KEYS]
    if unknown:
        raise ParameterError(f"{source}: unknown key {unknown[0]!r}; a grid file has {', '.join(_TOP_KEYS)}")
    steps = spec.get("steps")
    if steps is not None:
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise ParameterError(f"{source}: steps must be a list of step names, got {steps!r}")
        resolve_steps(steps)
    base = renamed_parameters(_mapping(spec.get("parameters"), f"{source}: parameters"))
    grid = renamed_parameters(_mapping(spec.get("grid"), f"{source}: grid"))
    for k, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ParameterError(
                f"{source}: grid: {k} must be a non-empty list of values, got {values!r}"
                + (f" (write [{values!r}])" if not isinstance(values, list) else "")
            )
        if k in base:
            raise ParameterError(f"{source}: {k} is set both in parameters and in grid")
    extra = spec.get("runs") or []
    if not isinstance(extra, list):
        raise ParameterError(f"{source}: runs must be a list of parameter mappings, got {extra!r}")
    extra = [renamed_parameters(_mapping(r, f"{source}: runs[{i}]")) for i, r in enumerate(extra)]
    names = set(base) | set(grid) | {k for r in extra for k in r}
    if "run_dir" in names:
        raise ParameterError(f"{source}: run_dir is set by mpclr batch (one folder per run); leave it out")
    unknown = sorted(n for n in names if n not in PARAMETERS)
    if unknown:
        check_parameters({n: None for n in unknown}, accepted=sorted(set(PARAMETERS) - {"run_dir"}))
    runs = []
    if grid or not extra:
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            runs.append({**base, **dict(zip(keys, combo))})
    runs += [{**base, **r} for r in extra]
    varied = [
        k
        for k in dict.fromkeys([*grid, *(k for r in extra for k in r)])
        if len({json.dumps(r.get(k, "<unset>"), sort_keys=True) for r in runs}) > 1
    ]
    named = [(_folder_name(i + 1, r, varied), r) for i, r in enumerate(runs)]
    return BatchSpec(named, varied, steps, source)


def load_grid(path: str | Path) -> BatchSpec:
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParameterError(f"grid file {path}: {exc.strerror}") from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ParameterError(f"grid file {path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_grid(spec, f"grid file {path}")


def _metrics(run: RunFolder, steps) -> dict:
    """The "summary" metrics of the steps' JSON files (in step order, then any other JSON a notebook
    wrote), flat; a name two files share gets the later file's name in front."""
    names = [n for step in resolve_steps(steps) for n in step.writes]
    names += sorted(p.name for p in run.path.glob("*.json") if p.name not in (*names, "run.json", "results.json"))
    out: dict = {}
    for name in names:
        if not run.has(name):
            continue
        try:
            summary = run.read_json(name).get("summary") or {}
        except MpclrError:
            continue
        for k, v in summary.items():
            if isinstance(v, int | float | str | bool) or v is None:
                out[f"{name[:-5]}:{k}" if k in out else k] = v
    return out


def run_one(name: str, run_dir: str, parameters: dict, steps, mininterval: float = BATCH_MININTERVAL) -> dict:
    """One run of a batch (top level, so worker processes can run it). Never raises for a failed run."""
    from .runner import run_sequence

    run = RunFolder(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    record = {
        "run": name,
        "parameters": parameters,
        "status": "failed",
        "steps": [],
        "metrics": {},
        "error": None,
        "failed_step": None,
        "failed_cell": None,
    }
    try:
        result = run_sequence(
            run.path,
            parameters,
            steps,
            check=False,
            progress={"mininterval": mininterval, "desc": name},
            kernel_env={"TQDM_MININTERVAL": str(mininterval)},
        )
        record["steps"] = result.to_json()["steps"]
        if result.ok:
            record["status"] = "ok"
        else:
            failed = result.failed
            record["error"] = failed.describe()
            record["failed_step"] = failed.step
            record["failed_cell"] = failed.error.cell if failed.error else None
        record["metrics"] = _metrics(run, steps)
    except MpclrError as exc:  # parameters refused before any kernel started
        record["error"] = f"parameters refused before running: {exc}"
        record["failed_step"] = "(parameters)"
    record["seconds"] = round(time.perf_counter() - t0, 3)
    run.write_json("results.json", record, step="mpclr batch")
    return to_jsonable(record)


@dataclass
class BatchResult:
    out: Path
    results: list[dict] = field(default_factory=list)
    summary_csv: Path | None = None
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return all(r["status"] == "ok" for r in self.results)


def _row(rec: dict) -> dict:
    return {
        "run": rec["run"],
        "status": rec["status"],
        "seconds": rec["seconds"],
        **rec["parameters"],
        **rec["metrics"],
        "failed_step": rec["failed_step"],
        "failed_cell": rec["failed_cell"],
        "error": (rec["error"] or "").splitlines()[0] if rec["error"] else None,
    }


def write_summary(out: Path, spec: BatchSpec, results: list[dict]) -> tuple[Path, Path]:
    from .report import plot_metric, write_csv, write_html_report

    rows = [_row(r) for r in results]
    params = list(dict.fromkeys([*spec.varied, *(k for r in results for k in r["parameters"])]))
    metrics = list(dict.fromkeys(k for r in results for k in r["metrics"]))
    columns = ["run", "status", "seconds", *params, *metrics, "failed_step", "failed_cell", "error"]
    csv_path = write_csv(rows, columns, out / "summary.csv")
    plots = []
    (out / "plots").mkdir(exist_ok=True)
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    changing = [m for m in metrics if len({repr(r.get(m)) for r in ok}) > 1]  # constants make no plot
    for metric in ["seconds", *changing]:
        fig = plot_metric(ok, metric, spec.varied)
        if fig is not None:
            path = out / "plots" / (re.sub(r"[^A-Za-z0-9._-]+", "_", metric) + ".png")
            fig.savefig(path, dpi=80)
            plt.close(fig)
            plots.append(path)
    failures = [(r["run"], r["error"]) for r in results if r["status"] != "ok"]
    images = [(f"{r['run']}: {p.stem}", p) for r in results for p in sorted((out / r["run"]).glob("*.png"))]
    title = f"mpclr batch: {len(results)} runs, {sum(r['status'] == 'ok' for r in results)} ok"
    report = write_html_report(out / "report.html", title, rows, columns, plots, failures, images)
    return csv_path, report


def run_batch(
    spec: BatchSpec | dict | str | Path, out: str | Path | None = None, jobs: int = 1, echo=print
) -> BatchResult:
    """Run every run of the grid (jobs at a time, each in its own run folder); then the summary."""
    if not isinstance(spec, BatchSpec):
        spec = parse_grid(spec) if isinstance(spec, dict) else load_grid(spec)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ParameterError(f"parameter jobs must be a positive integer, got {jobs!r}")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(out if out is not None else Path("runs") / f"batch-{stamp}").expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "batch.json").write_text(
        json.dumps(
            to_jsonable(
                {
                    "source": spec.source,
                    "steps": spec.steps,
                    "varied": spec.varied,
                    "runs": [{"run": n, "parameters": p} for n, p in spec.runs],
                }
            ),
            indent=1,
        )
        + "\n"
    )
    echo(f"mpclr batch: {len(spec.runs)} runs into {out} ({jobs} at a time)")
    results: dict[str, dict] = {}

    def done(rec):
        results[rec["run"]] = rec
        line = f"[{len(results)}/{len(spec.runs)}] {rec['run']}: {rec['status']} in {rec['seconds']:.1f} s"
        echo(line if rec["status"] == "ok" else line + "\n    " + (rec["error"] or "").replace("\n", "\n    "))

    if jobs == 1:
        for name, params in spec.runs:
            done(run_one(name, str(out / name), params, spec.steps))
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_one, name, str(out / name), params, spec.steps) for name, params in spec.runs]
            for fut in as_completed(futures):
                done(fut.result())
    ordered = [results[name] for name, _ in spec.runs]
    csv_path, report = write_summary(out, spec, ordered)
    echo(f"summary: {csv_path}\nreport:  {report}")
    return BatchResult(out, ordered, csv_path, report)


def add_batch_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch",
        help="run the study notebooks over a YAML grid of parameters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", help="the grid file (YAML)")
    p.add_argument("--out", default=None, help="output folder (default: runs/batch-<date-time>)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (each run uses about one core)")
    p.set_defaults(func=_batch_command)
    return p


def _batch_command(args) -> int:
    with warnings.catch_warnings():
        warnings.filterwarnings("default", category=DeprecationWarning, module=r"mpclr\.")  # a grid's older names
        result = run_batch(args.grid, args.out, args.jobs, echo=lambda s: print(s, flush=True))
    failed = [r["run"] for r in result.results if r["status"] != "ok"]
    if failed:
        print(f"mpclr batch: {len(failed)} of {len(result.results)} runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
