"""Every flag of `mpclr cv` / `mpclr demo` does what its help says, checked in the JSON record of a small
study (200 synthetic rows, 2 folds, 2 iterations, the `train` preset; without the Table 1 but where it is
the subject)."""

import json

import numpy as np
import pandas as pd
import pytest

from mpclr.cli import main
from mpclr.errors import ParameterError
from mpclr.evaluation.constants import FINE_BITS
from mpclr.params import NOT_FOR_STUDIES, PRESETS, study_presets
from mpclr.pipeline import run_cv
from mpclr.roles.policy import Manifest
from mpclr.spec import StudySpec

from .checks import refresh_flooding

SMALL = ["--synthetic", "200x3", "--folds", "2", "--iterations", "2", "--quiet", "--no-table-one"]


def cli(folder, *flags):
    out = folder / "record.json"
    assert main(["cv", *SMALL, *flags, "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def kept_encrypted(tmp_path_factory):
    """One secure study for two flags: --keep-models-encrypted and --score-bound."""
    return cli(tmp_path_factory.mktemp("cli"), "--hospitals", "2", "--keep-models-encrypted", "--score-bound", "24")


def test_keep_models_encrypted_decrypts_no_model(kept_encrypted):
    rec = kept_encrypted
    assert rec["parameters"]["decrypt_models"] is False
    assert rec["weights"]["encrypted"] is None and rec["weights"]["max_abs_diff_encrypted_twin"] is None
    assert rec["summary"]["encrypted_model"] is None and all(f["encrypted_model"] is None for f in rec["folds"])
    # the researcher received the pooled aggregate (for the scaling) and the secure evaluation's counts,
    # switched to its key: nothing about the models
    revealed = rec["revealed"]
    assert not any("model" in r["label"] for r in revealed)
    assert revealed[0]["label"] == "pooled count, sums and cross-products"
    assert {r["path"] for r in revealed[1:]} == {"key switch to researcher"}
    # the metrics still come, from the secure evaluation: within its certified bound (plus the
    # encrypted model's distance to the twin) of the twin's
    secure = {f["fold"]: f for f in rec["secure_evaluation"]["folds"]}
    for f in rec["folds"]:
        assert abs(f["encrypted"]["auc"] - f["twin"]["auc"]) <= secure[f["fold"]]["auc_bound"] + 3e-3, f


def test_score_bound_is_recorded_and_used(kept_encrypted):
    rec = kept_encrypted
    method = rec["secure_evaluation"]["method"]
    assert rec["parameters"]["score_bound"] == 24.0 and method["score_bound"] == 24.0
    # the comparisons run on [-2R, 2R] and resolve scores to 2R eps (eps: the narrowest transition the
    # refreshes' smudging allows, no finer than 2^-FINE_BITS): both follow the flag
    assert method["comparison_domain"] == [-48.0, 48.0]
    eps = method["composites"]["cutoff"]["transition"]
    assert 2.0**-FINE_BITS <= eps < 2.0**-8
    assert method["resolution"]["cutoff"] == pytest.approx(48.0 * eps, rel=1e-9)


def test_evaluation_decrypted_models_and_the_other_study_flags(tmp_path):
    rec = cli(tmp_path, "--evaluation", "decrypted-models", "--hospitals", "3", "--threshold", "2", "--degree", "3",
              "--learning-rate", "0.8", "--seed", "4")
    assert rec["evaluation_path"].startswith("threshold decryption of the fold models")
    assert rec["secure_evaluation"] is None
    p = rec["parameters"]
    assert (p["evaluation"], p["decrypt_models"], p["score_bound"]) == ("decrypted-models", True, None)
    assert (p["hospitals"], p["threshold"], p["folds"], p["iterations"]) == (3, 2, 2, 2)
    assert (p["degree"], p["learning_rate"], p["seed"], p["preset"]) == (3, 0.8, 4, "train")
    assert rec["data"]["rows_per_hospital"] == [67, 67, 66]
    # the metrics are the decrypted models' own, and the researcher received the models, no counts
    for f in rec["folds"]:
        assert f["encrypted"] == f["encrypted_model"]
    # the refreshes' smudging, per slot (tests.checks.refresh_flooding), summed over the 4,096 slots of a
    # block into a gradient that 100 rows per fold leave small, times steps of about 4: 0.009 measured
    assert rec["weights"]["max_abs_diff_encrypted_twin"] < 100 * refresh_flooding(PRESETS["train"], 3)
    assert any(r["label"].startswith("fold models") for r in rec["revealed"])
    assert all(r["path"] == "threshold decryption" for r in rec["revealed"])


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--evaluation", "decrypted-models", "--keep-models-encrypted"], "cannot go with --keep-models-encrypted"),
        (["--evaluation", "decrypted-models", "--score-bound", "8"], "--score-bound is a bound of the secure"),
        (["--folds", "1"], "--folds must be at least 2: mpclr cv cross-validates"),  # run_cv alone takes 1
    ],
)
def test_flags_that_contradict_each_other_are_refused(tmp_path, capsys, flags, message):
    out = tmp_path / "record.json"
    assert main(["cv", *SMALL, "--hospitals", "2", *flags, "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("preset", sorted(NOT_FOR_STUDIES))
@pytest.mark.parametrize("command", ["cv", "demo"])
def test_a_preset_that_cannot_run_a_study_is_refused_before_any_work(tmp_path, capsys, command, preset):
    out = tmp_path / "record.json"
    args = [command, *(SMALL if command == "cv" else ["--quiet"]), "--preset", preset, "--json", str(out)]
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"'{preset}' cannot run a whole study: {NOT_FOR_STUDIES[preset]}; use preset 'train' instead" in err
    assert "Traceback" not in err and not out.exists()
    with pytest.raises(ParameterError, match=f"parameter preset: '{preset}' cannot run"):
        run_cv("breast_cancer", StudySpec(preset=preset))


def test_the_presets_offered_are_those_that_run_a_study(capsys):
    assert "train" in study_presets() and set(study_presets()) | set(NOT_FOR_STUDIES) == set(PRESETS)
    with pytest.raises(SystemExit):
        main(["cv", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--preset {" + ",".join(study_presets()) + "}" in help_text


def _clinic(path, rows: int = 120):
    """A small clinical file: age and bmi (continuous), sex (0/1), stage (1/2, and 3 in three rows only: rows
    5 and 41 of outcome 1, row 40 of outcome 0, a pooled cell of 3 overall and of 1 and 2 per class)."""
    rng = np.random.default_rng(3)
    outcome = np.tile([0, 1], rows // 2)
    stage = rng.choice([1, 2], rows)
    stage[[5, 40, 41]] = 3
    frame = pd.DataFrame({"age": np.round(rng.normal(60, 10, rows), 1) + 3 * outcome,
                          "bmi": np.round(rng.normal(27, 4, rows), 1), "sex": rng.integers(0, 2, rows),
                          "stage": stage, "outcome": outcome})
    frame.to_csv(path, index=False)
    return frame


def test_the_record_holds_the_secure_table_one_and_what_it_revealed(tmp_path, capsys):
    """On by default: per class and overall, counts, means and SDs equal pandas' on the pooled rows; stage's
    pooled cells of 1-3 rows show "<5" and hide its other cells; what the table decrypted is in the record's
    revealed list, before the study's own, and each hospital answered exactly the table's budgets."""
    frame = _clinic(tmp_path / "clinic.csv")
    out = tmp_path / "record.json"
    assert main(["cv", str(tmp_path / "clinic.csv"), "--label", "outcome", "--hospitals", "2", "--folds", "2",
                 "--iterations", "2", "--evaluation", "decrypted-models", "--quiet", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    t = rec["table_one"]
    assert rec["parameters"]["table_one"] is True and rec["timings_s"]["table_one"] > 0
    assert t["by"] == "outcome" and t["min_cell"] == 5 and t["columns"] == ["overall", "outcome=0", "outcome=1"]
    assert t["sizes"] == {"overall": 120, "outcome=0": 60, "outcome=1": 60}
    classes = {"overall": frame, "outcome=0": frame[frame.outcome == 0], "outcome=1": frame[frame.outcome == 1]}
    cells = {(c["variable"], c["class"]): c for c in t["cells"]}
    assert set(cells) == {(v, c) for v in ("age", "bmi", "sex", "stage") for c in classes}
    for (variable, column), cell in cells.items():
        part = classes[column][variable]
        assert cell["count"] == len(part)
        if variable in ("age", "bmi"):
            assert cell["mean"] == pytest.approx(part.mean(), rel=1e-9)
            assert cell["sd"] == pytest.approx(part.std(), rel=1e-7)
        elif variable == "sex":
            assert cell["counts"] == {"0": int((part == 0).sum()), "1": int((part == 1).sum())}
        else:  # stage 3 is small in every column: suppressed, and stage hidden whole
            assert cell["counts"] == {"1": None, "2": None, "3": "<5"}
    assert t["suppressed_variables"] == ["stage"]
    table_revealed = [r for r in rec["revealed"] if r["label"].startswith("table1")]
    assert table_revealed == t["revealed"] == rec["revealed"][: len(table_revealed)]
    assert [r["label"] for r in table_revealed] == ["table1: sizes below min_cell", "table1: cells below min_cell",
                                                    "table1: released counts",
                                                    "table1: sums of 2 continuous variables"]
    assert rec["revealed"][len(table_revealed)]["label"] == "pooled count, sums and cross-products"
    assert not any(r["label"].startswith("table1") for r in rec["revealed"][len(table_revealed):])
    manifest = Manifest.from_json(rec["manifest"])
    assert [p["part"] for p in manifest.plan["parts"]] == ["encrypted cross-validation", "Table 1"]
    budgets = {b.key: [b.rounds, b.ciphertexts, b.values] for b in manifest.budgets if b.label == "table1"}
    for used in rec["answered"].values():
        assert {k: v for k, v in used.items() if k.endswith(" table1")} == budgets
    shown = capsys.readouterr().out
    assert "Table 1 by outcome" in shown and "Overall (n=120)" in shown and "<5" in shown


def test_a_hospital_refusing_the_table_stops_the_study_before_training_naming_the_flag(tmp_path, capsys):
    """dose has many values overall but three at hospital-2, where count, mean and SD would give them away."""
    frame = _clinic(tmp_path / "clinic.csv")
    frame.insert(0, "dose", np.concatenate([np.linspace(1, 9, 60), np.tile([1.0, 2.0, 3.0], 20)]))
    frame.insert(0, "site", np.repeat([1, 2], 60))  # the second 60 rows are hospital-2's
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    out = tmp_path / "record.json"
    assert main(["cv", str(tmp_path / "clinic.csv"), "--split", "site", "--hospitals", "2", "--folds", "2",
                 "--quiet", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "hospital-2 refused table.counts" in err and "'dose' takes 3 distinct values here" in err
    assert "before its cross-validation" in err and "--no-table-one" in err and not out.exists()
