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


def test_separator_is_the_one_every_line_agrees_on(tmp_path):
    p = write(tmp_path, "weight;kg,age,y\n70,30,0\n80,40,1\n75,50,1\n")  # a semicolon inside a column name
    ds = load_csv(p)
    assert ds.meta["sep"] == "," and ds.feature_names == ("weight;kg", "age")
    p = write(tmp_path, "1,5;2;0\n2,5;3;1\n4,0;1;1\n", name="decimal_comma.csv")  # semicolons before commas
    with pytest.raises(DataError, match=r"line 1, column 1: holds '1,5', not a number"):
        load_csv(p)


def test_a_large_file_is_read_by_pandas_alone_and_its_errors_named(tmp_path, monkeypatch):
    """20,000 lines: a good file never takes the line-by-line pass; a bad line deep inside is named."""
    from mpclr import tabular

    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(20_000, 3)) * 100, 3)
    lines = ["a,b,c,sick"] + [f"{a},{b},{c},{k % 2}" for k, (a, b, c) in enumerate(X)]
    good = write(tmp_path, "\r\n".join(lines) + "\r\n", name="good.csv")

    def refuse(*args, **kwargs):
        raise AssertionError("a good file went through the line-by-line pass")

    with monkeypatch.context() as m:
        m.setattr(tabular, "_careful", refuse)
        m.setattr(tabular, "_check_lines", refuse)
        ds = load_csv(good)
    np.testing.assert_array_equal(ds.X, X)
    assert ds.y.sum() == 10_000 and ds.meta["label_name"] == "sick"
    for bad_line, pattern in [("1,2", r"line 15001: has 2 cells, expected 4"),
                              ("", r"line 15001: is blank"),
                              ("1,?,3,0", r"line 15001, column 2 \('b'\): holds '\?', a missing value"),
                              ("1,2,3,", r"line 15001, column 4 \('sick'\) \(label\): the label is missing"),
                              ('1,2,"3,0', r"line 15001: has 3 cells, expected 4")]:
        p = write(tmp_path, "\n".join(lines[:15_000] + [bad_line] + lines[15_000:]), name="bad.csv")
        with pytest.raises(DataError, match=f"file {p}, {pattern}"):
            load_csv(p)


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
    ("\n1\t2\t0\n3\t4\t1\n", {}, r"line 1: is blank"),
    # what pandas reads differently from the csv module, or silently: each still named as the csv module sees it
    ("1,2,0\n3,4\n5,6,1\n", {}, r"line 2: has 2 cells, expected 3"),
    ('a,b,y\n"1\n2",3,0\n4,5,1\n', {}, r"line 2: has 1 cells, expected 3"),
    ("1,2,0\nTrue,4,1\n", {}, r"line 2, column 1: holds 'True', not a number"),
    ('1,2,0\n3, "4",1\n', {}, r"line 2, column 2: holds '\"4\"', not a number"),
    ("1,2,0\n3,1e400,1\n", {}, r"line 2, column 2: holds '1e400', not a number"),
    ("1,2,0\n3,4,NA\n5,6,1\n", {}, r"line 2, column 3 \(label\): the label is missing \('NA'\)"),
    ("1,2,0\n3,4,inf\n5,6,1\n", {}, r"line 3, column 3 \(label\): .*found 3 \('0', '1', 'inf'\)"),
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
    with pytest.raises(ParameterError, match="2 fractions for 3 hospitals"):
        split(ten, 3, how=[0.5, 0.5])
    with pytest.raises(DataError, match="hospital 2 of 3 gets no rows"):
        split(ten, 3, how=[0.98, 0.01, 0.01])
    with pytest.raises(DataError, match="hospital 11 of 11 gets no rows"):
        split(ten, 11)


@pytest.mark.parametrize("column", ["site", 2, -1])
def test_split_by_column(ten, column):
    parts = split(ten, 3, how=column)
    assert [p.rows.tolist() for p in parts] == [[0, 1, 9], [2, 3, 4], [5, 6, 7, 8]]
    assert all(p.feature_names == ("a", "b") and p.n_features == 2 for p in parts)
    np.testing.assert_array_equal(parts[1].X, ten.X[[2, 3, 4]][:, :2])
    with pytest.raises(DataError, match="3 distinct values \\(1, 2, 3\\).*for 2 hospitals"):
        split(ten, 2, how=column)


def test_split_bad_arguments(ten):
    with pytest.raises(ParameterError, match="no feature named 'hospital'"):
        split(ten, 3, how="hospital")
    with pytest.raises(ParameterError, match="parameter hospitals"):
        split(ten, 0)


# --------------------------------------------------------------------------------------- pandas DataFrames
@pytest.fixture
def frame():
    pd = pytest.importorskip("pandas")
    return pd.DataFrame({"age": [30, 40, 50, 60], "sick": ["no", "yes", "yes", "no"], "bmi": [21.5, 30.1, 27.0, 24.2],
                         "smoker": [True, False, True, True]})


@pytest.mark.parametrize("label", ["sick", 1, -3])
def test_load_frame_label_by_name_or_position(frame, label):
    ds = load(frame, label=label, positive="yes")
    assert ds.feature_names == ("age", "bmi", "smoker") and ds.source == "pandas.DataFrame"
    np.testing.assert_array_equal(ds.X, [[30, 21.5, 1], [40, 30.1, 0], [50, 27.0, 1], [60, 24.2, 1]])
    assert ds.y.tolist() == [0, 1, 1, 0] and ds.classes == ("no", "yes") and ds.meta["label_name"] == "sick"
    assert frame["age"].tolist() == [30, 40, 50, 60]  # the frame is only read


def test_load_frame_first_last_and_numeric_labels(frame):
    ds = load(frame[["age", "bmi", "smoker"]])  # the booleans are the label (last)
    assert ds.feature_names == ("age", "bmi") and ds.y.tolist() == [1, 0, 1, 1]
    ds = data.load_frame(frame.assign(sick=[2, 1, 1, 2])[["sick", "age", "bmi"]], label="first", name="f")
    assert ds.y.tolist() == [1, 0, 0, 1] and ds.classes == (1, 2) and ds.name == "f"


def test_load_frame_refusals(frame):
    pd = pytest.importorskip("pandas")
    with pytest.raises(DataError, match=r"the data frame, column 2 \('sick'\): holds (str|object) values, not "
                                        r"numbers; encode it"):
        load(frame)  # label last: "sick" is a feature
    with pytest.raises(DataError, match=r"column 1 \('age'\): holds category values"):
        load(frame.astype({"age": "category"}), label="sick", positive="yes")
    holes = frame.assign(bmi=[21.5, None, 27.0, 24.2]).set_axis(["p1", "p2", "p3", "p4"])
    with pytest.raises(DataError, match=r"data frame 'ward', row 2 \(index 'p2'\), column 3 \('bmi'\): is missing"):
        data.load_frame(holes, label="sick", positive="yes", name="ward")
    with pytest.raises(DataError, match=r"row 3, column 2 \('sick'\) \(label\): the label is missing"):
        load(frame.assign(sick=["no", "yes", None, "no"]), label="sick", positive="yes")
    with pytest.raises(DataError, match=r"the data frame, column 1 \('age'\): the column is constant"):
        load(frame.assign(age=7), label="sick", positive="yes")
    with pytest.raises(DataError, match=r"labels 'no', 'yes' are not one of"):
        load(frame, label="sick")
    with pytest.raises(ParameterError, match=r"the data frame has no column named 'ill' \(columns: age, sick"):
        load(frame, label="ill")
    with pytest.raises(ParameterError, match=r"column index 4 is out of range for the 4 columns of the data frame"):
        load(frame, label=4)
    with pytest.raises(DataError, match="the data frame: has no rows"):
        load(frame.iloc[:0], label="sick")
    with pytest.raises(DataError, match=r"a label column and at least one feature column, found 1"):
        load(pd.DataFrame({"y": [0, 1]}))


def test_to_frame_round_trip(tmp_path):
    ds = load_csv(write(tmp_path, "age,sick,weight\n30,0,70\n40,1,80\n50,1,75\n"), label="sick")
    part = split(ds, 2)[1]
    f = part.to_frame()
    assert list(f.columns) == ["age", "weight", "sick"] and f.index.name == "row" and f.index.tolist() == [2]
    assert f.loc[2].tolist() == [50, 75, 1]
    back = load(ds.to_frame())
    np.testing.assert_array_equal(back.X, ds.X)
    np.testing.assert_array_equal(back.y, ds.y)
    assert back.feature_names == ds.feature_names
    assert list(synthetic(50, 2).to_frame().columns) == ["x1", "x2", "y"]
