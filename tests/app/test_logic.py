"""The app's logic without a browser: background jobs, uploads and their folder, data sources, the key
ceremony's steps against a real ceremony, one small real study run phase by phase (its tables, downloads,
report and regression table checked against the record and statsmodels), and a run that fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mpclr.app import ceremony, results
from mpclr.app.jobs import Job, Latest
from mpclr.app.regression import cv_table, glm_refusal
from mpclr.app.sources import PREFIX, Source, UploadFolder, safe_name
from mpclr.app.study_run import StudyRun
from mpclr.data import load
from mpclr.errors import DataError
from mpclr.spec import StudySpec


# ------------------------------------------------------------------------------------------------ jobs
def test_a_job_refuses_a_second_task_while_one_runs():
    job, gate, ran = Job(), threading.Event(), []
    assert job.start(lambda: (gate.wait(10), ran.append(1)))
    assert job.busy and not job.start(lambda: ran.append(2))  # the second click starts nothing
    gate.set()
    assert job.wait(10) and ran == [1] and job.runs == 1
    assert job.start(lambda: ran.append(3)) and job.wait(10) and ran == [1, 3]


def test_latest_runs_the_newest_waiting_request_only():
    gate, ran, errors = threading.Event(), [], []
    worker = Latest(on_error=errors.append)
    worker.submit(lambda: (gate.wait(10), ran.append("first")))
    time.sleep(0.1)
    for k in range(5):
        worker.submit(lambda k=k: ran.append(k))
    worker.submit(lambda: 1 / 0)  # newest: replaces the five
    worker.submit(lambda: ran.append("last"))
    gate.set()
    assert worker.wait_idle(10)
    assert ran == ["first", "last"] and errors == []
    worker.submit(lambda: 1 / 0)
    assert worker.wait_idle(10) and isinstance(errors[0], ZeroDivisionError)


# ------------------------------------------------------------------------------------------------ uploads
def test_upload_folder_is_private_keeps_one_file_and_is_removed(tmp_path):
    folder = UploadFolder(tmp_path)
    assert folder.path.parent == tmp_path and oct(folder.path.stat().st_mode & 0o777) == "0o700"
    first = folder.save("a.csv", b"x,y\n1,0\n")
    second = folder.save("../../etc/b c.csv", memoryview(b"x,y\n2,1\n"))
    assert not first.exists() and second.parent == folder.path and second.name == "b_c.csv"
    assert oct(second.stat().st_mode & 0o777) == "0o600" and second.read_bytes() == b"x,y\n2,1\n"
    assert folder.shown(f"file {second}, line 2") == "file b_c.csv, line 2"
    folder.remove()
    assert folder.removed and not folder.path.exists()


def test_safe_names():
    assert safe_name("C:\\data\\cohort 2024.csv") == "cohort_2024.csv"
    assert safe_name("..") == "upload.csv" and safe_name(".hidden.csv") == "hidden.csv"


def test_upload_folder_goes_when_the_kernel_ends_and_stale_ones_are_swept(tmp_path):
    code = ("import sys; from mpclr.app.sources import UploadFolder; f = UploadFolder(sys.argv[1]); "
            "f.save('x.csv', b'1,0'); print(f.path)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip().startswith(str(tmp_path / PREFIX)) and not os.path.exists(out.stdout.strip())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{PREFIX}{dead.pid}-abc"  # a kernel killed before it could clean up
    stale.mkdir()
    mine = tmp_path / f"{PREFIX}{os.getpid()}-abc"  # a live kernel's: kept
    mine.mkdir()
    UploadFolder(tmp_path)
    assert not stale.exists() and mine.exists()


# ------------------------------------------------------------------------------------------------ sources
def test_an_uploaded_file_is_refused_by_line_and_column_under_its_own_name(tmp_path):
    folder = UploadFolder(tmp_path)
    path = folder.save("cohort.csv", b"age,bmi,outcome\n30,22.5,0\n41,24.0,1\n52,n/a,1\n")
    src = Source(path.name, path)
    assert src.columns() == ["age", "bmi", "outcome"] and src.default_label() == "outcome"
    with pytest.raises(DataError) as err:
        src.load("outcome")
    assert folder.shown(str(err.value)) == "file cohort.csv, line 4, column 2 ('bmi'): holds 'n/a', a missing value"
    with pytest.raises(DataError, match="no column 'sex'"):
        src.load("sex")


def test_sources_offer_every_column_as_outcome(tmp_path):
    folder = UploadFolder(tmp_path)
    path = folder.save("plain.txt", b"1;2;0\n3;4;1\n5;6;1\n7;9;0\n")
    src = Source(path.name, path)
    assert src.columns() == ["column 1", "column 2", "column 3"]
    data = src.load("column 3")
    assert data.X.tolist() == [[1, 2], [3, 4], [5, 6], [7, 9]] and data.y.tolist() == [0, 1, 1, 0]
    assert data.source == "uploaded file plain.txt"
    words = Source("words.csv", folder.save("words.csv", b"age,sick\n30,no\n41,yes\n52,yes\n"))
    with pytest.raises(DataError, match="pass positive="):
        words.load("sick")
    assert words.load("sick", positive="yes").y.tolist() == [0, 1, 1]
    assert words.load("sick", positive="no").classes == ("yes", "no")
    lbw = Source("lbw")
    assert lbw.columns()[-1] == "y" and lbw.load().n_samples == 189
    smoke = lbw.load("x5")  # another column as the outcome: a binary one
    assert smoke.n_features == 9 and "y" in smoke.feature_names
    with pytest.raises(DataError, match="two classes"):
        lbw.load("x1")


# ------------------------------------------------------------------------------------------------ ceremony
def test_ceremony_steps_match_a_real_ceremony():
    from mpclr import workshop
    from mpclr.notebooks.roles import MESSAGES

    demo = workshop.Demo(hospitals=3, threshold=2)
    try:
        sent = demo.fed.traffic()["by_type"]
    finally:
        demo.close()
    known = {m.type for m in MESSAGES}
    for step in ceremony.steps(threshold=True):
        assert set(step.messages) <= known
        if step.key in ("crs", "cpk", "shamir", "rlk", "encrypt"):  # each ran in the Demo: bytes to show
            rows = ceremony.step_messages(step, {"by_type": sent})
            assert all(r["sent here"].endswith("kB") for r in rows), rows
    assert "shamir" not in [s.key for s in ceremony.steps(threshold=False)]


def test_nobody_ever_holds_the_secret_key_and_the_server_never_a_share():
    hospitals = ["hospital-1", "hospital-2", "hospital-3", "hospital-4"]
    for threshold in (False, True):
        for step in ceremony.steps(threshold):
            rows = {r["item"]: r for r in ceremony.holdings(step.key, hospitals, threshold)}
            key = rows["the secret key s = s_1 + ... + s_n"]
            assert key["nobody"] and not any(key[c] for c in [*hospitals, "server", "researcher"])
            share = rows["its own secret-key share s_i"]
            assert all(share[p] for p in hospitals) and not share["server"] and not share["researcher"]
    last = {r["item"]: r for r in ceremony.holdings("decrypt", hospitals, True)}
    assert last["the decrypted values (with t shares)"]["researcher"] == "new"
    html = ceremony.holdings_html(ceremony.holdings("cpk", hospitals, True), hospitals)
    assert html.count("✔ new") == len(hospitals) + 2 and "nobody, ever" in html


# ------------------------------------------------------------------------------------------------ a study
@pytest.fixture(scope="module")
def small_run():
    """A real study, small: 200 synthetic rows x 3 at 2 hospitals (PrivacyWarning), 2 folds, train, no ROC
    refinement round."""
    data = load("synthetic:200x3", seed=3)
    seen = []
    run = StudyRun(data, StudySpec(hospitals=2, folds=2, seed=3, refine_rounds=0),
                   listener=lambda r: seen.append({k: (p.state, p.done, p.total) for k, p in r.phases.items()}))
    assert run.run(), run.error
    return run, data, seen


def test_a_run_goes_through_every_phase_with_progress(small_run):
    run, _, seen = small_run
    assert all(p.state == "done" and p.seconds > 0 for p in run.phases.values())
    train = [s["train"] for s in seen if s["train"][0] == "running" and s["train"][2]]
    assert [d for _, d, _ in train] == list(range(1, 7)) and train[-1][2] == 6  # six iterations, one by one
    evaluate = [s["evaluate"][1:] for s in seen if s["evaluate"][0] == "running" and s["evaluate"][2]]
    done = [d for d, _ in evaluate]
    assert evaluate and evaluate[-1][0] == evaluate[-1][1] and done == sorted(set(done))  # step by step, to the end
    assert any(w.startswith("a study with two hospitals") for w in run.warnings), run.warnings
    assert any(w.startswith("a pooled GLM with two hospitals") for w in run.warnings), run.warnings


def test_tables_downloads_and_report_say_what_the_record_says(small_run):
    run, _, _ = small_run
    record, reg = run.record, run.regression
    rows = results.auc_rows(record)
    assert [r["secure AUC"] for r in rows[:-1]] == [f["encrypted"]["auc"] for f in record["folds"]]
    assert rows[-1]["secure AUC"].startswith(f"{record['summary']['encrypted']['auc'][0]:.4f}")
    views = results.party_views(record, reg)
    assert [(v["what"], v["values"]) for v in views["researcher"] if v["for"] == "study"] == [
        (r["label"], r["values"]) for r in record["revealed"]]
    glm = [v for v in views["researcher"] if v["for"] == "regression table"]
    assert len(glm) == 1 and glm[0]["values"] == sum(r["values"] for r in reg.revealed)
    answered = {(v["for"], v["hospital"], v["request"], v["label"]): (v["rounds"], v["ciphertexts"], v["values"])
                for v in views["hospitals"]}
    for name, used in record["answered"].items():  # every hospital's ledger, shown once where all agree
        for key, counts in used.items():
            step, _, label = key.partition(" ")
            shown = answered.get(("study", name, step, label), answered.get(("study", "each hospital", step, label)))
            assert shown == tuple(counts), (name, key)
    assert ("regression table", "each hospital", "glm.step", "glm") in answered
    assert {v["message"] for v in views["server"]} >= {"lr.encrypt", "refresh.share"}
    saved = json.loads(json.dumps(results.download_record(record, reg)))
    assert saved["summary"] == json.loads(json.dumps(record["summary"]))
    assert saved["app"]["regression_table"]["kind"] == reg.kind
    roc = results.roc_png(record)
    assert roc[:8] == b"\x89PNG\r\n\x1a\n"
    page = results.report_html(record, reg, roc, run.warnings)
    assert f"secure {record['summary']['encrypted']['auc'][0]:.4f}" in page and "data:image/png;base64," in page
    link = results.data_link(b"{}", "r.json", "application/json", "the record", "dl")
    assert "download='r.json'" in link and "base64,e30=" in link


def test_the_regression_table_is_the_pooled_glm_beside_statsmodels(small_run):
    import statsmodels.api as sm

    run, data, _ = small_run
    reg = run.regression
    assert reg.kind == "glm" and "maximum likelihood" in reg.note
    ref = sm.GLM(data.y, sm.add_constant(data.X), family=sm.families.Binomial()).fit(tol=1e-12)
    assert np.allclose(reg.frame["coef"].to_numpy(), ref.params, rtol=1e-6, atol=1e-8)
    assert np.allclose(reg.frame["std err"].to_numpy(), ref.bse, rtol=1e-6)
    assert reg.revealed and all(r["for"] == "regression table (pooled GLM)" for r in reg.revealed)


def test_the_cv_table_when_the_glm_is_not_run(small_run):
    run, data, _ = small_run
    assert glm_refusal(4, [100, 100]) is None
    assert "refuses a model of 40 parameters" in glm_refusal(40, [100, 100])
    assert "one ciphertext" in glm_refusal(200, [10_000])
    table = cv_table(run.record, data.feature_names, "a reason")
    W = np.asarray(run.record["weights"]["encrypted"]).mean(axis=0)
    mean, std = (np.asarray(run.record["scaling"][k]) for k in ("mean", "std"))
    coef = table.frame["coef"].to_numpy()
    # the mean fold model, in the features' own units, gives the same scores as on standardized features
    assert np.allclose(coef[0] + data.X @ coef[1:], W[0] + ((data.X - mean) / std) @ W[1:])
    assert table.kind == "cv" and "not run: a reason" in table.note


def test_a_run_that_fails_says_why_and_where():
    run = StudyRun(load("synthetic:100x2"), StudySpec(hospitals=2, folds=60, seed=1))
    assert not run.run() and run.record is None
    assert run.failed_phase().key == "prepare" and "60 folds cannot each hold both classes" in run.error
    assert [p.state for p in run.phases.values()][1:] == ["waiting"] * 5


# ------------------------------------------------------------------------------------------------ the server
def test_the_server_listens_on_loopback_and_wants_a_token_elsewhere():
    from mpclr.app.server import app_dir, voila_argv
    from mpclr.cli import build_parser
    from mpclr.errors import ParameterError

    args = build_parser().parse_args(["app"])
    assert (args.ip, args.port, args.token, args.no_token) == ("127.0.0.1", 8866, None, False)
    argv = voila_argv("127.0.0.1", 8866, "s3cret")
    assert argv[0] == str(app_dir()) and "--Voila.ip=127.0.0.1" in argv and "--token=s3cret" in argv
    assert not any(a.startswith("--token") for a in voila_argv("::1", 9000, None))
    with pytest.raises(ParameterError, match="not a loopback address"):
        voila_argv("0.0.0.0", 8866, None)
    assert "--token=t" in voila_argv("0.0.0.0", 8866, "t")
    assert {"--MappingKernelManager.cull_idle_timeout=600", "--MappingKernelManager.cull_interval=60"} <= set(argv)
    assert "--MappingKernelManager.cull_interval=1" in voila_argv(cull_idle=2)
    with pytest.raises(ParameterError, match="cull_idle"):
        voila_argv(cull_idle=0)
