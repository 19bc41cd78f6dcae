"""The notebooks executed by papermill (kernel python3) into temporary run folders, small parameters: the
whole study sequence 00-05 (with 02b) once, then single steps rerun on its run folder."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest

from mpclr import Federation
from mpclr.errors import DataError
from mpclr.notebooks import SEQUENCE, RunFolder, Study
from mpclr.notebooks.pipeline import load_encrypted, resume_federation
from mpclr.notebooks.runner import SequenceFailed, run_sequence
from mpclr.params import get_preset
from mpclr.roles.policy import Manifest
from mpclr.training.layout import Layout

from ..checks import refresh_flooding

LATER_STEP = Path(__file__).parent / "fixtures" / "later_step.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"


SMALL = {"dataset": "synthetic:300x4", "hospitals": 2, "folds": 3, "iterations": 3, "seed": 7, "regression_table": True}
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
def study_run(tmp_path_factory):
    """The whole sequence, 00-05 with 02b, on small parameters with the study's preset (train) and degree (5)."""
    run_dir = tmp_path_factory.mktemp("sequence") / "run"
    result = run_sequence(run_dir, SMALL, progress=False)
    return RunFolder(run_dir), result


@pytest.fixture(scope="module")
def pooled(study_run):
    """The study's rows as the test sees them (the simulation's pooled view), and the public fold ids."""
    run, _ = study_run
    data = Study.from_json(run.read_json("study.json")).hospital_data()
    return data, np.asarray(run.read_json("data.json")["folds"]["fold_of_row"])


def test_the_sequence_records_each_step(study_run):
    run, result = study_run
    assert result.ok, result.describe()
    assert [s.step for s in result.steps] == STEPS
    recorded = run.read_json("run.json")
    assert recorded["ok"] is True and recorded["parameters"]["hospitals"] == 2
    for step in recorded["steps"]:
        assert step["status"] == "ok" and step["seconds"] > 0 and step["error"] is None
        executed = nbformat.read(step["executed"], as_version=4)
        assert Path(step["executed"]).parent == run.path / "notebooks"
        assert executed.metadata.papermill.parameters["run_dir"] == str(run.path)
        assert all(c.get("outputs") is not None for c in executed.cells if c.cell_type == "code")
    for step in SEQUENCE:
        assert run.read_json(step.writes[0])["written"]["by"] == step.name
        assert all((run.path / folder).is_dir() for folder in step.keeps)


def test_parameters_arrive_with_their_types(study_run):
    run, _ = study_run
    executed = nbformat.read(run.executed_notebook("00_study_and_roles"), as_version=4)
    injected = executed.cells[1]
    assert "injected-parameters" in injected.metadata.tags
    lines = set(injected.source.splitlines())
    assert {"hospitals = 2", "seed = 7", "folds = 3", 'dataset = "synthetic:300x4"', "iterations = 3"} <= lines
    assert not any(line.startswith("rotation_steps") for line in lines)  # 01's parameter: not sent to 00
    later = nbformat.read(run.executed_notebook("03_training"), as_version=4).cells[1].source.splitlines()
    assert [line for line in later if not line.startswith("#")] == [f'run_dir = "{run.path}"']  # the rest: study.json


def test_study_json(study_run):
    run, _ = study_run
    study = run.read_json("study.json")
    assert study["parameters"] == {
        "dataset": "synthetic:300x4",
        "label": "last",
        "split": "even",
        "hospitals": 2,
        "threshold": None,
        "preset": "train",
        "smudging_bits": None,
        "seed": 7,
        "folds": 3,
        "iterations": 3,
        "degree": 5,
    }
    assert study["key_holders"] == ["hospital-1", "hospital-2"] and study["key_holders_needed"] == 2
    assert study["ckks"]["n"] == 16384 and study["ckks"]["security"] == "128-bit (HE standard)"
    assert [r["role"] for r in study["roles"]] == ["hospital", "server", "researcher"]
    assert study["data"]["rows"] == 300 and study["data"]["rows_per_hospital"] == {"hospital-1": 150, "hospital-2": 150}
    assert study["summary"]["depth"] == 7 and study["written"]["by"] == "00_study_and_roles"


def test_keys_json_and_the_saved_federation(study_run):
    run, _ = study_run
    keys = run.read_json("keys.json")
    assert keys["key_holders"] == ["hospital-1", "hospital-2"] and keys["threshold"] == 2
    layout_steps = Layout(8192, 300, 3).rotation_steps()
    assert keys["rotation_steps"] == layout_steps and len(keys["galois_elements"]) == len(layout_steps)
    by_type = keys["traffic"]["by_type"]
    assert {"crs.commit", "cpk.reveal", "rlk.round1", "rlk.round2", "gkg.share", "keys.install"} <= set(by_type)
    assert by_type["rlk.round2"]["bytes"] > by_type["cpk.reveal"]["bytes"] > 100_000
    sent = keys["traffic"]["by_sender"]
    assert sent["hospital-1"]["bytes"] == sent["hospital-2"]["bytes"] > 1_000_000  # symmetric hospitals
    assert {"setup", "CRS + public key", "relinearization key", "rotation_keys"} <= set(keys["timings"])
    summary = keys["summary"]
    assert summary["total_mb"] * 1e6 == pytest.approx(keys["traffic"]["total_bytes"], rel=1e-3)
    assert summary["rotation_keys"] == len(layout_steps) and summary["key_ceremony_s"] > 0
    assert keys["public_key"]["bytes"] > 100_000 and len(keys["public_key"]["sha256"]) == 64
    assert run.file("keys_traffic.png").read_bytes()[:8] == PNG
    # every node has its own keystore folder; only hospitals hold a key share, every secret file is 0600
    stores = {r["node"]: r for r in keys["federation"]["keystores"]}
    assert set(stores) == {"hospital-1", "hospital-2", "server", "researcher"}
    nodes = run.path / "federation" / "nodes"
    for name in stores:
        assert (nodes / name).stat().st_mode & 0o777 == 0o700
        secrets_ = list((nodes / name).glob("secret-*"))
        assert secrets_ and all(p.stat().st_mode & 0o777 == 0o600 for p in secrets_)
        assert (nodes / name / "secret-key-share.bin").exists() == name.startswith("hospital")
    assert "secret-key-share.bin" in stores["hospital-1"]["secret files"]


def test_data_json(study_run, pooled):
    run, _ = study_run
    data, folds = pooled
    rec = run.read_json("data.json")
    assert rec["rows_per_hospital"] == {"hospital-1": 150, "hospital-2": 150}
    # every row is in exactly one fold; the folds are stratified by each hospital on its own rows
    assert len(folds) == 300 and set(folds.tolist()) == {0, 1, 2}
    assert rec["folds"]["sizes"] == np.bincount(folds).tolist() and sum(rec["folds"]["sizes"]) == 300
    for name, part in zip(["hospital-1", "hospital-2"], data.parts):
        assert rec["folds"]["per_hospital"][name] == np.bincount(folds[part.rows], minlength=3).tolist()
    # what was revealed: the pooled count, sums and cross-products, exactly what the pooled rows give
    X = data.pooled.X
    rev = rec["revealed"]
    assert rev["values"] == 1 + 4 + 10 == rec["summary"]["aggregate_values_revealed"]
    assert rev["pooled_count"] == pytest.approx(300, abs=1e-3)
    assert np.allclose(rev["means"], X.mean(axis=0), rtol=1e-6, atol=1e-6)
    assert np.allclose(rev["cross_products"], X.T @ X, rtol=1e-6)
    assert np.allclose(rev["correlation"], np.corrcoef(X.T), atol=1e-5)
    assert np.allclose(rec["scaling"]["mean"], X.mean(axis=0), atol=1e-5)
    assert np.allclose(rec["scaling"]["std"], X.std(axis=0), rtol=1e-5)
    # the layout and the ciphertexts: folds of 100 rows fit a lane 16 times, so the 5 columns of z (intercept
    # + 4) lie side by side in 8 segments of 256 samples: one ciphertext per block a hospital has rows in (of
    # 2), and one constant part each
    assert rec["layout"]["groups"] == [{"models": [0, 1, 2], "samples_per_block": 256, "blocks": 2, "segments": 8}]
    cts = rec["ciphertexts"]
    for mine in cts["per_hospital"].values():
        assert mine["data"] in (1, 2) and mine["constant_term"] == 1
        assert mine["bytes"] == mine["data"] * cts["ciphertext_bytes"] + cts["constant_ciphertext_bytes"]
    assert cts["constant_ciphertext_bytes"] < 0.6 * cts["ciphertext_bytes"]  # sent at level 3: 4 primes of 8
    assert cts["total"] == rec["summary"]["ciphertexts"] == sum(v["data"] + 1 for v in cts["per_hospital"].values())
    assert rec["public_key_sha256"] == run.read_json("keys.json")["public_key"]["sha256"]
    for png in ("data_rows_and_folds.png", "data_correlation.png"):
        assert run.file(png).read_bytes()[:8] == PNG


def test_training_json(study_run):
    run, _ = study_run
    rec = run.read_json("training.json")
    assert rec["plan"]["iterations"] == 3 and rec["plan"]["degree"] == 5 and len(rec["plan"]["step_sizes"]) == 3
    assert [r["iteration"] for r in rec["encrypted"]["per_iteration"]] == [1, 2, 3]
    assert rec["encrypted"]["refresh_rounds"] == 4  # one per iteration, one for the final models
    ll = np.asarray(rec["twin"]["train_log_likelihood"])
    assert ll.shape == (4, 3) and np.all(ll[-1] > ll[0])  # the twin climbs from log(1/2) on every fold
    assert ll[0] == pytest.approx(np.log(0.5))
    margins = np.asarray(rec["twin"]["max_abs_margin"])
    assert margins.shape == (3, 3) and margins.max() < rec["twin"]["interval"]
    assert rec["summary"]["training_s"] > 0 and rec["summary"]["refresh_mb"] > 1
    assert run.file("training_convergence.png").read_bytes()[:8] == PNG
    executed = nbformat.read(run.executed_notebook("03_training"), as_version=4)
    assert "encrypted training" in json.dumps([c.get("outputs") for c in executed.cells])  # the progress bar


def test_evaluation_json(study_run, pooled):
    run, _ = study_run
    data, folds = pooled
    rec = run.read_json("evaluation.json")
    y = data.pooled.y
    assert rec["summary"]["rows_tested"] == 300 and rec["checks"]["counts_consistent"]
    for f in rec["folds"]:
        test = folds == f["fold"]
        assert f["n"] == test.sum() and f["positives"] == y[test].sum()  # every row tested once, by its fold's model
        cm = f["confusion"]
        assert cm["tp"] + cm["fn"] == y[test].sum() and cm["tn"] + cm["fp"] == (1 - y[test]).sum()
        assert f["roc"]["fpr"][0] == f["roc"]["tpr"][0] == 1.0 and 0.5 < f["auc"] <= 1.0
    assert sum(rec["confusion_total"].values()) == 300
    # only counts reached the researcher, all by key switch to its own key
    assert rec["revealed"] and all(r["to"] == "researcher" for r in rec["revealed"])
    assert rec["revealed_values"] == sum(r["values"] for r in rec["revealed"]) == rec["summary"]["revealed_values"]
    assert {k for r in rec["revealed"] for k in r["by_kind"]} <= {
        "rows",
        "positives_above",
        "positives",
        "unused (threshold above every score: 0)",
    }
    assert rec["researcher_audit"] and all(a["path"] == "key switch to researcher" for a in rec["researcher_audit"])
    for png in ("evaluation_roc.png", "evaluation_confusion.png"):
        assert run.file(png).read_bytes()[:8] == PNG


def test_comparison_json(study_run):
    run, _ = study_run
    rec = run.read_json("comparison.json")
    evaluation = run.read_json("evaluation.json")
    assert [r["fold"] for r in rec["folds"]] == [0, 1, 2]
    for r, f in zip(rec["folds"], evaluation["folds"]):
        assert r["secure_auc"] == f["auc"]
        assert abs(r["secure_auc"] - r["twin_auc"]) <= 0.01  # secure evaluation of the encrypted models = the twin
        assert abs(r["twin_auc"] - r["sklearn_auc"]) <= 0.03
    assert rec["models_decrypted"] is True
    # the encrypted weights are the twin's, up to the refreshes' smudging (tests.checks.refresh_flooding)
    assert rec["coefficients"]["max_abs_diff_encrypted_twin"] < 10 * refresh_flooding(get_preset("train"), 2)
    assert np.asarray(rec["coefficients"]["encrypted"]).shape == (3, 5)
    # 5 columns side by side in one weight ciphertext (folds of 100 rows fit a lane 16 times)
    assert [d["label"] for d in rec["decrypted_here"]] == ["fold models: weights 0 of group 0"]
    phases = {t["phase"]: t for t in rec["times"]}
    assert phases["encrypted training (03)"]["study_s"] == 420 and phases["secure evaluation (04)"]["study_s"] == 1200
    assert phases["encrypted training (03)"]["mpclr_s"] == run.read_json("training.json")["summary"]["training_s"]
    assert rec["study_figures"]["rows"] == 49152 and rec["setting"]["rows"] == 300
    for png in ("comparison_coefficients.png", "comparison_times.png"):
        assert run.file(png).read_bytes()[:8] == PNG


def test_the_batch_summary_collects_every_steps_metrics(study_run):
    from mpclr.notebooks.batch import _metrics

    run, _ = study_run
    metrics = _metrics(run, None)
    assert not [k for k in metrics if ":" in k]  # no two steps' summaries share a name
    for name in (
        "key_ceremony_s",
        "encrypted_mb",
        "training_s",
        "secure_auc",
        "evaluation_s",
        "twin_auc",
        "max_weight_diff_encrypted_twin",
    ):
        assert name in metrics, name
    assert metrics["secure_auc"] == run.read_json("evaluation.json")["summary"]["secure_auc"]


def test_a_step_reruns_alone(study_run):
    """05 again on the same run folder, the key holders declining to decrypt the models this time."""
    run, _ = study_run
    before = run.file("comparison.json").stat().st_mtime_ns
    audit = len(Federation.load(run.path / "federation").researcher.revealed)
    result = run_sequence(run.path, {"decrypt_models": False}, steps=["05"], progress=False)
    assert result.ok and [s.step for s in result.steps] == ["05_comparison"]
    rec = run.read_json("comparison.json")
    assert run.file("comparison.json").stat().st_mtime_ns > before
    assert rec["models_decrypted"] is False and rec["decrypted_here"] == []
    assert "encrypted" not in rec["coefficients"] and "max_weight_diff_encrypted_twin" not in rec["summary"]
    assert rec["summary"]["twin_auc"] == pytest.approx(np.mean([r["twin_auc"] for r in rec["folds"]]), abs=1e-5)
    assert len(Federation.load(run.path / "federation").researcher.revealed) == audit  # nothing more decrypted


def test_later_steps_refuse_a_federation_or_keys_of_another_study(study_run, tmp_path):
    run, _ = study_run
    with pytest.raises(DataError, match=r"made for hospitals \['hospital-1', 'hospital-2'\].*rerun notebooks/01"):
        resume_federation(run, Study.from_parameters(dataset="synthetic:300x4", hospitals=3))
    with pytest.raises(DataError, match="has no saved federation: run notebooks/01_key_ceremony.ipynb first"):
        resume_federation(RunFolder(tmp_path), Study())
    # data encrypted under other keys (01 ran again after 02): the later steps say what to rerun
    other = RunFolder(tmp_path / "other")
    (other.path / "encrypted_cv").mkdir(parents=True)
    (other.path / "encrypted_cv" / "encrypted_cv.json").write_text("{}")
    other.write_json("data.json", {**run.read_json("data.json"), "public_key_sha256": "0" * 64})
    fed = resume_federation(run, Study.from_json(run.read_json("study.json")))
    try:
        with pytest.raises(DataError, match="encrypted under another collective key .* rerun notebooks/02"):
            load_encrypted(other, fed)
        assert load_encrypted(run, fed, trained=True).weights  # the real run folder's study is fine
    finally:
        fed.close()


def test_a_later_step_joins_and_its_failure_names_notebook_and_cell(study_run):
    run, _ = study_run
    result = run_sequence(run.path, steps=[LATER_STEP], progress=False)
    assert result.ok, result.describe()
    assert run.read_json("later.json")["summary"] == {"hospitals_seen": 2, "hospitals": 2}

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
        {"hospitals": 3, "threshold": 2, "decryptors": [0, 2], "scale_bits": 35, "sweep_bits": [0, 16]},
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


def test_06_runs_the_same_study_on_a_loopback_deployment(study_run, pooled):
    """06 on the sequence's run folder: a SuperLink and one SuperNode per hospital on 127.0.0.1 (TLS, node
    authentication), each hospital reading its own rows and drawing its own folds; secure AUCs = clear AUCs."""
    pytest.importorskip("flwr")
    from sklearn.metrics import roc_auc_score

    run, _ = study_run
    result = run_sequence(run.path, {}, steps=["06"], progress=False)
    assert result.ok
    rec = run.read_json("deployment.json")
    assert rec["status"] == "ok" and rec["transport"]["kind"] == "loopback" and rec["unavailable"] == []
    data, folds = pooled
    rows = np.asarray(rec["global_rows"])  # the deployment's row r is the study's row rows[r]
    X, y = data.pooled.X[rows], data.pooled.y[rows]
    study = rec["study"]
    W, dep_folds = np.asarray(study["models"]), np.asarray(study["fold_of_row"])
    # each hospital drew its folds from its own secret randomness: stratified on its rows, not 02's folds
    assert not np.array_equal(dep_folds, folds[rows])
    for hospital in np.split(dep_folds, np.cumsum([len(p.rows) for p in data.parts])[:-1]):
        sizes = np.bincount(hospital, minlength=3)
        assert sizes.max() - sizes.min() <= 1
    Z = (X - np.asarray(study["mean"])) / np.asarray(study["std"])
    for f in study["secure_evaluation"]["folds"]:
        k = f["fold"]
        s = W[k, 0] + Z[dep_folds == k] @ W[k, 1:]
        assert f["n"] == (dep_folds == k).sum()
        assert abs(f["auc"] - roc_auc_score(y[dep_folds == k], s)) <= 0.005  # secure = clear, same scores
    assert rec["summary"]["in_process_secure_auc"] == run.read_json("evaluation.json")["summary"]["secure_auc"]
    assert run.file("deployment_roc.png").read_bytes()[:8] == PNG


def test_00_runs_the_study_in_one_call(tmp_path):
    """fit_estimator: notebook 00 fits mpclr.EncryptedLogisticRegressionCV on the study's rows as a
    DataFrame and shows its per-fold results and the final model's coefficients by feature name."""
    run = RunFolder(tmp_path / "run")
    design = {k: v for k, v in SMALL.items() if k != "regression_table"}  # 01's parameter: 00 alone runs here
    result = run_sequence(run.path, {**design, "fit_estimator": True}, steps=["00"], progress=False)
    assert result.ok, result.describe()
    nb = nbformat.read(run.executed_notebook("00_study_and_roles"), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "est.fit(X, y)" in c.source)
    shown = [o["data"]["text/plain"] for o in cell.outputs if "text/plain" in o.get("data", {})]
    assert len(shown) == 3  # the per-fold table, the coefficient table, the estimator
    assert all(k in shown[0] for k in ("auc_secure", "auc_decrypted", "auc_twin", "auc_sklearn", "auc_bound"))
    assert [line.split()[0] for line in shown[1].splitlines()[2:]] == ["intercept", "x1", "x2", "x3", "x4"]
    expected = "EncryptedLogisticRegressionCV(cv=3, degree=5, hospitals=2, iterations=3, random_state=7)"
    assert " ".join(shown[2].split()) == expected


def test_02b_shows_the_table_one_of_the_hospitals_rows(study_run, pooled):
    """02b's Table 1 (mpclr.stats): per class and overall, means and SDs equal pandas' on the pooled rows;
    its HTML and LaTeX exports in the run folder; exactly the budgets 01 agreed for it used."""
    run, _ = study_run
    data, _ = pooled
    rec = run.read_json("table_one.json")
    t = rec["table1"]
    frame = data.pooled.to_frame()
    label = frame.columns[-1]
    assert rec["agreed"] is True and rec["label"] == label
    assert t["by"] == label and t["min_cell"] == 5 and t["columns"] == ["overall", f"{label}=0", f"{label}=1"]
    assert t["sizes"]["overall"] == 300 and t["sizes"][f"{label}=1"] == int(frame[label].sum())
    rows = {r["variable"]: r for r in t["rows"] if r["what"] == "mean (SD)"}
    assert set(rows) == set(data.pooled.feature_names)  # synthetic features: all continuous
    for name in data.pooled.feature_names:
        for col, part in (("overall", frame), (f"{label}=0", frame[frame[label] == 0]),
                          (f"{label}=1", frame[frame[label] == 1])):
            assert rows[name][col] == f"{part[name].mean():.2f} ({part[name].std():.2f})"
    # the notebook's own check beside pandas, every number: the CKKS noise only
    assert len(rec["pandas_check"]) == 2 * 3 * 4 and rec["summary"]["table1_max_abs_diff_pandas"] < 1e-6
    # no categorical variable: the class sizes' test, then the released values (no cell test needed)
    assert [r["label"] for r in t["revealed"]] == ["table1: sizes below min_cell", "table1: released counts",
                                                  "table1: sums of 4 continuous variables"]
    assert rec["summary"]["table1_s"] > 0 and rec["exports"] == {"html": "table_one.html", "latex": "table_one.tex"}
    page = run.file("table_one.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Overall (n=300)" in page and "<table" in page
    latex = run.file("table_one.tex").read_text()
    assert latex.startswith("\\begin{table}") and "\\toprule" in latex and latex.count("\\\\") == 1 + 1 + 4
    # 01 agreed the table in the study manifest, beside the CV study's budgets and 07's GLM; 02b used it exactly
    manifest = Manifest.from_json(run.read_json("keys.json")["manifest"]["json"])
    assert [p["part"] for p in manifest.plan["parts"]] == ["encrypted cross-validation", "Table 1", "pooled GLM"]
    fed = Federation.load(run.path / "federation")
    try:
        for party in fed.hospitals:
            used = {k: v for k, v in party.policy.used.items() if k.endswith(" table1")}
            assert used == {b.key: [b.rounds, b.ciphertexts, b.values] for b in manifest.budgets
                            if b.label == "table1"}
    finally:
        fed.close()
    assert "table1" not in run.read_json("data.json")  # 02 encrypts; the table is 02b's


def test_07_regression_table_beside_statsmodels_and_the_cv_models(study_run, pooled):
    sm = pytest.importorskip("statsmodels.api")
    run, _ = study_run
    data, _ = pooled
    audit = len(Federation.load(run.path / "federation").researcher.revealed)
    result = run_sequence(run.path, {}, steps=["07"], progress=False)
    assert result.ok, result.describe()
    rec = run.read_json("regression.json")
    ref = sm.GLM(data.pooled.y, sm.add_constant(data.pooled.X), family=sm.families.Binomial()).fit(tol=1e-12)
    coef = [r["coef"] for r in rec["glm"]["coefficients"]]
    np.testing.assert_allclose(coef, ref.params, rtol=1e-6)
    np.testing.assert_allclose([r["std err"] for r in rec["glm"]["coefficients"]], ref.bse, rtol=1e-6)
    assert rec["separation"] is None and rec["summary"]["glm_max_rel_diff_statsmodels"] < 1e-6
    decrypted = run.read_json("comparison.json")["models_decrypted"]  # 05 may have been rerun without
    what = "encrypted CV, mean of the fold models" if decrypted else "plaintext twin of the CV models"
    assert rec["cv"]["what"] == what and len(rec["cv"]["coef"]) == len(coef)
    # the federation's audit trail holds the fit's decryptions, one per round
    after = Federation.load(run.path / "federation").researcher.revealed
    assert len(after) - audit == len(rec["glm"]["rounds"])
    assert all(e["label"].startswith("glm: ") for e in after[audit:])
