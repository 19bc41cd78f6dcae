"""Issue 4's bar, end to end: encrypted 5-fold CV against the twin and scikit-learn on the medical sets."""

import json

import numpy as np
import pytest

import mpclr
from mpclr import data
from mpclr.errors import DataError, ParameterError
from mpclr.study import StudyConfig, run_cv

from .checks import refresh_flooding

SETS = ["breast_cancer", *data.SHARED_NAMES]


@pytest.fixture(scope="module")
def fed():
    f = mpclr.Federation(parties=3, preset="train")
    yield f
    f.close()


@pytest.mark.parametrize("name", SETS)
def test_encrypted_cv_meets_the_bar(fed, name):
    if name in data.SHARED_NAMES and name not in data.shared_available():
        pytest.skip(f"{name}.txt is not in {data.shared_data_dir()}")
    rec = run_cv(data.load(name), StudyConfig(parties=3, folds=5), fed=fed)
    folds = rec["folds"]
    secure = {f["fold"]: f for f in rec["secure_evaluation"]["folds"]}
    for f in folds:
        # the encrypted model (decrypted, scored in the clear) against the twin: issue 4's bar
        assert abs(f["encrypted_model"]["auc"] - f["twin"]["auc"]) <= 0.002, f
        assert abs(f["twin"]["auc"] - f["sklearn"]["auc"]) <= 0.03, f
        # the secure metrics: within the evaluation's certified grid bound of the model's exact AUC
        assert abs(f["encrypted"]["auc"] - f["encrypted_model"]["auc"]) <= secure[f["fold"]]["auc_bound"] + 1e-3
        assert f["encrypted"]["accuracy"] == pytest.approx(f["encrypted_model"]["accuracy"], abs=1.5 / f["n_test"])
    mean = {who: np.mean([f[who]["auc"] for f in folds]) for who in ("twin", "sklearn")}
    assert abs(mean["twin"] - mean["sklearn"]) <= 0.01
    # the decrypted encrypted weights equal the twin's up to the refreshes' smudging: 30 times the noise one
    # refresh adds to a slot (sigma 2^26 per hospital at scale 2^45: 3e-4 for 3 hospitals); measured up to
    # 2.9e-3 on breast cancer (before issue 12's sized smudging: ~1e-6 at scale 2^50)
    assert rec["weights"]["max_abs_diff_encrypted_twin"] < 30 * refresh_flooding(fed.params, 3)
    # every row is tested exactly once, folds are public and stratified per hospital
    rows = sorted(r for f in folds for r in f["test_rows"])
    assert rows == list(range(rec["data"]["rows"]))
    assert rec["evaluation_path"].startswith("secure")
    assert all(r["path"] in ("threshold decryption", "key switch to researcher") for r in rec["revealed"])
    assert {"key_ceremony", "encryption", "training", "evaluation"} <= set(rec["timings_s"])
    assert rec["training"]["refresh_rounds"] == rec["parameters"]["iterations"] + 1
    json.dumps(rec)  # the record is JSON as it is


def test_cli_cv_on_a_csv_file(tmp_path, capsys):
    from mpclr.cli import main

    ds = data.synthetic(240, 3, seed=5)
    path = tmp_path / "d.csv"
    path.write_text(
        "a,b,c,outcome\n"
        + "\n".join(",".join(f"{v:.6f}" for v in row) + f",{lab}" for row, lab in zip(ds.X, ds.y))
        + "\n"
    )
    out = tmp_path / "out.json"
    assert (
        main(
            [
                "cv",
                str(path),
                "--label",
                "outcome",
                "--folds",
                "3",
                "--parties",
                "2",
                "--iterations",
                "3",
                "--quiet",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rec = json.loads(out.read_text())
    assert rec["parameters"]["folds"] == 3 and rec["parameters"]["iterations"] == 3
    assert len(rec["folds"]) == 3 and all("test_rows" in f for f in rec["folds"])
    assert "encrypted" in capsys.readouterr().out


def test_too_few_rows_for_the_folds(fed):
    tiny = data.synthetic(12, 2, seed=1)
    with pytest.raises(DataError, match="folds"):
        run_cv(tiny, StudyConfig(parties=2, folds=10), fed=fed)


def test_bad_study_parameters(fed):
    with pytest.raises(mpclr.ParameterError, match="degree"):
        run_cv("breast_cancer", StudyConfig(parties=3, degree=4), fed=fed)


@pytest.mark.parametrize("preset,what", [("fast", "teaching preset"), ("deep", "experiments preset")])
def test_cli_refuses_presets_that_cannot_run_a_study_before_any_work(preset, what, capsys, monkeypatch):
    """Issue 12: `mpclr cv --preset deep` died inside the evaluation and `--preset fast` after training;
    both are refused up front, naming the preset, why, and which to use instead."""
    from mpclr.cli import main

    monkeypatch.setattr("mpclr.study.Federation", lambda *a, **k: pytest.fail("a key ceremony started"))
    assert main(["cv", "breast_cancer", "--preset", preset, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"preset '{preset}' is" in err and what in err and "cannot run a study" in err and "Use 'train'" in err
    assert "smudging" in err and "Traceback" not in err


def test_a_federation_on_the_teaching_preset_is_refused_for_a_study(fed_fast):
    with pytest.raises(ParameterError, match="'fast' is a teaching preset"):
        run_cv(data.load("breast_cancer"), StudyConfig(parties=3), fed=fed_fast)
