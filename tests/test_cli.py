"""Every flag of `mpclr cv` / `mpclr demo` does what its help says, checked in the JSON record of a small
study (200 synthetic rows, 2 folds, 2 iterations, the `train` preset)."""

import json

import pytest

from mpclr.cli import main
from mpclr.errors import ParameterError
from mpclr.evaluation.constants import FINE_BITS
from mpclr.params import NOT_FOR_STUDIES, PRESETS, study_presets
from mpclr.pipeline import run_cv
from mpclr.spec import StudySpec

from .checks import refresh_flooding

SMALL = ["--synthetic", "200x3", "--folds", "2", "--iterations", "2", "--quiet"]


def cli(folder, *flags):
    out = folder / "record.json"
    assert main(["cv", *SMALL, *flags, "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def kept_encrypted(tmp_path_factory):
    """One secure study for two flags: --keep-models-encrypted and --score-bound."""
    return cli(tmp_path_factory.mktemp("cli"), "--parties", "2", "--keep-models-encrypted", "--score-bound", "24")


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
    rec = cli(tmp_path, "--evaluation", "decrypted-models", "--parties", "3", "--threshold", "2", "--degree", "3",
              "--learning-rate", "0.8", "--seed", "4")
    assert rec["evaluation_path"].startswith("threshold decryption of the fold models")
    assert rec["secure_evaluation"] is None
    p = rec["parameters"]
    assert (p["evaluation"], p["decrypt_models"], p["score_bound"]) == ("decrypted-models", True, None)
    assert (p["parties"], p["threshold"], p["folds"], p["iterations"]) == (3, 2, 2, 2)
    assert (p["degree"], p["learning_rate"], p["seed"], p["preset"]) == (3, 0.8, 4, "train")
    assert rec["data"]["rows_per_party"] == [67, 67, 66]
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
    assert main(["cv", *SMALL, "--parties", "2", *flags, "--json", str(out)]) == 2
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
