"""Loading, validating and splitting data: every refusal names the file, line and column."""

import os
from pathlib import Path

import numpy as np
import pytest

from mpclr import data
from mpclr.data import Dataset, check_folds, load, load_csv, split, synthetic
from mpclr.errors import DataError, ParameterError


def write(tmp_path, text, name="d.txt", raw=None):
    p = tmp_path / name
    p.write_bytes(raw if raw is not None else text.encode())
    return p


# --------------------------------------------------------------------------------------- formats
def test_tab_file_label_last(tmp_path):
    p = write(tmp_path, "1\t2\t0\n3\t4.5\t1\n5\t6\t1\n")
    ds = load_csv(p)
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4.5], [5, 6]])
    np.testing.assert_array_equal(ds.y, [0, 1, 1])
    assert ds.feature_names == ("x1", "x2") and ds.name == "d" and ds.source == str(p)
    assert ds.X.dtype == np.float64 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.rows, [0, 1, 2])


def test_crlf_bom_and_no_final_newline(tmp_path):
    p = write(tmp_path, "", raw=b"\xef\xbb\xbf1\t2\t0\r\n3\t4\t1\r\n5\t7\t1")
    ds = load_csv(p)
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4], [5, 7]])
    np.testing.assert_array_equal(ds.y, [0, 1, 1])


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_separator_detected(tmp_path, sep):
    p = write(tmp_path, sep.join(["1", "2", "0"]) + "\n" + sep.join(["3", "4", "1"]) + "\n")
    assert load_csv(p).X.tolist() == [[1, 2], [3, 4]]
    assert load_csv(p).meta["sep"] == sep


def test_header_detected_and_label_by_name(tmp_path):
    p = write(tmp_path, "age,sick,weight\n30,0,70\n40,1,80\n50,1,75\n")
    ds = load_csv(p, label="sick")
    assert ds.feature_names == ("age", "weight") and ds.meta["header"]
    np.testing.assert_array_equal(ds.X, [[30, 70], [40, 80], [50, 75]])
    np.testing.assert_array_equal(ds.y, [0, 1, 1])


@pytest.mark.parametrize("label, y, first_feature", [
    ("first", [1, 0, 1], [0, 1, 1]), (0, [1, 0, 1], [0, 1, 1]), (1, [0, 1, 1], [1, 0, 1]),
    (-2, [0, 0, 1], [1, 0, 1]), (2, [0, 0, 1], [1, 0, 1])])
def test_label_position(tmp_path, label, y, first_feature):
    p = write(tmp_path, "1,0,0,5\n0,1,0,6\n1,1,1,7\n")
    ds = load_csv(p, label=label)
    assert ds.y.tolist() == y and ds.X[:, 0].tolist() == first_feature
    assert ds.n_features == 3 and ds.X[:, -1].tolist() == [5, 6, 7]


def test_label_encodings(tmp_path):
    assert load_csv(write(tmp_path, "1,-1\n2,1\n3,1\n")).y.tolist() == [0, 1, 1]
    ds = load_csv(write(tmp_path, "1,2\n2,1\n3,2\n"))
    assert ds.y.tolist() == [1, 0, 1] and ds.classes == (1, 2)
    ds = load_csv(write(tmp_path, "1,yes\n2,no\n3,no\n"), positive="yes")
    assert ds.y.tolist() == [1, 0, 0] and ds.classes == ("no", "yes")
    ds = load_csv(write(tmp_path, "1,3\n2,7\n3,7\n"), positive=3)
    assert ds.y.tolist() == [1, 0, 0]


def test_the_file_is_never_modified(tmp_path):
    raw = b"\xef\xbb\xbfa\tb\ty\r\n1\t2\t0\r\n3\t4\t1"
    p = write(tmp_path, "", raw=raw)
    before = os.stat(p).st_mtime_ns
    load_csv(p)
    with pytest.raises(DataError):
        load_csv(p, label="b")  # b is not a two-class label
    assert p.read_bytes() == raw and os.stat(p).st_mtime_ns == before


# --------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("text, kwargs, pattern", [
    ("1\t2\t0\n3\tabc\t1\n", {}, r"line 2, column 2: holds 'abc', not a number"),
    ("1\t2\t0\n3\t\t1\n", {}, r"line 2, column 2: is empty \(missing value\)"),
    ("1\t2\t0\n3\tNA\t1\n", {}, r"line 2, column 2: holds 'NA', a missing value"),
    ("1\t2\t0\nnan\t2\t1\n", {}, r"line 2, column 1: holds 'nan', a missing value"),
    ("1\t2\t0\n3\tinf\t1\n", {}, r"line 2, column 2: holds 'inf', not a number"),
    ("1\t2\t0\n3\t4\t1\t9\n", {}, r"line 2: has 4 cells, expected 3"),
    ("1\t2\t0\n3\t4\n", {}, r"line 2: has 2 cells, expected 3"),
    ("a,b,y\n1,2,0\n3,x,1\n", {}, r"line 3, column 2 \('b'\): holds 'x', not a number"),
    ("1\t2\t0\n3\t4\t\n", {}, r"line 2, column 3 \(label\): the label is missing"),
    ("1\t2\t0\n3\t4\t1\n5\t6\t2\n", {}, r"line 3, column 3 \(label\): .*exactly two classes, found 3 \(0, 1, 2\)"),
    ("1\t2\t1\n3\t4\t1\n", {}, r"column 3 \(label\): .*found one \(1\) in all 2 rows"),
    ("1\t2\t0\n3\t4\t2\n", {}, r"labels 0, 2 are not one of .*pass positive="),
    ("1\tyes\n2\tno\n", {}, r"labels 'no', 'yes' are not one of"),
    ("1\t5\t0\n2\t5\t1\n", {}, r"column 2: the column is constant \(every row is 5\)"),
    ("1\t2\t0\n\n3\t4\t1\n", {}, r"line 2: is blank"),
    ("1 2 0\n3 4 1\n", {}, r"line 1: found no tab, semicolon or comma"),
    ("a\tb\ty\n", {}, r"has a header line but no data rows"),
    ("age\tbmi\t0\n3\t4\t1\n5\t6\t0\n", {"header": False}, r"line 1, column 1: holds 'age', not a number "
                                                            r"\(if line 1 holds column names, pass header=True\)"),
])
def test_malformed_files_name_file_line_and_column(tmp_path, text, kwargs, pattern):
    p = write(tmp_path, text)
    with pytest.raises(DataError, match=pattern) as e:
        load_csv(p, **kwargs)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("raw", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, raw):
    p = write(tmp_path, "", raw=raw)
    with pytest.raises(DataError, match=f"file {p}: is empty"):
        load_csv(p)


def test_missing_file_and_bad_utf8(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_csv(tmp_path / "nope.txt")
    p = write(tmp_path, "", raw=b"1\t2\t0\n3\t\xff\t1\n")
    with pytest.raises(DataError, match=r"line 2: not valid UTF-8"):
        load_csv(p)


def test_label_parameter_errors(tmp_path):
    p = write(tmp_path, "1\t2\t0\n3\t4\t1\n")
    with pytest.raises(ParameterError, match="has no header line"):
        load_csv(p, label="sick")
    with pytest.raises(ParameterError, match="out of range"):
        load_csv(p, label=3)
    h = write(tmp_path, "a,b,y\n1,2,0\n3,4,1\n", name="h.csv")
    with pytest.raises(ParameterError, match="no column named 'z'"):
        load_csv(h, label="z")
    with pytest.raises(ParameterError, match="positive='maybe' is not a label value"):
        load_csv(write(tmp_path, "1,yes\n2,no\n", name="s.csv"), positive="maybe")


def test_check_folds(tmp_path):
    ds = load_csv(write(tmp_path, "1\t0\n2\t1\n3\t0\n4\t1\n"))
    with pytest.raises(DataError, match="4 rows cannot fill 5 folds"):
        check_folds(ds, 5)
    with pytest.raises(DataError, match=r"class counts are 0: 2, 1: 2"):
        check_folds(ds, 3)
    check_folds(ds, 2)
    with pytest.raises(ParameterError, match="parameter folds"):
        check_folds(ds, 1)


# --------------------------------------------------------------------------------------- sources
def test_breast_cancer():
    ds = load("breast_cancer")
    assert (ds.n_samples, ds.n_features, ds.n_positive) == (569, 30, 212)  # malignant is positive
    assert ds.classes == ("benign", "malignant") and ds.feature_names[0] == "mean radius"


def test_synthetic():
    ds = synthetic(4000, 6, positive_fraction=0.3, seed=4)
    assert ds.X.shape == (4000, 6) and abs(ds.y.mean() - 0.3) < 0.03
    again = load("synthetic:4000x6", positive_fraction=0.3, seed=4)
    np.testing.assert_array_equal(ds.X, again.X)
    np.testing.assert_array_equal(ds.y, again.y)
    assert (synthetic(4000, 6, seed=5).X != ds.X).any()
    # labels follow the stated model: its log-odds separate the classes
    std = (ds.X - ds.meta["feature_mean"]) / ds.meta["feature_std"]
    logit = ds.meta["true_intercept"] + std @ ds.meta["true_coef"]
    assert logit[ds.y == 1].mean() > logit[ds.y == 0].mean() + 1
    with pytest.raises(ParameterError, match="synthetic:NxD"):
        load("synthetic:4000")


def test_load_dispatch(tmp_path):
    p = write(tmp_path, "1\t2\t0\n3\t4\t1\n")
    assert load(str(p)).n_samples == 2 and load(p).n_samples == 2
    with pytest.raises(DataError, match="not a known data set"):
        load("no_such_set")


@pytest.mark.parametrize("name, shape, positives", [("edin", (1253, 9), 274), ("lbw", (189, 9), 130),
                                                    ("pcs", (379, 9), 153), ("uis", (575, 8), 428)])
def test_shipped_sets_match_their_readme(name, shape, positives, monkeypatch):
    monkeypatch.delenv("MPCLR_SHARED_DATA", raising=False)
    assert data.shared_data_dir() == Path(data.__file__).resolve().parent.parent / "data"  # the repository's copy
    ds = load(name)
    assert ds.X.shape == shape and ds.n_positive == positives


def test_shared_set_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("MPCLR_SHARED_DATA", str(tmp_path))
    assert data.shared_available() == []
    with pytest.raises(DataError, match=f"file {tmp_path / 'edin.txt'}: data set 'edin' is not on"):
        data.load_shared("edin")
    with pytest.raises(ParameterError, match="must be one of edin"):
        data.load_shared("nhanes3")


# --------------------------------------------------------------------------------------- datasets
def test_dataset_is_immutable_and_validated():
    X = np.arange(6.0).reshape(3, 2)
    ds = Dataset(X, [0, 1, 1], ["a", "b"])
    X[0, 0] = 99
    assert ds.X[0, 0] == 0  # a private copy
    with pytest.raises(ValueError):
        ds.X[0, 0] = 1
    with pytest.raises(DataError, match="2 feature names for 3"):
        Dataset(np.zeros((2, 3)), [0, 1], ["a", "b"])
    with pytest.raises(DataError, match=r"data set 'data': y must be 0/1, found values \[0, 2\]"):
        Dataset(np.zeros((2, 1)), [0, 2], ["a"])


# --------------------------------------------------------------------------------------- splits
@pytest.fixture
def ten():
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=(10, 2)), [1, 1, 2, 2, 2, 3, 3, 3, 3, 1]]
    return Dataset(X, [0, 1] * 5, ["a", "b", "site"], name="ten")


def test_split_even(ten):
    parts = split(ten, 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert np.concatenate([p.rows for p in parts]).tolist() == list(range(10))  # no seed: blocks
    shuffled = split(ten, 3, seed=1)
    rows = np.concatenate([p.rows for p in shuffled])
    assert sorted(rows.tolist()) == list(range(10)) and rows.tolist() != list(range(10))
    for p in shuffled:
        assert (np.diff(p.rows) > 0).all()
        np.testing.assert_array_equal(p.X, ten.X[p.rows])
        np.testing.assert_array_equal(p.y, ten.y[p.rows])
    again = split(ten, 3, seed=1)
    assert all((a.rows == b.rows).all() for a, b in zip(shuffled, again, strict=True))


def test_split_fractions(ten):
    parts = split(ten, 3, how=[0.5, 0.3, 0.2], seed=0)
    assert [len(p) for p in parts] == [5, 3, 2]
    with pytest.raises(ParameterError, match="sum to 1"):
        split(ten, 2, how=[0.5, 0.4])
    with pytest.raises(ParameterError, match="2 fractions for 3 parties"):
        split(ten, 3, how=[0.5, 0.5])
    with pytest.raises(DataError, match="party 2 of 3 gets no rows"):
        split(ten, 3, how=[0.98, 0.01, 0.01])
    with pytest.raises(DataError, match="party 11 of 11 gets no rows"):
        split(ten, 11)


@pytest.mark.parametrize("column", ["site", 2, -1])
def test_split_by_column(ten, column):
    parts = split(ten, 3, how=column)
    assert [p.rows.tolist() for p in parts] == [[0, 1, 9], [2, 3, 4], [5, 6, 7, 8]]
    assert all(p.feature_names == ("a", "b") and p.n_features == 2 for p in parts)
    np.testing.assert_array_equal(parts[1].X, ten.X[[2, 3, 4]][:, :2])
    with pytest.raises(DataError, match="3 distinct values \\(1, 2, 3\\).*for 2 parties"):
        split(ten, 2, how=column)


def test_split_bad_arguments(ten):
    with pytest.raises(ParameterError, match="no feature named 'hospital'"):
        split(ten, 3, how="hospital")
    with pytest.raises(ParameterError, match="parameter parties"):
        split(ten, 0)
