"""`mpclr batch`: the whole study sequence (00-05, the study's preset) over a grid of hospitals 2 and 3 on a
small data set, plus a run that fails in a notebook and one refused before any kernel; the failures are
reported with notebook and cell, and the good runs go on."""

import csv
import json

import pytest

from mpclr.cli import main
from mpclr.training.layout import Layout

GRID = """\
parameters:
  dataset: "synthetic:160x3"
  folds: 2
  iterations: 2
  refine_rounds: 0
  rotation_steps: [1]
  table_one: false     # 01 agrees no Table 1: 02b says so and asks nothing (its table: test_execution)
grid:
  hospitals: [2, 3]
runs:
  - {hospitals: 3, smudging_bits: 45}   # beyond the train preset's bound: fails in notebook 00
  - {hospitals: "3"}                    # a string: refused before any kernel starts
"""
STEPS = [
    "00_study_and_roles",
    "01_key_ceremony",
    "02_data_and_encryption",
    "02b_table_one",
    "03_training",
    "04_evaluation",
    "05_comparison",
]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch")
    grid = tmp / "grid.yaml"
    grid.write_text(GRID)
    code = main(["batch", str(grid), "--out", str(tmp / "out"), "--jobs", "2"])
    return code, tmp / "out"


def test_exit_status_says_some_runs_failed(batch):
    code, _ = batch
    assert code == 1


def test_each_run_has_its_folder_and_results(batch):
    _, out = batch
    names = ["001_hospitals=2", "002_hospitals=3", "003_hospitals=3_smudging_bits=45", "004_hospitals=3"]
    assert json.loads((out / "batch.json").read_text())["varied"] == ["hospitals", "smudging_bits"]
    for name in names[:2]:
        res = json.loads((out / name / "results.json").read_text())
        assert res["status"] == "ok" and res["failed_step"] is None
        assert [s["status"] for s in res["steps"]] == ["ok"] * 7
        assert all((out / name / "notebooks" / f"{step}.ipynb").is_file() for step in STEPS)
        assert (out / name / "keys_traffic.png").is_file() and (out / name / "evaluation_roc.png").is_file()
        assert json.loads((out / name / "table_one.json").read_text())["agreed"] is False
        layout_steps = Layout(8192, 160, 2).rotation_steps()
        assert res["metrics"]["rotation_keys"] == len(set(layout_steps) | {1}) and res["metrics"]["total_mb"] > 1
        assert res["metrics"]["rows_tested"] == 160 and 0.5 < res["metrics"]["secure_auc"] <= 1
    assert json.loads((out / names[0] / "keys.json").read_text())["key_holders"] == ["hospital-1", "hospital-2"]


def test_a_run_failing_in_a_notebook_names_notebook_and_cell(batch):
    _, out = batch
    res = json.loads((out / "003_hospitals=3_smudging_bits=45" / "results.json").read_text())
    assert res["status"] == "failed" and res["failed_step"] == "00_study_and_roles" and res["failed_cell"] == 1
    assert "00_study_and_roles.ipynb" in res["error"] and "cell 1, line" in res["error"]
    assert "ParameterError: parameter smudging_bits out of range: 45" in res["error"]
    assert [s["status"] for s in res["steps"]] == ["failed"] + ["skipped"] * 6
    assert (out / "003_hospitals=3_smudging_bits=45" / "notebooks" / "00_study_and_roles.ipynb").is_file()


def test_a_run_refused_before_running(batch):
    _, out = batch
    res = json.loads((out / "004_hospitals=3" / "results.json").read_text())
    assert res["status"] == "failed" and res["failed_step"] == "(parameters)"
    assert "parameter hospitals must be an integer (int), got '3' (str)" in res["error"]
    assert not (out / "004_hospitals=3" / "notebooks").exists()


def test_summary_csv_and_report(batch):
    _, out = batch
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert [r["hospitals"] for r in rows] == ["2", "3", "3", "3"]
    assert float(rows[1]["total_mb"]) > float(rows[0]["total_mb"]) > 1  # more hospitals, more traffic
    assert rows[2]["failed_step"] == "00_study_and_roles" and rows[2]["failed_cell"] == "1"
    assert rows[0]["error"] == "" and "smudging_bits" in rows[2]["error"]
    for metric in ("secure_auc", "twin_auc", "training_s", "encrypted_mb"):  # every step's summary is collected
        assert rows[0][metric] and rows[1][metric] and rows[2][metric] == ""
    report = (out / "report.html").read_text()
    assert "mpclr batch: 4 runs, 2 ok" in report
    for plot in ("seconds", "total_mb", "key_ceremony_s"):
        assert f"plots/{plot}.png" in report and (out / "plots" / f"{plot}.png").is_file()
    assert "001_hospitals=2/keys_traffic.png" in report
    assert "00_study_and_roles.ipynb: ParameterError" in report
