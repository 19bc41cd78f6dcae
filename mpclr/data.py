"""Data sets for the study: loading, validating and splitting rows across hospitals.

Everything here is plaintext and runs where the data lives (each hospital, or a notebook simulating
them). Loaders refuse malformed input with a `DataError` that names the file, the 1-based line number
and the 1-based column, so a data manager can find the cell; the file itself is only ever read.

Labels. A data set's label column must hold exactly two classes. Numeric labels {0, 1}, {-1, 1} and
{1, 2} are recognised (the larger value is the positive class, 1). Any other pair, numeric or text
(e.g. "yes"/"no"), is accepted only when the caller names the positive class with ``positive=``:
guessing which of two strings means "disease" is not something a loader should do.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .errors import DataError, ParameterError, renamed_keywords
from .tabular import plain as _plain
from .tabular import read_file, read_frame

__all__ = [
    "Dataset",
    "binary_labels",
    "check_fold_count",
    "check_stratifiable",
    "load",
    "load_csv",
    "load_frame",
    "load_breast_cancer",
    "synthetic",
    "load_shared",
    "shared_available",
    "shared_data_dir",
    "SHARED_NAMES",
    "check_folds",
    "split",
]

SHARED_NAMES = ("edin", "lbw", "pcs", "uis")


# ------------------------------------------------------------------------------------------------
def check_fold_count(folds) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ParameterError(f"parameter folds must be an integer >= 2, got {folds!r}")
    return int(folds)


def check_stratifiable(y, folds: int, what: str = "the data") -> None:
    """Refuse when some fold would miss a class: each class needs at least `folds` rows."""
    folds = check_fold_count(folds)
    y = binary_labels(y)
    counts = {c: int((y == c).sum()) for c in (0, 1)}
    if min(counts.values()) < folds:
        raise DataError(f"{what}: {folds} folds cannot each hold both classes; class counts are "
                        f"0: {counts[0]}, 1: {counts[1]} (each class needs at least {folds} rows)")


def binary_labels(y, what: str = "labels") -> np.ndarray:
    """y as an int64 vector of 0/1, or a DataError naming (up to six of) the values found."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{what} must be a 1-D vector, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{what} must be 0/1, found values {sorted(set(np.unique(y).tolist()))[:6]}")
    return y.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled data set (or one hospital's part of one), immutable.

    X : (n, d) float64 features; y : (n,) int64 labels in {0, 1}
    feature_names : d names; name : short name for tables; source : where it came from (a path,
        "sklearn:breast_cancer", "synthetic(...)")
    rows : (n,) the global 0-based row index of each row in the data set it was split from, so that
        cross-validation results can name rows across hospitals (default 0..n-1)
    classes : the original label values mapped to 0 and 1
    meta : anything else worth keeping (the true model of a synthetic set, the separator of a file)
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    name: str = "data"
    source: str = ""
    rows: np.ndarray | None = None
    classes: tuple = (0, 1)
    meta: Mapping = field(default_factory=dict)

    def __post_init__(self):
        X = np.array(self.X, dtype=np.float64)  # a private copy, so the caller's array can change
        y = binary_labels(self.y, f"data set {self.name!r}: y")
        if X.ndim != 2:
            raise DataError(f"data set {self.name!r}: X must be 2-D (rows x features), got shape {X.shape}")
        n, d = X.shape
        if y.shape != (n,):
            raise DataError(f"data set {self.name!r}: y has shape {y.shape}, expected ({n},) to match X")
        if not np.isfinite(X).all():
            i, j = np.argwhere(~np.isfinite(X))[0]
            raise DataError(f"data set {self.name!r}: row {i + 1}, column {j + 1} is {X[i, j]} (not finite)")
        names = tuple(str(s) for s in self.feature_names)
        if len(names) != d:
            raise DataError(f"data set {self.name!r}: {len(names)} feature names for {d} feature columns")
        rows = np.arange(n) if self.rows is None else np.array(self.rows, dtype=np.int64)
        if rows.shape != (n,):
            raise DataError(f"data set {self.name!r}: rows has shape {rows.shape}, expected ({n},)")
        y = y.copy()
        for a in (X, y, rows):
            a.flags.writeable = False
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_positive(self) -> int:
        return int(self.y.sum())

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, {self.n_samples} rows x {self.n_features} features, "
                f"{self.n_positive} positive, source={self.source!r})")

    def to_frame(self):
        """Features and label as a pandas DataFrame, for a look in a notebook.

        Columns: the feature names, then the label (0/1, named as in the source or "y"); index: the rows'
        global numbers ("row"), so hospitals' parts still line up. `load_frame(ds.to_frame())` gives the
        same X and y back.
        """
        import pandas as pd

        label = self.meta.get("label_name") or "y"
        if label in self.feature_names:
            label = "label"
        frame = pd.DataFrame(self.X, columns=list(self.feature_names), index=pd.Index(self.rows, name="row"))
        frame[label] = self.y
        return frame

    def subset(self, index, name: str | None = None) -> Dataset:
        """The rows at `index` (positions in this data set), keeping their global row numbers."""
        index = np.asarray(index)
        return replace(self, X=self.X[index], y=self.y[index], rows=self.rows[index],
                       name=self.name if name is None else name)


# ------------------------------------------------------------------------------------------------
# CSV / TSV files and pandas DataFrames (read in mpclr.tabular)

def load_csv(path, label="last", sep: str | None = None, header: bool | None = None, *,
             positive=None, name: str | None = None) -> Dataset:
    """Read a delimited text file of numbers: one row per patient, one column per feature plus a label.

    label : "last" (default), "first", a 0-based column index (negative counts from the end) or a
        column name from the header line
    sep : the column separator; None detects it on the first lines: tab, then semicolon, then comma,
        the first that gives every line the same number of cells
    header : whether line 1 holds column names; None decides: it is a header when none of its cells
        is a number (a data row always has numeric features)
    positive : the label value of the positive class, needed unless the labels are {0, 1}, {-1, 1}
        or {1, 2} (see the module docstring)

    pandas reads the file; LF and CRLF line ends, a missing final newline and a UTF-8 byte order mark
    are all accepted. Missing values (empty cells, NA, NaN, ?, ...), non-numeric features, rows with
    the wrong number of cells, labels without exactly two classes and constant feature columns raise
    `DataError` naming the file, line and column.
    """
    path = Path(path)
    parts = read_file(path, label, sep, header, positive)
    return Dataset(**parts, name=name or path.stem, source=str(path))


def load_frame(frame, label="last", *, positive=None, name: str | None = None) -> Dataset:
    """A pandas DataFrame as a data set: feature names from its columns, the label column as for files.

    label : "last" (default), "first", a 0-based column position (negative counts from the end) or a
        column name; integers are always positions, also when the columns are named by integers
    positive : as for `load_csv`; labels may be numbers, booleans or text (categorical too)

    Features must be numbers (booleans count as 0/1); a text, categorical or date column is refused
    by name, since no encoding of it is obviously right (pandas.get_dummies is one, for the analyst to
    choose). Missing values and infinities are refused naming the row (and its index label) and column.
    The frame is only read, and its row order is kept; its index is not (`rows` counts from 0).
    """
    what = "the data frame" if name is None else f"data frame {name!r}"
    parts = read_frame(frame, label, positive, what)
    return Dataset(**parts, name=name or "dataframe", source="pandas.DataFrame")


# ------------------------------------------------------------------------------------------------
# Built-in and shared data sets

def load_breast_cancer() -> Dataset:
    """scikit-learn's bundled Wisconsin diagnostic breast cancer set (569 x 30), the embedded default.

    It ships with scikit-learn, so the demo needs no download. Malignant is the positive class (1), as
    a clinician would code it (scikit-learn itself codes benign as 1); AUCs are the same either way.
    """
    from sklearn.datasets import load_breast_cancer as _sk_load

    bunch = _sk_load()
    malignant = int(list(bunch.target_names).index("malignant"))
    y = (bunch.target == malignant).astype(np.int64)
    return Dataset(bunch.data, y, list(bunch.feature_names), name="breast_cancer",
                   source="sklearn:breast_cancer", classes=("benign", "malignant"))


def synthetic(n: int = 6000, d: int = 10, positive_fraction: float = 0.5, seed: int = 0) -> Dataset:
    """n rows from a known logistic model (paper scale is 49,152 x 10).

    Features are Gaussian with assorted means and spreads (so scaling matters, as with real data);
    true weights w ~ N(0, 1) act on the standardized features, and the intercept is set so that the
    mean positive probability is `positive_fraction`. The true model is in ``meta``.
    """
    for pname, v, lo in (("n", n, 2), ("d", d, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise ParameterError(f"parameter {pname} must be an integer >= {lo}, got {v!r}")
    if not 0 < positive_fraction < 1:
        raise ParameterError(f"parameter positive_fraction must be in (0, 1), got {positive_fraction!r}")
    rng = np.random.default_rng(seed)
    means = rng.uniform(-5, 5, d)
    spreads = rng.uniform(0.5, 3.0, d)
    std_normal = rng.standard_normal((n, d))
    X = means + spreads * std_normal
    w = rng.standard_normal(d)
    margin = std_normal @ w
    lo, hi = -50.0, 50.0  # bisection: mean sigmoid(b + margin) is increasing in b
    for _ in range(100):
        b = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(b + margin)))) < positive_fraction:
            lo = b
        else:
            hi = b
    p = 1 / (1 + np.exp(-(b + margin)))
    y = (rng.random(n) < p).astype(np.int64)
    if y.min() == y.max():
        raise DataError(f"synthetic({n}, {d}): every row drew class {y[0]}; use more rows or a "
                        f"positive_fraction further from 0 and 1")
    return Dataset(X, y, [f"x{j + 1}" for j in range(d)], name=f"synthetic_{n}x{d}",
                   source=f"synthetic(n={n}, d={d}, positive_fraction={positive_fraction}, seed={seed})",
                   meta={"true_intercept": float(b), "true_coef": w, "feature_mean": means,
                         "feature_std": spreads})


def shared_data_dir() -> Path:
    """Where the medical benchmark sets (edin, lbw, pcs, uis) are read from: $MPCLR_SHARED_DATA if set, else
    the repository's own data/ folder (they ship with mpclr), else ../shared/data beside the repository."""
    env = os.environ.get("MPCLR_SHARED_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent
    for folder in (repo / "data", repo.parent / "shared" / "data"):
        if all((folder / f"{name}.txt").is_file() for name in SHARED_NAMES):
            return folder
    return repo / "data"


def shared_available() -> list[str]:
    """The names of the shared benchmark sets present on this machine (tests skip the others)."""
    folder = shared_data_dir()
    return [s for s in SHARED_NAMES if (folder / f"{s}.txt").is_file()]


def load_shared(name: str) -> Dataset:
    """One of the HELR benchmark sets (edin, lbw, pcs, uis): tab-separated, no header, label last."""
    if name not in SHARED_NAMES:
        raise ParameterError(f"parameter name must be one of {', '.join(SHARED_NAMES)}, got {name!r}")
    path = shared_data_dir() / f"{name}.txt"
    if not path.is_file():
        raise DataError(f"file {path}: data set {name!r} is not on this machine (it ships in the repository's "
                        f"data/ folder; or set MPCLR_SHARED_DATA to a folder holding {name}.txt)")
    return load_csv(path, label="last", sep="\t", header=False, name=name)


_SYNTHETIC = re.compile(r"synthetic:(\d+)x(\d+)")


def load(spec, **kwargs) -> Dataset:
    """One entry point for every source.

    "breast_cancer" (the embedded default), "synthetic:NxD" (e.g. "synthetic:49152x10"), a shared name
    (edin, lbw, pcs, uis), a path to a delimited file or a pandas DataFrame. Keyword arguments go to the
    loader (`synthetic`'s seed and positive_fraction, `load_csv`'s label, sep, header, positive, or
    `load_frame`'s label, positive, name).
    """
    pandas = sys.modules.get("pandas")  # a DataFrame can only exist once pandas is imported
    if pandas is not None and isinstance(spec, pandas.DataFrame):
        return load_frame(spec, **kwargs)
    if isinstance(spec, os.PathLike):
        return load_csv(spec, **kwargs)
    if not isinstance(spec, str):
        raise ParameterError(f"parameter spec must be a data set name, a path or a pandas DataFrame, "
                             f"got {type(spec).__name__}")
    if spec == "breast_cancer":
        if kwargs:
            raise ParameterError(f"load('breast_cancer') takes no options, got {sorted(kwargs)}")
        return load_breast_cancer()
    m = _SYNTHETIC.fullmatch(spec)
    if m:
        return synthetic(int(m.group(1)), int(m.group(2)), **kwargs)
    if spec.startswith("synthetic"):
        raise ParameterError(f"parameter spec {spec!r}: write synthetic data as 'synthetic:NxD', "
                             f"e.g. 'synthetic:49152x10'")
    if spec in SHARED_NAMES:
        if kwargs:
            raise ParameterError(f"load({spec!r}) takes no options, got {sorted(kwargs)}")
        return load_shared(spec)
    if Path(spec).exists():
        return load_csv(spec, **kwargs)
    raise DataError(f"file {spec}: not found, and not a known data set (breast_cancer, "
                    f"synthetic:NxD, {', '.join(SHARED_NAMES)})")


# ------------------------------------------------------------------------------------------------
# Checks and splits

def check_folds(dataset: Dataset, folds: int) -> None:
    """Refuse a fold count the data cannot support: every fold needs rows of both classes."""
    check_fold_count(folds)
    where = dataset.source or dataset.name
    if dataset.n_samples < folds:
        raise DataError(f"data set {dataset.name!r} ({where}): {dataset.n_samples} rows cannot fill "
                        f"{folds} folds")
    check_stratifiable(dataset.y, folds, what=f"data set {dataset.name!r} ({where})")


@renamed_keywords(parties="hospitals")
def split(dataset: Dataset, hospitals: int, how="even", seed: int | None = None) -> list[Dataset]:
    """Distribute the rows among `hospitals` hospitals; each part keeps its global row numbers in `rows`.

    how : "even" (sizes differ by at most one row), a list of `hospitals` positive fractions summing to 1
        (uneven hospitals), or a feature column (name or 0-based index) whose distinct values, e.g. a
        hospital id, say which hospital holds a row. That column is dropped from the features; hospitals
        are ordered by sorted value.
    seed : for "even" and fractions, shuffle rows before cutting (None keeps file order, in
        contiguous blocks). Public randomness only.

    Rows keep their global order inside each part.
    """
    if isinstance(hospitals, bool) or not isinstance(hospitals, int | np.integer) or hospitals < 1:
        raise ParameterError(f"parameter hospitals must be a positive integer, got {hospitals!r}")
    n = dataset.n_samples
    if isinstance(how, str) and how == "even":
        sizes = [n // hospitals + (1 if k < n % hospitals else 0) for k in range(hospitals)]
        groups = _cut(n, sizes, seed)
    elif isinstance(how, Sequence) and not isinstance(how, str):
        groups = _cut(n, _fraction_sizes(how, hospitals, n), seed)
    elif isinstance(how, str | int | np.integer) and not isinstance(how, bool):
        return _split_by_column(dataset, hospitals, how)
    else:
        raise ParameterError(f"parameter how must be 'even', a list of fractions or a column name/index, "
                             f"got {how!r}")
    for k, g in enumerate(groups):
        if g.size == 0:
            raise DataError(f"split of data set {dataset.name!r}: hospital {k + 1} of {hospitals} gets no rows "
                            f"({n} rows in all)")
    return [dataset.subset(g, name=f"{dataset.name}[hospital {k + 1}]") for k, g in enumerate(groups)]


def _fraction_sizes(fractions, hospitals: int, n: int) -> list[int]:
    try:
        f = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter how: fractions must be numbers, got {fractions!r}") from None
    if f.shape != (hospitals,):
        raise ParameterError(f"parameter how lists {f.size} fractions for {hospitals} hospitals")
    if not np.isfinite(f).all() or (f <= 0).any():
        raise ParameterError(f"parameter how: every fraction must be positive, got {fractions!r}")
    if abs(f.sum() - 1) > 1e-6:
        raise ParameterError(f"parameter how: fractions must sum to 1, got {f.sum():g}")
    raw = f * n
    sizes = np.floor(raw).astype(int)
    # largest remainders get the rows left over, so the sizes add up to n exactly
    for k in np.argsort(-(raw - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[k] += 1
    return sizes.tolist()


def _cut(n: int, sizes: list[int], seed) -> list[np.ndarray]:
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *sizes])
    return [np.sort(order[bounds[k]: bounds[k + 1]]) for k in range(len(sizes))]


def _split_by_column(dataset: Dataset, hospitals: int, column) -> list[Dataset]:
    names = dataset.feature_names
    if isinstance(column, str):
        if column not in names:
            raise ParameterError(f"parameter how: data set {dataset.name!r} has no feature named {column!r} "
                                 f"(features: {', '.join(names)})")
        j = names.index(column)
    else:
        j = int(column)
        if not -len(names) <= j < len(names):
            raise ParameterError(f"parameter how: column index {j} is out of range for the "
                                 f"{len(names)} features of data set {dataset.name!r}")
        j %= len(names)
    values = dataset.X[:, j]
    distinct = np.unique(values)
    if distinct.size != hospitals:
        shown = ", ".join(f"{_plain(float(v))}" for v in distinct[:10]) + (", ..." if distinct.size > 10 else "")
        raise DataError(f"split of data set {dataset.name!r} by feature {names[j]!r}: it has "
                        f"{distinct.size} distinct values ({shown}), one per hospital is needed for "
                        f"{hospitals} hospitals")
    keep = [k for k in range(len(names)) if k != j]
    reduced = replace(dataset, X=dataset.X[:, keep], feature_names=[names[k] for k in keep],
                      meta={**dataset.meta, "split_column": names[j]})
    return [reduced.subset(np.flatnonzero(values == v), name=f"{dataset.name}[{names[j]}={_plain(float(v))}]")
            for v in distinct]
