"""One study specification for every entry point, and the pipeline's stages in order."""

from __future__ import annotations

import dataclasses

import pytest

from mpclr import data
from mpclr.cli import build_parser
from mpclr.deploy.study import study_spec
from mpclr.errors import ParameterError
from mpclr.estimator import EncryptedLogisticRegressionCV
from mpclr.notebooks import Study as NotebookStudy
from mpclr.pipeline import StageOrderError, Study
from mpclr.spec import StudySpec


def _plain(spec) -> StudySpec:
    """The notebooks' Study is a StudySpec with the notebooks' methods: compare the spec itself."""
    return StudySpec(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(StudySpec)})


def test_every_entry_point_builds_the_same_spec_for_the_same_study():
    def parsed(*argv):
        return StudySpec.from_cli_args(build_parser().parse_args(["cv", "breast_cancer", *argv]))

    cli = parsed("--hospitals", "3", "--folds", "5")
    notebook = NotebookStudy.from_parameters(dataset="breast_cancer", hospitals=3, folds=5, seed=0, iterations=6,
                                             degree=5, threshold=None, preset="train")
    flower = study_spec({"folds": 5, "score-bound": 16.0, "decrypt-models": True}, "train", 3, None)
    estimator = EncryptedLogisticRegressionCV(cv=5, hospitals=3)._spec(5, "secure", True, score_bound=16.0)
    assert cli.table_one and not (notebook.table_one or flower.table_one or estimator.table_one)
    cli = cli.with_(table_one=False)  # the command line adds the secure Table 1 unless --no-table-one
    assert cli == _plain(notebook) == flower == estimator.with_(dataset="breast_cancer")
    assert cli.iterations == 6 and cli.degree == 5 and cli.learning_rate == 1.0  # the twin's defaults, written out
    # --parties, the flag's older name, still means --hospitals
    assert parsed("--parties", "3", "--folds", "5").with_(table_one=False) == cli
    # a different study is a different spec, whichever way it is written
    assert StudySpec.from_cli_args(build_parser().parse_args(["cv", "breast_cancer", "--folds", "4"])) != flower


@pytest.mark.parametrize(
    "values, match",
    [
        ({"hospitals": 0}, "parameter hospitals must be a positive integer, got 0"),
        ({"threshold": 4}, r"parameter threshold must be in \[1, hospitals = 3\]"),
        ({"folds": 1}, "folds=1 trains one model on every row .* evaluation 'none'"),
        ({"degree": 4}, "parameter degree must be 3, 5 or 7"),
        ({"evaluation": "decrypted-models", "decrypt_models": False}, "needs decrypt_models=True"),
        ({"score_bound": 0.0}, r"parameter score_bound must be in \(0, 1e6\]"),
        ({"schedule": [(1.0, 0.0)], "iterations": 3}, "give one or the other"),
        ({"split": (0.5, 0.5)}, r"parameter split must list one fraction per hospital \(3\)"),
        ({"hospitals": 11}, "sized for up to 10 hospitals"),
        ({"table_one": "yes"}, "parameter table_one must be True or False"),
    ],
)
def test_a_spec_refuses_by_name(values, match):
    with pytest.raises(ParameterError, match=match):
        StudySpec(**values)


def test_a_run_config_is_refused_with_its_own_key_names():
    with pytest.raises(ParameterError, match=r"run config: score-bound must be in \(0, 1e6\]"):
        study_spec({"score-bound": -1})
    with pytest.raises(ParameterError, match="run config: 'rows' is not an option"):
        study_spec({"rows": 3})


def test_stages_run_in_order_and_once():
    spec = StudySpec(hospitals=3, folds=2, iterations=2, degree=3)
    order = r"prepare -> \[table_one\] -> encrypt"
    with pytest.raises(StageOrderError, match=rf"stage 'train' needs stage 'encrypt' first; .*{order}"):
        Study(spec).train()
    with pytest.raises(StageOrderError, match="stage 'record' needs stage 'evaluate' first"):
        Study(spec).record()
    study = Study(spec)
    study.prepare(data.synthetic(60, 2, seed=1))
    try:
        with pytest.raises(StageOrderError, match="stage 'prepare' of this study already ran"):
            study.prepare()
        with pytest.raises(StageOrderError, match="stage 'evaluate' needs stage 'train' first"):
            study.evaluate()
        with pytest.raises(StageOrderError, match="stage 'references' needs stage 'encrypt' first"):
            study.references()
        with pytest.raises(ParameterError, match="parameter table_one: the federation's study manifest has no Table 1"):
            study.table_one()  # the spec did not ask for it, so the hospitals did not agree to it
    finally:
        study.close()
