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

import csv
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .errors import DataError, ParameterError

__all__ = [
    "Dataset",
    "binary_labels",
    "load",
    "load_csv",
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
_MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "."}
_SEPARATORS = {"\t": "tab", ";": "semicolon", ",": "comma"}
_KNOWN_LABELS = ({0.0, 1.0}, {-1.0, 1.0}, {1.0, 2.0})


# ------------------------------------------------------------------------------------------------
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

    def subset(self, index, name: str | None = None) -> Dataset:
        """The rows at `index` (positions in this data set), keeping their global row numbers."""
        index = np.asarray(index)
        return replace(self, X=self.X[index], y=self.y[index], rows=self.rows[index],
                       name=self.name if name is None else name)


# ------------------------------------------------------------------------------------------------
# CSV / TSV files

def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in _MISSING


def _number(cell: str) -> float | None:
    """The cell as a finite float, or None if it is not a number."""
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _read_lines(path: Path) -> list[str]:
    """Decoded lines without their line ends (LF or CRLF); a UTF-8 BOM is dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"file {path}: not found") from None
    except IsADirectoryError:
        raise DataError(f"file {path}: is a directory, not a data file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"file {path}, line {line}: not valid UTF-8 text (byte 0x{raw[e.start]:02x})") from None
    lines = text.split("\n")
    lines = [s[:-1] if s.endswith("\r") else s for s in lines]
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines, including the empty string after a final newline
    if not lines:
        raise DataError(f"file {path}: is empty (no rows)")
    return lines


def _guess_sep(path: Path, first: str) -> str:
    for sep in _SEPARATORS:
        if sep in first:
            return sep
    raise DataError(f"file {path}, line 1: found no tab, semicolon or comma to separate columns; "
                    f"pass sep= explicitly")


def _column_label(j: int, names: Sequence[str] | None) -> str:
    return f"column {j + 1} ({names[j]!r})" if names else f"column {j + 1}"


def _label_index(label, names: list[str] | None, ncols: int, path: Path) -> int:
    if isinstance(label, bool):
        raise ParameterError(f"parameter label must be 'first', 'last', a column index or a column name, "
                             f"got {label!r}")
    if isinstance(label, int | np.integer):
        j = int(label)
        if not -ncols <= j < ncols:
            raise ParameterError(f"parameter label: column index {j} is out of range for the {ncols} "
                                 f"columns of file {path}")
        return j % ncols
    if label == "first":
        return 0
    if label == "last":
        return ncols - 1
    if isinstance(label, str):
        if names is None:
            raise ParameterError(f"parameter label={label!r} names a column, but file {path} has no "
                                 f"header line (pass header=True if line 1 holds column names)")
        hits = [j for j, s in enumerate(names) if s == label]
        if not hits:
            raise ParameterError(f"parameter label: file {path} has no column named {label!r} "
                                 f"(columns: {', '.join(names)})")
        if len(hits) > 1:
            raise ParameterError(f"parameter label: file {path} has {len(hits)} columns named {label!r} "
                                 f"(columns {', '.join(str(j + 1) for j in hits)})")
        return hits[0]
    raise ParameterError(f"parameter label must be 'first', 'last', a column index or a column name, "
                         f"got {label!r}")


def _encode_labels(values: list[str], first_line: int, where: str, path, positive) -> tuple[np.ndarray, tuple]:
    """Map the label cells (the first on line `first_line`) to {0, 1}; see the module docstring."""
    nums = [_number(v) for v in values]
    numeric = all(v is not None for v in nums)
    keys = nums if numeric else [v.strip() for v in values]
    distinct = sorted(set(keys), key=lambda v: (isinstance(v, str), v))
    shown = ", ".join(_fmt(v) for v in distinct[:6]) + (", ..." if len(distinct) > 6 else "")
    if len(distinct) == 1:
        raise DataError(f"file {path}, {where}: the label must have exactly two classes, found one "
                        f"({shown}) in all {len(keys)} rows")
    if len(distinct) > 2:
        third = list(dict.fromkeys(keys))[2]  # classes in order of first appearance
        raise DataError(f"file {path}, line {first_line + keys.index(third)}, {where}: the label must have "
                        f"exactly two classes, found {len(distinct)} ({shown}); {_fmt(third)} on this line "
                        f"is the third")
    if positive is None:
        if not numeric or set(distinct) not in _KNOWN_LABELS:
            raise DataError(f"file {path}, {where}: labels {shown} are not one of {{0, 1}}, {{-1, 1}}, "
                            f"{{1, 2}}; pass positive= to name the positive class")
        neg, pos = distinct
    else:
        pkey = _number(str(positive)) if numeric else str(positive).strip()
        if pkey not in distinct:
            raise ParameterError(f"parameter positive={positive!r} is not a label value of file {path} "
                                 f"({where} holds {shown})")
        pos = pkey
        neg = distinct[0] if distinct[1] == pkey else distinct[1]
    y = np.fromiter((k == pos for k in keys), dtype=np.int64, count=len(keys))
    return y, (_plain(neg), _plain(pos))


def _fmt(v) -> str:
    return repr(v) if isinstance(v, str) else f"{_plain(v)}"


def _plain(v):
    """1.0 -> 1, for messages and `classes`."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _check_constant(path, X: np.ndarray, columns: list[int], names: Sequence[str] | None) -> None:
    for jj, j in enumerate(columns):
        col = X[:, jj]
        if (col == col[0]).all():
            raise DataError(f"file {path}, {_column_label(j, names)}: the column is constant (every row is "
                            f"{_plain(float(col[0]))}); it carries no information and cannot be "
                            f"standardized, drop it")


def load_csv(path, label="last", sep: str | None = None, header: bool | None = None, *,
             positive=None, name: str | None = None) -> Dataset:
    """Read a delimited text file of numbers: one row per patient, one column per feature plus a label.

    label : "last" (default), "first", a 0-based column index (negative counts from the end) or a
        column name from the header line
    sep : the column separator; None detects tab, then semicolon, then comma on line 1
    header : whether line 1 holds column names; None decides: it is a header when none of its cells
        is a number (a data row always has numeric features)
    positive : the label value of the positive class, needed unless the labels are {0, 1}, {-1, 1}
        or {1, 2} (see the module docstring)

    LF and CRLF line ends, a missing final newline and a UTF-8 byte order mark are all accepted.
    Missing values (empty cells, NA, NaN, ?, ...), non-numeric features, rows with the wrong number of
    cells, labels without exactly two classes and constant feature columns raise `DataError` naming
    the file, line and column.
    """
    path = Path(path)
    lines = _read_lines(path)
    if sep is None:
        sep = _guess_sep(path, lines[0])
    elif not isinstance(sep, str) or len(sep) != 1:
        raise ParameterError(f"parameter sep must be a single character or None, got {sep!r}")
    for k, text in enumerate(lines):
        if not text.strip():
            raise DataError(f"file {path}, line {k + 1}: is blank (only trailing blank lines are allowed)")
    cells = []
    for k, text in enumerate(lines):
        try:  # one line at a time: a stray quote must not swallow the next row
            row = next(csv.reader([text], delimiter=sep))
        except csv.Error as e:
            raise DataError(f"file {path}, line {k + 1}: cannot split into cells ({e})") from None
        cells.append([c.strip() for c in row])
    ncols = len(cells[0])
    if header is None:
        header = all(_number(c) is None for c in cells[0])
    names = [c or f"column {j + 1}" for j, c in enumerate(cells[0])] if header else None
    first_data = 1 if header else 0
    if len(cells) <= first_data:
        raise DataError(f"file {path}: has a header line but no data rows")
    for k in range(first_data, len(cells)):
        if len(cells[k]) != ncols:
            raise DataError(f"file {path}, line {k + 1}: has {len(cells[k])} cells, expected {ncols} "
                            f"(as on line 1)")
    if ncols < 2:
        raise DataError(f"file {path}: needs a label column and at least one feature column, found "
                        f"{ncols} column (separator {_SEPARATORS.get(sep, repr(sep))})")
    lab = _label_index(label, names, ncols, path)
    feats = [j for j in range(ncols) if j != lab]
    body = cells[first_data:]
    X = np.empty((len(body), len(feats)))
    for i, row in enumerate(body):
        for jj, j in enumerate(feats):
            cell = row[j]
            v = _number(cell)
            if v is None:
                what = "is empty (missing value)" if cell == "" else (
                    f"holds {cell!r}, a missing value" if _is_missing(cell) else f"holds {cell!r}, not a number")
                hint = " (if line 1 holds column names, pass header=True)" if i == 0 and not header else ""
                raise DataError(f"file {path}, line {i + first_data + 1}, {_column_label(j, names)}: "
                                f"{what}{hint}")
            X[i, jj] = v
    labels = [row[lab] for row in body]
    for i, cell in enumerate(labels):
        if _is_missing(cell):
            raise DataError(f"file {path}, line {i + first_data + 1}, {_column_label(lab, names)} (label): "
                            f"the label is missing ({cell!r})")
    y, classes = _encode_labels(labels, first_data + 1, _column_label(lab, names) + " (label)", path, positive)
    feature_names = [names[j] for j in feats] if names else [f"x{j + 1}" for j in feats]
    _check_constant(path, X, feats, names)
    return Dataset(X, y, feature_names, name=name or path.stem, source=str(path), classes=classes,
                   meta={"sep": sep, "header": bool(header), "label_column": lab,
                         "first_data_line": first_data + 1})


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


def load(spec: str | os.PathLike, **kwargs) -> Dataset:
    """One entry point for every source.

    "breast_cancer" (the embedded default), "synthetic:NxD" (e.g. "synthetic:49152x10"), a shared name
    (edin, lbw, pcs, uis) or a path to a delimited file. Keyword arguments go to the loader
    (`synthetic`'s seed and positive_fraction, or `load_csv`'s label, sep, header, positive).
    """
    if isinstance(spec, os.PathLike):
        return load_csv(spec, **kwargs)
    if not isinstance(spec, str):
        raise ParameterError(f"parameter spec must be a data set name or a path, got {spec!r}")
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
    from .lr.folds import check_fold_count, check_stratifiable

    check_fold_count(folds)
    where = dataset.source or dataset.name
    if dataset.n_samples < folds:
        raise DataError(f"data set {dataset.name!r} ({where}): {dataset.n_samples} rows cannot fill "
                        f"{folds} folds")
    check_stratifiable(dataset.y, folds, what=f"data set {dataset.name!r} ({where})")


def split(dataset: Dataset, parties: int, how="even", seed: int | None = None) -> list[Dataset]:
    """Distribute the rows among `parties` hospitals; each part keeps its global row numbers in `rows`.

    how : "even" (sizes differ by at most one row), a list of `parties` positive fractions summing to 1
        (uneven hospitals), or a feature column (name or 0-based index) whose distinct values, e.g. a
        site id, say which hospital holds a row. That column is dropped from the features; hospitals
        are ordered by sorted value.
    seed : for "even" and fractions, shuffle rows before cutting (None keeps file order, in
        contiguous blocks). Public randomness only.

    Rows keep their global order inside each part.
    """
    if isinstance(parties, bool) or not isinstance(parties, int | np.integer) or parties < 1:
        raise ParameterError(f"parameter parties must be a positive integer, got {parties!r}")
    n = dataset.n_samples
    if isinstance(how, str) and how == "even":
        sizes = [n // parties + (1 if k < n % parties else 0) for k in range(parties)]
        groups = _cut(n, sizes, seed)
    elif isinstance(how, Sequence) and not isinstance(how, str):
        groups = _cut(n, _fraction_sizes(how, parties, n), seed)
    elif isinstance(how, str | int | np.integer) and not isinstance(how, bool):
        return _split_by_column(dataset, parties, how)
    else:
        raise ParameterError(f"parameter how must be 'even', a list of fractions or a column name/index, "
                             f"got {how!r}")
    for k, g in enumerate(groups):
        if g.size == 0:
            raise DataError(f"split of data set {dataset.name!r}: party {k + 1} of {parties} gets no rows "
                            f"({n} rows in all)")
    return [dataset.subset(g, name=f"{dataset.name}[party {k + 1}]") for k, g in enumerate(groups)]


def _fraction_sizes(fractions, parties: int, n: int) -> list[int]:
    try:
        f = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter how: fractions must be numbers, got {fractions!r}") from None
    if f.shape != (parties,):
        raise ParameterError(f"parameter how lists {f.size} fractions for {parties} parties")
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


def _split_by_column(dataset: Dataset, parties: int, column) -> list[Dataset]:
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
    if distinct.size != parties:
        shown = ", ".join(f"{_plain(float(v))}" for v in distinct[:10]) + (", ..." if distinct.size > 10 else "")
        raise DataError(f"split of data set {dataset.name!r} by feature {names[j]!r}: it has "
                        f"{distinct.size} distinct values ({shown}), one per party is needed for "
                        f"{parties} parties")
    keep = [k for k in range(len(names)) if k != j]
    reduced = replace(dataset, X=dataset.X[:, keep], feature_names=[names[k] for k in keep],
                      meta={**dataset.meta, "split_column": names[j]})
    return [reduced.subset(np.flatnonzero(values == v), name=f"{dataset.name}[{names[j]}={_plain(float(v))}]")
            for v in distinct]
