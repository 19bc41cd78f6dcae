"""The notebooks executed by papermill (kernel python3) into temporary run folders, small parameters."""

import json
from pathlib import Path

import nbformat
import pytest

from mpclr.notebooks import RunFolder
from mpclr.notebooks.runner import SequenceFailed, run_sequence

LATER_STEP = Path(__file__).parent / "fixtures" / "later_step.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sequence") / "run"
    result = run_sequence(
        run_dir, {"parties": 2, "preset": "fast", "threshold": None, "seed": 7, "folds": 3}, progress=False
    )
    return RunFolder(run_dir), result


def test_the_sequence_records_each_step(study_run):
    run, result = study_run
    assert result.ok, result.describe()
    assert [s.step for s in result.steps] == ["00_study_and_roles", "01_key_ceremony"]
    recorded = run.read_json("run.json")
    assert recorded["ok"] is True and recorded["parameters"]["parties"] == 2
    for step in recorded["steps"]:
        assert step["status"] == "ok" and step["seconds"] > 0 and step["error"] is None
        executed = nbformat.read(step["executed"], as_version=4)
        assert Path(step["executed"]).parent == run.path / "notebooks"
        assert executed.metadata.papermill.parameters["run_dir"] == str(run.path)
        assert all(c.get("outputs") is not None for c in executed.cells if c.cell_type == "code")


def test_parameters_arrive_with_their_types(study_run):
    run, _ = study_run
    executed = nbformat.read(run.executed_notebook("00_study_and_roles"), as_version=4)
    injected = executed.cells[1]
    assert "injected-parameters" in injected.metadata.tags
    lines = set(injected.source.splitlines())
    assert {"parties = 2", "threshold = None", "seed = 7", "folds = 3", 'preset = "fast"'} <= lines
    assert not any(line.startswith("rotation_steps") for line in lines)  # 01's parameter: not sent to 00


def test_study_json(study_run):
    run, _ = study_run
    study = run.read_json("study.json")
    assert study["parameters"] == {
        "dataset": "breast_cancer",
        "parties": 2,
        "threshold": None,
        "preset": "fast",
        "smudging_bits": None,
        "seed": 7,
        "folds": 3,
        "iterations": 7,
        "degree": 3,
    }
    assert study["key_holders"] == ["hospital-1", "hospital-2"] and study["key_holders_needed"] == 2
    assert study["ckks"]["n"] == 8192 and study["ckks"]["security"] == "128-bit (HE standard)"
    assert [r["role"] for r in study["roles"]] == ["hospital", "server", "researcher"]
    assert study["summary"]["depth"] == 4 and study["written"]["by"] == "00_study_and_roles"


def test_keys_json(study_run):
    run, _ = study_run
    keys = run.read_json("keys.json")
    assert keys["key_holders"] == ["hospital-1", "hospital-2"] and keys["threshold"] == 2
    assert keys["rotation_steps"] == [1, 2, 4, 8] and len(keys["galois_elements"]) == 4
    by_type = keys["traffic"]["by_type"]
    assert {"crs.commit", "cpk.reveal", "rlk.round1", "rlk.round2", "gkg.share", "keys.install"} <= set(by_type)
    assert by_type["rlk.round2"]["bytes"] > by_type["cpk.reveal"]["bytes"] > 100_000
    sent = keys["traffic"]["by_sender"]
    assert sent["hospital-1"]["bytes"] == sent["hospital-2"]["bytes"] > 1_000_000  # symmetric parties
    assert {"setup", "CRS + public key", "relinearization key", "rotation_keys"} <= set(keys["timings"])
    summary = keys["summary"]
    assert summary["total_mb"] * 1e6 == pytest.approx(keys["traffic"]["total_bytes"], rel=1e-3)
    assert summary["rotation_keys"] == 4 and summary["key_ceremony_s"] > 0
    assert keys["public_key"]["bytes"] > 100_000 and len(keys["public_key"]["sha256"]) == 64
    assert run.file("keys_traffic.png").read_bytes()[:8] == PNG


def test_a_step_reruns_alone(study_run):
    run, _ = study_run
    before = run.file("keys.json").stat().st_mtime_ns
    result = run_sequence(run.path, {"rotation_steps": [1, -1]}, steps=["01"], progress=False)
    assert result.ok and [s.step for s in result.steps] == ["01_key_ceremony"]
    keys = run.read_json("keys.json")
    assert keys["rotation_steps"] == [1, -1] and len(keys["galois_elements"]) == 2
    assert run.file("keys.json").stat().st_mtime_ns > before


def test_a_later_step_joins_and_its_failure_names_notebook_and_cell(study_run):
    run, _ = study_run
    result = run_sequence(run.path, steps=[LATER_STEP], progress=False)
    assert result.ok, result.describe()
    assert run.read_json("later.json")["summary"] == {"hospitals_seen": 2, "parties": 2}

    with pytest.raises(SequenceFailed) as err:
        run_sequence(run.path, {"fail_at": "work"}, steps=[LATER_STEP], progress=False)
    failed = err.value.result.failed
    assert failed.status == "failed" and failed.notebook == str(LATER_STEP.resolve())
    assert failed.error.cell == 3 and failed.error.executed_cell == 4  # papermill's injected cell before it
    assert failed.error.line == 3 and failed.error.ename == "RuntimeError"
    assert failed.error.evalue == "asked to fail after seeing 2 key holders"
    text = str(err.value)
    assert f"cell 3, line 3 of {LATER_STEP.resolve()}" in text
    assert '-->     raise RuntimeError(f"asked to fail after seeing {seen} key holders")' in text
    assert json.loads(run.file("run.json").read_text())["steps"][0]["status"] == "failed"


def test_a_missing_input_is_reported_with_notebook_and_cell(tmp_path):
    result = run_sequence(tmp_path / "empty", steps=["01"], progress=False, check=False)
    failed = result.failed
    assert not result.ok and failed.step == "01_key_ceremony"
    assert failed.error.cell == 1 and failed.error.ename == "DataError"
    assert "has no study.json: run notebooks/00_study_and_roles.ipynb first" in failed.error.evalue
    source = nbformat.read(failed.notebook, as_version=4).cells[1].source.splitlines()
    assert 'run.read_json("study.json")' in source[failed.error.line - 1]
    assert f"cell 1, line {failed.error.line} of {failed.notebook}" in failed.describe()


def test_the_workshop_notebook(tmp_path):
    result = run_sequence(
        tmp_path,
        {"parties": 3, "threshold": 2, "decryptors": [0, 2], "scale_bits": 35, "sweep_bits": [0, 16]},
        steps=["90"],
        progress=False,
    )
    assert result.ok, result.describe()
    ws = RunFolder(tmp_path).read_json("workshop.json")
    assert ws["parameters"]["scale_bits"] == 35 and ws["parameters"]["decryptors"] == [0, 2]
    assert ws["decryption"]["who"] == ["hospital-1", "hospital-3"] and ws["decryption"]["needed"] == 2
    assert ws["decryption"]["correct"] is True and ws["decryption"]["max_error"] < 1e-3  # 2 of 3 suffice
    assert ws["too_few"]["who"] == ["hospital-1"] and ws["too_few"]["correct"] is False
    assert ws["too_few"]["max_error"] > 1e3
    assert ws["partial"]["share_spread_bits"] > ws["partial"]["plaintext_spread_bits"] + 10
    assert [r["depth"] for r in ws["noise_by_depth"]] == [0, 1, 2, 3]  # scale 2^35 leaves depth 3
    assert [r["smudging_bits"] for r in ws["smudging"]] == [0.0, 16.0]
    assert ws["summary"]["too_few_max_error"] == ws["too_few"]["max_error"]
