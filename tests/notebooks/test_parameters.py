"""Parameters, run folders, steps and grids: everything the runner checks before a kernel starts."""

import json
import os

import pytest

import mpclr
from mpclr.errors import DataError, ParameterError
from mpclr.notebooks import (
    PARAMETERS,
    RunFolder,
    Study,
    check_parameters,
    declared_parameters,
    make_federation,
    older_name,
    project_root,
    resolve_run_dir,
    resolve_steps,
)
from mpclr.notebooks import study as study_module
from mpclr.notebooks.batch import parse_grid
from mpclr.notebooks.runner import _plan, run_sequence
from mpclr.params import NOT_FOR_STUDIES


@pytest.mark.parametrize(
    "values,match",
    [
        ({"hospitals": "3"}, r"parameter hospitals must be an integer \(int\), got '3' \(str\)"),
        ({"hospitals": True}, r"parameter hospitals must be an integer"),
        ({"hospitals": 1}, r"parameter hospitals must be in \[2, 64\], got 1"),
        ({"hospital": 3}, r"unknown parameter 'hospital' \(did you mean 'hospitals'\?\)"),
        ({"hospitals": 3, "threshold": 4}, r"parameter threshold must be in \[1, hospitals = 3\]"),
        ({"threshold": 0}, r"parameter threshold must be in \[1, hospitals = 3\]"),
        ({"preset": "medium"}, r"parameter preset must be one of 'fast', .*got 'medium'"),
        ({"decryptors": [0, 0]}, r"parameter decryptors lists a hospital twice"),
        ({"hospitals": 2, "decryptors": [2]}, r"parameter decryptors must hold hospital indices in \[0, 1\]"),
        ({"rotation_steps": [1, 0]}, r"parameter rotation_steps must not contain 0"),
        ({"smudging_bits": float("nan")}, r"parameter smudging_bits must be a finite number or None"),
        ({"dataset": "lbww"}, r"parameter dataset must be one of"),
    ],
)
def test_bad_values_name_their_parameter(values, match):
    with pytest.raises(ParameterError, match=match):
        check_parameters(values)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ParameterError) as err:
        check_parameters({"hospitals": "3", "folds": 1, "hospital": 2})
    text = str(err.value)
    assert text.startswith("3 invalid parameters")
    for name in ("hospitals", "folds", "hospital"):
        assert name in text


def test_good_values_pass_unchanged():
    values = {"hospitals": 5, "threshold": 3, "smudging_bits": 12, "decryptors": [0, 4], "seed": 7}
    assert check_parameters(values) == values
    assert check_parameters(hospitals=4, threshold=None) == {"hospitals": 4, "threshold": None}


def test_parties_is_the_older_name_of_hospitals(tmp_path):
    """Parameter files, grids, run_sequence and papermill's injected values may still say parties: taken as
    hospitals, with a DeprecationWarning; both at once are refused; an old study.json still reads."""
    with pytest.warns(DeprecationWarning, match="parameter parties is now called hospitals"):
        assert check_parameters(parties=4, threshold=2) == {"hospitals": 4, "threshold": 2}
    too_many = r"threshold must be in \[1, hospitals = 2\]"
    with pytest.warns(DeprecationWarning), pytest.raises(ParameterError, match=too_many):
        check_parameters(parties=2, threshold=3)
    with pytest.raises(ParameterError, match="parameter parties is the older name of hospitals: give only hospitals"):
        check_parameters(parties=4, hospitals=4)
    with pytest.warns(DeprecationWarning):
        spec = parse_grid({"grid": {"parties": [2, 3]}, "runs": [{"parties": 5}]})
    assert [p for _, p in spec.runs] == [{"hospitals": 2}, {"hospitals": 3}, {"hospitals": 5}]
    assert spec.varied == ["hospitals"]
    with pytest.warns(DeprecationWarning):
        assert _plan(resolve_steps(["90"]), check_parameters(parties=4), tmp_path)[0][1]["hospitals"] == 4
    with pytest.warns(DeprecationWarning):
        study = Study.from_parameters(parties=4)
    assert study.hospitals == 4
    with pytest.warns(DeprecationWarning, match="Study.hospitals"):
        assert study.parties == 4
    with pytest.warns(DeprecationWarning, match=r"Study.hospital_names\(\)"):
        assert study.party_names() == study.hospital_names() == [f"hospital-{i}" for i in range(1, 5)]
    assert Study.from_json({"parameters": {"parties": 4, "preset": "train"}}).hospitals == 4  # before the rename
    with pytest.warns(DeprecationWarning, match="parameter parties is now called hospitals"):
        assert older_name({"parties": 5}, "hospitals", 3) == 5  # papermill -p parties 5
    assert older_name({}, "hospitals", 3) == 3


def test_registry_defaults_satisfy_their_own_rules():
    for p in PARAMETERS.values():
        assert p.problem(p.default, {q.name: q.default for q in PARAMETERS.values()}) == "", p.name


def test_declared_parameters_parse_one_per_line():
    got = declared_parameters('# title\nhospitals: int = 3  # hospitals\nname: str = "a # b"  # with a hash\n')
    assert [(p.name, p.hint, p.default, p.comment) for p in got] == [
        ("hospitals", "int", 3, "hospitals"),
        ("name", "str", "a # b", "with a hash"),
    ]


@pytest.mark.parametrize(
    "source,match",
    [
        ("x = 3\n", "only `name: type = literal"),
        ("import os\n", "only `name: type = literal"),
        ("x: int = len([])\n", "the default of x must be a literal"),
        ("x: list[int] = [\n    1,\n]\n", "write x on one line"),
        ("x: int = (\n", "not valid Python"),
    ],
)
def test_declared_parameters_refuse_anything_else(source, match):
    with pytest.raises(ParameterError, match=match):
        declared_parameters(source)


def test_study_checks_with_the_crypto_code():
    s = Study.from_parameters(hospitals=4, threshold=2, smudging_bits=31)
    assert s.params().smudging_bits == 31 and s.params().name == "train/smudging=31"
    assert s.key_holders_needed == 2
    with pytest.raises(ParameterError, match="smudging_bits"):
        Study.from_parameters(smudging_bits=45)  # beyond what the train preset's q_0 allows
    # smudging that would not hide the noise of what the study decrypts: refused, saying why
    with pytest.raises(ParameterError, match=r"'train/smudging=12' cannot run a whole study: .*below the floor 2\^20"):
        Study.from_parameters(smudging_bits=12)
    with pytest.raises(ParameterError, match=r"only 2\^13 above the noise it hides \(2\^15; 2\^14 needed\)"):
        Study.from_parameters(smudging_bits=28)
    # the teaching and experiments presets are refused for studies, naming the preset, why and what instead
    with pytest.raises(ParameterError, match=r"'fast' cannot run a whole study: it is a teaching preset .*'train'"):
        Study.from_parameters(preset="fast")
    with pytest.raises(ParameterError, match=r"'deep' cannot run a whole study: it is an experiments preset"):
        Study.from_parameters(preset="deep")
    with pytest.raises(ParameterError, match="sized for up to 10 hospitals"):
        Study.from_parameters(hospitals=11)
    with pytest.raises(ParameterError, match="unknown parameter 'rotation_steps'"):
        Study.from_parameters(rotation_steps=[1])
    record = s.to_json()
    assert Study.from_json(json.loads(json.dumps(record))) == s
    assert record["summary"]["key_holders_needed"] == 2 and record["key_holders"][3] == "hospital-4"


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def test_threshold_is_passed_only_when_set(monkeypatch):
    class WithThreshold(_Recorder):
        def __init__(self, hospitals=3, preset="fast", seed=None, *, threshold="not passed", **kw):
            super().__init__(hospitals=hospitals, preset=preset, seed=seed, threshold=threshold, **kw)

    monkeypatch.setattr(study_module, "Federation", WithThreshold)
    assert make_federation(5).kwargs["threshold"] == "not passed"
    assert make_federation(5, 3).kwargs["threshold"] == 3
    assert make_federation(5, 5).kwargs["threshold"] == 5


def test_real_federation_takes_the_threshold():
    with make_federation(3, 2) as fed:
        assert fed.session.threshold == 2
    with make_federation(2) as fed:
        assert fed.session.threshold == 2


def test_run_dirs_resolve_through_the_package_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MPCLR_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    root = project_root()
    assert (root / "notebooks" / "00_study_and_roles.ipynb").is_file()
    assert resolve_run_dir("") == root / "runs" / "interactive"
    assert resolve_run_dir("runs/x") == root / "runs" / "x"
    assert resolve_run_dir(tmp_path / "abs") == tmp_path / "abs"
    monkeypatch.setenv("MPCLR_RUN_DIR", str(tmp_path / "env"))
    assert resolve_run_dir("") == tmp_path / "env"


def test_run_folder_json_round_trip_and_missing_file_names_its_step(tmp_path):
    import numpy as np

    run = RunFolder(tmp_path)
    run.write_json("keys.json", {"n": np.int64(3), "x": np.array([0.5, 1.5]), "nan": float("nan")}, step="t")
    got = run.read_json("keys.json")
    assert got["n"] == 3 and got["x"] == [0.5, 1.5] and got["nan"] is None
    assert got["written"]["by"] == "t" and got["written"]["mpclr"] == mpclr.__version__
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(DataError, match=r"has no study.json: run notebooks/00_study_and_roles.ipynb first"):
        run.read_json("study.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        run.read_json("bad.json")
    with pytest.raises(ParameterError, match="plain names"):
        run.file("../x.json")
    with pytest.raises(ParameterError, match="run_dir: run folder .* does not exist"):
        RunFolder.open(tmp_path / "nope", create=False)


def test_steps_resolve_by_name_number_or_path(tmp_path):
    assert [s.name for s in resolve_steps(None)] == [
        "00_study_and_roles",
        "01_key_ceremony",
        "02_data_and_encryption",
        "02b_table_one",
        "03_training",
        "04_evaluation",
        "05_comparison",
    ]
    assert resolve_steps("04")[0].writes == ("evaluation.json",)
    assert [s.name for s in resolve_steps(["00", "01_key_ceremony.ipynb"])] == ["00_study_and_roles", "01_key_ceremony"]
    assert resolve_steps("90")[0].writes == ("workshop.json",)
    assert resolve_steps("07")[0].writes == ("regression.json",)
    assert resolve_steps("02b")[0].writes == ("table_one.json",)
    assert resolve_steps("02")[0].name == "02_data_and_encryption"  # not 02b
    nb = tmp_path / "later_step.ipynb"
    nb.write_text("{}")
    custom = resolve_steps(["00", str(nb)])[1]
    assert custom.name == "later_step" and custom.notebook == nb.resolve()
    with pytest.raises(ParameterError, match="'08' is neither a step"):
        resolve_steps(["08"])  # 07 is the regression table
    with pytest.raises(ParameterError, match="00_study_and_roles listed twice"):
        resolve_steps(["00", "00_study_and_roles"])


@pytest.mark.parametrize("preset", sorted(NOT_FOR_STUDIES))
def test_a_study_refuses_a_preset_that_cannot_run_it(tmp_path, preset):
    """The study sequence (00's design, the runner before any kernel) refuses the presets the command line
    refuses, naming why; the workshop still starts from its own preset."""
    message = f"parameter preset: '{preset}' cannot run a whole study: .*use preset 'train' instead"
    with pytest.raises(ParameterError, match=message):
        Study.from_parameters(preset=preset)
    with pytest.raises(ParameterError, match=message):
        Study.from_json({"parameters": {"preset": preset}})  # a run folder made before the check
    target = tmp_path / "run"
    with pytest.raises(ParameterError, match=message):
        run_sequence(target, {"preset": preset, "hospitals": 2})
    assert not target.exists()
    assert check_parameters(preset=preset) == {"preset": preset}  # the registry: the workshop takes it
    workshop = _plan(resolve_steps(["90"]), {"preset": preset}, target)
    assert workshop[0][1]["preset"] == preset


def test_runner_refuses_bad_parameters_before_any_kernel(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(ParameterError, match=r"parameter hospitals must be an integer"):
        run_sequence(target, {"hospitals": "3"})
    with pytest.raises(ParameterError, match=r"unknown parameter 'decryptors'.*notebooks to run accept"):
        run_sequence(target, {"decryptors": [0]})  # a workshop parameter, not a study step's
    with pytest.raises(ParameterError, match="run_dir is set by the runner"):
        run_sequence(target, {"run_dir": "x"})
    assert not target.exists()


def test_grid_expands_to_the_product_plus_explicit_runs():
    spec = parse_grid(
        {
            "parameters": {"preset": "fast"},
            "grid": {"hospitals": [2, 3], "threshold": [None, 2]},
            "runs": [{"hospitals": 5}],
        }
    )
    assert [p for _, p in spec.runs] == [
        {"preset": "fast", "hospitals": 2, "threshold": None},
        {"preset": "fast", "hospitals": 2, "threshold": 2},
        {"preset": "fast", "hospitals": 3, "threshold": None},
        {"preset": "fast", "hospitals": 3, "threshold": 2},
        {"preset": "fast", "hospitals": 5},
    ]
    assert spec.varied == ["hospitals", "threshold"]
    names = [n for n, _ in spec.runs]
    assert names[0] == "001_hospitals=2_threshold=None" and names[4] == "005_hospitals=5"
    assert len(set(names)) == len(names)
    assert [p for _, p in parse_grid({"parameters": {"hospitals": 4}}).runs] == [{"hospitals": 4}]


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"grid": {"hospitals": 3}}, r"grid: hospitals must be a non-empty list of values, got 3 \(write \[3\]\)"),
        ({"grid": {"hospitals": []}}, "non-empty list"),
        ({"grids": {}}, "unknown key 'grids'"),
        ({"grid": {"hospital": [2]}}, r"unknown parameter 'hospital' \(did you mean 'hospitals'\?\)"),
        ({"parameters": {"hospitals": 2}, "grid": {"hospitals": [3]}}, "hospitals is set both"),
        ({"parameters": {"run_dir": "x"}}, "run_dir is set by mpclr batch"),
        ({"steps": ["08"]}, "'08' is neither a step"),
        ({"runs": {"hospitals": 2}}, "runs must be a list"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_grid_errors_name_the_key(spec, match):
    with pytest.raises(ParameterError, match=match):
        parse_grid(spec)


def test_grid_file_errors_give_the_line(tmp_path):
    from mpclr.notebooks.batch import load_grid

    bad = tmp_path / "g.yaml"
    bad.write_text("grid:\n  hospitals: [2, 3\n")
    with pytest.raises(ParameterError, match=r"g.yaml: not valid YAML \(line \d+, column \d+\)"):
        load_grid(bad)
    with pytest.raises(ParameterError, match="grid file .*missing.yaml"):
        load_grid(tmp_path / "missing.yaml")


def test_notebooks_folder_can_be_moved(tmp_path, monkeypatch):
    monkeypatch.setenv("MPCLR_NOTEBOOKS", str(tmp_path))
    with pytest.raises(ParameterError, match="no notebook named '00_study_and_roles'"):
        resolve_steps(["00"])[0].notebook  # noqa: B018
    monkeypatch.setenv("MPCLR_NOTEBOOKS", os.fspath(tmp_path / "none"))
    with pytest.raises(ParameterError, match="set MPCLR_NOTEBOOKS"):
        project_root()


# ------------------------------------------------------------------------------------------------ the study's data
def test_the_study_defaults_are_the_studys():
    s = Study()
    assert (s.preset, s.iterations, s.degree, s.seed, s.dataset, s.split) == ("train", 6, 5, 0, "breast_cancer", "even")
    assert Study.from_parameters() == s
    assert PARAMETERS["preset"].default == "train" and PARAMETERS["preset"].default_for("90_workshop") == "fast"
    assert s.model().iterations == 6 and s.model().degree == 5


@pytest.mark.parametrize(
    "values,match",
    [
        ({"dataset": "synthetic:300"}, r"parameter dataset must be written synthetic:NxD"),
        ({"dataset": "synthetic:1x3"}, r"parameter dataset needs N >= 2 rows"),
        ({"dataset": "no/such.csv"}, r"parameter dataset must be one of .*there is no file .*no/such.csv"),
        ({"label": "outcome"}, r"parameter label applies to a CSV/TSV file only"),
        ({"split": "0.5,0.5"}, r"parameter split lists 2 fractions for hospitals = 3"),
        ({"split": "0.5,0.3,0.3"}, r"parameter split fractions must sum to 1"),
        ({"split": "0.5,-0.2,0.7"}, r"parameter split must list positive fractions"),
        ({"cutoff": 1.0}, r"parameter cutoff must be a probability in \(0, 1\)"),
        ({"decrypt_models": "yes"}, r"parameter decrypt_models must be True or False"),
    ],
)
def test_bad_study_values_name_their_parameter(values, match):
    with pytest.raises(ParameterError, match=match):
        check_parameters(values)


def test_a_shared_data_set_missing_here_is_refused_up_front(tmp_path, monkeypatch):
    monkeypatch.setenv("MPCLR_SHARED_DATA", str(tmp_path))
    with pytest.raises(ParameterError, match=r"parameter dataset names a shared data set that is not on this machine"):
        check_parameters({"dataset": "lbw"})
    (tmp_path / "lbw.txt").write_text("1\t2\t0\n2\t1\t1\n3\t5\t0\n4\t3\t1\n")
    assert check_parameters({"dataset": "lbw"}) == {"dataset": "lbw"}


def _csv(path, n=60, seed=3):
    import numpy as np

    g = np.random.default_rng(seed)
    lines = ["age,bmi,site,outcome"]
    for i in range(n):
        lines.append(f"{g.normal(50, 10):.3f},{g.normal(25, 4):.3f},{i % 3 + 1},{int(g.random() < 0.5)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_file_from_the_project_root_or_anywhere(tmp_path, monkeypatch):
    import numpy as np

    from mpclr.notebooks.parameters import resolve_dataset

    path = _csv(tmp_path / "cohort.csv")
    monkeypatch.chdir(tmp_path)  # a relative path starts at the project root, never at the current folder
    assert resolve_dataset("cohort.csv") == str(project_root() / "cohort.csv")
    with pytest.raises(ParameterError, match="there is no file"):
        check_parameters({"dataset": "cohort.csv"})
    s = Study.from_parameters(dataset=str(path), label="outcome", hospitals=3, split="site", folds=2)
    data = s.hospital_data()
    assert data.pooled.feature_names == ("age", "bmi")  # the site column says who holds a row, and is dropped
    assert data.rows_per_hospital == [20, 20, 20]
    assert sorted(np.concatenate([p.rows for p in data.parts]).tolist()) == list(range(60))
    for part in data.parts:
        assert np.array_equal(data.pooled.X[part.rows], part.X) and np.array_equal(data.pooled.y[part.rows], part.y)
    with pytest.raises(ParameterError, match=r"parameter label \(dataset = .*\): .*no column named 'result'"):
        Study.from_parameters(dataset=str(path), label="result").hospital_data()
    with pytest.raises(ParameterError, match=r"parameter split = 'ward': data set 'cohort' .*named 'ward'"):
        Study.from_parameters(dataset=str(path), label="outcome", split="ward").hospital_data()
    with pytest.raises(ParameterError, match=r"parameter split = 'site': .*3 distinct values .* for 2 hospitals"):
        Study.from_parameters(dataset=str(path), label="outcome", split="site", hospitals=2).hospital_data()


def test_splits_and_folds_follow_the_study():
    import numpy as np

    s = Study.from_parameters(dataset="synthetic:200x3", hospitals=3, split="0.5,0.3,0.2", seed=4)
    data = s.hospital_data()
    assert data.rows_per_hospital == [100, 60, 40]
    assert s.to_json(data)["data"]["rows_per_hospital"] == {"hospital-1": 100, "hospital-2": 60, "hospital-3": 40}
    assert "positives" not in s.to_json(data)["data"]  # label counts are never revealed
    again = Study.from_parameters(dataset="synthetic:200x3", hospitals=3, split="0.5,0.3,0.2", seed=4).hospital_data()
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(data.parts, again.parts))  # the seed fixes the split
    with pytest.raises(ParameterError, match=r"parameter folds = 20: .*"):
        Study.from_parameters(dataset="synthetic:30x2", folds=20).hospital_data()


def test_a_seed_of_none_is_drawn_once_and_recorded():
    s = Study.from_parameters(seed=None)
    assert isinstance(s.seed, int) and 0 <= s.seed < 2**31
    assert Study.from_json(json.loads(json.dumps(s.to_json()))).seed == s.seed
