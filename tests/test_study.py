"""Issue 4's bar, end to end: encrypted 5-fold CV against the twin and scikit-learn on the medical sets."""

import json

import numpy as np
import pytest

import mpclr
from mpclr import data
from mpclr.errors import DataError, ParameterError
from mpclr.pipeline import run_cv
from mpclr.spec import StudySpec

from .checks import pin_fold_keys, refresh_flooding

# breast cancer (30 features, packed), lbw (folds of 37 rows) and edin (the most rows) span the shapes; pcs and
# uis (379 x 9, 575 x 8) ran the same path for about 30 s of the suite's 15 minutes: `mpclr cv --data pcs`
# (or uis) runs the same study and prints the same comparison
SETS = ["breast_cancer", "lbw", "edin"]


@pytest.fixture(scope="module")
def fed():
    f = mpclr.Federation(manifest="exploration", hospitals=3, preset="train")
    pin_fold_keys(f)  # the bars below depend on the folds: the same ones in every run
    yield f
    f.close()


@pytest.mark.parametrize("name", SETS)
def test_encrypted_cv_meets_the_bar(fed, name):
    if name in data.SHARED_NAMES and name not in data.shared_available():
        pytest.skip(f"{name}.txt is not in {data.shared_data_dir()}")
    ds = data.load(name)
    rec = run_cv(ds, StudySpec(hospitals=3, folds=5), fed=fed)
    folds = rec["folds"]
    secure = {f["fold"]: f for f in rec["secure_evaluation"]["folds"]}
    for f in folds:
        # the encrypted model (decrypted, scored in the clear) against the twin: issue 4's bar, or one pair of
        # rows swapping order where a fold is so small that one pair weighs more (lbw's 37-row folds: 0.0033):
        # the weights differ by the refreshes' smudging, so two near-tied scores may swap
        y = ds.y[f["test_rows"]]
        one_pair = 1.0 / (int(y.sum()) * int(y.size - y.sum()))
        assert abs(f["encrypted_model"]["auc"] - f["twin"]["auc"]) <= max(0.002, one_pair + 1e-9), f
        assert abs(f["twin"]["auc"] - f["sklearn"]["auc"]) <= 0.03, f
        # the secure metrics: within the evaluation's certified grid bound of the model's exact AUC
        assert abs(f["encrypted"]["auc"] - f["encrypted_model"]["auc"]) <= secure[f["fold"]]["auc_bound"] + 1e-3
        assert f["encrypted"]["accuracy"] == pytest.approx(f["encrypted_model"]["accuracy"], abs=1.5 / f["n_test"])
    mean = {who: np.mean([f[who]["auc"] for f in folds]) for who in ("twin", "sklearn")}
    assert abs(mean["twin"] - mean["sklearn"]) <= 0.01
    # the decrypted encrypted weights equal the twin's up to the refreshes' smudging: 10 times what one refresh
    # adds to a slot (sigma 2^26 per hospital at scale 2^45: 3e-4 for 3 hospitals); measured up to 2.9 times
    # that on breast cancer, 6.6 in test_encrypted_training (before issue 12's sized smudging: ~1e-6)
    assert rec["weights"]["max_abs_diff_encrypted_twin"] < 10 * refresh_flooding(fed.params, 3)
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
                "--hospitals",
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
    printed = capsys.readouterr()
    assert "encrypted" in printed.out
    # two hospitals: each learns the other's sums from the pooled scaling, and the command says so
    assert "mpclr: warning: a study with two hospitals" in printed.err


def test_too_few_rows_for_the_folds(fed):
    tiny = data.synthetic(12, 2, seed=1)
    with pytest.raises(DataError, match="folds"):
        run_cv(tiny, StudySpec(hospitals=2, folds=10), fed=fed)


def test_bad_study_parameters(fed):
    with pytest.raises(mpclr.ParameterError, match="degree"):
        run_cv("breast_cancer", StudySpec(hospitals=3, degree=4), fed=fed)


def test_a_study_with_more_hospitals_than_the_smudging_is_sized_for_is_refused(monkeypatch):
    """Issue 12: the noise to hide grows with the number of hospitals; train's smudging is sized for 10."""
    monkeypatch.setattr("mpclr.pipeline.Federation", lambda *a, **k: pytest.fail("a key ceremony started"))
    with pytest.raises(ParameterError, match="sized for up to 10 hospitals"):
        run_cv(data.load("breast_cancer"), StudySpec(hospitals=11))


def test_a_federation_whose_smudging_does_not_hide_is_refused_for_a_study(fed_fast):
    """Judged by the set's own values: the teaching preset's smudging is below the floor and as small as the
    noise it would have to hide."""
    with pytest.raises(ParameterError, match=r"'fast' cannot run a whole study: it is a teaching preset .*"
                       r"decryption smudging sigma 2\^8 is below the floor 2\^20.*use preset 'train' instead"):
        run_cv(data.load("breast_cancer"), StudySpec(hospitals=3), fed=fed_fast)
